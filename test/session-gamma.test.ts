// SessionGamma (pure): one generation's γ decisions from what it has measured.
import { describe, expect, it } from "vitest";
import { SessionGamma } from "../src/speculative/session-gamma.ts";

describe("SessionGamma", () => {
  it("a fixed γ is returned whatever was measured", () => {
    const g = new SessionGamma({ gamma: 3 });
    g.observeRound(3, 0, 50, 100, 32);
    expect(g.choose(-1)).toBe(3);
    expect(g.choose(3)).toBe(3);
    expect(g.adaptive).toBe(false);
  });

  it("refuses a fixed γ outside 0…maxGamma", () => {
    expect(() => new SessionGamma({ gamma: 9, maxGamma: 8 })).toThrow(/0…8/);
    expect(() => new SessionGamma({ gamma: -1 })).toThrow();
    expect(() => new SessionGamma({ gamma: 1.5 })).toThrow();
  });

  it("adaptive starts as pool generation until something is measured, unless generation is not allowed", () => {
    expect(new SessionGamma({ gamma: "adaptive" }).choose(-1)).toBe(0);
    expect(new SessionGamma({ gamma: "adaptive", allowGenerate: false }).choose(-1)).toBeGreaterThan(0);
  });

  it("with nominal timings only (seeded sampling) it speculates from the start and ignores measurements", () => {
    const nominal = { draftMs: 0.5, rttMs: 1, verifyMs: 20, generateMs: 20 };
    const a = new SessionGamma({ gamma: "adaptive", nominal }, true);
    const b = new SessionGamma({ gamma: "adaptive", nominal }, true);
    const first = a.choose(-1);
    expect(first).toBeGreaterThan(0);
    // Wildly different timings observed by `b`: the same choices (acceptance still counts).
    b.observeGeneration(1, 500);
    b.observeDraftStep(1000);
    expect(b.choose(-1)).toBe(first);
  });

  it("follows measurements: speculates when drafts are accepted and verifying is cheap, generates when drafts fail", () => {
    const good = new SessionGamma({ gamma: "adaptive", maxGamma: 8 });
    good.observeGeneration(20, 21);
    for (let i = 0; i < 30; i++) {
      good.observeDraftStep(0.1);
      good.observeRound(4, 4, 21, 1, 0);
    }
    expect(good.choose(0)).toBeGreaterThanOrEqual(4);

    const bad = new SessionGamma({ gamma: "adaptive", maxGamma: 8 });
    bad.observeGeneration(20, 21);
    for (let i = 0; i < 30; i++) {
      bad.observeDraftStep(5);
      bad.observeRound(4, 0, 25, 40, 0);
      bad.observeProposalHit(false);
    }
    expect(bad.choose(4)).toBe(0);
  });

  it("never exceeds maxGamma, and a saturated pool pushes a GPU-minded policy no higher", () => {
    const s = new SessionGamma({ gamma: "adaptive", maxGamma: 3, objective: "gpu" });
    s.observeGeneration(20, 21);
    for (let i = 0; i < 30; i++) {
      s.observeDraftStep(0.1);
      s.observeRound(3, 3, 21, 1, 0);
    }
    const idle = s.choose(0);
    expect(idle).toBeGreaterThan(0);
    expect(idle).toBeLessThanOrEqual(3);
    for (let i = 0; i < 30; i++) s.observeRound(3, 3, 21, 1, 64);
    expect(s.choose(idle)).toBeLessThanOrEqual(idle);
  });
});
