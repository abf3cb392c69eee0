// Verifier round latency vs γ on the target: the cost of one verify pass over [last token, d1 … dγ]
// (in-process, no HTTP), and the KV bytes a session holds per token.
import { Verifier } from "../gpu-backend/verifier.ts";
import type { CausalLM } from "../src/models/causal-lm.ts";
import { SPANISH_PROMPTS } from "./prompts.ts";

export interface VerifierBench {
  round_ms_by_gamma: { gamma: number; round_ms: number }[];
  kv_bytes_per_token: number;
}

export async function benchVerifier(target: CausalLM, encode: (s: string) => number[], o: { prompts: number; gammas: number[] }): Promise<VerifierBench> {
  const v = new Verifier(target, { maxBytes: 1 << 30, maxSessions: 1024, idleTtlMs: 600_000 });
  const rows: VerifierBench["round_ms_by_gamma"] = [];
  let id = 0;
  for (const gamma of o.gammas) {
    const times: number[] = [];
    for (const text of SPANISH_PROMPTS.slice(0, o.prompts)) {
      const prompt = encode(text);
      const session = `b${id++}`;
      let r = await v.round({ session, seq: 0, history: prompt, drafts: [] });
      // Drafts that will mostly be rejected still cost one full pass of γ+1 positions.
      const drafts = Array.from({ length: gamma }, (_, i) => prompt[(i + 1) % prompt.length]);
      const t0 = performance.now();
      r = await v.round({ session, seq: 1, committed: [r.token], drafts });
      times.push(performance.now() - t0);
      v.close(session);
    }
    times.sort((a, b) => a - b);
    rows.push({ gamma, round_ms: times[Math.floor(times.length / 2)] });
  }
  return { round_ms_by_gamma: rows, kv_bytes_per_token: 2 * target.layers * target.kvHeads * target.headDim * 4 };
}
