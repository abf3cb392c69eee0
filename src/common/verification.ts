// Exact verification of drafted tokens (docs/ARCHITECTURE.md, "Exact verification"; Leviathan et al. 2023). Given the target's
// distributions at the γ+1 positions of one verify pass, decide how many drafts to accept and which
// target token to commit after them (the correction at the first rejection, or the bonus after all γ).
// Greedy output equals target-only greedy decoding; sampled output has exactly the target's distribution,
// provided each draft really was drawn from the q̃ that was sent. Pure: the randomness comes in.
import { argmax, sampleIndex, sparseProb, type SparseDist } from "./sampling.ts";

export interface VerifyResult {
  /** Drafts accepted, 0..γ. */
  accepted: number;
  /** The target token committed after the accepted drafts (correction or bonus). */
  token: number;
  /** ln p(dᵢ) under the target for each draft (−Infinity where p is 0), for the client's statistics. */
  draftLogprobs: number[];
}

function check(drafts: readonly number[], targets: readonly ArrayLike<number>[]): void {
  if (targets.length !== drafts.length + 1) throw new RangeError(`verification needs γ+1 = ${drafts.length + 1} target distributions, got ${targets.length}`);
  const vocab = targets[0].length;
  for (const d of drafts) if (!(Number.isInteger(d) && d >= 0 && d < vocab)) throw new RangeError(`draft token ${d} outside the vocabulary`);
}

/** ln softmax(logits)[id], computed stably. */
export function logSoftmaxAt(logits: ArrayLike<number>, id: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - max);
  return logits[id] - max - Math.log(z);
}

/**
 * Greedy: accept while the draft equals the target's argmax; commit the argmax at the first mismatch
 * (or after the last draft). Log-probs are of the raw logits (temperature 1).
 */
export function verifyGreedy(drafts: readonly number[], targetLogits: readonly ArrayLike<number>[]): VerifyResult {
  check(drafts, targetLogits);
  let accepted = 0;
  while (accepted < drafts.length && drafts[accepted] === argmax(targetLogits[accepted])) accepted++;
  return {
    accepted,
    token: argmax(targetLogits[accepted]),
    draftLogprobs: drafts.map((d, i) => logSoftmaxAt(targetLogits[i], d)),
  };
}

/**
 * Sampling: accept dᵢ with probability min(1, p(dᵢ)/q̃(dᵢ)); at the first rejection commit a draw from
 * normalise(max(0, p − q̃)); if all γ pass, commit a draw from the last p. `p` are the target's
 * distributions after temperature/top-k/top-p (targetDistribution), `q` the drafter's sparse q̃ per
 * draft, and `uniform()` the request's seeded randomness (one draw per acceptance test, one per commit).
 */
export function verifySampling(drafts: readonly number[], q: readonly SparseDist[], p: readonly ArrayLike<number>[], uniform: () => number): VerifyResult {
  check(drafts, p);
  if (q.length !== drafts.length) throw new RangeError(`one q̃ per draft: ${drafts.length} drafts, ${q.length} distributions`);
  const draftLogprobs = drafts.map((d, i) => Math.log(p[i][d]));
  for (let i = 0; i < drafts.length; i++) {
    const qd = sparseProb(q[i], drafts[i]);
    if (!(qd > 0)) throw new RangeError(`draft ${i} (token ${drafts[i]}) has probability 0 under its own q̃: it was not drawn from it`);
    if (uniform() < Math.min(1, p[i][drafts[i]] / qd)) continue;
    // Rejected: the residual max(0, p − q̃) is positive somewhere, since q̃(dᵢ) > p(dᵢ) here.
    const residual = Float64Array.from(p[i] as ArrayLike<number>);
    q[i].ids.forEach((id, k) => (residual[id] = Math.max(0, residual[id] - q[i].probs[k])));
    return { accepted: i, token: sampleIndex(residual, uniform()), draftLogprobs };
  }
  return { accepted: drafts.length, token: sampleIndex(p[drafts.length], uniform()), draftLogprobs };
}
