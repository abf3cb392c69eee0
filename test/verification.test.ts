// Exact verification: hand-computed cases, sampling parameters as OpenAI defines them, seeded randomness,
// and a statistical test that speculative sampling commits tokens with the target-only distribution.
import { describe, expect, it } from "vitest";
import { SeededRng, sampleIndex, sampleSparse, targetDistribution, truncateTopK, type SamplingParams, type SparseDist } from "../src/common/sampling.ts";
import { chiSquareTest, gammaQ, lnGamma, totalVariation } from "./harness/chi-square.ts";
import { logSoftmaxAt, verifyGreedy, verifySampling, type VerifyResult } from "../src/common/verification.ts";

const close = (a: ArrayLike<number>, b: number[], eps = 1e-12) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < b.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(eps);
};
/** A scripted uniform source: returns the given numbers in order. */
const scripted =
  (...us: number[]) =>
  () => {
    const u = us.shift();
    if (u === undefined) throw new Error("ran out of scripted uniforms");
    return u;
  };

describe("targetDistribution (temperature, top_k, top_p)", () => {
  const logits = [0, Math.log(2), Math.log(4)];
  it("is the softmax at temperature 1 and sharpens at lower temperature", () => {
    close(targetDistribution(logits, { temperature: 1 }), [1 / 7, 2 / 7, 4 / 7]);
    close(targetDistribution(logits, { temperature: 0.5 }), [1 / 21, 4 / 21, 16 / 21]);
  });
  it("is one-hot at the argmax at temperature 0", () => {
    close(targetDistribution(logits, { temperature: 0 }), [0, 0, 1]);
  });
  it("keeps the k most likely tokens with top_k", () => {
    close(targetDistribution(logits, { temperature: 1, topK: 2 }), [0, 1 / 3, 2 / 3]);
    close(targetDistribution(logits, { temperature: 1, topK: 0 }), [1 / 7, 2 / 7, 4 / 7]);
  });
  it("keeps the smallest nucleus whose mass reaches top_p", () => {
    close(targetDistribution(logits, { temperature: 1, topP: 0.5 }), [0, 0, 1]); // 4/7 ≥ 0.5
    close(targetDistribution(logits, { temperature: 1, topP: 0.6 }), [0, 1 / 3, 2 / 3]); // 4/7 < 0.6 ≤ 6/7
    close(targetDistribution(logits, { temperature: 1, topP: 1 }), [1 / 7, 2 / 7, 4 / 7]);
  });
  it("applies top_k before top_p, and breaks ties by token id", () => {
    close(targetDistribution([1, 1, 1, 1], { temperature: 1, topK: 2 }), [0.5, 0.5, 0, 0]);
    close(targetDistribution(logits, { temperature: 1, topK: 1, topP: 0.99 }), [0, 0, 1]);
  });
  it("measures top_p within the renormalised top_k set (transformers' warper chain)", () => {
    // top_k 2 leaves {2/6, 4/6}: 4/6 ≥ 0.6 already, although 4/7 of the full softmax would not be.
    close(targetDistribution(logits, { temperature: 1, topK: 2, topP: 0.6 }), [0, 0, 1]);
    close(targetDistribution(logits, { temperature: 1, topK: 2, topP: 0.7 }), [0, 1 / 3, 2 / 3]);
  });
  it("refuses out-of-range parameters", () => {
    expect(() => targetDistribution(logits, { temperature: -1 })).toThrow(/temperature/);
    expect(() => targetDistribution(logits, { temperature: 1, topP: 0 })).toThrow(/top_p/);
    expect(() => targetDistribution(logits, { temperature: 1, topK: 1.5 })).toThrow(/top_k/);
  });
});

describe("sparse q̃ and sampling", () => {
  it("truncateTopK keeps the K most likely ids, renormalised", () => {
    const q = truncateTopK([0.1, 0.5, 0.4], 2);
    expect(q.ids).toEqual([1, 2]);
    close(q.probs, [5 / 9, 4 / 9]);
    expect(truncateTopK([0, 1, 0], 3).ids).toEqual([1]); // zero-probability ids are not support
  });
  it("sampleIndex is the inverse CDF", () => {
    expect(sampleIndex([0.5, 0, 0.5], 0)).toBe(0);
    expect(sampleIndex([0.5, 0, 0.5], 0.4999)).toBe(0);
    expect(sampleIndex([0.5, 0, 0.5], 0.5)).toBe(2);
    expect(sampleIndex([2, 0, 0], 0.99)).toBe(0); // unnormalised weights
    expect(sampleSparse({ ids: [7, 3], probs: [0.25, 0.75] }, 0.3)).toBe(3);
    expect(() => sampleIndex([0, 0], 0.1)).toThrow(/all-zero/);
  });
  it("SeededRng is reproducible per (seed, stream), uniform, and streams differ", () => {
    const a = new SeededRng(42, 1);
    const b = new SeededRng(42, 1);
    const c = new SeededRng(42, 2);
    const xs = Array.from({ length: 100_000 }, () => a.next());
    expect(Array.from({ length: 100_000 }, () => b.next())).toEqual(xs);
    expect(c.next()).not.toBe(xs[0]);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005);
    const deciles = new Array(10).fill(0);
    for (const x of xs) deciles[Math.floor(x * 10)]++;
    expect(chiSquareTest(deciles, new Array(10).fill(0.1)).pValue).toBeGreaterThan(0.001);
  });
});

