// `npm run bench:drafter-shapes`: which draft-model shapes fit a Worker (bench/drafter-shapes.ts) — ms per
// drafted token in Node and workerd, and workerd's memory, for the whole shape grid (--quick: three shapes).
// Writes bench/results/drafter-shapes.json and BENCHMARKS.md's drafter-shape part (--out elsewhere: the
// JSON only). Builds models of up to ~450 MB in memory: give it a few GB.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { QUICK_SHAPES, allShapes, benchDrafterShapes } from "../bench/drafter-shapes.ts";
import { updateDrafterShapesSection } from "../bench/drafter-shapes-report.ts";
import { parseCli } from "./cli.ts";

const USAGE = `usage: npm run bench:drafter-shapes -- [--quick] [--out FILE.json]
Without --out: writes bench/results/drafter-shapes.json and BENCHMARKS.md's drafter-shape part.`;
const { values } = parseCli("bench-drafter-shapes", USAGE, { options: { quick: { type: "boolean", default: false }, out: { type: "string" } } });
const t0 = performance.now();
const log = (s: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${s}`);
const result = await benchDrafterShapes({ shapes: values.quick ? QUICK_SHAPES : allShapes(), log });
const out = values.out ?? path.join("bench", "results", values.quick ? "drafter-shapes-quick.json" : "drafter-shapes.json");
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
log(`wrote ${out}`);
if (!values.out && !values.quick) {
  const file = "BENCHMARKS.md";
  await writeFile(file, updateDrafterShapesSection(await readFile(file, "utf8"), result));
  log("updated BENCHMARKS.md's drafter-shape part");
}
