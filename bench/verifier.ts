// Verifier round latency vs γ on the target: the cost of one verify pass over [last token, d1 … dγ]
// (in-process, no HTTP), and the KV bytes a session holds per token.
import { OnnxEngine } from "../gpu-backend/onnx-engine.ts";
import { Verifier } from "../gpu-backend/verifier.ts";
import type { CausalLM } from "../src/models/causal-lm.ts";
import { SPANISH_PROMPTS } from "./prompts.ts";

export interface VerifierBench {
  round_ms_by_gamma: { gamma: number; round_ms: number }[];
  kv_bytes_per_token: number;
  /** Verify chunks of γ+1 = 5 tokens for N sessions: one padded forwardBatch vs N single passes. */
  batching: { sessions: number; batched_tokens_per_s: number; one_by_one_tokens_per_s: number }[];
}

export async function benchVerifier(target: CausalLM, encode: (s: string) => number[], o: { prompts: number; gammas: number[] }): Promise<VerifierBench> {
  const v = new Verifier(new OnnxEngine(target), { maxBytes: 1 << 30, maxSessions: 1024, idleTtlMs: 600_000 });
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
  const batching: VerifierBench["batching"] = [];
  for (const n of [1, 8, 32]) {
    const seqs = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const seq = target.newSequence();
        await target.forward(seq, encode(SPANISH_PROMPTS[i % SPANISH_PROMPTS.length]));
        return seq;
      }),
    );
    const chunk = (i: number) => [5 + i, 6 + i, 7 + i, 8 + i, 9 + i];
    const reset = (lens: number[]) => seqs.forEach((s, i) => s.truncate(lens[i]));
    const lens = seqs.map((s) => s.length);
    const batched: number[] = [];
    const single: number[] = [];
    for (let rep = 0; rep < 7; rep++) {
      let t0 = performance.now();
      await target.forwardBatch(seqs.map((seq, i) => ({ seq, tokens: chunk(i) })));
      batched.push(performance.now() - t0);
      reset(lens);
      t0 = performance.now();
      for (const [i, seq] of seqs.entries()) await target.forward(seq, chunk(i));
      single.push(performance.now() - t0);
      reset(lens);
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    batching.push({ sessions: n, batched_tokens_per_s: (n * 5) / (med(batched) / 1000), one_by_one_tokens_per_s: (n * 5) / (med(single) / 1000) });
  }
  return { round_ms_by_gamma: rows, kv_bytes_per_token: 2 * target.layers * target.kvHeads * target.headDim * 4, batching };
}
