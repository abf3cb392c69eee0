// The γ policy (src/speculative/gamma-policy.ts) and the per-session estimates that feed it (src/speculative/acceptance.ts):
// hand-computed values of the round model E[τ(γ)] / (γ·t_draft + RTT + gpu(γ)), the properties chooseGamma
// must have on synthetic timings, and the EWMA / acceptance / linear-fit updates.
import { describe, expect, it } from "vitest";
import { AcceptanceEstimate, Ewma, LinearFit, RecentMin } from "../src/speculative/acceptance.ts";
import { chooseGamma, expectedTokens, generationRate, speculationRate, type GammaPolicyInput } from "../src/speculative/gamma-policy.ts";

const constAlpha = (a: number, n = 16) => new Array<number>(n).fill(a);
/** Verifier time linear in γ: base + slope·γ (ms). */
const linearVerify = (base: number, slope: number) => (g: number) => base + slope * g;

/** Deterministic uniform source in [0, 1): the Numerical Recipes LCG (mod 2³²). */
const lcg = (seed: number) => {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(1664525, s) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
};

describe("expectedTokens", () => {
  it("γ = 0 commits exactly one token whatever α", () => {
    expect(expectedTokens([], 0)).toBe(1);
    expect(expectedTokens([0.9, 0.9], 0)).toBe(1);
    expect(expectedTokens([0], 0)).toBe(1);
  });

  it("constant α is the geometric sum (1 − α^(γ+1)) / (1 − α)", () => {
    // e.g. α = 0.5, γ = 2: 1 + 0.5 + 0.25 = 1.75 = (1 − 0.125) / 0.5
    expect(expectedTokens(constAlpha(0.5), 2)).toBeCloseTo(1.75, 12);
    // α = 0.8, γ = 4: 1 + .8 + .64 + .512 + .4096 = 3.3616 = (1 − 0.32768) / 0.2
    expect(expectedTokens(constAlpha(0.8), 4)).toBeCloseTo(3.3616, 12);
    for (const a of [0, 0.1, 0.3, 0.5, 0.8, 0.95, 0.99]) {
      for (const g of [1, 2, 3, 5, 8, 16]) {
        expect(expectedTokens(constAlpha(a), g)).toBeCloseTo((1 - a ** (g + 1)) / (1 - a), 10);
      }
    }
  });

  it("α = 1 commits γ + 1 tokens; α = 0 commits 1", () => {
    for (const g of [0, 1, 4, 16]) {
      expect(expectedTokens(constAlpha(1), g)).toBe(g + 1);
      expect(expectedTokens(constAlpha(0), g)).toBe(1);
    }
  });

  it("per-position α multiplies along the chain", () => {
    const a = [0.9, 0.5, 0.1];
    expect(expectedTokens(a, 1)).toBeCloseTo(1.9, 12); // 1 + .9
    expect(expectedTokens(a, 2)).toBeCloseTo(2.35, 12); // 1 + .9 + .9·.5 (.45)
    expect(expectedTokens(a, 3)).toBeCloseTo(2.395, 12); // 1 + .9 + .45 + .45·.1 (.045)
  });

  it("missing entries count as α = 0 (no further tokens)", () => {
    // [0.9, 0.5, 0.1] at γ = 5: positions 4, 5 absent → products 0 → same as γ = 3.
    expect(expectedTokens([0.9, 0.5, 0.1], 5)).toBeCloseTo(2.395, 12);
    expect(expectedTokens([], 3)).toBe(1);
  });

  it("clamps α outside [0, 1]", () => {
    // 1.5 → 1, −0.2 → 0: 1 + 1 + 1·0 = 2
    expect(expectedTokens([1.5, -0.2, 0.9], 3)).toBe(2);
    // 1.5 → 1, then 0.5: 1 + 1 + 0.5 = 2.5 (not 1 + 1.5 + 0.75)
    expect(expectedTokens([1.5, 0.5], 2)).toBeCloseTo(2.5, 12);
    // −3 → 0 at the first position: nothing beyond the bonus token
    expect(expectedTokens([-3, 0.9, 0.9], 3)).toBe(1);
  });
});

/** A loaded pool's verify time (the old load-mix shape, kept as a test curve): ½·(20 + 0.5γ) + ½·20·(γ + 1). */
const halfLoaded = (g: number) => 0.5 * (20 + 0.5 * g) + 0.5 * 20 * (g + 1);

