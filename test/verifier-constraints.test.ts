// Grammar masks and log-probs in verify rounds and generation, on the fixture target in-process
// (OnnxEngine over the real model). References come from the model's own logits, computed apart from
// the verifier: one forward over the whole token list, rows read at the round's positions.
import { beforeAll, describe, expect, it } from "vitest";
import type { ChunkScores, TargetEngine } from "../gpu-backend/engine.ts";
import { OnnxEngine } from "../gpu-backend/onnx-engine.ts";
import { Verifier } from "../gpu-backend/verifier.ts";
import type { CausalLM, KvSequence } from "../src/common/models/causal-lm.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { VerifyRequestSchema, type GenerateEvent, type TokenLogprob, type VerifyRequest } from "../src/common/protocol.ts";
import { SeededRng } from "../src/common/sampling.ts";
import { encodeMask, maskOf } from "../src/common/token-mask.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";

let target: CausalLM;
let draft: CausalLM;
let tok: TextTokenizer;
let vocab: number;
const store = { maxBytes: 256 << 20, maxSessions: 4096, idleTtlMs: 60_000 };
beforeAll(async () => {
  ({ target, draft, tok } = await loadDefaultPair());
  vocab = target.vocab;
});

const req = (r: Partial<VerifyRequest> & Pick<VerifyRequest, "session" | "seq">): VerifyRequest => VerifyRequestSchema.parse({ drafts: [], ...r });
const wire = (ids: Iterable<number>) => encodeMask(maskOf(ids, vocab), vocab);

/** The target's logits rows for the positions after tokens[from-1], tokens[from], … (copies). */
async function refRows(tokens: readonly number[], from: number): Promise<Float32Array[]> {
  const l = await target.forward(target.newSequence(), tokens);
  return Array.from({ length: l.rows - from }, (_, i) => l.row(from + i).slice());
}

function argmaxOver(row: ArrayLike<number>, ids: Iterable<number>): number {
  let best = -1;
  for (const id of ids) if (best < 0 || row[id] > row[best] || (row[id] === row[best] && id < best)) best = id;
  return best;
}

/** ln softmax(row) in float64, and the ids by descending logit. */
function logSoftmax(row: ArrayLike<number>): { lp: Float64Array; order: number[] } {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i] - max);
  const lp = Float64Array.from(row as ArrayLike<number>, (x) => x - max - Math.log(z));
  return { lp, order: Array.from(lp.keys()).sort((a, b) => lp[b] - lp[a] || a - b) };
}

function expectLogprob(got: TokenLogprob, row: ArrayLike<number>, token: number, k: number): void {
  const { lp, order } = logSoftmax(row);
  expect(got.logprob).toBeCloseTo(lp[token], 5);
  expect(got.top.length).toBe(k);
  for (let i = 0; i < k; i++) {
    expect(got.top[i][1]).toBeCloseTo(lp[order[i]], 5);
    expect(lp[got.top[i][0]]).toBeCloseTo(got.top[i][1], 5);
    if (i) expect(got.top[i][1]).toBeLessThanOrEqual(got.top[i - 1][1]);
  }
}

/** `n` ids drawn from `rng`, none in `without`. */
function someIds(rng: SeededRng, n: number, without: readonly number[] = []): number[] {
  const out = new Set<number>();
  while (out.size < n) {
    const id = Math.floor(rng.next() * vocab);
    if (!without.includes(id)) out.add(id);
  }
  return [...out].sort((a, b) => a - b);
}

