// The benchmark suite behind `npm run bench`: real verifier processes on loopback, the delay proxy for
// RTT, SpeculativeDecoder + PoolClient at the edge. Scenarios (BENCHMARKS.md explains each):
//   lossless   greedy identity on many prompts; sampling chi-square on a tiny-vocabulary pair
//   rounds     pair × γ × proactive × RTT × timing: α, τ, τ predicted, passes/token, ms/token
//   baselines  the pool generating alone (no speculation) at each RTT
// Timing "fixture" is the tiny models' real speed; "deployment" pads each draft step to an edge drafter's
// step and holds each verify pass to the measured ALIA-40b/H200 cost model, with the same processes and
// protocol. Concurrent sessions are the regime grid's (bench/regime-grid.ts).
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadTargetModel, ortNode } from "../gpu-backend/target-model.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import { targetDistribution } from "../src/common/sampling.ts";
import { SpeculativeDecoder } from "../src/speculative/speculative-decoder.ts";
import { chiSquareTest, totalVariation } from "../test/harness/chi-square.ts";
import { startDelayProxy } from "../test/harness/delay-proxy.ts";
import { randomPrompts } from "../fixtures/generate/synthetic-pair.ts";
import { DEFAULT_PAIR_DIR, writeSyntheticPairBundles } from "../fixtures/generate/synthetic-bundles.ts";
import { startVerifierProcess } from "../test/harness/processes.ts";
import { acceptanceOf, tauMeasured, tauTheoryOf, type RoundRecord } from "./statistics.ts";
import { SPANISH_PROMPTS } from "../test/harness/prompts.ts";
import { withDraftStepCost } from "./simulated-draft.ts";

export type Timing = "fixture" | "deployment";
export type GammaSetting = number | "adaptive";

export interface DeploymentCosts {
  /** Padded cost of one draft step (Salamandra-2b q4 on an edge CPU). */
  draft_step_ms: number;
  /** The verifier's GPU: a cost model (VERIFIER_COST_MODEL) every pass is held to, at this past per session. */
  cost_model: string;
  past: number;
}

/** The verifier environment that makes its GPU the deployment cost model. */
export function simulatedGpuEnv(costs: DeploymentCosts): Record<string, string> {
  return { VERIFIER_COST_MODEL: costs.cost_model, VERIFIER_SIMULATE_GPU: "true", VERIFIER_SIMULATED_PAST: String(costs.past) };
}

export interface RoundRow {
  pair: string;
  timing: Timing;
  gamma: GammaSetting;
  proactive: boolean;
  rtt_ms: number;
  alpha: number;
  tau: number;
  tau_theory: number;
  target_passes_per_token: number;
  ms_per_token: number;
  tokens_per_s: number;
  pool_generated_share: number;
  mean_gamma: number;
}

export interface BaselineRow {
  pair: string;
  timing: Timing;
  mode: "remote autoregressive";
  rtt_ms: number;
  ms_per_token: number;
  tokens_per_s: number;
}

export interface SuiteOptions {
  quick: boolean;
  costs: DeploymentCosts;
  log: (s: string) => void;
}

interface Pair {
  name: string;
  dir: string;
  draft: CausalLM;
  prompts: number[][];
}

const GAMMAS: GammaSetting[] = [1, 2, 4, 6, 8, "adaptive"];
const RTTS = [0, 20, 80];

async function openPairs(o: SuiteOptions, tmp: string): Promise<Pair[]> {
  const tok = TextTokenizer.fromBundle(await loadBundle(path.join(DEFAULT_PAIR_DIR, "target")));
  const n = o.quick ? 1 : 3;
  const pairs: Pair[] = [{ name: "fixture", dir: DEFAULT_PAIR_DIR, draft: await loadDraftModel(await loadBundle(path.join(DEFAULT_PAIR_DIR, "draft"))), prompts: SPANISH_PROMPTS.slice(0, n).map((t) => tok.encode(t)) }];
  for (const [label, alpha] of [
    ["synthetic-low", 0.3],
    ["synthetic-medium", 0.6],
    ["synthetic-high", 0.9],
  ] as const) {
    o.log(`making ${label} pair (α ≈ ${alpha})…`);
    const dir = path.join(tmp, label);
    const p = await writeSyntheticPairBundles({ outDir: dir, alpha, seed: 21, ort: ortNode, name: label });
    pairs.push({ name: `${label} (α ${p.alpha.toFixed(2)})`, dir, draft: await loadDraftModel(await loadBundle(p.draftDir)), prompts: randomPrompts(n, 8, p.target.arch.vocabSize, 22) });
  }
  return pairs;
}