describe("GPU cost of a round", () => {
  const i: GammaPolicyInput = { alpha: constAlpha(0.8), draftMs: 2, rttMs: 20, verifyMs: linearVerify(20, 0.5), generateMs: 20, maxGamma: 8, objective: "gpu" };

  it("defaults to the verify time (a pass of its own) and the pool's step", () => {
    // γ = 4 at α 0.8: τ = 1 + .8 + .64 + .512 + .4096 = 3.3616; v(4) = 22
    expect(speculationRate(i, 4)).toBeCloseTo(3361.6 / 22, 9);
    expect(generationRate(i)).toBe(50);
  });

  it("uses the pool's GPU cost when given: a share of a shared pass plus the drafts' marginal cost", () => {
    // 32 rows share a 25.6 ms pass; each draft adds 0.3 ms: g(γ) = 0.8 + 0.3γ
    const shared = { ...i, gpuMs: (g: number) => 25.6 / 32 + 0.3 * g, generateGpuMs: 0.8 };
    expect(speculationRate(shared, 4)).toBeCloseTo(3361.6 / 2, 9);
    expect(generationRate(shared)).toBeCloseTo(1250, 9);
    // The latency objective ignores GPU cost: it reads verify and generation times.
    expect(speculationRate({ ...shared, objective: "latency" }, 4)).toBeCloseTo(3361.6 / (8 + 20 + 22), 9);
    expect(generationRate({ ...shared, objective: "latency" })).toBe(50);
  });

  it("with S sessions speculating alike, a round's share is T(γ)/S while their rounds keep passes busy, else its whole pass", () => {
    // γ = 4: T = 4·2 + 20 + 22 = 50 ms, pass 22 ms. 8 sessions: 8·22/50 ≈ 3.5 rounds a pass, a share of 50/8 ms.
    expect(speculationRate({ ...i, sessions: 8 }, 4)).toBeCloseTo(3361.6 / (50 / 8), 9);
    // 2 sessions: fewer than one round comes in per pass: each pays its pass.
    expect(speculationRate({ ...i, sessions: 2 }, 4)).toBeCloseTo(3361.6 / 22, 9);
    // A slow drafter stretches the round, and the share with it (25 ms a draft: T = 142 ms): 4 sessions'
    // rounds no longer fill passes; 64 sessions' do.
    expect(speculationRate({ ...i, sessions: 4 }, 4)).toBeCloseTo(3361.6 / (50 / 4), 9);
    expect(speculationRate({ ...i, sessions: 4, draftMs: 25 }, 4)).toBeCloseTo(3361.6 / 22, 9);
    expect(speculationRate({ ...i, sessions: 64, draftMs: 25 }, 4)).toBeCloseTo(3361.6 / (142 / 64), 9);
  });

  it("compute-bound passes (cost ∝ tokens) make speculation lose on GPU time below α = 1", () => {
    const bound = { ...i, gpuMs: (g: number) => 0.8 * (g + 1), generateGpuMs: 0.8 };
    expect(chooseGamma(bound).gamma).toBe(0);
    for (let g = 1; g <= 8; g++) expect(speculationRate(bound, g)).toBeLessThan(generationRate(bound));
  });
});

describe("speculationRate / generationRate", () => {
  const base: GammaPolicyInput = {
    alpha: [0.9, 0.5, 0.1],
    draftMs: 2,
    rttMs: 20,
    verifyMs: halfLoaded,
    generateMs: 20,
    maxGamma: 3,
  };

  it("latency objective: 1000·τ / (γ·t_draft + RTT + gpu)", () => {
    // γ = 3: τ = 2.395; gpu = 0.5·v(3) + 0.5·4·v(0) = 0.5·21.5 + 40 = 50.75
    // time = 3·2 + 20 + 50.75 = 76.75 ms → 2395 / 76.75 = 31.2052…
    expect(speculationRate(base, 3)).toBeCloseTo(2395 / 76.75, 10);
    expect(speculationRate({ ...base, objective: "latency" }, 3)).toBeCloseTo(31.2052117, 6);
    // γ = 1: τ = 1.9; gpu = 0.5·20.5 + 0.5·2·20 = 30.25; time = 2 + 20 + 30.25 = 52.25
    expect(speculationRate(base, 1)).toBeCloseTo(1900 / 52.25, 10);
  });

  it("gpu objective: 1000·τ / gpu, independent of draft time and RTT", () => {
    // γ = 3: 2395 / 50.75 = 47.19…
    const g = { ...base, objective: "gpu" as const };
    expect(speculationRate(g, 3)).toBeCloseTo(2395 / 50.75, 10);
    expect(speculationRate({ ...g, draftMs: 50, rttMs: 500 }, 3)).toBeCloseTo(2395 / 50.75, 10);
    expect(speculationRate({ ...g, proactive: true }, 3)).toBeCloseTo(2395 / 50.75, 10);
  });

  it("generationRate is 1000 / generateMs", () => {
    expect(generationRate({ generateMs: 20 })).toBe(50);
    expect(generationRate({ generateMs: 8 })).toBe(125);
  });

  it("proactive drafting hides drafting behind RTT + verify when all drafts are accepted", () => {
    // α = 0.95, γ = 4, draft 10 ms, RTT 20 → v(4) = 22.
    // τ = 1 + .95 + .9025 + .857375 + .81450625 = 4.52438125; p(all four and the assumed bonus) = .95⁵ = .7737809375
    // plain:     time = 40 + 20 + 22 = 82
    // proactive: drafting = (1 − p)·40 + p·max(0, 40 − 20 − 22) = .2262190625·40 = 9.0487625; time = 51.0487625
    const i: GammaPolicyInput = { ...base, alpha: constAlpha(0.95), draftMs: 10, verifyMs: linearVerify(20, 0.5), maxGamma: 8 };
    const tau = 4.52438125;
    expect(speculationRate(i, 4)).toBeCloseTo((1000 * tau) / 82, 9);
    expect(speculationRate({ ...i, proactive: true }, 4)).toBeCloseTo((1000 * tau) / 51.0487625, 9);
    expect(speculationRate({ ...i, proactive: true }, 4)).toBeGreaterThan(1.5 * speculationRate(i, 4));
  });

  it("proactive drafting only hides the part of drafting that fits in RTT + verify", () => {
    // Same but draft 30 ms: drafting 120, hidden window 42 → (1 − p)·120 + p·78
    // = .2262190625·120 + .7737809375·78 = 27.1462875 + 60.354913125 = 87.501200625; time = 87.501200625 + 42
    const i: GammaPolicyInput = { ...base, alpha: constAlpha(0.95), draftMs: 30, verifyMs: linearVerify(20, 0.5), maxGamma: 8, proactive: true };
    expect(speculationRate(i, 4)).toBeCloseTo((1000 * 4.52438125) / 129.501200625, 9);
  });

  it("proactive never lowers the rate, and changes nothing when α = 0", () => {
    for (const a of [0, 0.2, 0.6, 0.9, 1]) {
      for (const draftMs of [0.5, 2, 10, 40]) {
        for (const rttMs of [0, 20, 80]) {
          for (const load of [0, 0.5, 1]) {
            const i: GammaPolicyInput = { ...base, alpha: constAlpha(a), draftMs, rttMs, verifyMs: (g) => (1 - load) * (20 + 0.5 * g) + load * 20 * (g + 1), maxGamma: 8 };
            for (let g = 1; g <= 8; g++) {
              const plain = speculationRate(i, g);
              const pro = speculationRate({ ...i, proactive: true }, g);
              expect(pro).toBeGreaterThanOrEqual(plain);
              if (a === 0) expect(pro).toBe(plain);
            }
          }
        }
      }
    }
  });
});

