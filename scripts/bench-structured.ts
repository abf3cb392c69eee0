// `npm run bench:structured`: τ and tokens/s with and without a JSON schema (bench/structured.ts). Writes
// bench/results/structured.json and BENCHMARKS.md's structured-output part (--out elsewhere: the JSON only).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { benchStructured, updateStructuredSection } from "../bench/structured.ts";
import { cliFail, parseCli } from "./cli.ts";

const USAGE = `usage: npm run bench:structured -- [--streams 12] [--tokens 96] [--out FILE.json]
Without --out: writes bench/results/structured.json and BENCHMARKS.md's structured-output part.`;
const { values } = parseCli("bench-structured", USAGE, {
  options: { streams: { type: "string", default: "12" }, tokens: { type: "string", default: "96" }, out: { type: "string" } },
});
const count = (flag: "streams" | "tokens") => {
  const v = Number(values[flag]);
  return Number.isInteger(v) && v >= 1 ? v : cliFail("bench-structured", `--${flag} must be a positive integer, got ${JSON.stringify(values[flag])}`);
};
const t0 = performance.now();
const log = (s: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${s}`);
const result = await benchStructured({ log, streams: count("streams"), maxTokens: count("tokens") });
const out = values.out ?? path.join("bench", "results", "structured.json");
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
log(`wrote ${out}`);
if (!values.out) {
  await writeFile("BENCHMARKS.md", updateStructuredSection(await readFile("BENCHMARKS.md", "utf8"), result));
  log("updated BENCHMARKS.md's structured-output part");
}
