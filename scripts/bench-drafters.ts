// `npm run bench:drafters`: which drafter wins on which workload (bench/drafters.ts) — open chat, repeated
// requests, copying, rewriting and translation, one stream at RTT 20 ms on the measured ALIA-40b/H200 cost
// model — the fixture target's chrF against Apertium, and the suffix proposer's cost per round. Writes bench/results/drafters.json and BENCHMARKS.md's drafter part (--out
// elsewhere: the JSON only).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DRAFTER_MODES, benchDrafters, type DrafterMode } from "../bench/drafters.ts";
import { updateDraftersSection } from "../bench/drafters-report.ts";
import { cliFail, parseCli } from "./cli.ts";

const USAGE = `usage: npm run bench:drafters -- [--streams 12] [--tokens 64] [--workload NAME]... [--mode MODE]... [--out FILE.json]
Without --out: writes bench/results/drafters.json and BENCHMARKS.md's drafter part (a whole run only).
--workload / --mode: run only these (autoregressive always runs: ratios are to it); needs --out.
Modes: ${DRAFTER_MODES.join(", ")}.`;
const { values } = parseCli("bench-drafters", USAGE, {
  options: {
    streams: { type: "string", default: "12" },
    tokens: { type: "string", default: "64" },
    workload: { type: "string", multiple: true },
    mode: { type: "string", multiple: true },
    out: { type: "string" },
  },
});
const count = (flag: "streams" | "tokens") => {
  const v = Number(values[flag]);
  return Number.isInteger(v) && v >= 1 ? v : cliFail("bench-drafters", `--${flag} must be a positive integer, got ${JSON.stringify(values[flag])}`);
};
const partial = values.workload !== undefined || values.mode !== undefined;
if (partial && !values.out) cliFail("bench-drafters", "--workload and --mode write a partial run: give --out FILE.json");
const badMode = values.mode?.find((m) => !(DRAFTER_MODES as readonly string[]).includes(m));
if (badMode) cliFail("bench-drafters", `unknown mode ${JSON.stringify(badMode)}: the modes are ${DRAFTER_MODES.join(", ")}`);
const t0 = performance.now();
const log = (s: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${s}`);
const result = await benchDrafters({ log, streams: count("streams"), tokens: count("tokens"), workloads: values.workload, modes: values.mode as DrafterMode[] | undefined });
const out = values.out ?? path.join("bench", "results", "drafters.json");
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
log(`wrote ${out}`);
if (!values.out) {
  const file = "BENCHMARKS.md";
  await writeFile(file, updateDraftersSection(await readFile(file, "utf8"), result));
  log("updated BENCHMARKS.md's drafter part");
}