/** Rows of one pair at one timing: every RTT × γ × proactive, plus the autoregressive baseline. */
async function pairRows(pair: Pair, timing: Timing, o: SuiteOptions): Promise<{ rows: RoundRow[]; baselines: BaselineRow[]; edgeMsPerRound: number[] }> {
  const dep = timing === "deployment";
  const { child, url } = await startVerifierProcess({
    MODEL_DIR: pair.dir,
    ...(dep ? simulatedGpuEnv(o.costs) : {}),
  });
  const proxy = await startDelayProxy({ target: url, delayMs: 0 });
  const draft = dep ? withDraftStepCost(pair.draft, o.costs.draft_step_ms) : pair.draft;
  const tokens = o.quick ? (dep ? 10 : 24) : dep ? 24 : 48;
  const rows: RoundRow[] = [];
  const baselines: BaselineRow[] = [];
  const edgeMsPerRound: number[] = [];
  let session = 0;
  try {
    for (const rtt of RTTS) {
      proxy.setDelay(rtt / 2);
      const pool = new PoolClient({ nodes: [proxy.url], timeoutMs: 120_000 });
      for await (const _ of new SpeculativeDecoder({ draft: pair.draft, pool, maxTokens: 4, gamma: 2, session: `w${session++}` }).run(pair.prompts[0]));
      const run = async (gamma: number | "adaptive", proactive: boolean) => {
        let n = 0;
        let passes = 0;
        let generated = 0;
        let gammaSum = 0;
        let gammaN = 0;
        const log: RoundRecord[] = [];
        const t0 = performance.now();
        for (const p of pair.prompts) {
          const d = new SpeculativeDecoder({ draft, pool, maxTokens: tokens, gamma, proactive, session: `b${session++}` });
          for await (const ev of d.run(p)) n += ev.tokens.length;
          passes += d.stats.targetPasses;
          generated += d.stats.generatedTokens;
          gammaSum += d.stats.gammas.reduce((a, g) => a + g, 0);
          gammaN += d.stats.gammas.length;
          log.push(...d.stats.roundLog);
          if (d.stats.rounds && !dep) edgeMsPerRound.push(d.stats.edgeMs / d.stats.rounds);
        }
        const ms = performance.now() - t0;
        return { n, ms, passes, generated, gammaSum, gammaN, log };
      };
      const base = await run(0, false);
      baselines.push({ pair: pair.name, timing, mode: "remote autoregressive", rtt_ms: rtt, ms_per_token: base.ms / base.n, tokens_per_s: (1000 * base.n) / base.ms });
      for (const gamma of GAMMAS)
        for (const proactive of [false, true]) {
          const r = await run(gamma, proactive);
          const row: RoundRow = {
            pair: pair.name,
            timing,
            gamma,
            proactive,
            rtt_ms: rtt,
            alpha: acceptanceOf(r.log).alpha,
            tau: tauMeasured(r.log),
            tau_theory: tauTheoryOf(r.log),
            target_passes_per_token: r.passes / r.n,
            ms_per_token: r.ms / r.n,
            tokens_per_s: (1000 * r.n) / r.ms,
            pool_generated_share: r.generated / r.n,
            mean_gamma: r.gammaN ? r.gammaSum / r.gammaN : 0,
          };
          rows.push(row);
          o.log(`${pair.name} ${timing} RTT ${rtt} γ=${gamma}${proactive ? " proactive" : ""}: τ ${row.tau.toFixed(2)} (theory ${row.tau_theory.toFixed(2)}), ${row.ms_per_token.toFixed(2)} ms/token`);
        }
    }
  } finally {
    await proxy.close();
    child.kill("SIGKILL");
  }
  return { rows, baselines, edgeMsPerRound };
}

