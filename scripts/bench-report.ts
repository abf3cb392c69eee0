// `npm run bench:report [-- FILE.json]`: regenerate BENCHMARKS.md's tables and bench/plots/ from a results
// JSON (default bench/results/bench.json) without running anything.
import { readFile } from "node:fs/promises";
import type { BenchResult } from "../bench/report.ts";
import { writeReport } from "../bench/write-report.ts";

const file = process.argv[2] ?? "bench/results/bench.json";
await writeReport(JSON.parse(await readFile(file, "utf8")) as BenchResult);
console.log(`BENCHMARKS.md and bench/plots/ regenerated from ${file}`);
