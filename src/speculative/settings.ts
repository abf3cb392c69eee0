// How the edge speculates, as one object built once from the configuration and used by every caller of
// the decoder (chat/completions and translation alike).
import type { Config } from "../config.ts";
import type { GammaObjective } from "./gamma-policy.ts";

/** Timings the γ policy assumes when it must not depend on the clock (seeded sampling repeats its text). */
export interface NominalTimings {
  draftMs: number;
  rttMs: number;
  verifyMs: number;
  generateMs: number;
}

export const DEFAULT_NOMINAL: NominalTimings = { draftMs: 1, rttMs: 20, verifyMs: 20, generateMs: 20 };

export interface SpeculationSettings {
  /** Drafts per round: "adaptive" (the γ policy) or fixed; 0 = the pool generates alone. */
  gamma: number | "adaptive";
  /** Largest γ the policy may choose (default 8). */
  maxGamma?: number;
  objective?: GammaObjective;
  /** Draft the next block while a verify call is in flight. */
  proactive?: boolean;
  /** Support K of the sparse q̃ sent with sampled drafts (default 8). */
  support?: number;
  /** Adaptive only: may γ drop to 0 (pool generation)? Default true. */
  allowGenerate?: boolean;
  /** Tokens the pool generates before the policy is asked again (γ = 0; default 16). */
  generateChunk?: number;
  nominal?: NominalTimings;
}

export function speculationSettingsFromConfig(c: Pick<Config, "SPEC_GAMMA" | "SPEC_MAX_GAMMA" | "SPEC_OBJECTIVE" | "SPEC_PROACTIVE" | "SPEC_Q_SUPPORT">): SpeculationSettings {
  return { gamma: c.SPEC_GAMMA, maxGamma: c.SPEC_MAX_GAMMA, objective: c.SPEC_OBJECTIVE, proactive: c.SPEC_PROACTIVE, support: c.SPEC_Q_SUPPORT };
}
