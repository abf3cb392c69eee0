// `npm run bench:report [-- FILE.json]`: regenerate BENCHMARKS.md's tables and bench/plots/ from a results
// JSON (default bench/results/bench.json) without running anything.
import { readFile } from "node:fs/promises";
import type { BenchResult } from "../bench/report.ts";
import { writeReport } from "../bench/write-report.ts";
import { cliFail, parseCli } from "./cli.ts";

const { positionals } = parseCli("bench-report", "usage: npm run bench:report [-- FILE.json]   (default bench/results/bench.json)", { allowPositionals: true, options: {} });
if (positionals.length > 1) cliFail("bench-report", `expected at most one results file, got ${positionals.length}`);
const file = positionals[0] ?? "bench/results/bench.json";
await writeReport(JSON.parse(await readFile(file, "utf8")) as BenchResult);
console.log(`BENCHMARKS.md and bench/plots/ regenerated from ${file}`);