describe("verify rounds with grammar masks", () => {
  it("masked greedy commits the argmax over the allowed set, and accepts drafts that follow it", async () => {
    const v = new Verifier(new OnnxEngine(target), store);
    const rng = new SeededRng(1, 0);
    for (const [p, text] of ["El tiempo es", "La casa de", "Un perro"].entries()) {
      const prompt = tok.encode(text);
      // Build a masked greedy chain of 4 independently: each mask leaves out the position's unmasked argmax.
      const chain: number[] = [];
      const allowed: number[][] = [];
      for (let i = 0; i < 4; i++) {
        const [row] = await refRows([...prompt, ...chain], prompt.length + chain.length - 1);
        const best = argmaxOver(row, Array.from(row.keys()));
        const ids = someIds(rng, 40, [best]);
        allowed.push(ids);
        chain.push(argmaxOver(row, ids));
      }
      const masks = allowed.map(wire);
      // γ = 0: the token alone.
      const r0 = await v.round(req({ session: `g${p}`, seq: 0, history: prompt, masks: masks.slice(0, 1) }));
      expect(r0).toMatchObject({ accepted: 0, token: chain[0] });
      // γ = 3 with the chain as drafts: all accepted, the bonus is the masked argmax after them.
      const r1 = await v.round(req({ session: `h${p}`, seq: 0, history: prompt, drafts: chain.slice(0, 3), masks }));
      expect(r1).toMatchObject({ accepted: 3, token: chain[3] });
      // Without the masks the same drafts are rejected at once: each mask changed the choice.
      const r2 = await v.round(req({ session: `u${p}`, seq: 0, history: prompt, drafts: chain.slice(0, 3) }));
      expect(r2.accepted).toBe(0);
      expect(r2.token).not.toBe(chain[0]);
    }
  });

  it("a draft outside its mask is rejected even when it is the target's argmax; draft_logprobs stay unmasked", async () => {
    const v = new Verifier(new OnnxEngine(target), store);
    const prompt = tok.encode("Había una vez");
    const [row] = await refRows(prompt, prompt.length - 1);
    const best = argmaxOver(row, Array.from(row.keys()));
    const ids = someIds(new SeededRng(2, 0), 30, [best]);
    const masks = [wire(ids), wire(Array.from(row.keys()))];
    const r = await v.round(req({ session: "o", seq: 0, history: prompt, drafts: [best], masks }));
    expect(r).toMatchObject({ accepted: 0, token: argmaxOver(row, ids) });
    expect(r.draft_logprobs[0]).toBeCloseTo(logSoftmax(row).lp[best], 5);
    // Sampling: a draft outside its mask has p = 0, so it is never accepted, whatever the draw.
    for (let seed = 0; seed < 30; seed++) {
      const s = await v.round(req({ session: `os${seed}`, seq: 0, history: prompt, drafts: [best], q: [{ ids: [best], probs: [1] }], masks, sampling: { temperature: 1, top_p: 1, top_k: 0, seed } }));
      expect(s.accepted).toBe(0);
      expect(ids).toContain(s.token);
    }
  });

  it("masked sampling commits only allowed tokens, with the masked distribution's frequencies", async () => {
    const v = new Verifier(new OnnxEngine(target), store);
    const prompt = tok.encode("Me gusta");
    const [row] = await refRows(prompt, prompt.length - 1);
    const { lp, order } = logSoftmax(row);
    // The 2nd–6th most likely tokens (the argmax refused), so that each has a sizeable masked probability.
    const allowed = order.slice(1, 6);
    const z = allowed.reduce((s, id) => s + Math.exp(lp[id]), 0);
    const counts = new Map<number, number>();
    const N = 1500;
    for (let seed = 0; seed < N; seed++) {
      const r = await v.round(req({ session: `f${seed}`, seq: 0, history: prompt, masks: [wire(allowed)], sampling: { temperature: 1, top_p: 1, top_k: 0, seed } }));
      expect(allowed).toContain(r.token);
      counts.set(r.token, (counts.get(r.token) ?? 0) + 1);
      v.close(`f${seed}`);
    }
    let chi2 = 0;
    for (const id of allowed) {
      const expected = (N * Math.exp(lp[id])) / z;
      chi2 += ((counts.get(id) ?? 0) - expected) ** 2 / expected;
    }
    expect(chi2).toBeLessThan(18.5); // 4 degrees of freedom: p ≈ 0.001
    // With drafts and a drafter's q̃ over allowed and refused tokens: every committed token is allowed at its position.
    const rng = new SeededRng(5, 0);
    const masks = [0, 1, 2, 3].map(() => someIds(rng, 200).concat(order.slice(0, 3)));
    for (let seed = 0; seed < 40; seed++) {
      const drafts = [order[seed % 3], order[(seed + 1) % 4], order[seed % 5]];
      const q = drafts.map((d) => ({ ids: [d, d === order[0] ? order[1] : order[0]], probs: [0.6, 0.4] }));
      const sampling = { temperature: 0.9, top_p: 0.95, top_k: 0, seed };
      const r = await v.round(req({ session: `d${seed}`, seq: 0, history: prompt, drafts, q, masks: masks.map(wire), sampling }));
      const committed = [...drafts.slice(0, r.accepted), r.token];
      committed.forEach((t, i) => expect(masks[i]).toContain(t));
      v.close(`d${seed}`);
    }
  });

  it("refuses malformed masks, wrong counts and empty masks with invalid_request, leaving the session as it was", async () => {
    const v = new Verifier(new OnnxEngine(target), store);
    const prompt = tok.encode("El agua");
    const o = await v.round(req({ session: "m", seq: 0, history: prompt }));
    const next = { session: "m", seq: 1, committed: [o.token], drafts: [5, 6] };
    const all = wire(Array.from({ length: vocab }, (_, i) => i));
    for (const masks of [
      [all, all],
      [all, all, all, all],
      [all, "a!!", all],
      [all, "zAAAA", all],
      [all, "b", all],
      [all, wire([]), all],
    ]) {
      // Round() takes unparsed bodies too (the HTTP layer parses); the verifier checks counts itself.
      await expect(v.round({ ...next, masks })).rejects.toMatchObject({ code: "invalid_request", status: 400 });
    }
    await expect(v.round({ ...next, masks: [all, "a!!", all] })).rejects.toThrow(/masks\[1\]/);
    await expect(v.round({ ...next, masks: [all, all, `a${encodeMask(maskOf([vocab + 5], vocab + 8), vocab + 8).slice(1)}`] })).rejects.toThrow(/masks\[2\].*outside the vocabulary/);
    await expect(v.round({ ...next, masks: [all, all, wire([])] })).rejects.toThrow(/allows no token/);
    // The schema refuses a wrong count before the verifier sees it.
    expect(VerifyRequestSchema.safeParse({ ...next, masks: [all] }).success).toBe(false);
    await expect(v.round(req(next))).resolves.toMatchObject({ seq: 1 });
  });

  it("a retry with other masks or another logprobs count is seq_conflict; the same request gets the stored answer", async () => {
    const v = new Verifier(new OnnxEngine(target), store);
    const prompt = tok.encode("Hoy es");
    const o = await v.round(req({ session: "c", seq: 0, history: prompt }));
    const all = Array.from({ length: vocab }, (_, i) => i);
    const body = req({ session: "c", seq: 1, committed: [o.token], drafts: [5], masks: [wire(all), wire(all)], logprobs: 2 });
    const r = await v.round(body);
    await expect(v.round({ ...body, masks: [wire(all.slice(1)), wire(all)] })).rejects.toMatchObject({ code: "seq_conflict", status: 409 });
    await expect(v.round({ ...body, masks: undefined })).rejects.toMatchObject({ code: "seq_conflict" });
    await expect(v.round({ ...body, logprobs: 3 })).rejects.toMatchObject({ code: "seq_conflict" });
    await expect(v.round({ ...body, logprobs: undefined })).rejects.toMatchObject({ code: "seq_conflict" });
    await expect(v.round(body)).resolves.toEqual(r);
  });
});