describe("statistics", () => {
  it("lnGamma and gammaQ match closed forms", () => {
    // Precision of ~1e-7 is ample for p-values.
    expect(lnGamma(5)).toBeCloseTo(Math.log(24), 6);
    expect(lnGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 6);
    for (const x of [0.1, 1, 3, 10]) expect(gammaQ(1, x)).toBeCloseTo(Math.exp(-x), 6); // Q(1,x) = e^-x
    // χ² with 5 dof at x: p = erfc(√(x/2)) + √(2x/π)·e^(−x/2)·(1 + x/3); erfc(√4.5) = 0.0026997960632601866.
    expect(gammaQ(2.5, 4.5)).toBeCloseTo(0.0026997960632601866 + Math.sqrt(18 / Math.PI) * Math.exp(-4.5) * 4, 6);
  });
  it("chi-square is 0 with p = 1 for exact counts, tiny p for a wrong distribution, 0 for mass where none may be", () => {
    const ok = chiSquareTest([250, 250, 500], [0.25, 0.25, 0.5]);
    expect(ok.statistic).toBe(0);
    expect(ok.pValue).toBeCloseTo(1, 12);
    expect(chiSquareTest([400, 100, 500], [0.25, 0.25, 0.5]).pValue).toBeLessThan(1e-10);
    expect(chiSquareTest([10, 990, 0, 1], [0.01, 0.99, 0, 0]).pValue).toBe(0);
    expect(totalVariation([1, 3], [0.5, 0.5])).toBeCloseTo(0.25, 12);
  });
});

describe("verifyGreedy", () => {
  const oneHot = (i: number, n = 5) => Array.from({ length: n }, (_, k) => (k === i ? 3 : 0));
  it("accepts while drafts equal the target argmax and commits the correction", () => {
    const r = verifyGreedy([2, 1, 0], [oneHot(2), oneHot(1), oneHot(3), oneHot(4)]);
    expect([r.accepted, r.token]).toEqual([2, 3]);
  });
  it("commits the bonus after all drafts are accepted, and the argmax when the first is rejected", () => {
    expect(verifyGreedy([2, 1], [oneHot(2), oneHot(1), oneHot(4)])).toMatchObject({ accepted: 2, token: 4 });
    expect(verifyGreedy([0, 1], [oneHot(2), oneHot(1), oneHot(4)])).toMatchObject({ accepted: 0, token: 2 });
    expect(verifyGreedy([], [oneHot(3)])).toMatchObject({ accepted: 0, token: 3 }); // γ = 0: plain decoding
  });
  it("reports the target log-prob of each draft", () => {
    const logits = [
      [0, Math.log(3)],
      [Math.log(3), 0],
      [0, 0],
    ];
    const r = verifyGreedy([1, 1], logits);
    expect(r.draftLogprobs[0]).toBeCloseTo(Math.log(0.75), 12);
    expect(r.draftLogprobs[1]).toBeCloseTo(Math.log(0.25), 12);
    expect(logSoftmaxAt([1000, 0], 0)).toBeCloseTo(0, 12); // stable for large logits
  });
  it("refuses a wrong number of target rows and out-of-vocabulary drafts", () => {
    expect(() => verifyGreedy([1], [oneHot(1)])).toThrow(/γ\+1 = 2/);
    expect(() => verifyGreedy([9], [oneHot(1), oneHot(1)])).toThrow(/outside the vocabulary/);
  });
});

describe("verifySampling (hand-computed)", () => {
  const p = [0.5, 0.3, 0.2];
  const q: SparseDist = { ids: [1], probs: [1] }; // the drafter was sure of token 1
  it("accepts d with probability min(1, p/q̃) = 0.3", () => {
    // u = 0.29 < 0.3: accept; then the bonus is drawn from the last p with u = 0.6 → token 1.
    expect(verifySampling([1], [q], [p, p], scripted(0.29, 0.6))).toMatchObject({ accepted: 1, token: 1 });
  });
  it("at a rejection draws from normalise(max(0, p − q̃)) = [5/7, 0, 2/7]", () => {
    expect(verifySampling([1], [q], [p, p], scripted(0.31, 0.7))).toMatchObject({ accepted: 0, token: 0 }); // 0.7·0.7 = 0.49 < 0.5
    expect(verifySampling([1], [q], [p, p], scripted(0.31, 0.75))).toMatchObject({ accepted: 0, token: 2 }); // 0.525 ≥ 0.5
  });
  it("always accepts when p(d) ≥ q̃(d)", () => {
    const r = verifySampling([0], [{ ids: [0, 1], probs: [0.5, 0.5] }], [p, p], scripted(0.999999, 0));
    expect(r.accepted).toBe(1);
    expect(r.draftLogprobs[0]).toBeCloseTo(Math.log(0.5), 12);
  });
  it("refuses a draft that its own q̃ could not have produced", () => {
    expect(() => verifySampling([2], [q], [p, p], scripted(0.5))).toThrow(/was not drawn from it/);
    expect(() => verifySampling([1], [], [p, p], scripted(0.5))).toThrow(/one q̃ per draft/);
  });
});

