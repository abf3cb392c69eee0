// The verifier core without HTTP: a client drafting with the default draft reproduces target-only greedy
// output; retries are exactly-once; sessions are re-opened by history and continue identically.
import { beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine } from "../gpu-backend/onnx-engine.ts";
import { Verifier } from "../gpu-backend/verifier.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { VerifyError, VerifyRequestSchema, type VerifyRequest } from "../src/common/protocol.ts";
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
    const opening = req({ session: "r", seq: 0, history: prompt, drafts: await draft.greedy(prompt, 3) });
    const first = await v.round(opening);
    const again = await v.round(opening);
    expect(again).toEqual(first);
    const next = req({ session: "r", seq: 1, committed: [first.token], drafts: [5, 6] });
    const r1 = await v.round(next);
    const kv = v.sessions.stats().bytes;
    expect(await v.round(next)).toEqual(r1);
    expect(v.counters.retries).toBe(2);
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

// Issue 14: closes racing rounds, replayed sequence numbers, clients that go away, ids beyond the vocabulary.
describe("Verifier core (sessions under races)", () => {
  const held = (v: Verifier) => v.sessions.stats().sessions;
  /** Resolves once the session's sequence is inside a forward pass. */
  const inPass = async (v: Verifier, id: string) => {
    for (let i = 0; i < 10_000 && !v.sessions.peek(id)?.seq.busy; i++) await new Promise((r) => setImmediate(r));
    expect(v.sessions.peek(id)?.seq.busy).toBe(true);
  };

  it("a close while the round is queued or in its pass answers the round, then frees the session", async () => {
    const prompt = tok.encode(SPANISH_PROMPTS[3]); // longer than a round's chunk, as the probe's sessions were
    // Queued: the batch window holds the pass back while the close comes.
    const queued = new Verifier(new OnnxEngine(target, { windowMs: 30, maxBatch: 8, maxQueue: 64 }), store);
    const o = await queued.round(req({ session: "q", seq: 0, history: prompt }));
    const round = queued.round(req({ session: "q", seq: 1, committed: [o.token], drafts: [5, 6, 7] }));
    await new Promise((r) => setTimeout(r, 5));
    expect(queued.close("q")).toBe(true);
    await expect(round).resolves.toMatchObject({ seq: 1 });
    expect(held(queued)).toBe(0);
    await expect(queued.round(req({ session: "q", seq: 2, committed: [1] }))).rejects.toMatchObject({ code: "session_not_found" });
    // In the pass: the sequence is busy when the close comes.
    const running = new Verifier(new OnnxEngine(target), store);
    const p = await running.round(req({ session: "b", seq: 0, history: prompt }));
    const r = running.round(req({ session: "b", seq: 1, committed: [p.token], drafts: [5, 6, 7] }));
    await inPass(running, "b");
    const seq = running.sessions.peek("b")!.seq;
    expect(running.close("b")).toBe(true);
    await expect(r).resolves.toMatchObject({ seq: 1 });
    expect(seq.length).toBe(0); // freed once the pass was over
    // The id can be opened afresh at once.
    await expect(running.round(req({ session: "b", seq: 0, history: prompt }))).resolves.toMatchObject({ seq: 0 });
  });

  it("a re-open by history while the session's round runs waits for it; duplicates of a round in flight get its answer", async () => {
    const prompt = tok.encode("El perro");
    const v = new Verifier(new OnnxEngine(target), store);
    const o = await v.round(req({ session: "d", seq: 0, history: prompt }));
    const body = req({ session: "d", seq: 1, committed: [o.token], drafts: [5, 6] });
    const [a, b] = await Promise.all([v.round(body), v.round(body)]);
    expect(b).toEqual(a);
    expect(v.counters.retries).toBe(1);
    const c = v.round(req({ session: "d", seq: 2, committed: [...[5, 6].slice(0, a.accepted), a.token], drafts: [7] }));
    const reopened = v.round(req({ session: "d", seq: 2, history: [...prompt, o.token, ...[5, 6].slice(0, a.accepted), a.token], drafts: [7] }));
    const [rc, rr] = await Promise.all([c, reopened]);
    expect(rr).toMatchObject({ seq: 2, accepted: rc.accepted, token: rc.token });
    expect(held(v)).toBe(1);
  });

  it("a repeated seq gets the stored answer only for the same request; other content is 409 seq_conflict", async () => {
    const prompt = tok.encode("Hoy es");
    const v = new Verifier(new OnnxEngine(target), store);
    const o = await v.round(req({ session: "h", seq: 0, history: prompt }));
    const r1 = await v.round(req({ session: "h", seq: 1, committed: [o.token], drafts: [5, 6] }));
    await expect(v.round(req({ session: "h", seq: 1, committed: [o.token], drafts: [5, 7] }))).rejects.toMatchObject({ code: "seq_conflict", status: 409 });
    await expect(v.round(req({ session: "h", seq: 1, committed: [o.token], drafts: [] }))).rejects.toMatchObject({ code: "seq_conflict" });
    await expect(v.round(req({ session: "h", seq: 1, committed: [o.token], drafts: [5, 6] }))).resolves.toEqual(r1);
    // The session was not touched by the refused requests: the next round still lines up.
    await expect(v.round(req({ session: "h", seq: 2, committed: [...[5, 6].slice(0, r1.accepted), r1.token] }))).resolves.toMatchObject({ seq: 2 });
  });

  it("an opening round whose client went away leaves no session, before or during its pass", async () => {
    const prompt = tok.encode("La luna");
    const v = new Verifier(new OnnxEngine(target), store);
    const gone = new AbortController();
    gone.abort();
    await expect(v.round(req({ session: "a0", seq: 0, history: prompt }), gone.signal)).rejects.toMatchObject({ code: "client_closed" });
    const ctl = new AbortController();
    const r = v.round(req({ session: "a1", seq: 0, history: prompt, drafts: [5, 6] }), ctl.signal);
    await inPass(v, "a1");
    ctl.abort();
    await expect(r).resolves.toMatchObject({ seq: 0 }); // answered (to nobody), then closed
    expect(held(v)).toBe(0);
    // A continuing round's session belongs to a client that knows it: it is kept (the edge DELETEs it).
    const o = await v.round(req({ session: "a2", seq: 0, history: prompt }));
    const ctl2 = new AbortController();
    const r2 = v.round(req({ session: "a2", seq: 1, committed: [o.token] }), ctl2.signal);
    await inPass(v, "a2");
    ctl2.abort();
    await r2;
    expect(held(v)).toBe(1);
  });

  it("a close that overtakes the round opening the session closes it after that round; later openings are kept", async () => {
    let now = 0;
    const prompt = tok.encode("El sol");
    const v = new Verifier(new OnnxEngine(target), { ...store, now: () => now });
    const r = v.round(req({ session: "t", seq: 0, history: prompt })); // in its prefill now
    expect(v.close("t")).toBe(false);
    await expect(r).resolves.toMatchObject({ seq: 0 });
    expect(held(v)).toBe(0);
    // A close for a session never opened does not outlive its grace: an opening that comes well after is kept.
    expect(v.close("u")).toBe(false);
    now += 5000;
    await v.round(req({ session: "u", seq: 0, history: prompt }));
    expect(held(v)).toBe(1);
  });

  it("token ids beyond the vocabulary, anywhere in a body, are invalid_request", async () => {
    const prompt = tok.encode("El agua");
    const v = new Verifier(new OnnxEngine(target), store);
    const big = 1_000_000_000;
    const sampling = { temperature: 1, top_p: 1, top_k: 0, seed: 1 };
    await expect(v.round(req({ session: "v", seq: 0, history: prompt, drafts: [5], q: [{ ids: [5, big], probs: [0.5, 0.5] }], sampling }))).rejects.toMatchObject({ code: "invalid_request", status: 400 });
    await expect(v.round(req({ session: "v", seq: 0, history: prompt, drafts: [5], q: [{ ids: [big], probs: [1] }] }))).rejects.toMatchObject({ code: "invalid_request" });
    await expect(v.round({ session: "v", seq: 0, history: prompt, drafts: [5], q: [{ ids: [5], probs: [Number.NaN] }], sampling })).rejects.toMatchObject({ code: "invalid_request" });
    const gen = v.generate({ history: prompt, max_tokens: 2, stop_ids: [big] });
    await expect(gen.next()).rejects.toBeInstanceOf(VerifyError);
    expect(held(v)).toBe(0);
  });
});
