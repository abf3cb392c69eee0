// SpeculationPrior (pure): what earlier generations on an edge measured, per proposer, for a new adaptive
// generation to start from instead of from pool generation.
import { describe, expect, it } from "vitest";
import type { PoolLoad } from "../src/common/protocol.ts";
import { SessionGamma } from "../src/speculative/session-gamma.ts";
import { type MeasuredFigures, SpeculationPrior, SpeculationPriors } from "../src/speculative/speculation-prior.ts";

/** A pool with a cost model: passes of ~22 ms whatever the chunk (memory-bound), one row. */
const flatPass: PoolLoad = { queue_depth: 0, sessions: 1, rows: 1, tokens: 1, pass_ms: 21.8, pass_ms_by_chunk: Array.from({ length: 9 }, (_, i) => 21.8 + 0.15 * i) };

const measured = (alpha: number, seen: number, o: Partial<MeasuredFigures> = {}): MeasuredFigures => ({
  alpha: Array(8).fill(alpha),
  seen: Array.from({ length: 8 }, (_, i) => Math.max(0, seen - 2 * i)),
  draftMsPerToken: 1,
  load: flatPass,
  beyondPassMs: 0.5,
  edgeMs: 0.2,
  ...o,
});

describe("SpeculationPrior", () => {
  it("has nothing to offer until the first position was observed 8 times, the draft step and a round's cost are known", () => {
    const p = new SpeculationPrior();
    expect(p.figures).toBeUndefined();
    p.learn(measured(0.9, 5));
    expect(p.figures).toBeUndefined();
    p.learn(measured(0.9, 5, { draftMsPerToken: undefined }));
    expect(p.figures?.draftMsPerToken).toBe(1); // 10 observations; the step from the first generation
    const noCost = new SpeculationPrior();
    noCost.learn(measured(0.9, 20, { load: { queue_depth: 0, sessions: 1 } }));
    expect(noCost.figures).toBeUndefined();
    noCost.learn(measured(0.9, 20, { load: undefined, verifyMs: [20, 24] }));
    expect(noCost.figures?.verifyMs?.[1]).toBeCloseTo(24, 9);
  });

  it("averages generations by their observations (at most 32 each), older ones discounted by 0.8 per generation", () => {
    const p = new SpeculationPrior();
    p.learn(measured(0.9, 10));
    p.learn(measured(0.5, 10));
    // Position 1: (0.9 × 10 × 0.8 + 0.5 × 10) / (8 + 10)
    expect(p.figures!.alpha[0]).toBeCloseTo((0.9 * 8 + 0.5 * 10) / 18, 9);
    // A huge generation counts as 32 observations.
    const q = new SpeculationPrior();
    q.learn(measured(0.9, 32));
    q.learn(measured(0.1, 1000));
    expect(q.figures!.alpha[0]).toBeCloseTo((0.9 * 32 * 0.8 + 0.1 * 32) / (32 * 0.8 + 32), 9);
  });

  it("keeps only the positions a generation observed; deeper ones stay as they were", () => {
    const p = new SpeculationPrior();
    p.learn(measured(0.8, 20)); // positions 1–8 seen 20, 18, …, 6 times
    p.learn({ ...measured(0.2, 10), seen: [10, 0, 0, 0, 0, 0, 0, 0] });
    const a = p.figures!.alpha;
    expect(a[0]).toBeLessThan(0.8);
    for (const x of a.slice(1)) expect(x).toBeCloseTo(0.8, 12);
  });

  it("keeps one prior per proposer", () => {
    const ps = new SpeculationPriors();
    ps.for("suffix").learn(measured(0.9, 20));
    expect(ps.for("suffix").figures).toBeDefined();
    expect(ps.for("model").figures).toBeUndefined();
    expect(ps.for("suffix")).toBe(ps.for("suffix"));
  });
});

describe("SessionGamma started from a prior", () => {
  const s = { gamma: "adaptive" as const, maxGamma: 8, proactive: true };
  const prior = (alpha: number, draftMs: number) => {
    const p = new SpeculationPrior();
    p.learn(measured(alpha, 30, { draftMsPerToken: draftMs }));
    return p.figures!;
  };

  it("speculates from the first step when the prior says drafts are accepted and cheap", () => {
    const g = new SessionGamma(
      s,
      false,
      () => 20,
      () => 64,
      prior(0.9, 1),
    );
    expect(g.choose(-1)).toBeGreaterThanOrEqual(5);
    // Without the prior the same session starts by letting the pool generate.
    expect(
      new SessionGamma(
        s,
        false,
        () => 20,
        () => 64,
      ).choose(-1),
    ).toBe(0);
  });

  it("still starts with pool generation when the prior says drafts fail or cost too much", () => {
    expect(
      new SessionGamma(
        s,
        false,
        () => 20,
        () => 64,
        prior(0.1, 1),
      ).choose(-1),
    ).toBe(0);
    expect(
      new SessionGamma(
        s,
        false,
        () => 20,
        () => 64,
        prior(0.9, 100),
      ).choose(-1),
    ).toBe(0);
  });

  it("its own rounds take over from the prior", () => {
    const g = new SessionGamma(
      s,
      false,
      () => 20,
      () => 64,
      prior(0.9, 1),
    );
    for (let i = 0; i < 12; i++) {
      g.observeRound(6, 0, 22, 20, flatPass);
      g.observeDraftStep(1);
    }
    expect(g.choose(6)).toBe(0);
  });

  it("reports what it measured in the prior's terms", () => {
    const g = new SessionGamma(
      s,
      false,
      () => 20,
      () => 64,
    );
    g.observeDraftStep(2);
    g.observeRound(4, 2, 23, 21, flatPass);
    const m = g.measured();
    expect(m.seen.slice(0, 4)).toEqual([1, 1, 1, 0]);
    expect(m.draftMsPerToken).toBe(2);
    expect(m.load).toEqual(flatPass);
    expect(m.verifyMs).toEqual([23, 23]);
  });

  it("a seeded sampled session (nominal timings) ignores the prior", () => {
    const nominal = { draftMs: 0.5, rttMs: 1, verifyMs: 20, generateMs: 20 };
    const plain = new SessionGamma({ ...s, nominal }, true);
    const primed = new SessionGamma(
      { ...s, nominal },
      true,
      () => 20,
      () => 64,
      prior(0.1, 100),
    );
    expect(primed.choose(-1)).toBe(plain.choose(-1));
  });
});
