// The γ policy (docs/ARCHITECTURE.md, "The γ policy"), pure: from a session's acceptance estimates and timings and what
// the pool says a round costs now, choose how many tokens to draft next round. γ = 0 means "let the pool
// generate" (no drafts, no per-token round trip). Rates are goodput: expected committed tokens per second
// of the session's wall time ("latency") or per GPU-second of the pool ("gpu").
//
// Model. A round with γ drafts commits E[τ(γ)] = 1 + Σₖ₌₁..γ Πᵢ₌₁..ₖ αᵢ tokens and takes
//   T(γ) = γ·t_draft + RTT + v(γ)
// where v is the verifier's time for the round (queue + pass). It costs the pool its share of a pass of
// g(γ) GPU-ms, from the verifier's cost model (cheap while passes are memory-bound, the full per-token
// cost once they are compute-bound: a rejected draft is then wasted work). With S sessions speculating
// alike at their own pace, a pass carries the rounds that came in during the one before, S·g(γ)/T(γ) of
// them, so a round's share is T(γ)/S — or, when fewer than one comes in per pass, the whole pass g(γ).
// Pool generation costs its own step per token and no round trip per token. With proactive drafting the
// next block is drafted while the verify call is in flight; when all γ are accepted (probability Πα) that
// drafting hides behind RTT + v.

export type GammaObjective = "latency" | "gpu";

export interface GammaPolicyInput {
  /** Conditional acceptance per draft position (αᵢ), at least maxGamma entries. */
  alpha: readonly number[];
  /** Drafter time per drafted token (ms). */
  draftMs: number;
  /** Network round trip edge ⇄ pool (ms). */
  rttMs: number;
  /** Verifier time of a round with γ drafts: queue + pass (ms). */
  verifyMs: (gamma: number) => number;
  /** GPU-ms of the pass a round with γ drafts runs in (default: verifyMs, a pass of its own). */
  gpuMs?: (gamma: number) => number;
  /**
   * Sessions of the pool, assumed to decide alike (gpu objective; default 1). Speculating, each sends a
   * round every T(γ) ms (roundMs) at its own pace: while their rounds keep passes busy (S·g(γ)/T(γ) ≥ 1
   * rounds per pass) a round's share of the GPU is T(γ)/S, else its pass is its own, g(γ).
   */
  sessions?: number;
  /** Pool's time per generated token when it generates alone (ms). */
  generateMs: number;
  /** GPU-ms per token the pool spends generating alone (default: generateMs). */
  generateGpuMs?: number;
  maxGamma: number;
  /** Smallest γ allowed (1 keeps the session speculating; 0 allows pool generation). */
  minGamma?: number;
  objective?: GammaObjective;
  proactive?: boolean;
  /**
   * The γ in use: switching between speculation (γ ≥ 1) and pool generation (γ = 0) needs the other mode
   * to be better by this factor (default 1.1), so that noisy estimates do not flap between them.
   */
  current?: number;
  hysteresis?: number;
  /**
   * What a switch between speculation and pool generation costs (ms of wall time, or GPU-ms under the gpu
   * objective): the stream's start-up or the session's re-open. A switch is taken only when the other mode
   * wins back more than that over `horizonTokens` (default 16) tokens. Default 0.
   */
  switchCostMs?: number;
  horizonTokens?: number;
}

export interface GammaChoice {
  gamma: number;
  /** Expected tokens per second (or per GPU-second) for γ = 0 … maxGamma (NaN below minGamma). */
  rates: number[];
}

/** E[τ(γ)]: expected tokens committed by a round of γ drafts. */
export function expectedTokens(alpha: readonly number[], gamma: number): number {
  let all = 1;
  let sum = 1;
  for (let k = 0; k < gamma; k++) {
    all *= clamp01(alpha[k] ?? 0);
    sum += all;
  }
  return sum;
}

const clamp01 = (x: number) => (x > 0 ? Math.min(1, x) : 0); // NaN counts as 0

/** Probability that all γ drafts are accepted. */
function allAccepted(alpha: readonly number[], gamma: number): number {
  let p = 1;
  for (let k = 0; k < gamma; k++) p *= clamp01(alpha[k] ?? 0);
  return p;
}

/** Expected rate of γ ≥ 1 speculation, in tokens per second or per GPU-second. */
export function speculationRate(i: GammaPolicyInput, gamma: number): number {
  const tau = expectedTokens(i.alpha, gamma);
  if ((i.objective ?? "latency") === "gpu") return (1000 * tau) / Math.min((i.gpuMs ?? i.verifyMs)(gamma), roundMs(i, gamma) / (i.sessions ?? 1));
  return (1000 * tau) / roundMs(i, gamma);
}

/** Expected wall time of a round of γ ≥ 1 drafts: drafting (less what proactive drafting hides), RTT, verify. */
export function roundMs(i: Pick<GammaPolicyInput, "alpha" | "draftMs" | "rttMs" | "verifyMs" | "proactive">, gamma: number): number {
  const verify = i.verifyMs(gamma);
  let drafting = gamma * i.draftMs;
  if (i.proactive) {
    // Ahead-drafted work is used when every draft is accepted and the target's bonus token is the one the
    // drafter assumed (its own next proposal, accepted with the next position's α).
    const p = allAccepted(i.alpha, gamma + 1);
    drafting = (1 - p) * drafting + p * Math.max(0, drafting - i.rttMs - verify);
  }
  return drafting + i.rttMs + verify;
}

/** Rate of pool generation (γ = 0): one pool step per token, in wall time or in GPU time. */
export function generationRate(i: Pick<GammaPolicyInput, "generateMs" | "generateGpuMs" | "objective">): number {
  return 1000 / (i.objective === "gpu" ? (i.generateGpuMs ?? i.generateMs) : i.generateMs);
}

export function chooseGamma(i: GammaPolicyInput): GammaChoice {
  const min = i.minGamma ?? 0;
  if (!(Number.isInteger(i.maxGamma) && i.maxGamma >= Math.max(min, 1))) throw new RangeError(`maxGamma ${i.maxGamma} must be ≥ max(minGamma, 1)`);
  const rates = Array.from({ length: i.maxGamma + 1 }, (_, g) => (g < min ? NaN : g === 0 ? generationRate(i) : speculationRate(i, g)));
  let best = Math.max(min, 1);
  for (let g = best + 1; g <= i.maxGamma; g++) if (rates[g] > rates[best]) best = g;
  if (min > 0) return { gamma: best, rates };
  // Mode switches need a margin; within speculation the best γ is taken as is.
  const h = i.hysteresis ?? 1.1;
  if (i.current === undefined || i.current < 0) return { gamma: rates[0] >= rates[best] ? 0 : best, rates };
  const [stay, other] = i.current === 0 ? [rates[0], rates[best]] : [rates[best], rates[0]];
  // ms saved over the horizon by the other mode (rates are tokens per second)
  const saved = 1000 * (i.horizonTokens ?? 16) * (1 / stay - 1 / other);
  const switches = other >= stay * h && saved > (i.switchCostMs ?? 0);
  return { gamma: (i.current === 0) !== switches ? 0 : best, rates };
}
