// Sessions opened with the same history at about the same time (an edge's n > 1 choices) share one
// prefill: OnnxEngine forks the KV cache of a concurrent or recent identical prefill instead of running
// it again. Counted on the real fixture target, whose every forward pass goes through a counting wrapper;
// each sharing session answers as a session opened alone does.
import { beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine, DEFAULT_BATCH } from "../gpu-backend/onnx-engine.ts";
import { Verifier } from "../gpu-backend/verifier.ts";
import type { CausalLM, KvSequence } from "../src/common/models/causal-lm.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { VerifyRequestSchema, type VerifyRequest, type VerifyResponse } from "../src/common/protocol.ts";
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

/** The target with its passes counted: prefills are rows that start from an empty cache. */
function counting(model: CausalLM) {
  const stats = { passes: 0, prefills: 0, prefillTokens: 0 };
  const wrapped = Object.create(model) as CausalLM;
  wrapped.forwardBatch = (items) => {
    stats.passes++;
    for (const { seq, tokens } of items)
      if (seq.length === 0) {
        stats.prefills++;
        stats.prefillTokens += tokens.length;
      }
    return model.forwardBatch.call(wrapped, items);
  };
  return { model: wrapped, stats };
}

/** Greedy speculation through `v`: `rounds` rounds with drafts of `gamma`, every answer kept. */
async function speculate(v: Verifier, session: string, prompt: number[], rounds: number, gamma: number): Promise<{ tokens: number[]; answers: VerifyResponse[] }> {
  const out: number[] = [];
  const answers: VerifyResponse[] = [];
  let committed: number[] = [];
  for (let seq = 0; seq < rounds; seq++) {
    const drafts = await draft.greedy([...prompt, ...out], gamma);
    const r = await v.round(req({ session, seq, drafts, ...(seq === 0 ? { history: prompt } : { committed }), logprobs: 2 }));
    answers.push(r);
    committed = [...drafts.slice(0, r.accepted), r.token];
    out.push(...committed);
  }
  return { tokens: out, answers };
}

/** What matters of an answer: commits, target log-probs (to float precision), not load or timing. */
const essence = (r: VerifyResponse) => ({
  accepted: r.accepted,
  token: r.token,
  draft_logprobs: r.draft_logprobs.map((l) => l?.toFixed(4)),
  logprobs: r.logprobs?.map((l) => [l.logprob?.toFixed(4), l.top.map(([id]) => id)]),
});

describe("shared prefill (OnnxEngine)", () => {
  it("n = 3 sessions opened together with one history run its prefill once and answer as sessions opened alone", async () => {
    const prompt = tok.encode(SPANISH_PROMPTS[5]);
    const gammas = [2, 3, 4];
    const shared = counting(target);
    const engine = new OnnxEngine(shared.model);
    const v = new Verifier(engine, store);
    const together = await Promise.all(gammas.map((g, i) => speculate(v, `n${i}`, prompt, 6, g)));
    expect(shared.stats.prefills).toBe(1);
    expect(shared.stats.prefillTokens).toBe(prompt.length - 1);
    expect(engine.prefills).toEqual({ run: 1, shared: 2 });
    for (const [i, g] of gammas.entries()) {
      const alone = counting(target);
      const a = await speculate(new Verifier(new OnnxEngine(alone.model), store), "alone", prompt, 6, g);
      expect(alone.stats.prefills).toBe(1);
      expect(together[i].answers.map(essence)).toEqual(a.answers.map(essence));
      expect(together[i].tokens).toEqual((await target.greedy(prompt, together[i].tokens.length)).slice(0, together[i].tokens.length));
    }
  });

  it("a later open within the TTL forks the snapshot, untouched by the first session's rounds; expired or evicted prefixes prefill again", async () => {
    let now = 0;
    const c = counting(target);
    const engine = new OnnxEngine(c.model, DEFAULT_BATCH, undefined, { prefixes: 2, ttlMs: 1000, now: () => now });
    const v = new Verifier(engine, store);
    const [p, q, r] = [SPANISH_PROMPTS[1], SPANISH_PROMPTS[2], SPANISH_PROMPTS[3]].map((t) => tok.encode(t));
    const first = await speculate(v, "a", p, 4, 3); // its sequence moves on; the snapshot must not
    now += 900;
    const second = await speculate(v, "b", p, 4, 3);
    expect(second.answers.map(essence)).toEqual(first.answers.map(essence));
    expect(engine.prefills).toEqual({ run: 1, shared: 1 });
    now += 1100; // past the TTL of p's prefill
    await speculate(v, "c", p, 1, 2);
    expect(engine.prefills).toEqual({ run: 2, shared: 1 });
    // Two other prefixes push p out of a cache of two.
    await speculate(v, "d", q, 1, 2);
    await speculate(v, "e", r, 1, 2);
    await speculate(v, "f", p, 1, 2);
    expect(engine.prefills).toEqual({ run: 5, shared: 1 });
    await speculate(v, "g", r, 1, 2);
    expect(engine.prefills).toEqual({ run: 5, shared: 2 });
    expect(c.stats.prefills).toBe(5);
  });

  it("sharing off (prefixes 0) prefills every open", async () => {
    const c = counting(target);
    const engine = new OnnxEngine(c.model, DEFAULT_BATCH, undefined, { prefixes: 0, ttlMs: 1000 });
    const prompt = tok.encode("La tarde");
    await Promise.all([0, 1].map((i) => speculate(new Verifier(engine, store), `o${i}`, prompt, 1, 2)));
    expect(c.stats.prefills).toBe(2);
    expect(engine.prefills).toEqual({ run: 2, shared: 0 });
  });
});

describe("KvSequence.fork", () => {
  it("copies the cache: the copy and the original then run, truncate and reset independently", async () => {
    const prompt = tok.encode(SPANISH_PROMPTS[7]);
    const a = target.newSequence();
    await target.forward(a, prompt);
    const b: KvSequence = a.fork();
    expect(b.tokens).toEqual(a.tokens);
    expect(b.kvBytes).toBe(a.kvBytes);
    b.past.forEach((t, k) => {
      expect(t.data).not.toBe(a.past[k].data);
      expect(t.data).toEqual(a.past[k].data);
    });
    const before = a.past.map((t) => (t.data as Float32Array).slice());
    const nb = await target.forward(b, [5, 6, 7]);
    b.truncate(prompt.length - 2);
    a.past.forEach((t, k) => expect(t.data).toEqual(before[k])); // the original is untouched
    expect(a.length).toBe(prompt.length);
    const na = await target.forward(a, [5, 6, 7]);
    expect(Array.from(na.last())).toEqual(Array.from(nb.last()));
    a.reset();
    expect(b.length).toBe(prompt.length - 2);
  });
});
