// Verifier round latency vs γ on the target: the cost of one verify pass over [last token, d1 … dγ],
// in-process and over HTTP against a real verifier process; batched vs unbatched throughput with
// concurrent sessions; and the KV bytes a session holds per token.
import { OnnxEngine } from "../gpu-backend/onnx-engine.ts";
import { Verifier } from "../gpu-backend/verifier.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { SPANISH_PROMPTS } from "../test/harness/prompts.ts";

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

export interface VerifierHttpBench {
  /** Median latency of one verify round over HTTP on loopback (real verifier process). */
  round_ms_by_gamma: { gamma: number; round_ms: number }[];
  /** N sessions each running rounds of γ = 4 concurrently: batched (VERIFIER_MAX_BATCH 32) vs one pass per round (1). */
  throughput: { sessions: number; batched_rounds_per_s: number; unbatched_rounds_per_s: number }[];
}

/**
 * The same measurements through the verifier's HTTP API, against a real `gpu-backend/main.ts` process
 * serving `modelDir`'s target. Drafts are prompt tokens (mostly rejected): the cost of a round is one
 * pass over γ+1 positions whatever is accepted.
 */
export async function benchVerifierHttp(modelDir: string, encode: (s: string) => number[], o: { prompts: number; gammas: number[]; sessions: number[]; rounds: number }): Promise<VerifierHttpBench> {
  const { startVerifierProcess } = await import("../test/harness/processes.ts");
  const run = async <T>(maxBatch: number, body: (round: (b: unknown) => Promise<{ accepted: number; token: number }>) => Promise<T>): Promise<T> => {
    const { child, url } = await startVerifierProcess({ MODEL_DIR: modelDir, VERIFIER_MAX_BATCH: String(maxBatch), VERIFIER_MAX_SESSIONS: "1024" });
    try {
      return await body(async (b) => {
        const res = await fetch(`${url}/v1/verify`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(b) });
        if (!res.ok) throw new Error(`verify answered ${res.status}: ${await res.text()}`);
        return (await res.json()) as { accepted: number; token: number };
      });
    } finally {
      child.kill("SIGKILL");
    }
  };
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const prompts = SPANISH_PROMPTS.map(encode);
  const dummy = (p: number[], gamma: number) => Array.from({ length: gamma }, (_, i) => p[(i + 1) % p.length]);

  const round_ms_by_gamma = await run(32, async (round) => {
    const rows: VerifierHttpBench["round_ms_by_gamma"] = [];
    let id = 0;
    // Warm-up: the first requests pay for JIT and connection set-up.
    for (const p of prompts.slice(0, 10)) {
      const r = await round({ session: `warm${id}`, seq: 0, history: p, drafts: [] });
      await round({ session: `warm${id++}`, seq: 1, committed: [r.token], drafts: dummy(p, 4) });
    }
    for (const gamma of o.gammas) {
      const times: number[] = [];
      for (const p of prompts.slice(0, o.prompts)) {
        const session = `g${id++}`;
        const r = await round({ session, seq: 0, history: p, drafts: [] });
        const t0 = performance.now();
        await round({ session, seq: 1, committed: [r.token], drafts: dummy(p, gamma) });
        times.push(performance.now() - t0);
      }
      rows.push({ gamma, round_ms: med(times) });
    }
    return rows;
  });

  const rate = (maxBatch: number, n: number) =>
    run(maxBatch, async (round) => {
      const ids = Array.from({ length: n }, (_, i) => i);
      // Sessions open first (prefill), so that the timed part is verify rounds only.
      const committed = await Promise.all(ids.map(async (i) => [(await round({ session: `t${i}`, seq: 0, history: prompts[i % prompts.length], drafts: [] })).token]));
      const t0 = performance.now();
      await Promise.all(
        ids.map(async (i) => {
          for (let seq = 1; seq <= o.rounds; seq++) {
            const drafts = dummy(prompts[i % prompts.length], 4);
            const r = await round({ session: `t${i}`, seq, committed: committed[i], drafts });
            committed[i] = [...drafts.slice(0, r.accepted), r.token];
          }
        }),
      );
      return (n * o.rounds) / ((performance.now() - t0) / 1000);
    });
  const throughput: VerifierHttpBench["throughput"] = [];
  for (const n of o.sessions) throughput.push({ sessions: n, batched_rounds_per_s: await rate(32, n), unbatched_rounds_per_s: await rate(1, n) });
  return { round_ms_by_gamma, throughput };
}