describe("log-probs of committed tokens", () => {
  it("verify rounds report ln p of each committed token and its top k, from the unmasked rows", async () => {
    const v = new Verifier(new OnnxEngine(target), store);
    let acceptedSome = false;
    for (const [p, text] of ["La vida es", "El sol brilla", "Mi madre"].entries()) {
      const prompt = tok.encode(text);
      const drafts = await draft.greedy(prompt, 4);
      for (const [variant, extra] of [{}, { masks: Array(5).fill(wire(Array.from({ length: vocab }, (_, i) => i).filter((i) => i % 7))) }].entries()) {
        const k = 3 + variant * 2;
        const r = await v.round(req({ session: `l${p}-${variant}`, seq: 0, history: prompt, drafts, logprobs: k, ...extra }));
        const committed = [...drafts.slice(0, r.accepted), r.token];
        acceptedSome ||= r.accepted > 0;
        const rows = await refRows([...prompt, ...drafts], prompt.length - 1);
        expect(r.logprobs).toHaveLength(committed.length);
        committed.forEach((t, i) => expectLogprob(r.logprobs![i], rows[i], t, k));
        r.draft_logprobs.slice(0, r.accepted).forEach((l, i) => expect(r.logprobs![i].logprob).toBeCloseTo(l!, 9));
      }
    }
    expect(acceptedSome).toBe(true);
    // logprobs: 0 gives the token's own log-prob and no alternatives; without it there is no field.
    const prompt = tok.encode("Una");
    const zero = await v.round(req({ session: "z", seq: 0, history: prompt, logprobs: 0 }));
    expect(zero.logprobs).toHaveLength(1);
    expect(zero.logprobs![0].top).toEqual([]);
    expect(zero.logprobs![0].logprob).toBeCloseTo(logSoftmax((await refRows(prompt, prompt.length - 1))[0]).lp[zero.token], 5);
    expect(await v.round(req({ session: "n", seq: 0, history: prompt }))).not.toHaveProperty("logprobs");
  });

  it("generate() events carry each token's log-prob, greedy and sampled", async () => {
    const v = new Verifier(new OnnxEngine(target), store);
    const prompt = tok.encode("El libro");
    for (const sampling of [undefined, { temperature: 0.8, top_p: 1, top_k: 0, seed: 9 }]) {
      const events: GenerateEvent[] = [];
      for await (const e of v.generate({ history: prompt, max_tokens: 10, stop_ids: [], logprobs: 4, ...(sampling ? { sampling } : {}) })) events.push(e);
      const tokens = events.flatMap((e) => ("token" in e ? [e] : []));
      expect(tokens).toHaveLength(10);
      const rows = await refRows([...prompt, ...tokens.map((e) => e.token)], prompt.length - 1);
      tokens.forEach((e, i) => expectLogprob(e.logprob!, rows[i], e.token, 4));
    }
    for await (const e of v.generate({ history: prompt, max_tokens: 2, stop_ids: [] })) expect(e).not.toHaveProperty("logprob");
  });
});

