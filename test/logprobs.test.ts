// logprobs.ts against a brute-force reference: log-softmax by sorting the whole row in float64.
import { describe, expect, it } from "vitest";
import { logSumExp, tokenLogprob } from "../src/common/logprobs.ts";
import { SeededRng } from "../src/common/sampling.ts";

function reference(row: ArrayLike<number>, token: number, k: number, normalised: boolean) {
  const v = Array.from(row);
  const max = Math.max(...v);
  const z = normalised ? 0 : max + Math.log(v.reduce((s, x) => s + Math.exp(x - max), 0));
  const order = v
    .map((x, id) => [id, x] as const)
    .filter(([, x]) => x > -Infinity)
    .sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  const own = v[token] - z;
  return { logprob: Number.isFinite(own) ? own : null, top: order.slice(0, k).map(([id, x]) => [id, x - z]) };
}

describe("tokenLogprob", () => {
  it("matches a brute-force log-softmax and ranking on random rows", () => {
    const rng = new SeededRng(11, 0);
    for (let t = 0; t < 100; t++) {
      const n = 1 + Math.floor(rng.next() * 300);
      const row = Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 20);
      const token = Math.floor(rng.next() * n);
      const k = Math.floor(rng.next() * 21);
      const got = tokenLogprob(row, token, k);
      const want = reference(row, token, k, false);
      expect(got.logprob).toBeCloseTo(want.logprob!, 9);
      expect(got.top.map(([id]) => id)).toEqual(want.top.map(([id]) => id));
      got.top.forEach(([, lp], i) => expect(lp).toBeCloseTo(want.top[i][1] as number, 9));
      expect(got.top.length).toBe(Math.min(k, n));
    }
  });

  it("ties rank the lower id first, also at the cut", () => {
    const row = [1, 3, 3, 0, 3, 2];
    expect(tokenLogprob(row, 0, 2).top.map(([id]) => id)).toEqual([1, 2]);
    expect(tokenLogprob(row, 0, 4).top.map(([id]) => id)).toEqual([1, 2, 4, 5]);
    const flat = new Float32Array(50).fill(0.5);
    const r = tokenLogprob(flat, 49, 5);
    expect(r.top.map(([id]) => id)).toEqual([0, 1, 2, 3, 4]);
    expect(r.logprob).toBeCloseTo(-Math.log(50), 9);
  });

  it("normalised rows (log-probs already, −∞ where not returned) are read as they are", () => {
    const row = new Float32Array(1000).fill(-Infinity);
    row[7] = Math.log(0.5);
    row[900] = Math.log(0.3);
    row[3] = Math.log(0.1);
    const r = tokenLogprob(row, 900, 20, true);
    expect(r.logprob).toBeCloseTo(Math.log(0.3), 6);
    expect(r.top.map(([id]) => id)).toEqual([7, 900, 3]); // only the finite entries, however large k
    expect(r.top[0][1]).toBeCloseTo(Math.log(0.5), 6);
    expect(tokenLogprob(row, 8, 2, true)).toEqual({
      logprob: null,
      top: [
        [7, row[7]],
        [900, row[900]],
      ],
    });
  });

  it("−∞ entries of a logits row are never alternatives, and have logprob null", () => {
    const row = [0, -Infinity, 1, -Infinity];
    const r = tokenLogprob(row, 1, 4);
    expect(r.logprob).toBeNull();
    expect(r.top.map(([id]) => id)).toEqual([2, 0]);
    expect(r.top[0][1]).toBeCloseTo(1 - Math.log(Math.E + 1), 12);
    expect(tokenLogprob([-Infinity, -Infinity], 0, 2)).toEqual({ logprob: null, top: [] });
  });

  it("k = 0 gives no alternatives; logSumExp is stable for large logits", () => {
    expect(tokenLogprob([1, 2, 3], 2, 0).top).toEqual([]);
    expect(logSumExp([1000, 1000])).toBeCloseTo(1000 + Math.log(2), 9);
    expect(logSumExp([])).toBe(-Infinity);
    expect(tokenLogprob([1000, 1000], 1, 1).logprob).toBeCloseTo(-Math.log(2), 9);
  });
});
