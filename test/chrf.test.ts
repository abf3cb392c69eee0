// chrF (pure): identity, disjointness, recall weighing more than precision, whitespace ignored, and a
// small case worked out by hand.
import { describe, expect, it } from "vitest";
import { chrF } from "../fixtures/generate/chrf.ts";

describe("chrF", () => {
  it("is 100 for identical text, 0 for text with no character in common, and ignores whitespace", () => {
    expect(chrF(["El gos de Sant Roque"], ["El gos de Sant Roque"])).toBeCloseTo(100, 10);
    expect(chrF(["xyz"], ["abc"])).toBe(0);
    expect(chrF(["El gos  de Sant Roque"], ["Elgos de SantRoque"])).toBeCloseTo(100, 10);
  });

  it("weighs recall over precision (β = 2): a short correct prefix scores less than the same text padded", () => {
    const ref = ["el gos no té cua"];
    const short = chrF(["el gos"], ref);
    const padded = chrF(["el gos no té cua i més coses"], ref);
    expect(padded).toBeGreaterThan(short);
  });

  it("matches a hand computation", () => {
    // hyp "ab", ref "abc": order 1: 2 of 2 hyp chars match, 2 of 3 ref → P 1, R 2/3; order 2: "ab" matches,
    // P 1, R 1/2; orders 3–6: the hypothesis has none (left out). F_β = 5PR / (4P + R).
    const f = (p: number, r: number) => (5 * p * r) / (4 * p + r);
    expect(chrF(["ab"], ["abc"])).toBeCloseTo((100 * (f(1, 2 / 3) + f(1, 1 / 2))) / 2, 10);
  });

  it("sums statistics over the corpus, not sentence scores", () => {
    const a = chrF(["abc", "x"], ["abc", "yyyyyyyyyy"]);
    expect(a).toBeGreaterThan(0);
    expect(a).toBeLessThan(100);
    expect(() => chrF(["a"], [])).toThrow(RangeError);
  });
});