describe("chooseGamma", () => {
  it("picks γ = 0 when α is low", () => {
    // α = 0.1: γ = 1 gives τ = 1.1 in 2 + 20 + 20.5 = 42.5 ms → 25.9 tok/s; the pool alone gives 1000/20 = 50.
    const c = chooseGamma({ alpha: constAlpha(0.1), draftMs: 2, rttMs: 20, verifyMs: linearVerify(20, 0.5), generateMs: 20, maxGamma: 8 });
    expect(c.gamma).toBe(0);
    expect(c.rates[0]).toBe(50);
    expect(c.rates[1]).toBeCloseTo(1100 / 42.5, 10);
    // also when already speculating (the pool is ~2× better, far beyond the hysteresis margin)
    expect(chooseGamma({ alpha: constAlpha(0.1), draftMs: 2, rttMs: 20, verifyMs: linearVerify(20, 0.5), generateMs: 20, maxGamma: 8, current: 3 }).gamma).toBe(0);
  });

  it("picks γ = 0 on a saturated pool even with α = 0.8, for both objectives", () => {
    // compute-bound: v(γ) = 20·(γ + 1) ≥ γ + 1 ≥ τ pool steps, so speculation cannot beat 50 tok/s per GPU-second.
    // gpu objective, γ = 1: 1000·1.8/40 = 45; γ = 2: 1000·2.44/60 = 40.7; pool 50 ≥ 1.1·45 = 49.5.
    const i: GammaPolicyInput = { alpha: constAlpha(0.8), draftMs: 2, rttMs: 20, verifyMs: (g) => 20 * (g + 1), generateMs: 20, maxGamma: 8 };
    for (const objective of ["latency", "gpu"] as const) {
      for (const current of [undefined, 0, 1, 4]) {
        const c = chooseGamma({ ...i, objective, current });
        expect(c.gamma).toBe(0);
      }
    }
    const g = chooseGamma({ ...i, objective: "gpu" });
    expect(g.rates[1]).toBeCloseTo(45, 10);
    expect(g.rates[2]).toBeCloseTo(2440 / 60, 10);
    // latency, γ = 1: 1800 / (2 + 20 + 40) = 29.03
    expect(chooseGamma(i).rates[1]).toBeCloseTo(1800 / 62, 10);
  });

  it("picks a large γ when α is high and RTT large", () => {
    // α = 0.95, RTT 80: γ = 16 gives τ = (1 − .95¹⁷)/.05 ≈ 11.64 in 16·1 + 80 + 24.8 ≈ 120.8 ms ≈ 96 tok/s vs 50 for the pool.
    for (const draftMs of [0.5, 1]) {
      for (const proactive of [false, true]) {
        const c = chooseGamma({ alpha: constAlpha(0.95), draftMs, rttMs: 80, verifyMs: linearVerify(20, 0.3), generateMs: 20, maxGamma: 16, proactive });
        expect(c.gamma).toBeGreaterThanOrEqual(6);
        expect(c.rates[c.gamma]).toBeGreaterThan(c.rates[0]);
      }
    }
    const c = chooseGamma({ alpha: constAlpha(0.95), draftMs: 1, rttMs: 80, verifyMs: linearVerify(20, 0.3), generateMs: 20, maxGamma: 16 });
    expect(c.rates[16]).toBeCloseTo((1000 * (1 - 0.95 ** 17)) / 0.05 / (16 + 80 + 20 + 4.8), 9);
  });

  it("the chosen γ (minGamma 1) does not decrease as RTT grows, and grows from RTT 0 to 200", () => {
    // α = 0.8, draft 2, v = 20 + 0.5γ. At RTT 0 the rate 1000·τ/(20 + 2.5γ) peaks at γ = 5
    // (τ(4) = 3.3616 → 112.05, τ(5) = 3.68928 → 113.52, τ(6) = 3.951424 → 112.90);
    // a long RTT amortises over more drafts.
    const gammas = [0, 5, 20, 80, 200].map((rttMs) => chooseGamma({ alpha: constAlpha(0.8), draftMs: 2, rttMs, verifyMs: linearVerify(20, 0.5), generateMs: 20, maxGamma: 16, minGamma: 1 }).gamma);
    expect(gammas[0]).toBe(5);
    for (let k = 1; k < gammas.length; k++) expect(gammas[k]).toBeGreaterThanOrEqual(gammas[k - 1]);
    expect(gammas[4]).toBeGreaterThan(gammas[0]);
  });

  describe("hysteresis between speculation and pool generation", () => {
    const spec: Omit<GammaPolicyInput, "generateMs"> = { alpha: constAlpha(0.8), draftMs: 2, rttMs: 20, verifyMs: linearVerify(20, 0.5), maxGamma: 8 };
    // Best speculative rate r on these timings; the pool is then tuned to be r·k.
    const best = chooseGamma({ ...spec, generateMs: 20, minGamma: 1 });
    const r = best.rates[best.gamma];
    const poolAt = (k: number) => ({ ...spec, generateMs: 1000 / (r * k) });

    it("the setup: speculation's best γ is ≥ 1 with a finite rate", () => {
      expect(best.gamma).toBeGreaterThanOrEqual(1);
      expect(Number.isFinite(r) && r > 0).toBe(true);
    });

    it("pool 5% better: a generating session stays at 0, a speculating one keeps speculating", () => {
      expect(chooseGamma({ ...poolAt(1.05), current: 0 }).gamma).toBe(0);
      expect(chooseGamma({ ...poolAt(1.05), current: 3 }).gamma).toBe(best.gamma);
      expect(chooseGamma({ ...poolAt(1.05), current: best.gamma }).gamma).toBe(best.gamma);
    });

    it("speculation 5% better: a generating session stays at 0, a speculating one keeps speculating", () => {
      expect(chooseGamma({ ...poolAt(1 / 1.05), current: 0 }).gamma).toBe(0);
      expect(chooseGamma({ ...poolAt(1 / 1.05), current: 3 }).gamma).toBe(best.gamma);
    });

    it("a clear winner switches either way", () => {
      // pool 1.5× better → 0 from either mode; pool 1.5× worse → best γ from either mode
      for (const current of [0, 3]) {
        expect(chooseGamma({ ...poolAt(1.5), current }).gamma).toBe(0);
        expect(chooseGamma({ ...poolAt(1 / 1.5), current }).gamma).toBe(best.gamma);
      }
    });

    it("hysteresis 1 compares rates plainly; a wider margin keeps the current mode longer", () => {
      for (const current of [0, 3]) {
        expect(chooseGamma({ ...poolAt(1.05), current, hysteresis: 1 }).gamma).toBe(0);
        expect(chooseGamma({ ...poolAt(1 / 1.05), current, hysteresis: 1 }).gamma).toBe(best.gamma);
      }
      // pool 1.3× better is a clear win at the default 1.1 but not with a margin of 1.5
      expect(chooseGamma({ ...poolAt(1.3), current: 3 }).gamma).toBe(0);
      expect(chooseGamma({ ...poolAt(1.3), current: 3, hysteresis: 1.5 }).gamma).toBe(best.gamma);
      expect(chooseGamma({ ...poolAt(1 / 1.3), current: 0, hysteresis: 1.5 }).gamma).toBe(0);
    });

    it("within speculation the best γ is taken without a margin", () => {
      // γ = 7: τ = (1 − .8⁸)/.2 = 4.1611392 in 14 + 20 + 23.5 = 57.5 ms → 72.367
      // γ = 8: τ = (1 − .8⁹)/.2 = 4.32891136 in 16 + 20 + 24 = 60 ms → 72.149 (0.3% worse)
      expect(best.gamma).toBe(7);
      expect(best.rates[7]).toBeCloseTo(4161.1392 / 57.5, 9);
      expect(best.rates[8]).toBeCloseTo(4328.91136 / 60, 9);
      // Currently at γ = 8, 0.3% worse than γ = 7: it still moves to 7.
      const c = chooseGamma({ ...poolAt(1 / 1.5), current: 8 });
      expect(c.gamma).toBe(7);
      for (let g = 1; g <= 8; g++) expect(c.rates[c.gamma]).toBeGreaterThanOrEqual(c.rates[g]);
    });
  });

  it("minGamma 1 never returns 0; rates has maxGamma + 1 entries, NaN below minGamma", () => {
    // Low α, where γ = 0 would win: minGamma 1 forces speculation.
    // γ = 1: 1100 / 42.5 = 25.88; γ = 2: τ = 1.11 in 4 + 20 + 21 = 45 → 24.67 → best is 1.
    const i: GammaPolicyInput = { alpha: constAlpha(0.1), draftMs: 2, rttMs: 20, verifyMs: linearVerify(20, 0.5), generateMs: 20, maxGamma: 8, minGamma: 1 };
    for (const current of [undefined, 0, 2]) {
      const c = chooseGamma({ ...i, current });
      expect(c.gamma).toBe(1);
      expect(c.rates).toHaveLength(9);
      expect(c.rates[0]).toBeNaN();
      for (let g = 1; g <= 8; g++) expect(Number.isFinite(c.rates[g])).toBe(true);
    }
    for (const objective of ["latency", "gpu"] as const) expect(chooseGamma({ ...i, objective }).gamma).toBeGreaterThanOrEqual(1);

    const m3 = chooseGamma({ ...i, minGamma: 3, maxGamma: 5 });
    expect(m3.rates).toHaveLength(6);
    expect(m3.rates.slice(0, 3).every(Number.isNaN)).toBe(true);
    expect(m3.rates.slice(3).every(Number.isFinite)).toBe(true);
    expect(m3.gamma).toBeGreaterThanOrEqual(3);
  });

  it("without minGamma, rates[0] is the pool's generation rate and every γ ≥ 1 is the speculation rate", () => {
    const i: GammaPolicyInput = { alpha: [0.9, 0.5, 0.1], draftMs: 2, rttMs: 20, verifyMs: halfLoaded, generateMs: 25, maxGamma: 3 };
    const c = chooseGamma(i);
    expect(c.rates).toHaveLength(4);
    expect(c.rates[0]).toBe(40);
    expect(c.rates[3]).toBeCloseTo(2395 / 76.75, 10);
  });

  it("invalid maxGamma throws RangeError", () => {
    const i: GammaPolicyInput = { alpha: constAlpha(0.5), draftMs: 2, rttMs: 20, verifyMs: linearVerify(20, 0.5), generateMs: 20, maxGamma: 4 };
    for (const maxGamma of [0, -1, 2.5, NaN, Infinity]) expect(() => chooseGamma({ ...i, maxGamma })).toThrow(RangeError);
    expect(() => chooseGamma({ ...i, maxGamma: 4, minGamma: 5 })).toThrow(RangeError);
    expect(() => chooseGamma({ ...i, maxGamma: 4, minGamma: 4 })).not.toThrow();
    expect(chooseGamma({ ...i, maxGamma: 1 }).rates).toHaveLength(2);
  });
});

