// The pass cost model (pure): exact at the measurements, monotone, interpolating inside the grid, with the
// documented behaviour outside it — on hand-made grids and on the measured H200 tables, with the `engine`
// estimate derived from ALIA-40b's.
import { describe, expect, it } from "vitest";
import { PASS_COST_MODELS, h200Alia40b, h200Salamandra2b, measuredPasses, passCostModel } from "../src/common/h200-alia-40b.ts";
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

  it("outside the grid: a shorter past costs the shortest measured, more rows or tokens continue the last secant, a longer past is refused", () => {
    expect(SMALL.passMs(1, 1, 0)).toBe(10);
    // Rows: (4, 1, 10) + [(4, 1, 10) − (1, 1, 10)] · (8 − 4) / (4 − 1); chunk: (4, 2, 10) + [(4, 2, 10) − (4, 1, 10)] · 2.
    expect(SMALL.passMs(8, 1, 10)).toBeCloseTo(12 + (2 * 4) / 3, 12);
    expect(SMALL.passMs(4, 4, 10)).toBe(24);
    // Both: rows, then chunk — (8, 2, 10) is 16 + 5 · 4/3; chunk first gives the same.
    expect(SMALL.passMs(8, 4, 10)).toBeCloseTo(16 + (5 * 4) / 3 + (16 + (5 * 4) / 3 - 12 - (2 * 4) / 3) * 2, 12);
    expect(SMALL.passMs(8, 4, 10)).toBeCloseTo(24 + ((24 - 13) * 4) / 3, 12);
    expect(SMALL.passMs(1, 1, 100)).toBe(SMALL.passMsClampingPast(1, 1, 100));
    expect(SMALL.passMsClampingPast(1, 1, 1e6)).toBe(SMALL.passMs(1, 1, 100));
    expect(() => SMALL.passMs(1, 1, 101)).toThrow(/beyond the measured 100/);
    expect(() => SMALL.passMs(0, 1, 10)).toThrow();
    expect(() => new PassCostModel("x", [])).toThrow(/no measured/);
    expect(() => new PassCostModel("x", [{ batch: 2, chunk: 1, past: 0, ms: 1 }])).toThrow(/start at batch 1/);
  });

  it("beyond the grid: stays monotone where the last secants cross, and scales by tokens along an axis of one value", () => {
    // The last chunk step is 10 ms at past 0 and 1 ms at past 100: the secant at 4 tokens would cost 40
    // at past 0 and 33 at past 100; the running maximum makes it 40 at both.
    const crossing = new PassCostModel("crossing", [
      { batch: 1, chunk: 1, past: 0, ms: 10 },
      { batch: 1, chunk: 2, past: 0, ms: 20 },
      { batch: 1, chunk: 1, past: 100, ms: 30 },
      { batch: 1, chunk: 2, past: 100, ms: 31 },
    ]);
    expect(crossing.passMs(1, 4, 0)).toBe(40);
    expect(crossing.passMs(1, 4, 100)).toBe(40);
    expect(crossing.passMs(1, 5, 100)).toBe(50);
    expect(crossing.passMs(1, 8, 100)).toBeGreaterThanOrEqual(crossing.passMs(1, 8, 50));
    // Only batch 1 measured: 3 rows cost three times one row.
    expect(crossing.passMs(3, 1, 100)).toBe(90);
    expect(crossing.passMs(3, 2, 0)).toBe(60);
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

  it.each([...PASS_COST_MODELS])("%s is monotone in rows, tokens and past, inside and outside the grid", (name) => {
    const m = passCostModel(name);
    const bs = [1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256];
    const cs = [1, 1.5, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 32];
    const ps = [0, 512, 1000, 2048, 4096, 5000, 8192, 16384, 32768];
    for (const p of ps)
      for (const [i, b] of bs.entries())
        for (const [j, c] of cs.entries()) {
          const t = m.passMs(b, c, p);
          if (i) expect(t, `b ${b} c ${c} p ${p}`).toBeGreaterThanOrEqual(m.passMs(bs[i - 1], c, p));
          if (j) expect(t, `b ${b} c ${c} p ${p}`).toBeGreaterThanOrEqual(m.passMs(b, cs[j - 1], p));
        }
    for (const b of bs) for (const c of cs) for (let k = 1; k < ps.length; k++) expect(m.passMs(b, c, ps[k])).toBeGreaterThanOrEqual(m.passMs(b, c, ps[k - 1]));
  });

  it("continues beyond 64 rows and 16 tokens on the last measured secant", () => {
    // 128 rows of one token at 512 past: 24.7 + (24.7 − 23.5), not twice 64 rows' 24.7.
    expect(model.passMs(128, 1, 512)).toBeCloseTo(27.072, 3);
    // The secant exactly, except where a shorter chunk's secant is steeper: then that one, which keeps the
    // model monotone (at 2,048 past 64 rows of 5 tokens cost what 6 do, the envelope padding them, while 32
    // rows of 5 cost less than of 6).
    for (const p of [512, 2048, 8192, 32768])
      for (const c of [1, 2, 3, 4, 5, 6, 8, 12, 16])
        for (const b of [80, 128, 256]) {
          const [t32, t64] = [model.passMs(32, c, p), model.passMs(64, c, p)];
          const secant = t64 + ((t64 - t32) * (b - 64)) / 32;
          if (c <= 4) expect(model.passMs(b, c, p), `b ${b} c ${c} p ${p}`).toBeCloseTo(secant, 9);
          else expect(model.passMs(b, c, p), `b ${b} c ${c} p ${p}`).toBeGreaterThanOrEqual(secant - 1e-9);
        }
    for (const b of [1, 8, 32, 64]) {
      const [t12, t16] = [model.passMs(b, 12, 2048), model.passMs(b, 16, 2048)];
      expect(model.passMs(b, 24, 2048), `b ${b}`).toBeCloseTo(t16 + ((t16 - t12) * 8) / 4, 9);
    }
  });

  it("grows the unmeasured long-context batches from the largest measured one", () => {
    // 32,768 past was measured up to 8 rows: 16 rows of one token cost twice 8 rows' pass at most.
    expect(model.passMs(16, 1, 32768)).toBeCloseTo(2 * model.passMs(8, 1, 32768), 9);
    expect(() => model.passMs(1, 1, 32769)).toThrow(/beyond/);
  });
});

