// Speculative decoding end to end at simulated network delays: SpecDecoder + PoolClient → loopback
// delay proxy → a real verifier process. For γ fixed and adaptive, proactive drafting off and on, and
// pool generation (γ = 0) as the baseline, at each RTT: τ (tokens per round), target passes per token
// and wall ms per token, greedy, one stream at a time, all in the same run.
import path from "node:path";
import { loadDraftModel } from "../src/models/draft-model.ts";
import { loadBundle } from "../src/models/model-store.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import type { GammaObjective } from "../src/spec/gamma-policy.ts";
import { SpecDecoder } from "../src/spec/spec-decoder.ts";
import { startDelayProxy } from "../tools/delay-proxy.ts";
import { startVerifierProcess } from "../tools/verifier-process.ts";

export interface SpeculationRow {
  /** Simulated target pass time (0: the fixture target's own cost). */
  pass_ms: number;
  rtt_ms: number;
  mode: string;
  proactive: boolean;
  /** Tokens committed per verify round (rounds only). */
  tau: number;
  target_passes_per_token: number;
  ms_per_token: number;
  /** Share of tokens the pool generated (γ = 0) — adaptive may choose it. */
  pool_generated_share: number;
  mean_gamma: number;
  /** Proactive: share of rounds whose block had been drafted ahead. */
  ahead_used_share: number;
}

export async function benchSpeculation(
  pairDir: string,
  prompts: number[][],
  o: { rtts: number[]; tokens: number; passMs?: number; log?: (s: string) => void },
): Promise<SpeculationRow[]> {
  const draft = await loadDraftModel(await loadBundle(path.join(pairDir, "draft")));
  const { child, url } = await startVerifierProcess({ MODEL_DIR: pairDir, VERIFIER_SIMULATED_PASS_MS: String(o.passMs ?? 0) });
  const proxy = await startDelayProxy({ target: url, delayMs: 0 });
  const modes: { mode: string; gamma: number | "adaptive"; objective?: GammaObjective; proactive: boolean[] }[] = [
    { mode: "pool generation (γ=0)", gamma: 0, proactive: [false] },
    { mode: "γ=1", gamma: 1, proactive: [false, true] },
    { mode: "γ=3", gamma: 3, proactive: [false, true] },
    { mode: "γ=6", gamma: 6, proactive: [false, true] },
    { mode: "adaptive (latency)", gamma: "adaptive", objective: "latency", proactive: [false, true] },
    { mode: "adaptive (gpu)", gamma: "adaptive", objective: "gpu", proactive: [false, true] },
  ];
  const rows: SpeculationRow[] = [];
  let session = 0;
  try {
    for (const rtt of o.rtts) {
      proxy.setDelay(rtt / 2);
      const pool = new PoolClient({ nodes: [proxy.url], timeoutMs: 60_000 });
      // Warm the connection and the verifier.
      for await (const _ of new SpecDecoder({ draft, pool, maxTokens: 8, gamma: 3, session: `warm${session++}` }).run(prompts[0]));
      for (const m of modes)
        for (const proactive of m.proactive) {
          let rounds = 0;
          let roundTokens = 0;
          let passes = 0;
          let tokens = 0;
          let generated = 0;
          let gammaSum = 0;
          let gammaN = 0;
          let aheadUsed = 0;
          const t0 = performance.now();
          for (const p of prompts) {
            const d = new SpecDecoder({ draft, pool, maxTokens: o.tokens, gamma: m.gamma, objective: m.objective, proactive, session: `b${session++}` });
            for await (const ev of d.run(p)) tokens += ev.tokens.length;
            rounds += d.stats.rounds;
            roundTokens += d.stats.roundTokens;
            passes += d.stats.targetPasses;
            generated += d.stats.generatedTokens;
            gammaSum += d.stats.gammas.reduce((a, g) => a + g, 0);
            gammaN += d.stats.gammas.length;
            aheadUsed += d.stats.aheadUsed;
          }
          const row = {
            pass_ms: o.passMs ?? 0,
            rtt_ms: rtt,
            mode: m.mode,
            proactive,
            tau: rounds ? roundTokens / rounds : 0,
            target_passes_per_token: passes / tokens,
            ms_per_token: (performance.now() - t0) / tokens,
            pool_generated_share: generated / tokens,
            mean_gamma: gammaSum / gammaN,
            ahead_used_share: rounds ? aheadUsed / rounds : 0,
          };
          rows.push(row);
          o.log?.(`pass ${o.passMs ?? 0} ms, RTT ${rtt} ms ${m.mode}${proactive ? " proactive" : ""}: τ ${row.tau.toFixed(2)}, ${row.target_passes_per_token.toFixed(3)} passes/token, ${row.ms_per_token.toFixed(2)} ms/token`);
        }
    }
  } finally {
    await proxy.close();
    child.kill("SIGKILL");
    await draft.dispose();
  }
  return rows;
}
