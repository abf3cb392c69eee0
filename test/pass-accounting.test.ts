// PassAccounting (pure): totals of the passes an engine ran, and the load report a session gets — what
// the next pass would cost with its row at 1, 2, … tokens beside the other rows of the last pass.
import { describe, expect, it } from "vitest";
import { PassAccounting } from "../gpu-backend/pass-accounting.ts";
import { PassCostModel } from "../src/common/pass-cost-model.ts";

// Passes cost 10 ms + 1 ms per row + 0.5 ms per token of the pass's rows (mean chunk × rows), at pasts 0 and 1,000 (+2 ms).
const grid = [1, 2, 4].flatMap((batch) => [1, 2, 4].flatMap((chunk) => [0, 1000].map((past) => ({ batch, chunk, past, ms: 10 + batch + 0.5 * batch * chunk + (past ? 2 : 0) }))));
const model = new PassCostModel("linear", grid);

describe("PassAccounting", () => {
  it("without a model: totals and the measured time of the last pass, no per-chunk prediction", () => {
    const a = new PassAccounting();
    expect(a.record([{ chunk: 3, past: 10 }], 7.5)).toBe(0);
    expect(a.totals).toEqual({ passes: 1, rows: 1, tokens: 3, modelMs: 0 });
    expect(a.report(undefined, 10, 4, 0)).toEqual({ rows: 1, tokens: 3, pass_ms: 7.5 });
  });

  it("with a model: each pass is costed by its rows, and totals add up", () => {
    const a = new PassAccounting({ model });
    expect(a.record([{ chunk: 1, past: 0 }])).toBe(11.5);
    expect(
      a.record(
        [
          { chunk: 2, past: 0 },
          { chunk: 2, past: 0 },
        ],
        99,
      ),
    ).toBe(14);
    expect(a.totals).toEqual({ passes: 2, rows: 3, tokens: 5, modelMs: 25.5 });
  });

  it("a session's report prices the next pass with every row at chunk 1…maxChunk, its own row of the last pass replaced", () => {
    const a = new PassAccounting({ model });
    const me = {};
    const other = {};
    a.record([
      { chunk: 1, past: 0, owner: other },
      { chunk: 3, past: 0, owner: me },
    ]);
    const r = a.report(me, 0, 3, 0);
    expect(r.rows).toBe(2);
    expect(r.tokens).toBe(4);
    expect(r.pass_ms).toBe(14); // 10 + 2 + 0.5·4
    // [other, me], both at c tokens: 10 + 2 + 0.5·2c
    expect(r.pass_ms_by_chunk).toEqual([13, 14, 15]);
    // A newcomer adds a row to the last pass's two: three rows at 1 token.
    expect(a.report({}, 0, 1, 0).pass_ms_by_chunk?.[0]).toBeCloseTo(10 + 3 + 0.5 * 3, 12);
  });

  it("rows known to share an engine's pass out of sight count in the next report, not in the totals", () => {
    const a = new PassAccounting({ model });
    const me = {};
    a.record([{ chunk: 2, past: 0, owner: me }], 30, [{ chunk: 2, past: 0, owner: {} }]);
    expect(a.totals).toEqual({ passes: 1, rows: 1, tokens: 2, modelMs: 12 });
    const r = a.report(me, 0, 1, 0);
    expect(r.rows).toBe(2);
    expect(r.pass_ms).toBe(14);
    expect(r.pass_ms_by_chunk).toEqual([13]); // [other, me] at 1 token: 10 + 2 + 0.5·2
  });

  it("the wait for others' pass in flight: the time-average of what is left of their passes over the last second, a session's own passes left out", () => {
    const a = new PassAccounting({ model });
    const me = {};
    const other = {};
    expect(a.passWaitMs(me, 1000)).toBe(0);
    // Back-to-back 20 ms passes of another session for the whole last second: a random arrival waits 10 ms.
    for (let t = 0; t < 1000; t += 20) a.occupied(t, t + 20, [{ chunk: 1, past: 0, owner: other }]);
    expect(a.passWaitMs(me, 1000)).toBeCloseTo(10, 9);
    // …and nothing for the other session, whose own passes they are.
    expect(a.passWaitMs(other, 1000)).toBe(0);
    // Half a second later only the last half-second of passes counts: half the time busy, 5 ms.
    expect(a.passWaitMs(me, 1500)).toBeCloseTo(5, 9);
    // A pass shared with someone else counts for both; passes older than a second are gone.
    const b = new PassAccounting({ model });
    b.occupied(0, 40, [
      { chunk: 1, past: 0, owner: me },
      { chunk: 1, past: 0, owner: other },
    ]);
    expect(b.passWaitMs(me, 40)).toBeCloseTo((40 * 40) / 2 / 1000, 9);
    expect(b.passWaitMs(me, 2000)).toBe(0);
    // The load report carries it.
    expect(b.report(me, 0, 1, 40).pass_wait_ms).toBeCloseTo(0.8, 9);
  });

  it("the benchmark's past offset moves every row's past, clamped to the model's longest", () => {
    const near = new PassAccounting({ model });
    const far = new PassAccounting({ model, pastOffset: 1000 });
    const beyond = new PassAccounting({ model, pastOffset: 50_000 });
    const rows = [{ chunk: 1, past: 0 }];
    expect(far.modelMs(rows) - near.modelMs(rows)).toBeCloseTo(2, 12);
    expect(beyond.modelMs(rows)).toBe(far.modelMs(rows));
  });
});
