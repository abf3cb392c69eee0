// `npm run bench:drafters`: which drafter wins on which workload (bench/drafters.ts) — open chat, repeated
// requests, copying, rewriting and translation, one stream at RTT 20 ms on the measured ALIA-40b/H200 cost
// model — the fixture target's chrF against Apertium, and the suffix proposer's cost per round. Writes bench/results/drafters.json and BENCHMARKS.md's drafter part (--out
// elsewhere: the JSON only).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { benchDrafters } from "../bench/drafters.ts";
import { updateDraftersSection } from "../bench/drafters-report.ts";
import { cliFail, parseCli } from "./cli.ts";

const USAGE = `usage: npm run bench:drafters -- [--streams 12] [--tokens 64] [--out FILE.json]
Without --out: writes bench/results/drafters.json and BENCHMARKS.md's drafter part.`;
const { values } = parseCli("bench-drafters", USAGE, {
  options: { streams: { type: "string", default: "12" }, tokens: { type: "string", default: "64" }, out: { type: "string" } },
});
const count = (flag: "streams" | "tokens") => {
  const v = Number(values[flag]);
  return Number.isInteger(v) && v >= 1 ? v : cliFail("bench-drafters", `--${flag} must be a positive integer, got ${JSON.stringify(values[flag])}`);
};
const t0 = performance.now();
const log = (s: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${s}`);
const result = await benchDrafters({ log, streams: count("streams"), tokens: count("tokens") });
const out = values.out ?? path.join("bench", "results", "drafters.json");
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
log(`wrote ${out}`);
if (!values.out) {
  const file = "BENCHMARKS.md";
  await writeFile(file, updateDraftersSection(await readFile(file, "utf8"), result));
  log("updated BENCHMARKS.md's drafter part");
}
