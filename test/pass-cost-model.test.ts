// The pass cost model (pure): exact at the measurements, monotone, interpolating inside the grid, with the
// documented behaviour outside it — on a hand-made grid and on the measured ALIA-40b/H200 table.
import { describe, expect, it } from "vitest";
import { h200Alia40b, measuredPasses } from "../src/common/h200-alia-40b.ts";
import { PassCostModel, eurPerMillionTokens, gpuMsPerToken } from "../src/common/pass-cost-model.ts";

// 2 × 2 × 2 grid; (1, 2, 100) ran faster than (1, 1, 100) — a kernel quirk the envelope smooths: an engine
// can pad one token to two — and (4, 2, 100) is missing (grown by tokens from a measured cell below it).
const SMALL = new PassCostModel("small", [
  { batch: 1, chunk: 1, past: 10, ms: 10 },
  { batch: 1, chunk: 2, past: 10, ms: 11 },
  { batch: 4, chunk: 1, past: 10, ms: 12 },
  { batch: 4, chunk: 2, past: 10, ms: 16 },
  { batch: 1, chunk: 1, past: 100, ms: 15 },
  { batch: 1, chunk: 2, past: 100, ms: 14 },
  { batch: 4, chunk: 1, past: 100, ms: 20 },
]);

describe("PassCostModel on a hand-made grid", () => {
  it("is exact at measurements and interpolates between them", () => {
    expect(SMALL.passMs(1, 1, 10)).toBe(10);
    expect(SMALL.passMs(4, 2, 10)).toBe(16);
    expect(SMALL.passMs(4, 1, 100)).toBe(20);
    expect(SMALL.passMs(2.5, 1, 10)).toBeCloseTo(11, 12); // halfway between batch 1 and 4
    expect(SMALL.passMs(1, 1, 100)).toBe(14); // the padded, faster configuration
    expect(SMALL.passMs(1, 1, 55)).toBeCloseTo(12, 12); // halfway between past 10 and 100
    expect(SMALL.passMs(1, 1.5, 10)).toBeCloseTo(10.5, 12);
  });

  it("grows a missing cell by tokens from the cheapest measured configuration below it, kept monotone", () => {
    // (4, 2, 100): from (4, 1, 100) ×2 = 40, (1, 2, 100) ×4 = 56 or (1, 1, 100) ×8 = 120 → 40.
    expect(SMALL.passMs(4, 2, 100)).toBe(40);
  });

  it("outside the grid: a shorter past costs the shortest measured, more rows or tokens scale, a longer past is refused", () => {
    expect(SMALL.passMs(1, 1, 0)).toBe(10);
    expect(SMALL.passMs(8, 1, 10)).toBe(24);
    expect(SMALL.passMs(4, 4, 10)).toBe(32);
    expect(() => SMALL.passMs(1, 1, 101)).toThrow(/beyond the measured 100/);
    expect(() => SMALL.passMs(0, 1, 10)).toThrow();
    expect(() => new PassCostModel("x", [])).toThrow(/no measured/);
    expect(() => new PassCostModel("x", [{ batch: 2, chunk: 1, past: 0, ms: 1 }])).toThrow(/start at batch 1/);
  });

  it("a mixed batch costs its rows' mean chunk at their token-weighted past", () => {
    expect(SMALL.batchMs([])).toBe(0);
    expect(SMALL.batchMs([{ chunk: 2, past: 10 }])).toBe(SMALL.passMs(1, 2, 10));
    expect(
      SMALL.batchMs([
        { chunk: 1, past: 10 },
        { chunk: 1, past: 100 },
      ]),
    ).toBeCloseTo(SMALL.passMs(2, 1, 55), 12);
    expect(
      SMALL.batchMs([
        { chunk: 1, past: 10 },
        { chunk: 3, past: 10 },
      ]),
    ).toBeCloseTo(SMALL.passMs(2, 2, 10), 12);
  });
});

describe("h200-alia-40b (measured)", () => {
  const model = h200Alia40b();
  const measured = measuredPasses("alia-40b");

  it("returns every measurement, except where a larger configuration measured faster (then that time)", () => {
    let undercut = 0;
    for (const m of measured) {
      const cheapestAbove = Math.min(...measured.filter((o) => o.batch >= m.batch && o.chunk >= m.chunk && o.past >= m.past).map((o) => o.ms));
      expect(model.passMs(m.batch, m.chunk, m.past), JSON.stringify(m)).toBeCloseTo(cheapestAbove, 9);
      if (cheapestAbove < m.ms) undercut++;
    }
    expect(measured).toHaveLength(171);
    // Odd chunks that picked a slower kernel, mostly: a small share of the table.
    expect(undercut).toBeLessThan(measured.length / 5);
  });

  it("holds the figures the design relies on", () => {
    expect(model.passMs(1, 1, 512)).toBeCloseTo(21.426, 3);
    expect(model.passMs(1, 16, 512)).toBeCloseTo(22.463, 3);
    expect(model.passMs(32, 1, 2048)).toBeCloseTo(25.596, 3);
    expect(model.passMs(32, 5, 2048)).toBeCloseTo(37.11, 3);
    expect(model.passMs(64, 1, 2048)).toBeCloseTo(28.931, 3);
    // 64 rows at 2,048 past: batching costs ≈ 0.45 GPU-ms per token; a γ = 2 verify committing ≈ 2.7 per row ≈ 0.28.
    expect(gpuMsPerToken(model.passMs(64, 1, 2048), 64)).toBeCloseTo(0.452, 3);
    expect(gpuMsPerToken(model.passMs(64, 3, 2048), 64 * 2.7)).toBeCloseTo(0.275, 3);
  });

  it("is monotone in rows, tokens and past, inside and outside the grid", () => {
    const bs = [1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128];
    const cs = [1, 1.5, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 24];
    const ps = [0, 512, 1000, 2048, 4096, 8192, 16384, 32768];
    for (const p of ps)
      for (const [i, b] of bs.entries())
        for (const [j, c] of cs.entries()) {
          const t = model.passMs(b, c, p);
          if (i) expect(t, `b ${b} c ${c} p ${p}`).toBeGreaterThanOrEqual(model.passMs(bs[i - 1], c, p));
          if (j) expect(t, `b ${b} c ${c} p ${p}`).toBeGreaterThanOrEqual(model.passMs(b, cs[j - 1], p));
        }
    for (const b of bs) for (const c of cs) for (let k = 1; k < ps.length; k++) expect(model.passMs(b, c, ps[k])).toBeGreaterThanOrEqual(model.passMs(b, c, ps[k - 1]));
  });

  it("grows the unmeasured long-context batches from the largest measured one", () => {
    // 32,768 past was measured up to 8 rows: 16 rows of one token cost twice 8 rows' pass at most.
    expect(model.passMs(16, 1, 32768)).toBeCloseTo(2 * model.passMs(8, 1, 32768), 9);
    expect(() => model.passMs(1, 1, 32769)).toThrow(/beyond/);
  });
});

describe("cost per token", () => {
  it("converts GPU-ms per token to euros per million tokens", () => {
    expect(eurPerMillionTokens(3600, 1)).toBeCloseTo(1000, 9); // 1 GPU-hour per 1,000 tokens at 1 €/h
    expect(eurPerMillionTokens(0.46, 3.5)).toBeCloseTo(0.4472, 4);
    expect(() => gpuMsPerToken(20, 0)).toThrow();
  });
});
