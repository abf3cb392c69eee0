// Writes BENCHMARKS.md's generated parts and bench/plots/*.svg from results JSON.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { plots, updateBenchmarksMd, type BenchResult } from "./report.ts";
import { regimesPlots, updateRegimesSection, type RegimesResult } from "./regimes-report.ts";

const ROOT = path.resolve(import.meta.dirname, "..");

export async function writeReport(r: BenchResult): Promise<void> {
  const file = path.join(ROOT, "BENCHMARKS.md");
  const doc = await readFile(file, "utf8").catch(() => "# Benchmarks\n");
  await writeFile(file, updateBenchmarksMd(doc, r));
  await mkdir(path.join(ROOT, "bench", "plots"), { recursive: true });
  for (const [name, svg] of Object.entries(plots(r))) await writeFile(path.join(ROOT, "bench", "plots", name), svg);
}

export async function writeRegimesReport(r: RegimesResult): Promise<void> {
  const file = path.join(ROOT, "BENCHMARKS.md");
  await writeFile(file, updateRegimesSection(await readFile(file, "utf8"), r));
  await mkdir(path.join(ROOT, "bench", "plots"), { recursive: true });
  for (const [name, svg] of Object.entries(regimesPlots(r))) await writeFile(path.join(ROOT, "bench", "plots", name), svg);
}
