// The regime grid (`npm run bench:regimes`): where speculation wins, by drafter speed, load, context and
// round trip. One verifier process whose GPU is the measured ALIA-40b/H200 cost model (every batched pass
// is held to the model's time for its rows; VERIFIER_SIMULATED_PAST gives every session the grid's
// context length), the delay proxy for the RTT, and N concurrent sessions at the edge (SpeculativeDecoder +
// PoolClient), each drafting with a step cost that is a wait, as separate edges would. Per cell:
// tokens/s, inter-token latency, modelled GPU-ms per token (from the verifier's counters), € per million
// tokens, rows and tokens per pass, γ chosen, and what the same drafting would cost co-located on the GPU.
import os from "node:os";
import path from "node:path";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { h200Salamandra2b } from "../src/common/h200-alia-40b.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { eurPerMillionTokens } from "../src/common/pass-cost-model.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import type { DecodeStats } from "../src/speculative/decode-stats.ts";
import { ModelProposer } from "../src/speculative/model-proposer.ts";
import type { Proposer } from "../src/speculative/proposer.ts";
import { SpeculativeDecoder } from "../src/speculative/speculative-decoder.ts";
import { SpeculationPriors } from "../src/speculative/speculation-prior.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";
import { startDelayProxy } from "../test/harness/delay-proxy.ts";
import { startVerifierProcess } from "../test/harness/processes.ts";
import { SPANISH_PROMPTS } from "../test/harness/prompts.ts";
import { ReplayProposer } from "./replay-proposer.ts";
import type { RegimeCell, RegimeMode, RegimesResult } from "./regimes-report.ts";
import { acceptanceOf, median, tauMeasured } from "./statistics.ts";
import { withDraftStepCost } from "./simulated-draft.ts";

export interface RegimeGrid {
  drafterMs: number[];
  sessions: number[];
  pasts: number[];
  rttMs: number[];
  modes: RegimeMode[];
  tokensPerSession: number;
  /** Sessions run generations one after another until the cell has this many tokens (fewer sessions, more generations each). */
  minTokensPerCell: number;
  /** The fixture pair (its real draft model) runs on this part of the grid only: it costs real CPU per session. */
  fixture: { sessions: number[]; pasts: number[]; rttMs: number[] };
}

export const FULL_GRID: RegimeGrid = {
  drafterMs: [0, 2, 25, 100],
  sessions: [1, 8, 32, 128],
  pasts: [512, 2048, 8192],
  rttMs: [5, 20, 80],
  modes: ["autoregressive", "gamma-2", "gamma-4", "adaptive", "adaptive-gpu"],
  tokensPerSession: 64,
  minTokensPerCell: 256,
  fixture: { sessions: [1, 8, 32], pasts: [2048], rttMs: [20] },
};

/** A representative subset: the targets' cells (2 ms and 25 ms drafters, past 2,048, RTT 5 and 20) at three loads. */
export const QUICK_GRID: RegimeGrid = {
  drafterMs: [2, 25],
  sessions: [1, 8, 32],
  pasts: [2048],
  rttMs: [5, 20],
  modes: ["autoregressive", "gamma-2", "gamma-4", "adaptive", "adaptive-gpu"],
  tokensPerSession: 48,
  minTokensPerCell: 192,
  fixture: { sessions: [1, 8], pasts: [2048], rttMs: [20] },
};

const HIGH_ALPHA = 0.9;
/** An H200 on demand, 2026's cloud price range. */
export const DEFAULT_EUR_PER_GPU_HOUR = 3.5;
const COST_MODEL = "h200-alia-40b";

interface Prompt {
  tokens: number[];
  continuation: number[];
}

/** Counters of the verifier's passes (its /metrics). */
async function passTotals(url: string): Promise<{ passes: number; rows: number; tokens: number; gpuMs: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? 0);
  return { passes: read("alia_verifier_passes_total"), rows: read("alia_verifier_pass_rows_total"), tokens: read("alia_verifier_pass_tokens_total"), gpuMs: 1000 * read("alia_verifier_modelled_gpu_seconds_total") };
}

