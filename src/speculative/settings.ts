// How the edge speculates, as one object built once from the configuration and used by every caller of
// the decoder (chat/completions and translation alike), and who drafts (the proposer factory).
import type { Config } from "../config.ts";
import type { CausalLM } from "../common/models/causal-lm.ts";
import type { DraftVocabulary } from "../common/models/draft-vocabulary.ts";
import type { GammaObjective } from "./gamma-policy.ts";
import { ProposerFactory } from "./proposer-factory.ts";
import { SpeculationPriors } from "./speculation-prior.ts";

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
  /**
   * Adaptive only: send the next round of a strong copy while the round before it is in flight, on the bet
   * that it accepts everything (default true).
   */
  pipeline?: boolean;
  /** Support K of the sparse q̃ sent with sampled drafts (default 8). */
  support?: number;
  /** Adaptive only: may γ drop to 0 (pool generation)? Default true. */
  allowGenerate?: boolean;
  /** Tokens the pool generates before the policy is asked again (γ = 0; default 16). */
  generateChunk?: number;
  nominal?: NominalTimings;
  /**
   * What earlier generations measured, per proposer: adaptive generations start from it instead of from
   * pool generation, and add their own measurements at their end. One per edge (state, not a setting).
   */
  priors?: SpeculationPriors;
}

/** Who drafts, from the configuration (SPEC_PROPOSER, SPEC_SUFFIX_*); `draft`: the loaded draft model, if any, and its trimmed vocabulary. */
export function proposerFactoryFromConfig(
  c: Pick<Config, "SPEC_PROPOSER" | "SPEC_Q_SUPPORT" | "SPEC_SUFFIX_MAX_ORDER" | "SPEC_SUFFIX_TENANT_BYTES" | "SPEC_SUFFIX_TENANTS">,
  draft: CausalLM | undefined,
  vocabulary?: DraftVocabulary,
): ProposerFactory {
  return new ProposerFactory({
    kind: c.SPEC_PROPOSER,
    draft,
    vocabulary,
    support: c.SPEC_Q_SUPPORT,
    suffix: { maxOrder: c.SPEC_SUFFIX_MAX_ORDER, bytesPerTenant: c.SPEC_SUFFIX_TENANT_BYTES, maxTenants: c.SPEC_SUFFIX_TENANTS },
  });
}

export function speculationSettingsFromConfig(c: Pick<Config, "SPEC_GAMMA" | "SPEC_MAX_GAMMA" | "SPEC_OBJECTIVE" | "SPEC_PROACTIVE" | "SPEC_PIPELINE" | "SPEC_Q_SUPPORT">): SpeculationSettings {
  return { gamma: c.SPEC_GAMMA, maxGamma: c.SPEC_MAX_GAMMA, objective: c.SPEC_OBJECTIVE, proactive: c.SPEC_PROACTIVE, pipeline: c.SPEC_PIPELINE, support: c.SPEC_Q_SUPPORT, priors: new SpeculationPriors() };
}
