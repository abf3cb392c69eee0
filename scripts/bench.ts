// `npm run bench`: the whole benchmark in one run — draft runners, the verifier alone, speculation end to
// end (pairs × γ × proactive × RTT × timing, baselines), losslessness — written to a results JSON, then the
// regime grid (concurrent sessions on the measured GPU cost model; `npm run bench:regimes` alone); a full
// run also regenerates BENCHMARKS.md's tables and bench/plots/*.svg.
// `--quick` keeps every scenario but fewer prompts and tokens (a few minutes on 2 cores).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { writeRegimesReport, writeReport } from "../bench/write-report.ts";
import { benchRunners } from "../bench/runners.ts";
import { benchLossless, benchRounds } from "../bench/suite.ts";
import { benchRegimes } from "../bench/regime-grid.ts";
import { benchVerifier, benchVerifierHttp } from "../bench/verify-rounds.ts";
import type { BenchResult } from "../bench/report.ts";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";
import { cliFail, parseCli } from "./cli.ts";

const USAGE = `usage: npm run bench -- [--quick] [--out FILE.json] [--report] [--draft-ms 25] [--past 2048] [--skip-regimes]
  deployment timing: the draft step, and the context each session carries into the GPU cost model
A full run without --out writes bench/results/bench.json, BENCHMARKS.md and bench/plots/; --report makes
any run rewrite them.`;
const { values } = parseCli("bench", USAGE, {
  options: {
    quick: { type: "boolean", default: false },
    out: { type: "string" },
    report: { type: "boolean", default: false },
    "draft-ms": { type: "string", default: "25" },
    past: { type: "string", default: "2048" },
    "skip-regimes": { type: "boolean", default: false },
  },
});
const t0 = performance.now();
const log = (s: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${s}`);
const quick = values.quick;
const nonNegative = (flag: "draft-ms" | "past"): number => {
  const v = Number(values[flag]);
  return v >= 0 ? v : cliFail("bench", `--${flag} must be a number ≥ 0, got ${JSON.stringify(values[flag])}`);
};
const costs = { draft_step_ms: nonNegative("draft-ms"), cost_model: "h200-alia-40b", past: nonNegative("past") };
const o = { quick, costs, log };

log("draft and target runners…");
const runners = await benchRunners({ pairDir: DEFAULT_PAIR_DIR, tokens: quick ? 16 : 64, prompts: quick ? 3 : 16, rounds: quick ? 1 : 3, alphaPrompts: quick ? 10 : 50, log });
log("verifier alone…");
const targetBundle = await loadBundle(path.join(DEFAULT_PAIR_DIR, "target"));
const targetLm = await loadTargetModel(targetBundle);
const tokenizer = TextTokenizer.fromBundle(targetBundle);
const verifier = await benchVerifier(targetLm, (t) => tokenizer.encode(t), { prompts: quick ? 5 : 30, gammas: [1, 2, 3, 4, 5, 6, 7, 8] });
await targetLm.dispose();
const verifierHttp = await benchVerifierHttp(DEFAULT_PAIR_DIR, (t) => tokenizer.encode(t), { prompts: quick ? 5 : 30, gammas: [1, 2, 4, 8], sessions: [1, 8, 32], rounds: quick ? 5 : 30 });
log("speculation end to end…");
const rounds = await benchRounds(o);
log("losslessness…");
const lossless = await benchLossless(o);

const result: BenchResult & Record<string, unknown> = {
  date: new Date().toISOString(),
  quick,
  machine: { node: process.version, cpus: os.cpus().length },
  costs,
  lossless,
  rounds: rounds.rows,
  baselines: rounds.baselines,
  draft: { ort_web_ms_per_token: runners.draft.ort_web_ms_per_token, ort_node_ms_per_token: runners.draft.ort_node_ms_per_token, transformersjs_ms_per_token: runners.draft.transformersjs_ms_per_token },
  edge_overhead_ms_per_round: rounds.edge_overhead_ms_per_round,
  runners,
  verifier,
  verifier_http: verifierHttp,
};
const out = values.out ?? path.join("bench", "results", quick ? "bench-quick.json" : "bench.json");
await mkdir(path.dirname(out), { recursive: true });
await writeFile(out, JSON.stringify(result, null, 2) + "\n");
log(`wrote ${out}`);
if (values.report || (!values.out && !quick)) {
  await writeReport(JSON.parse(await readFile(out, "utf8")) as BenchResult);
  log("updated BENCHMARKS.md and bench/plots/");
}

if (!values["skip-regimes"]) {
  log("regime grid…");
  const regimes = await benchRegimes({ quick, log });
  const regimesOut = path.join(path.dirname(out), quick ? "regimes-quick.json" : "regimes.json");
  await writeFile(regimesOut, `${JSON.stringify(regimes, null, 2)}\n`);
  log(`wrote ${regimesOut}`);
  if (values.report || (!values.out && !quick)) await writeRegimesReport(regimes);
}