export async function benchRounds(o: SuiteOptions): Promise<{ rows: RoundRow[]; baselines: BaselineRow[]; edge_overhead_ms_per_round: number }> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), "alia-bench-"));
  try {
    const pairs = await openPairs(o, tmp);
    const rows: RoundRow[] = [];
    const baselines: BaselineRow[] = [];
    const edge: number[] = [];
    for (const pair of pairs)
      for (const timing of ["fixture", "deployment"] as const) {
        const r = await pairRows(pair, timing, o);
        rows.push(...r.rows);
        baselines.push(...r.baselines);
        edge.push(...r.edgeMsPerRound);
      }
    for (const p of pairs) await p.draft.dispose();
    return { rows, baselines, edge_overhead_ms_per_round: edge.reduce((a, b) => a + b, 0) / Math.max(1, edge.length) };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Greedy identity over many prompts (adaptive γ) and the sampling chi-square on a tiny-vocabulary pair. */
export async function benchLossless(o: SuiteOptions) {
  const tokBundle = await loadBundle(path.join(DEFAULT_PAIR_DIR, "target"));
  const tok = TextTokenizer.fromBundle(tokBundle);
  const target = await loadTargetModel(tokBundle);
  const draft = await loadDraftModel(await loadBundle(path.join(DEFAULT_PAIR_DIR, "draft")));
  const { child, url } = await startVerifierProcess({});
  const pool = new PoolClient({ nodes: [url] });
  const texts = [...SPANISH_PROMPTS, ...SPANISH_PROMPTS.map((s) => `${s} y`)].slice(0, o.quick ? 20 : 100);
  let identical = 0;
  let session = 0;
  try {
    for (const [i, text] of texts.entries()) {
      const prompt = tok.encode(text);
      const d = new SpeculativeDecoder({ draft, pool, maxTokens: 64, gamma: i % 2 ? "adaptive" : 4, proactive: i % 3 === 0, session: `l${session++}` });
      const out: number[] = [];
      for await (const ev of d.run(prompt)) out.push(...ev.tokens);
      if (JSON.stringify(out) === JSON.stringify(await target.greedy(prompt, 64))) identical++;
    }
  } finally {
    child.kill("SIGKILL");
  }
  o.log(`lossless greedy: ${identical}/${texts.length} identical`);

  const tmp = await mkdtemp(path.join(os.tmpdir(), "alia-tiny-"));
  try {
    const tiny = await writeSyntheticPairBundles({ outDir: tmp, alpha: 0.6, vocabSize: 8, seed: 3, ort: ortNode, name: "tiny" });
    const v = await startVerifierProcess({ MODEL_DIR: tmp });
    try {
      const tTarget = await loadTargetModel(await loadBundle(tiny.targetDir));
      const tDraft = await loadDraftModel(await loadBundle(tiny.draftDir));
      const tPool = new PoolClient({ nodes: [v.url] });
      const prompt = [1, 6, 7, 6];
      const samples = o.quick ? 600 : 2000;
      const counts = new Map<string, number>();
      let next = 0;
      await Promise.all(
        Array.from({ length: 6 }, async () => {
          for (let t = next++; t < samples; t = next++) {
            const d = new SpeculativeDecoder({ draft: tDraft, pool: tPool, maxTokens: 2, gamma: 2, support: 8, session: `x${t}`, sampling: { temperature: 2, top_p: 1, top_k: 0, seed: 50_000 + t }, seeded: true });
            const out: number[] = [];
            for await (const ev of d.run(prompt)) out.push(...ev.tokens);
            counts.set(out.join(","), (counts.get(out.join(",")) ?? 0) + 1);
          }
        }),
      );
      const row = async (ctx: number[]) => (await tTarget.forward(tTarget.newSequence(), ctx)).last();
      const keys: string[] = [];
      const probs: number[] = [];
      const pa = targetDistribution(await row(prompt), { temperature: 2 });
      for (const [a, P] of pa.entries()) {
        const pb = targetDistribution(await row([...prompt, a]), { temperature: 2 });
        for (const [b, Q] of pb.entries()) {
          keys.push(`${a},${b}`);
          probs.push(P * Q);
        }
      }
      const observed = keys.map((k) => counts.get(k) ?? 0);
      const chi = chiSquareTest(observed, probs);
      o.log(`lossless sampling: ${samples} samples, chi-square p ${chi.pValue.toFixed(3)}`);
      return { greedy: { prompts: texts.length, identical }, sampling: { samples, p_value: chi.pValue, tv: totalVariation(observed, probs), chi2: chi.statistic, dof: chi.dof } };
    } finally {
      v.child.kill("SIGKILL");
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