/**
 * The fixture target seen as the SGLang engine sees its model: per position only the top K log-probs (and
 * each fed draft's own, from wherever it ranks), −∞ elsewhere, with the drafts' log-probs alongside.
 */
class TopKEngine implements TargetEngine<KvSequence> {
  readonly name = "topk";
  constructor(
    readonly inner: OnnxEngine,
    readonly exactTop: number,
  ) {}
  get vocab() {
    return this.inner.vocab;
  }
  get maxPositions() {
    return this.inner.maxPositions;
  }
  get queueDepth() {
    return this.inner.queueDepth;
  }
  get accounting() {
    return this.inner.accounting;
  }
  open(prefix: readonly number[]) {
    return this.inner.open(prefix);
  }
  async score(seq: KvSequence, tokens: readonly number[]): Promise<ChunkScores> {
    const { rows } = await this.inner.score(seq, tokens);
    const tokenLogprobs: number[] = [];
    const partial = rows.map((row, i) => {
      const { lp, order } = logSoftmax(row);
      const out = new Float32Array(row.length).fill(-Infinity);
      for (const id of order.slice(0, this.exactTop)) out[id] = lp[id];
      if (i + 1 < tokens.length) {
        out[tokens[i + 1]] = lp[tokens[i + 1]];
        tokenLogprobs.push(lp[tokens[i + 1]]);
      }
      return out;
    });
    return { rows: partial, tokenLogprobs };
  }
}

describe("masks and log-probs on partial rows (an engine's top K only)", () => {
  const K = 8;
  it("greedy is exact while an allowed token is in the top K, and refused (invalid_request) where none is", async () => {
    const v = new Verifier(new TopKEngine(new OnnxEngine(target), K), store);
    const prompt = tok.encode("El camino");
    const [row] = await refRows(prompt, prompt.length - 1);
    const { order } = logSoftmax(row);
    // Allowed: the 4th and the 50th–99th most likely: the masked argmax is the 4th, inside the K.
    const ids = [order[3], ...order.slice(50, 100)];
    await expect(v.round(req({ session: "k0", seq: 0, history: prompt, masks: [wire(ids)] }))).resolves.toMatchObject({ accepted: 0, token: order[3] });
    // Allowed only beyond the K: the engine cannot tell which of them is best. A draft there is no help:
    // its own log-prob is known, but not those of the allowed tokens ranked above it.
    const beyond = order.slice(K, K + 20);
    await expect(v.round(req({ session: "k1", seq: 0, history: prompt, masks: [wire(beyond)] }))).rejects.toMatchObject({ code: "invalid_request", message: /top 8/ });
    await expect(v.round(req({ session: "k2", seq: 0, history: prompt, drafts: [order[K + 5]], masks: [wire(beyond), wire(order)] }))).rejects.toMatchObject({ code: "invalid_request", message: /masks\[0\].*top 8/ });
    expect(v.sessions.stats().sessions).toBe(1); // the refused openings left nothing behind
  });

  it("sampling needs top_k allowed tokens in the K, or all of them", async () => {
    const v = new Verifier(new TopKEngine(new OnnxEngine(target), K), store);
    const prompt = tok.encode("La noche");
    const [row] = await refRows(prompt, prompt.length - 1);
    const { order } = logSoftmax(row);
    const sampling = { temperature: 1, top_p: 1, top_k: 4, seed: 3 };
    await expect(v.round(req({ session: "s0", seq: 0, history: prompt, sampling, masks: [wire([order[1], order[2], ...order.slice(20, 40)])] }))).rejects.toMatchObject({ code: "invalid_request", message: /top_k 4/ });
    for (let seed = 0; seed < 20; seed++) {
      const few = [order[1], order[2], order[5]]; // every allowed token is in the K
      const r = await v.round(req({ session: `s${seed + 1}`, seq: 0, history: prompt, sampling: { ...sampling, seed }, masks: [wire(few)] }));
      expect(few).toContain(r.token);
    }
  });

  it("log-probs come from the engine's own figures, alternatives at most K", async () => {
    const v = new Verifier(new TopKEngine(new OnnxEngine(target), K), store);
    const prompt = tok.encode("Mi casa");
    const drafts = await draft.greedy(prompt, 3);
    const r = await v.round(req({ session: "p", seq: 0, history: prompt, drafts, logprobs: 20 }));
    const rows = await refRows([...prompt, ...drafts], prompt.length - 1);
    [...drafts.slice(0, r.accepted), r.token].forEach((t, i) => expectLogprob(r.logprobs![i], rows[i], t, K));
  });
});