describe("AcceptanceEstimate", () => {
  /** Without the warm-up: every observation weighs `weight` (the arithmetic below is the EWMA's). */
  const ewma = (n: number) => new AcceptanceEstimate(n, 0.15, 0.6, Infinity);

  it("warms up as a mean with the prior counted as priorWeight observations, then follows the EWMA", () => {
    const e = new AcceptanceEstimate(3); // weight .15, prior .6 worth 4 observations
    for (let i = 0; i < 4; i++) e.observeToken(true);
    expect(e.alpha[0]).toBeCloseTo((4 * 0.6 + 4) / 8, 12); // .8 after four hits (the EWMA alone: .69)
    const r = new AcceptanceEstimate(3);
    r.observeRound(3, 3);
    expect(r.alpha[0]).toBeCloseTo((4 * 0.6 + 1) / 5, 12);
    r.observeRound(3, 3);
    r.observeRound(3, 3); // 1/(3 + 4) < .15 from here: the EWMA's weight
    const before = r.alpha[0];
    r.observeRound(3, 3);
    expect(r.alpha[0]).toBeCloseTo(before + 0.15 * (1 - before), 12);
  });

  it("lowerBound: the Wilson score bound, below the estimate, narrowing with observations up to the EWMA's effective count", () => {
    const e = new AcceptanceEstimate(2); // weight .15: at most (2 − .15)/.15 ≈ 12.3 observations count
    expect(e.lowerBound(0)).toEqual(e.alpha);
    const few = e.lowerBound(1)[0]; // the prior, worth 4 observations
    expect(few).toBeLessThan(0.6);
    for (let i = 0; i < 40; i++) e.observeRound(1, 1);
    // A run of acceptances: the estimate is near 1, the bound stays well below it (n ≈ 12.3, z = 1).
    const n = 1.85 / 0.15;
    const a = e.alpha[0];
    const wilson = (a + 1 / (2 * n) - Math.sqrt((a * (1 - a)) / n + 1 / (4 * n * n))) / (1 + 1 / n);
    expect(e.lowerBound(1)[0]).toBeCloseTo(wilson, 12);
    expect(e.lowerBound(1)[0]).toBeLessThan(0.95);
    expect(e.lowerBound(2)[0]).toBeLessThan(e.lowerBound(1)[0]);
    // Position 2 was never tested by these rounds: it keeps the prior and the prior's width.
    expect(e.lowerBound(1)[1]).toBeCloseTo(few, 12);
  });

  it("starts at the prior", () => {
    expect(new AcceptanceEstimate(4).alpha).toEqual([0.6, 0.6, 0.6, 0.6]);
    expect(new AcceptanceEstimate(3, 0.1, 0.2).alpha).toEqual([0.2, 0.2, 0.2]);
  });

  it("observeRound(4, 2): α1, α2 up, α3 down, α4 untouched", () => {
    // weight .15, prior .6: up .6 + .15·(1 − .6) = .66; down .6 + .15·(0 − .6) = .51
    const e = ewma(6);
    e.observeRound(4, 2);
    expect(e.alpha[0]).toBeCloseTo(0.66, 12);
    expect(e.alpha[1]).toBeCloseTo(0.66, 12);
    expect(e.alpha[2]).toBeCloseTo(0.51, 12);
    expect(e.alpha[3]).toBe(0.6);
    expect(e.alpha[4]).toBe(0.6);
    expect(e.alpha[5]).toBe(0.6);
    // a second identical round: .66 + .15·.34 = .711; .51 − .15·.51 = .4335
    e.observeRound(4, 2);
    expect(e.alpha[0]).toBeCloseTo(0.711, 12);
    expect(e.alpha[2]).toBeCloseTo(0.4335, 12);
    expect(e.alpha[3]).toBe(0.6);
  });

  it("accepted = 0 only moves α1 down", () => {
    const e = ewma(4);
    e.observeRound(3, 0);
    expect(e.alpha[0]).toBeCloseTo(0.51, 12);
    expect(e.alpha.slice(1)).toEqual([0.6, 0.6, 0.6]);
  });

  it("accepted = γ moves all γ positions up and none beyond", () => {
    const e = ewma(6);
    e.observeRound(3, 3);
    for (let i = 0; i < 3; i++) expect(e.alpha[i]).toBeCloseTo(0.66, 12);
    expect(e.alpha.slice(3)).toEqual([0.6, 0.6, 0.6]);
  });

  it("rounds longer than maxGamma update only the positions it tracks", () => {
    const e = ewma(2);
    e.observeRound(5, 5);
    expect(e.alpha).toHaveLength(2);
    expect(e.alpha[0]).toBeCloseTo(0.66, 12);
    expect(e.alpha[1]).toBeCloseTo(0.66, 12);
    e.observeRound(5, 1); // α1 up (.66 → .711), α2 down (.66 → .561)
    expect(e.alpha[0]).toBeCloseTo(0.711, 12);
    expect(e.alpha[1]).toBeCloseTo(0.561, 12);
  });

  it("throws RangeError on accepted > γ, negative or non-integer accepted, and leaves the estimate as is", () => {
    const e = ewma(4);
    expect(() => e.observeRound(2, 3)).toThrow(RangeError);
    expect(() => e.observeRound(4, 1.5)).toThrow(RangeError);
    expect(() => e.observeRound(4, -1)).toThrow(RangeError);
    expect(() => e.observeRound(4, NaN)).toThrow(RangeError);
    expect(e.alpha).toEqual([0.6, 0.6, 0.6, 0.6]);
  });

  it("observeToken moves every position by weight/2 toward 1 or 0", () => {
    // agreed: .6 + .075·.4 = .63; then disagreed: .63 − .075·.63 = .58275
    const e = ewma(5);
    e.observeToken(true);
    for (const a of e.alpha) expect(a).toBeCloseTo(0.63, 12);
    e.observeToken(false);
    for (const a of e.alpha) expect(a).toBeCloseTo(0.58275, 12);
    // from distinct values each moves on its own: [.66, .66, .51, .6] → ×(1 − .075) toward 0
    const f = ewma(4);
    f.observeRound(4, 2);
    f.observeToken(false);
    expect(f.alpha[0]).toBeCloseTo(0.66 * 0.925, 12);
    expect(f.alpha[2]).toBeCloseTo(0.51 * 0.925, 12);
    expect(f.alpha[3]).toBeCloseTo(0.6 * 0.925, 12);
  });

  it("converges toward the true conditional acceptance under a long seeded sequence of rounds", () => {
    // True αᵢ = [.9, .7, .5, .3], rounds of γ = 4: draft i is accepted with αᵢ given all before it were.
    const truth = [0.9, 0.7, 0.5, 0.3];
    const rand = lcg(12345);
    const e = new AcceptanceEstimate(4, 0.05);
    const sum = [0, 0, 0, 0];
    const rounds = 20000;
    const window = 16000;
    for (let r = 0; r < rounds; r++) {
      let accepted = 0;
      while (accepted < 4 && rand() < truth[accepted]) accepted++;
      e.observeRound(4, accepted);
      if (r >= rounds - window) for (let i = 0; i < 4; i++) sum[i] += e.alpha[i];
    }
    // Time-averaged estimate within 0.03 of the truth (the prior 0.6 is 0.3 away for α1 and α4).
    for (let i = 0; i < 4; i++) expect(Math.abs(sum[i] / window - truth[i])).toBeLessThan(0.03);
    // and the final snapshot is ordered like the truth at the ends
    expect(e.alpha[0]).toBeGreaterThan(e.alpha[3]);
  });

  it("observeToken alone converges toward the agreement rate", () => {
    const rand = lcg(777);
    const e = new AcceptanceEstimate(3, 0.05, 0.1);
    let sum = 0;
    for (let r = 0; r < 8000; r++) {
      e.observeToken(rand() < 0.75);
      if (r >= 4000) sum += e.alpha[0];
    }
    expect(Math.abs(sum / 4000 - 0.75)).toBeLessThan(0.03);
    expect(e.alpha[1]).toBe(e.alpha[0]);
  });
});

