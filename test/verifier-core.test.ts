// The verifier core without HTTP: a client drafting with the default draft reproduces target-only greedy
// output; retries are exactly-once; sessions are re-opened by history and continue identically.
import { beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine } from "../gpu-backend/onnx-engine.ts";
import { Verifier } from "../gpu-backend/verifier.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { VerifyRequestSchema, type VerifyRequest } from "../src/common/protocol.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";

let target: CausalLM;
let draft: CausalLM;
let tok: TextTokenizer;
const store = { maxBytes: 64 << 20, maxSessions: 64, idleTtlMs: 60_000 };
beforeAll(async () => {
  ({ target, draft, tok } = await loadDefaultPair());
});

const req = (r: Partial<VerifyRequest> & Pick<VerifyRequest, "session" | "seq">): VerifyRequest => VerifyRequestSchema.parse({ drafts: [], ...r });

/** Greedy speculative decoding through the verifier core: n new tokens after `prompt`. */
async function speculate(v: Verifier, session: string, prompt: number[], n: number, gamma: number, interrupt?: (round: number) => boolean) {
  const out: number[] = [];
  let committed: number[] | undefined;
  let rounds = 0;
  while (out.length < n) {
    const drafts = await draft.greedy([...prompt, ...out], gamma);
    const reopen = rounds === 0 || (interrupt?.(rounds) ?? false);
    const r = await v.round(req({ session, seq: rounds, drafts, ...(reopen ? { history: [...prompt, ...out] } : { committed }) }));
    committed = [...drafts.slice(0, r.accepted), r.token];
    out.push(...committed);
    rounds++;
  }
  return { tokens: out.slice(0, n), rounds };
}

describe("Verifier core (greedy)", () => {
  it("reproduces target-only greedy output token for token on 20 prompts × 32 tokens", async () => {
    const v = new Verifier(new OnnxEngine(target), store);
    let rounds = 0;
    for (const [i, text] of SPANISH_PROMPTS.slice(0, 20).entries()) {
      const prompt = tok.encode(text);
      const spec = await speculate(v, `s${i}`, prompt, 32, 4);
      expect(spec.tokens).toEqual(await target.greedy(prompt, 32));
      rounds += spec.rounds;
    }
    expect(rounds).toBeLessThan(20 * 32); // fewer target passes than tokens: drafts were accepted
  });

  it("answers a retried round from the stored result without applying it twice", async () => {
    const v = new Verifier(new OnnxEngine(target), store);
    const prompt = tok.encode("La vida es");
    const first = await v.round(req({ session: "r", seq: 0, history: prompt, drafts: await draft.greedy(prompt, 3) }));
    const again = await v.round(req({ session: "r", seq: 0, drafts: [] }));
    expect(again).toEqual(first);
    const kv = v.sessions.stats().bytes;
    await v.round(req({ session: "r", seq: 0, drafts: [] }));
    expect(v.sessions.stats().bytes).toBe(kv);
  });

  it("re-opening by history after eviction continues identically", async () => {
    const prompt = tok.encode("Más vale pájaro en mano");
    const v = new Verifier(new OnnxEngine(target), store);
    const plain = await speculate(v, "a", prompt, 32, 3);
    const w = new Verifier(new OnnxEngine(target), store);
    // Every third round the session is closed (as an eviction would) and re-opened from history.
    const evicting = await speculate(w, "b", prompt, 32, 3, (round) => round % 3 === 0 && w.close("b"));
    expect(evicting.tokens).toEqual(plain.tokens);
  });

  it("rejects unknown sessions, out-of-order rounds and wrong committed tokens with codes", async () => {
    const v = new Verifier(new OnnxEngine(target), store);
    await expect(v.round(req({ session: "x", seq: 1, committed: [5] }))).rejects.toMatchObject({ code: "session_not_found", status: 404 });
    const prompt = tok.encode("El amor es");
    const r = await v.round(req({ session: "x", seq: 0, history: prompt }));
    await expect(v.round(req({ session: "x", seq: 2, committed: [r.token] }))).rejects.toMatchObject({ code: "seq_out_of_order", status: 409 });
    await expect(v.round(req({ session: "x", seq: 1, committed: [r.token + 1] }))).rejects.toMatchObject({ code: "history_mismatch" });
    await expect(v.round(req({ session: "x", seq: 1, committed: [r.token], drafts: [999_999] }))).rejects.toMatchObject({ code: "invalid_request" });
    const tiny = new Verifier(new OnnxEngine(target), { maxBytes: 10_000, maxSessions: 4, idleTtlMs: 60_000 });
    await expect(tiny.round(req({ session: "big", seq: 0, history: new Array(50).fill(7) }))).rejects.toMatchObject({ code: "context_too_long", status: 413 });
    const limited = new Verifier(new OnnxEngine(target), { ...store, maxGamma: 2, maxContext: 20 });
    await expect(limited.round(req({ session: "g", seq: 0, history: prompt, drafts: [5, 6, 7] }))).rejects.toMatchObject({ code: "invalid_request", message: /at most 2/ });
    await expect(limited.round(req({ session: "g", seq: 0, history: new Array(19).fill(7), drafts: [5, 6] }))).rejects.toMatchObject({ code: "context_too_long" });
    await expect(limited.round(req({ session: "g", seq: 0, history: prompt, drafts: [5, 6] }))).resolves.toMatchObject({ seq: 0 });
    // None of that changed the session: the proper next round still works.
    await expect(v.round(req({ session: "x", seq: 1, committed: [r.token] }))).resolves.toMatchObject({ seq: 1, accepted: 0 });
  });
});