// A tiny "language model": the next token depends on the previous one (a Markov chain), so acceptance
// of later drafts depends on earlier ones as in a real model.
const V = 6;
function table(seed: number, scale: number): number[][] {
  const rng = new SeededRng(seed);
  return Array.from({ length: V }, () => Array.from({ length: V }, () => (rng.next() - 0.5) * scale));
}
const TARGET = table(1, 4);
const DRAFT = TARGET.map((row, i) => row.map((x, j) => x + (((i * 7 + j * 3) % 5) - 2) * 0.6)); // related, not equal

type Verifier = (drafts: number[], q: SparseDist[], p: Float64Array[], u: () => number) => VerifyResult;

/** First two tokens committed by speculative decoding from context token 0. */
function speculativePair(params: SamplingParams, gamma: number, support: number, rng: SeededRng, verify: Verifier): [number, number] {
  const out: number[] = [];
  while (out.length < 2) {
    let prev = out.length ? out[out.length - 1] : 0;
    const drafts: number[] = [];
    const qs: SparseDist[] = [];
    const ps: Float64Array[] = [targetDistribution(TARGET[prev], params)];
    for (let i = 0; i < gamma; i++) {
      const q = truncateTopK(targetDistribution(DRAFT[prev], params), support);
      const d = sampleSparse(q, rng.next());
      drafts.push(d);
      qs.push(q);
      ps.push(targetDistribution(TARGET[d], params));
      prev = d;
    }
    const r = verify(drafts, qs, ps, () => rng.next());
    out.push(...drafts.slice(0, r.accepted), r.token);
  }
  return [out[0], out[1]];
}

function pairTest(params: SamplingParams, verify: Verifier, trials: number, seed: number) {
  const counts = new Array(V * V).fill(0);
  const rng = new SeededRng(seed);
  for (let t = 0; t < trials; t++) {
    const [a, b] = speculativePair(params, 3, 4, rng, verify);
    counts[a * V + b]++;
  }
  const p0 = targetDistribution(TARGET[0], params);
  const exact = Array.from({ length: V * V }, (_, k) => p0[Math.floor(k / V)] * targetDistribution(TARGET[Math.floor(k / V)], params)[k % V]);
  return { ...chiSquareTest(counts, exact), tv: totalVariation(counts, exact) };
}

describe("verifySampling is lossless (statistical test)", () => {
  // 20,000 seeded trials, first two committed tokens (36 cells); exact reference = target-only sampling.
  // Accept when the chi-square p-value ≥ 0.001; the seed makes the run reproducible.
  it.each([
    ["temperature 1", { temperature: 1 }],
    ["temperature 0.7, top_p 0.9", { temperature: 0.7, topP: 0.9 }],
    ["temperature 1.3, top_k 3", { temperature: 1.3, topK: 3 }],
  ] as const)("%s: committed pairs follow the target distribution", (_name, params) => {
    const r = pairTest(params, verifySampling, 20_000, 7);
    expect(r.pValue, `chi2 ${r.statistic.toFixed(1)} on ${r.dof} dof`).toBeGreaterThanOrEqual(0.001);
    expect(r.tv).toBeLessThan(0.02);
  });

  it("has the power to catch a wrong verifier (correction drawn from p instead of the residual)", () => {
    const wrong: Verifier = (drafts, q, p, u) => {
      const r = verifySampling(drafts, q, p, u);
      return r.accepted < drafts.length ? { ...r, token: sampleIndex(p[r.accepted], u()) } : r;
    };
    expect(pairTest({ temperature: 1 }, wrong, 20_000, 7).pValue).toBeLessThan(1e-6);
  });

  it("greedy speculation (temperature 0) commits exactly the target's argmax chain", () => {
    const argmaxChain = (start: number) => {
      const a = targetDistribution(TARGET[start], { temperature: 0 }).indexOf(1);
      return [a, targetDistribution(TARGET[a], { temperature: 0 }).indexOf(1)];
    };
    const rng = new SeededRng(3);
    const greedy: Verifier = (drafts, _q, p) => verifyGreedy(drafts, p);
    for (let t = 0; t < 50; t++) expect(speculativePair({ temperature: 0 }, 3, 4, rng, greedy)).toEqual(argmaxChain(0));
  });
});