describe("Ewma", () => {
  it("is undefined until the first observation, which sets the value", () => {
    const e = new Ewma(0.2);
    expect(e.value).toBeUndefined();
    e.observe(10);
    expect(e.value).toBe(10);
    e.observe(20); // 10 + .2·10 = 12
    expect(e.value).toBeCloseTo(12, 12);
  });

  it("with a prior, the first observation moves by the weight", () => {
    const e = new Ewma(0.25, 10);
    expect(e.value).toBe(10);
    e.observe(18); // 10 + .25·8 = 12
    expect(e.value).toBe(12);
  });

  it("weight 1 tracks the last observation", () => {
    const e = new Ewma(1, 5);
    for (const x of [3, 9, -4, 7.5]) {
      e.observe(x);
      expect(e.value).toBe(x);
    }
  });

  it("ignores non-finite observations", () => {
    const e = new Ewma(0.5);
    e.observe(NaN);
    expect(e.value).toBeUndefined();
    e.observe(4);
    e.observe(Infinity);
    e.observe(-Infinity);
    e.observe(NaN);
    expect(e.value).toBe(4);
  });

  it("or() falls back only while there is no value", () => {
    const e = new Ewma(0.5);
    expect(e.or(42)).toBe(42);
    e.observe(0);
    expect(e.or(42)).toBe(0);
    expect(new Ewma(0.5, 7).or(42)).toBe(7);
  });

  it("rejects weights outside (0, 1]", () => {
    for (const w of [0, -0.1, 1.0001, 2, NaN]) expect(() => new Ewma(w)).toThrow(RangeError);
    expect(() => new Ewma(1)).not.toThrow();
    expect(() => new Ewma(1e-6)).not.toThrow();
  });
});

