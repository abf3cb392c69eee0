// DecodeStatsRecorder (pure): the decoder's events add up to the statistics the API reports.
import { describe, expect, it } from "vitest";
import { DecodeStatsRecorder } from "../src/speculative/decode-stats.ts";

describe("DecodeStatsRecorder", () => {
  it("counts rounds, passes, tokens and times; a stop id is a pass but not an output token", () => {
    const r = new DecodeStatsRecorder("model");
    r.chose(0, -1);
    r.generated(true);
    r.generated(true);
    r.generated(false); // the stop id
    r.generation(12);
    r.chose(3, 0);
    r.drafting(1.5);
    r.round("model", 3, 2, 3, 20, 5, 0.25);
    r.chose(3, 3);
    r.round("model", 3, 3, 4, 21, 6, 0.25);
    r.ahead(1, 2);
    expect(r.stats).toMatchObject({
      proposer: "model",
      rounds: 2,
      drafted: 6,
      accepted: 5,
      roundTokens: 7,
      generatedTokens: 2,
      targetPasses: 5,
      draftMs: 1.5,
      verifyMs: 41,
      networkMs: 11,
      generateMs: 12,
      edgeMs: 0.5,
      modeChanges: 1,
      aheadUsed: 1,
      aheadDiscarded: 2,
      gammas: [0, 3, 3],
      roundLog: [
        { gamma: 3, accepted: 2 },
        { gamma: 3, accepted: 3 },
      ],
      byProposer: { model: { rounds: 2, drafted: 6, accepted: 5 } },
      passRows: { sum: 0, reports: 0 },
    });
  });

  it("sums the rows per pass the pool reports, ignoring reports without them", () => {
    const r = new DecodeStatsRecorder("model");
    r.load(undefined);
    r.load(0);
    r.load(4);
    r.load(8);
    expect(r.stats.passRows).toEqual({ sum: 12, reports: 2 });
  });

  it("a hybrid's rounds are counted per drafter, and add up to the totals", () => {
    const r = new DecodeStatsRecorder("hybrid");
    r.round("suffix", 8, 7, 8, 20, 5, 0);
    r.round("model", 3, 1, 2, 20, 5, 0);
    r.round("suffix", 4, 4, 5, 20, 5, 0);
    expect(r.stats.byProposer).toEqual({ suffix: { rounds: 2, drafted: 12, accepted: 11 }, model: { rounds: 1, drafted: 3, accepted: 1 } });
    expect([r.stats.rounds, r.stats.drafted, r.stats.accepted]).toEqual([3, 15, 12]);
  });

  it("a mode change is a switch between generating and speculating, not a change of γ", () => {
    const r = new DecodeStatsRecorder("model");
    for (const [g, prev] of [
      [2, -1],
      [5, 2],
      [0, 5],
      [0, 0],
      [1, 0],
    ])
      r.chose(g, prev);
    expect(r.stats.modeChanges).toBe(2);
  });
});