function quantile(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

export async function benchRegimes(o: { quick: boolean; grid?: RegimeGrid; eurPerGpuHour?: number; log: (s: string) => void }): Promise<RegimesResult> {
  const grid = o.grid ?? (o.quick ? QUICK_GRID : FULL_GRID);
  const eurPerGpuHour = o.eurPerGpuHour ?? DEFAULT_EUR_PER_GPU_HOUR;
  const targetBundle = await loadBundle(path.join(DEFAULT_PAIR_DIR, "target"));
  const tok = TextTokenizer.fromBundle(targetBundle);
  const target = await loadTargetModel(targetBundle);
  const vocab = target.vocab;
  const prompts: Prompt[] = [];
  for (const text of SPANISH_PROMPTS.slice(0, 16)) {
    const tokens = tok.encode(text);
    prompts.push({ tokens, continuation: await target.greedy(tokens, grid.tokensPerSession + 20) });
  }
  await target.dispose();
  const draft = await loadDraftModel(await loadBundle(path.join(DEFAULT_PAIR_DIR, "draft")));
  const draft2b = h200Salamandra2b();
  const cells: RegimeCell[] = [];
  const fixtureAlpha: number[] = [];
  // An edge keeps what its earlier generations measured (SpeculationPriors): adaptive sessions of a cell
  // start from what the same pair, drafter and objective measured before, as on an edge in service. The
  // first cell of each is preceded by one unmeasured generation, so that no cell measures a cold edge.
  const priors = new Map<string, SpeculationPriors>();
  let cellNo = 0;

  for (const past of grid.pasts) {
    const v = await startVerifierProcess({
      VERIFIER_COST_MODEL: COST_MODEL,
      VERIFIER_SIMULATE_GPU: "true",
      VERIFIER_SIMULATED_PAST: String(past),
      VERIFIER_MAX_BATCH: "256",
      VERIFIER_MAX_SESSIONS: "4096",
      VERIFIER_MAX_QUEUE: "4096",
      VERIFIER_KV_BYTES: String(2 ** 31),
    });
    const proxy = await startDelayProxy({ target: v.url, delayMs: 0 });
    try {
      for (const rtt of grid.rttMs) {
        proxy.setDelay(rtt / 2);
        const pool = new PoolClient({ nodes: [proxy.url], timeoutMs: 300_000, maxInFlightPerNode: 4096 });
        for (const sessions of grid.sessions) {
          /** N sessions at once; returns what the cell measured. */
          const run = async (mode: RegimeMode, proposer: (i: number, p: Prompt) => Proposer, priorsKey?: string) => {
            const id = cellNo++;
            const gamma = mode === "autoregressive" ? 0 : mode === "gamma-2" ? 2 : mode === "gamma-4" ? 4 : "adaptive";
            const decoder = (i: number, p: Prompt, priors: SpeculationPriors | undefined, session: string) =>
              new SpeculativeDecoder({
                proposer: proposer(i, p),
                pool,
                gamma,
                maxGamma: 8,
                objective: mode === "adaptive-gpu" ? "gpu" : "latency",
                proactive: true,
                priors,
                maxTokens: grid.tokensPerSession,
                session,
              });
            let edgePriors: SpeculationPriors | undefined;
            if (gamma === "adaptive" && priorsKey) {
              edgePriors = priors.get(`${priorsKey} ${mode}`);
              if (!edgePriors) {
                edgePriors = new SpeculationPriors();
                priors.set(`${priorsKey} ${mode}`, edgePriors);
                const p = prompts[prompts.length - 1];
                for await (const _ of decoder(sessions, p, edgePriors, `r${id}-warm`).run(p.tokens));
              }
            }
            const before = await passTotals(v.url);
            const itl: number[] = [];
            const stats: DecodeStats[] = [];
            let tokens = 0;
            const t0 = performance.now();
            // Each session runs generations one after another until the cell has committed enough tokens:
            // one 64-token generation alone is one prompt's and one seed's luck.
            const generations = Math.ceil(grid.minTokensPerCell / (sessions * grid.tokensPerSession));
            await Promise.all(
              Array.from({ length: sessions }, async (_, i) => {
                for (let g = 0; g < generations; g++) {
                  const k = i + g * sessions;
                  const p = prompts[k % prompts.length];
                  const d = decoder(k, p, edgePriors, `r${id}-${k}`);
                  let last = performance.now();
                  let first = true;
                  for await (const ev of d.run(p.tokens)) {
                    const now = performance.now();
                    const n = ev.tokens.length;
                    if (!first && n) for (let j = 0; j < n; j++) itl.push((now - last) / n);
                    if (n) {
                      first = false;
                      last = now;
                    }
                    tokens += n;
                  }
                  stats.push(d.stats);
                }
              }),
            );
            const seconds = (performance.now() - t0) / 1000;
            const after = await passTotals(v.url);
            const gpuMs = after.gpuMs - before.gpuMs;
            const passes = after.passes - before.passes;
            const rows = (after.rows - before.rows) / Math.max(1, passes);
            const log = stats.flatMap((s) => s.roundLog);
            const drafted = stats.reduce((n, s) => n + s.drafted, 0);
            const gammas = stats.flatMap((s) => s.gammas);
            const gpuPerToken = gpuMs / tokens;
            // Co-located: each drafted token is a Salamandra-2b step on the same GPU, batched across the
            // sessions drafting at once (as many rows as the target's passes had). Salamandra-2b was measured
            // at 512 past only: the step is costed there, a lower bound at longer contexts.
            const draftStepMs = draft2b.passMs(Math.max(1, rows), 1, 512) / Math.max(1, rows);
            return {
              alpha: log.length ? acceptanceOf(log).alpha : 0,
              tau: tauMeasured(log),
              tokens,
              tokens_per_s: tokens / seconds,
              gpu_busy_share: gpuMs / (1000 * seconds),
              itl_p50_ms: median(itl),
              itl_p99_ms: quantile(itl, 0.99),
              gpu_ms_per_token: gpuPerToken,
              eur_per_m_tokens: eurPerMillionTokens(gpuPerToken, eurPerGpuHour),
              mean_rows: rows,
              tokens_per_pass: (after.tokens - before.tokens) / Math.max(1, passes),
              mean_gamma: gammas.length ? gammas.reduce((a, b) => a + b, 0) / gammas.length : 0,
              pool_generated_share: stats.reduce((n, s) => n + s.generatedTokens, 0) / tokens,
              colocated_gpu_ms_per_token: mode === "autoregressive" ? null : gpuPerToken + (drafted / tokens) * draftStepMs,
            };
          };
          const replay = (stepMs: number) => (i: number, p: Prompt) => new ReplayProposer({ promptLength: p.tokens.length, continuation: p.continuation, alpha: HIGH_ALPHA, stepMs, vocab, seed: 1000 + i });
          const fixture = (stepMs: number) => () => new ModelProposer(withDraftStepCost(draft, stepMs));
          const ar = await run("autoregressive", replay(0));
          const key = { sessions, past, rtt_ms: rtt };
          const onFixture = grid.fixture.sessions.includes(sessions) && grid.fixture.pasts.includes(past) && grid.fixture.rttMs.includes(rtt);
          // The autoregressive baseline is the same target either way: measured once, listed for each pair.
          cells.push({ pair: "high", drafter_ms: null, mode: "autoregressive", ...key, ...ar });
          if (onFixture) cells.push({ pair: "fixture", drafter_ms: null, mode: "autoregressive", ...key, ...ar });
          o.log(`past ${past} RTT ${rtt} ${sessions} sessions autoregressive: ${ar.tokens_per_s.toFixed(0)} tokens/s, ${ar.gpu_ms_per_token.toFixed(2)} GPU-ms/token`);
          for (const stepMs of grid.drafterMs)
            for (const mode of grid.modes.filter((m) => m !== "autoregressive"))
              for (const [pair, make] of [["high", replay(stepMs)], ...(onFixture ? [["fixture", fixture(stepMs)] as const] : [])] as const) {
                const r = await run(mode, make, `${pair} ${stepMs}`);
                if (pair === "fixture" && r.alpha > 0) fixtureAlpha.push(r.alpha);
                cells.push({ pair, drafter_ms: stepMs, mode, ...key, ...r });
                o.log(
                  `past ${past} RTT ${rtt} ${sessions} sessions ${pair} drafter ${stepMs} ms ${mode}: ${r.tokens_per_s.toFixed(0)} tokens/s (${(r.tokens_per_s / ar.tokens_per_s).toFixed(2)}× AR), ${r.gpu_ms_per_token.toFixed(2)} GPU-ms/token, mean γ ${r.mean_gamma.toFixed(1)}`,
                );
              }
        }
      }
    } finally {
      await proxy.close();
      v.child.kill("SIGKILL");
    }
  }
  await draft.dispose();
  return {
    date: new Date().toISOString(),
    quick: o.quick,
    machine: { node: process.version, cpus: os.cpus().length },
    cost_model: COST_MODEL,
    eur_per_gpu_hour: eurPerGpuHour,
    tokens_per_session: grid.tokensPerSession,
    min_tokens_per_cell: grid.minTokensPerCell,
    pairs: [
      { name: "high", alpha: HIGH_ALPHA, what: `the fixture target with a replayed drafter that proposes the target's own token with probability ${HIGH_ALPHA} at every position (bench/replay-proposer.ts)` },
      {
        name: "fixture",
        alpha: fixtureAlpha.length ? median(fixtureAlpha) : NaN,
        what: "the committed fixture pair: its real draft model (onnxruntime-web), each step padded to the drafter step (median α measured in the grid)",
      },
    ],
    cells,
  };
}
