// `npm run bench:regimes`: the regime grid alone (bench/regime-grid.ts) — drafter step × sessions × past ×
// RTT × mode on one verifier whose GPU is the measured ALIA-40b/H200 cost model. Writes
// bench/results/regimes.json; a full run (or --report) also regenerates BENCHMARKS.md's regime section and
// bench/plots/regimes-*.svg. `npm run bench` runs it too.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DEFAULT_EUR_PER_GPU_HOUR, benchRegimes } from "../bench/regime-grid.ts";
import type { RegimesResult } from "../bench/regimes-report.ts";
import { writeRegimesReport } from "../bench/write-report.ts";
import { cliFail, parseCli } from "./cli.ts";

const USAGE = `usage: npm run bench:regimes -- [--quick] [--out FILE.json] [--report] [--eur-per-gpu-hour 3.5]
A full run without --out writes bench/results/regimes.json and BENCHMARKS.md's regime section; --report makes
any run rewrite them.`;
const { values } = parseCli("bench-regimes", USAGE, {
  options: { quick: { type: "boolean", default: false }, out: { type: "string" }, report: { type: "boolean", default: false }, "eur-per-gpu-hour": { type: "string", default: String(DEFAULT_EUR_PER_GPU_HOUR) } },
});
const eurPerGpuHour = Number(values["eur-per-gpu-hour"]);
if (!(eurPerGpuHour > 0)) cliFail("bench-regimes", `--eur-per-gpu-hour must be a positive number, got ${JSON.stringify(values["eur-per-gpu-hour"])}`);
const t0 = performance.now();
const log = (s: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${s}`);
const result = await benchRegimes({ quick: values.quick, eurPerGpuHour, log });
const out = values.out ?? path.join("bench", "results", values.quick ? "regimes-quick.json" : "regimes.json");
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
log(`wrote ${out} (${result.cells.length} cells)`);
if (values.report || (!values.out && !values.quick)) {
  await writeRegimesReport(JSON.parse(await readFile(out, "utf8")) as RegimesResult);
  log("updated BENCHMARKS.md's regime section and bench/plots/regimes-*.svg");
}
