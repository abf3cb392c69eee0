// Waiting for company (pure): a pass that could start waits for sessions expected back when the GPU time
// that joining them saves pays for the wait; and the per-session forecast of when each is back.
import { describe, expect, it } from "vitest";
import { ArrivalForecast, companyWaitMs } from "../gpu-backend/company-wait.ts";
import type { PassRow } from "../src/common/pass-cost-model.ts";
import { h200Alia40b } from "../src/common/h200-alia-40b.ts";

const row = (chunk = 5, past = 2048): PassRow => ({ chunk, past });
const rows = (n: number, chunk = 5) => Array.from({ length: n }, () => row(chunk));
// Memory-bound: 20 ms a pass, +0.1 ms a token. Compute-bound: 1 ms a token, nothing shared.
const memoryBound = (r: readonly PassRow[]) => 20 + 0.1 * r.reduce((n, x) => n + x.chunk, 0);
const computeBound = (r: readonly PassRow[]) => r.reduce((n, x) => n + x.chunk, 0);

describe("companyWaitMs", () => {
  it("starts at once with nobody expected, or nothing queued", () => {
    expect(companyWaitMs(rows(3), [], memoryBound)).toBe(0);
    expect(companyWaitMs([], [{ inMs: 1, row: row() }], memoryBound)).toBe(0);
  });

  it("waits for sessions due within the saving while passes are memory-bound, for the last one the saving covers", () => {
    // Joining 2 rows saves a ≈ 21 ms pass: arrivals at 4 and 9 ms are worth it.
    expect(
      companyWaitMs(
        rows(1),
        [
          { inMs: 9, row: row() },
          { inMs: 4, row: row() },
        ],
        memoryBound,
      ),
    ).toBe(9);
    // One due at 30 ms is beyond both the pass that could run now (20.5 ms) and the saving.
    expect(
      companyWaitMs(
        rows(1),
        [
          { inMs: 4, row: row() },
          { inMs: 30, row: row() },
        ],
        memoryBound,
      ),
    ).toBe(4);
  });

  it("never waits where joining saves nothing (compute-bound passes pipeline instead)", () => {
    expect(
      companyWaitMs(
        rows(4),
        [
          { inMs: 0.5, row: row() },
          { inMs: 2, row: row() },
        ],
        computeBound,
      ),
    ).toBe(0);
  });

  it("ignores sessions already overdue (negative inMs) and waits 0 ms for one due now", () => {
    expect(companyWaitMs(rows(2), [{ inMs: -1, row: row() }], memoryBound)).toBe(0);
    expect(companyWaitMs(rows(2), [{ inMs: 0, row: row() }], memoryBound)).toBe(0);
  });

  it("does not wait for a few when others are due during the pass anyway (they would share the next one)", () => {
    const few = { inMs: 2, row: row() };
    // Six more due at 10–15 ms: all seven are worth 15 ms (they would otherwise need a pass of their own).
    expect(companyWaitMs(rows(1), [few, ...Array.from({ length: 6 }, (_, i) => ({ inMs: 10 + i, row: row() }))], memoryBound)).toBe(15);
    // Six due at 19.4–20.4 ms, just before the pass that could start now ends (20.5 ms): waiting for them
    // costs more than their pass; the one due at 2 ms would ride in theirs for 0.5 ms, so it is not waited for either.
    expect(companyWaitMs(rows(1), [few, ...Array.from({ length: 6 }, (_, i) => ({ inMs: 19.4 + 0.2 * i, row: row() }))], memoryBound)).toBe(0);
  });

  it("with generations queued, waits only as long as the awaited rows gain more than the generations' tokens lose", () => {
    // A speculator due at 6 ms: worth the GPU time (a ≈ 20 ms pass saved) with one row queued; with 7
    // generations queued, each token would wait 6 ms to save the speculator 20.5 − 6 ms: 42 > 14.5, no.
    const due = [{ inMs: 6, row: row() }];
    expect(companyWaitMs(rows(7, 1), due, memoryBound)).toBe(6);
    expect(companyWaitMs(rows(7, 1), due, memoryBound, 7)).toBe(0);
    // Due at 2 ms, with 3 generations queued: 3 × (2 + 0.5) ms lost < 18.2 ms saved.
    expect(companyWaitMs(rows(3, 1), [{ inMs: 2, row: row() }], memoryBound, 3)).toBe(2);
    // Seven speculators due together make a wait for them worth one generation's delay.
    const seven = Array.from({ length: 7 }, () => ({ inMs: 8, row: row() }));
    expect(companyWaitMs(rows(1, 1), seven, memoryBound, 1)).toBe(8);
  });

  it("on the measured H200 model: 4 speculators back within 12 ms are worth the wait at 4 rows; at 64 rows × 5 tokens with 32 more due, a straggler is not", () => {
    const m = h200Alia40b();
    const pass = (r: readonly PassRow[]) => m.batchMs(r);
    const soon = [3, 6, 9, 12].map((inMs) => ({ inMs, row: row() }));
    expect(companyWaitMs(rows(4), soon, pass)).toBe(12);
    // The saving is about a whole memory-bound pass: P(4) + P(4) − P(8).
    expect(pass(rows(4)) + pass(rows(4)) - pass(rows(8))).toBeGreaterThan(12);
    const busy = [{ inMs: 5, row: row() }, ...Array.from({ length: 32 }, (_, i) => ({ inMs: 20 + i, row: row() }))];
    expect(companyWaitMs(rows(64), busy, pass)).toBe(0);
  });
});