describe("Verifier core (micro-batching)", () => {
  it("concurrent sessions batched together each reproduce target-only greedy output", async () => {
    const v = new Verifier(new OnnxEngine(target, { windowMs: 5, maxBatch: 8, maxQueue: 64 }), store);
    const prompts = SPANISH_PROMPTS.slice(30, 38).map((t) => tok.encode(t));
    const outs = await Promise.all(prompts.map((p, i) => speculate(v, `c${i}`, p, 24, 3)));
    for (const [i, p] of prompts.entries()) expect(outs[i].tokens).toEqual(await target.greedy(p, 24));
    expect(Math.max(...(v.engine as OnnxEngine).batcher.batches.keys())).toBeGreaterThan(1);
  });

  it("answers overloaded (503) beyond the queue bound, leaving the sessions intact", async () => {
    const v = new Verifier(new OnnxEngine(target, { windowMs: 50, maxBatch: 8, maxQueue: 2 }), store);
    const prompt = tok.encode("La suerte");
    const results = await Promise.allSettled([0, 1, 2, 3].map((i) => v.round(req({ session: `o${i}`, seq: 0, history: prompt }))));
    const refused = results.filter((r) => r.status === "rejected");
    expect(refused.length).toBe(2);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: "overloaded", status: 503 });
    expect(results.filter((r) => r.status === "fulfilled").length).toBe(2);
  });
});

describe("Verifier core (sampling)", () => {
  it("a seeded session gives the same tokens twice, and drafts with their q̃ are verified", async () => {
    const prompt = tok.encode("El tiempo es");
    const run = async () => {
      const v = new Verifier(new OnnxEngine(target), store);
      const sampling = { temperature: 0.8, top_p: 0.95, top_k: 0, seed: 1234 };
      const drafts = await draft.greedy(prompt, 2);
      // A q̃ that puts all its mass on each draft is a valid (if poor) drafter distribution.
      const q = drafts.map((d) => ({ ids: [d], probs: [1] }));
      const r0 = await v.round(req({ session: "s", seq: 0, history: prompt, drafts, q, sampling }));
      const r1 = await v.round(req({ session: "s", seq: 1, committed: [...drafts.slice(0, r0.accepted), r0.token], sampling }));
      return [r0, r1].map((r) => [r.accepted, r.token]);
    };
    expect(await run()).toEqual(await run());
  });
});
