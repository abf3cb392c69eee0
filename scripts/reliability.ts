// `npm run reliability`: the reliability probe (bench/reliability.ts) — load, faults, hostile input, a
// disconnect storm and an RSS soak against real processes on loopback, a few minutes. Writes
// bench/results/reliability.json and docs/RELIABILITY.md's figures (--out elsewhere: the JSON only).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { runReliability } from "../bench/reliability.ts";
import { updateReliabilitySection } from "../bench/reliability-report.ts";
import { parseCli } from "./cli.ts";

const USAGE = `usage: npm run reliability -- [--quick] [--out FILE.json]
  --quick   fewer requests per stream and a 400-request soak (about a minute)
Without --out: writes bench/results/reliability.json and docs/RELIABILITY.md's figures.`;
const { values } = parseCli("reliability", USAGE, { options: { quick: { type: "boolean", default: false }, out: { type: "string" } } });
const t0 = performance.now();
const log = (s: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${s}`);
const result = await runReliability({ quick: values.quick === true, log });
const out = values.out ?? path.join("bench", "results", "reliability.json");
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
log(`wrote ${out}`);
if (!values.out) {
  const file = path.join("docs", "RELIABILITY.md");
  await writeFile(file, updateReliabilitySection(await readFile(file, "utf8"), result));
  log(`updated ${file}'s figures`);
}
process.exit(0);