describe("ArrivalForecast", () => {
  it("expects a session back one smoothed turnaround after its answer", () => {
    const f = new ArrivalForecast<object>();
    const a = {};
    f.answered(a, 0);
    expect(f.expected(1)).toEqual([]); // no turnaround measured yet
    f.arrived(a, 30);
    f.answered(a, 100);
    expect(f.expected(110)).toEqual([{ key: a, inMs: 20 }]);
    f.arrived(a, 120); // turnaround 20: smoothed 0.7 × 30 + 0.3 × 20 = 27; it missed the forecast (30) by 10
    f.answered(a, 200);
    // The forecast plus its usual miss: the first miss observed, 10 ms.
    expect(f.expected(200)[0].inMs).toBeCloseTo(27 + 10, 9);
    // Back: no longer expected.
    f.arrived(a, 225);
    expect(f.expected(226)).toEqual([]);
  });

  it("a session a little late is due now; one late beyond the grace is dropped until it returns", () => {
    const f = new ArrivalForecast<object>(2);
    const a = {};
    f.answered(a, 0);
    f.arrived(a, 10);
    f.answered(a, 100);
    expect(f.expected(111)).toEqual([{ key: a, inMs: 0 }]);
    expect(f.expected(113)).toEqual([]);
    expect(f.expected(105)).toEqual([]); // dropped for good, not just hidden
  });

  it("keeps one turnaround per kind of answer (an edge that drafted ahead is back sooner after a full acceptance)", () => {
    const f = new ArrivalForecast<object>();
    const a = {};
    f.answered(a, 0, "all");
    f.arrived(a, 5);
    f.answered(a, 100, "some");
    f.arrived(a, 125);
    f.answered(a, 200, "all");
    expect(f.expected(200)).toEqual([{ key: a, inMs: 5 }]);
    f.arrived(a, 205); // on time: no miss
    f.answered(a, 300, "some");
    expect(f.expected(300)).toEqual([{ key: a, inMs: 25 }]);
  });

  it("leaves out back-to-back passes (a generation queues its next pass before it is due)", () => {
    const f = new ArrivalForecast<object>(2, 1);
    const g = {};
    f.answered(g, 0);
    f.arrived(g, 0.2);
    f.answered(g, 10);
    expect(f.expected(10)).toEqual([]);
  });
});