describe("engine (K/V read once per row)", () => {
  const h200 = h200Alia40b();
  const engine = passCostModel("engine");
  const grid = (f: (b: number, c: number, p: number) => void) => {
    for (const p of [512, 2048, 8192, 32768]) for (const b of [1, 2, 4, 8, 16, 32, 64]) for (const c of [1, 2, 3, 4, 5, 6, 8, 12, 16]) f(b, c, p);
  };

  it("is the one-token pass at the past plus the extra tokens' cost at 512 past, on ALIA-40b's grid", () => {
    grid((b, c, p) => {
      const where = `b ${b} c ${c} p ${p}`;
      expect(engine.passMs(b, c, p), where).toBeCloseTo(h200.passMs(b, 1, p) + h200.passMs(b, c, 512) - h200.passMs(b, 1, 512), 9);
      expect(engine.passMs(b, c, p), where).toBeLessThanOrEqual(h200.passMs(b, c, p) + 1e-9);
      if (c === 1 || p === 512) expect(engine.passMs(b, c, p), where).toBeCloseTo(h200.passMs(b, c, p), 9);
    });
  });

  it("makes long chunks at long pasts cheaper than the measured kernels do", () => {
    expect(engine.passMs(32, 5, 8192)).toBeCloseTo(42.103, 3);
    expect(h200.passMs(32, 5, 8192)).toBeCloseTo(61.764, 3);
    expect(engine.passMs(32, 5, 2048)).toBeLessThan(h200.passMs(32, 5, 2048));
    expect(engine.passMs(128, 1, 512)).toBe(h200.passMs(128, 1, 512));
  });
});

describe("cost models by name", () => {
  it("builds each named model once", () => {
    for (const name of PASS_COST_MODELS) {
      expect(passCostModel(name).name).toBe(name);
      expect(passCostModel(name)).toBe(passCostModel(name));
    }
    expect(h200Alia40b()).toBe(passCostModel("h200-alia-40b"));
  });
});

describe("h200-salamandra-2b (measured at 512 past)", () => {
  const model = h200Salamandra2b();

  it("is exact at its measurements, continues the secant beyond 32 rows and costs longer pasts at 512 on request", () => {
    expect(model.name).toBe("h200-salamandra-2b");
    expect(h200Salamandra2b()).toBe(model);
    for (const m of measuredPasses("salamandra-2b")) expect(model.passMs(m.batch, m.chunk, m.past)).toBe(m.ms);
    expect(model.passMs(32, 1, 512)).toBeCloseTo(3.634, 3);
    expect(model.passMs(64, 1, 512)).toBeCloseTo(3.634 + ((3.634 - 2.902) * 32) / 24, 9);
    expect(model.passMs(1, 1, 0)).toBe(model.passMs(1, 1, 512));
    expect(() => model.passMs(1, 1, 513)).toThrow(/beyond the measured 512/);
    expect(model.passMsClampingPast(8, 4, 4096)).toBe(model.passMs(8, 4, 512));
  });
});

describe("cost per token", () => {
  it("converts GPU-ms per token to euros per million tokens", () => {
    expect(eurPerMillionTokens(3600, 1)).toBeCloseTo(1000, 9); // 1 GPU-hour per 1,000 tokens at 1 €/h
    expect(eurPerMillionTokens(0.46, 3.5)).toBeCloseTo(0.4472, 4);
    expect(() => gpuMsPerToken(20, 0)).toThrow();
  });
});