describe("LinearFit", () => {
  it("is undefined before any observation", () => {
    const f = new LinearFit();
    expect(f.observed).toBe(false);
    expect(f.predict(3)).toBeUndefined();
    f.observe(NaN, 3);
    f.observe(1, Infinity);
    expect(f.observed).toBe(false);
    expect(f.predict(3)).toBeUndefined();
  });

  it("recovers a + b·x exactly from noise-free points (forget 1)", () => {
    // y = 20 + 0.5·x at x = 0, 2, 4, 8 → predict(16) = 28, predict(1) = 20.5
    const f = new LinearFit(1);
    for (const x of [0, 2, 4, 8]) f.observe(x, 20 + 0.5 * x);
    expect(f.observed).toBe(true);
    expect(f.predict(16)).toBeCloseTo(28, 9);
    expect(f.predict(1)).toBeCloseTo(20.5, 9);
    expect(f.predict(0)).toBeCloseTo(20, 9);
  });

  it("recovers the line with forgetting too (noise-free points lie on it whatever their weights)", () => {
    const f = new LinearFit(0.7);
    for (let k = 0; k < 30; k++) f.observe(k % 5, 12 + 3 * (k % 5));
    expect(f.predict(10)).toBeCloseTo(42, 8);
  });

  it("forgetting makes recent points dominate after a regime change", () => {
    // 40 rounds of y = 10 + x, then 40 of y = 30 + 2x, x cycling 0…4.
    const forgetting = new LinearFit(0.8);
    const plain = new LinearFit(1);
    for (let k = 0; k < 80; k++) {
      const x = k % 5;
      const y = k < 40 ? 10 + x : 30 + 2 * x;
      forgetting.observe(x, y);
      plain.observe(x, y);
    }
    // new regime at x = 8: 46. The old weighs .8⁴⁰ ≈ 1.3e-4 of the newest round → within 0.05.
    expect(Math.abs(forgetting.predict(8)! - 46)).toBeLessThan(0.05);
    // without forgetting it is the pooled fit: mean of both lines, 20 + 1.5x → 32 at x = 8
    expect(plain.predict(8)).toBeCloseTo(32, 8);
  });

  it("with one distinct x, uses priorSlope through the mean", () => {
    // x = 4 twice, y = 30, 34 (forget 1): mean 32 → predict(6) = 32 + 2·2 = 36, predict(0) = 32 − 8 = 24
    const f = new LinearFit(1, 2);
    f.observe(4, 30);
    f.observe(4, 34);
    expect(f.predict(6)).toBeCloseTo(36, 9);
    expect(f.predict(0)).toBeCloseTo(24, 9);
    // default prior slope 0: flat at the mean
    const g = new LinearFit(1);
    g.observe(4, 30);
    g.observe(4, 34);
    expect(g.predict(100)).toBeCloseTo(32, 9);
    // a single observation (with forgetting) behaves the same
    const h = new LinearFit(0.95, 0.5);
    h.observe(2, 21);
    expect(h.predict(10)).toBeCloseTo(25, 9); // 21 + .5·8
  });

  it("clamps a negative fitted slope to 0 (flat at the mean)", () => {
    // (0, 30), (10, 10): slope −2, mean (5, 20) → predicts 20 everywhere
    const f = new LinearFit(1);
    f.observe(0, 30);
    f.observe(10, 10);
    expect(f.predict(0)).toBeCloseTo(20, 9);
    expect(f.predict(20)).toBeCloseTo(20, 9);
  });

  it("never predicts below 0", () => {
    // (10, 1), (20, 11): slope 1, mean (15, 6) → predict(0) = 6 − 15 = −9 → 0; predict(8) = −1 → 0; predict(12) = 3
    const f = new LinearFit(1);
    f.observe(10, 1);
    f.observe(20, 11);
    expect(f.predict(0)).toBe(0);
    expect(f.predict(8)).toBe(0);
    expect(f.predict(12)).toBeCloseTo(3, 9);
    // a negative prior slope is clamped as well, and negative data gives 0
    const g = new LinearFit(1, -3);
    g.observe(5, -4);
    expect(g.predict(0)).toBe(0);
    expect(g.predict(50)).toBe(0);
  });
});

