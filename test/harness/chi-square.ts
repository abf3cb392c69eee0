// Goodness-of-fit statistics for the losslessness checks (tests and benchmarks): Pearson's chi-square
// against exact expected probabilities, its p-value, and total-variation distance — and the exact
// distribution of a target's first two sampled tokens that the end-to-end checks compare against.
import type { CausalLM } from "../../src/common/models/causal-lm.ts";
import { targetDistribution, type SamplingParams } from "../../src/common/sampling.ts";

/** ln Γ(x) for x > 0 (Lanczos, g = 7; ~15 significant digits). */
export function lnGamma(x: number): number {
  // biome-ignore lint/correctness/noPrecisionLoss: the published Lanczos coefficients, digits as published
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61503916999185, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Upper regularised incomplete gamma Q(a, x) = Γ(a, x) / Γ(a). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lnPre = -x + a * Math.log(x) - lnGamma(a);
  if (x < a + 1) {
    // Series for P(a, x), then Q = 1 − P.
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return Math.max(0, 1 - sum * Math.exp(lnPre));
  }
  // Continued fraction for Q (modified Lentz).
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return Math.exp(lnPre) * h;
}

export interface ChiSquareResult {
  statistic: number;
  dof: number;
  pValue: number;
}

/**
 * Pearson's chi-square of observed counts against exact probabilities. Cells whose expected count is
 * below `minExpected` are pooled into one, as the test's approximation requires.
 */
export function chiSquareTest(observed: readonly number[], probs: readonly number[], minExpected = 5): ChiSquareResult {
  if (observed.length !== probs.length) throw new RangeError("observed and probs differ in length");
  const n = observed.reduce((s, x) => s + x, 0);
  let stat = 0;
  let cells = 0;
  let poolObs = 0;
  let poolExp = 0;
  for (let i = 0; i < observed.length; i++) {
    const e = n * probs[i];
    if (e < minExpected) {
      poolObs += observed[i];
      poolExp += e;
      continue;
    }
    stat += (observed[i] - e) ** 2 / e;
    cells++;
  }
  if (poolExp > 0) {
    stat += (poolObs - poolExp) ** 2 / poolExp;
    cells++;
  } else if (poolObs > 0) return { statistic: Infinity, dof: cells, pValue: 0 }; // mass where none may be
  const dof = Math.max(1, cells - 1);
  return { statistic: stat, dof, pValue: gammaQ(dof / 2, stat / 2) };
}

/** Total-variation distance between an empirical distribution (counts) and exact probabilities. */
export function totalVariation(observed: readonly number[], probs: readonly number[]): number {
  const n = observed.reduce((s, x) => s + x, 0);
  return 0.5 * observed.reduce((s, o, i) => s + Math.abs(o / n - probs[i]), 0);
}

/**
 * Target-only sampling's distribution of the first two tokens after `prompt`: "a,b" → p(a)·p(b | a), every
 * pair of the vocabulary (`row` gives the target's logits after a context).
 */
export async function firstTwoTokens(row: (context: number[]) => Promise<ArrayLike<number>>, prompt: number[], params: SamplingParams): Promise<{ keys: string[]; probs: number[] }> {
  const keys: string[] = [];
  const probs: number[] = [];
  const pa = targetDistribution(await row(prompt), params);
  for (const [a, P] of pa.entries()) {
    const pb = targetDistribution(await row([...prompt, a]), params);
    for (const [b, Q] of pb.entries()) {
      keys.push(`${a},${b}`);
      probs.push(P * Q);
    }
  }
  return { keys, probs };
}

/** `trials` generations of the first two tokens, `parallel` at a time: how often each "a,b" came out. */
export async function countFirstTwo(trials: number, generate: (trial: number) => Promise<number[]>, parallel = 6): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let t = next++; t < trials; t = next++) {
        const key = (await generate(t)).join(",");
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }),
  );
  return counts;
}

/** Chi-square of `counts` against target-only sampling of the first two tokens after `prompt`; `unseen`: outcomes target-only sampling cannot give. */
export async function firstTwoChiSquare(target: CausalLM, prompt: number[], params: SamplingParams, counts: Map<string, number>): Promise<ChiSquareResult & { unseen: string[] }> {
  const row = async (ctx: number[]) => (await target.forward(target.newSequence(), ctx)).last();
  const { keys, probs } = await firstTwoTokens(row, prompt, params);
  const r = chiSquareTest(
    keys.map((k) => counts.get(k) ?? 0),
    probs,
  );
  return { ...r, unseen: [...counts.keys()].filter((k) => !keys.includes(k)) };
}