describe("switch cost", () => {
  // α 0.8, draft 2 ms, RTT 20: γ ≥ 1 runs at about 70 tokens/s against the pool's 50.
  const i: GammaPolicyInput = { alpha: constAlpha(0.8), draftMs: 2, rttMs: 20, verifyMs: linearVerify(20, 0.5), generateMs: 20, maxGamma: 8 };

  it("a switch is taken only when the other mode wins back its cost over the horizon", () => {
    const c = chooseGamma({ ...i, current: 0 });
    expect(c.gamma).toBeGreaterThan(0);
    const best = c.rates[c.gamma];
    const saved = 16_000 * (1 / c.rates[0] - 1 / best); // ms over 16 tokens
    expect(chooseGamma({ ...i, current: 0, switchCostMs: saved - 1 }).gamma).toBe(c.gamma);
    expect(chooseGamma({ ...i, current: 0, switchCostMs: saved + 1 }).gamma).toBe(0);
    // A longer horizon earns the same cost back.
    expect(chooseGamma({ ...i, current: 0, switchCostMs: saved + 1, horizonTokens: 32 }).gamma).toBe(c.gamma);
  });

  it("applies the other way too, and not before a mode is chosen", () => {
    const slow = { ...i, alpha: constAlpha(0.1) }; // generation clearly better
    expect(chooseGamma({ ...slow, current: 3 }).gamma).toBe(0);
    expect(chooseGamma({ ...slow, current: 3, switchCostMs: 1e6 }).gamma).toBeGreaterThan(0);
    expect(chooseGamma({ ...slow, switchCostMs: 1e6 }).gamma).toBe(0);
  });
});

describe("RecentMin", () => {
  it("is the smallest of the last `window` observations, forgetting older ones; undefined before any", () => {
    const m = new RecentMin(3);
    expect(m.value).toBeUndefined();
    m.observe(150); // a stampede at start-up
    m.observe(22);
    m.observe(NaN); // ignored
    expect(m.value).toBe(22);
    m.observe(30);
    m.observe(25);
    expect(m.value).toBe(22);
    m.observe(40); // 22 has left the window of 3
    expect(m.value).toBe(25);
    expect(() => new RecentMin(0)).toThrow();
  });
});
