// Log-probabilities of committed tokens as the verifier reports them (TokenLogprob): ln softmax of the
// target's row at temperature 1 — the model's own figure, before a grammar's mask or the request's
// sampling settings — and the k most likely tokens. Pure, shared by the verifier and its tests.
import type { TokenLogprob } from "./protocol.ts";

/** ln Σ exp(row) (−∞ for an empty or all −∞ row). */
export function logSumExp(row: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  if (max === -Infinity) return -Infinity;
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i] - max);
  return max + Math.log(z);
}

/**
 * `token`'s log-prob under `row` and the `k` most likely tokens (ties: lower id first). `row` holds logits,
 * or log-probs already (`normalised`: an engine that returns only its top entries, −∞ elsewhere).
 */
export function tokenLogprob(row: ArrayLike<number>, token: number, k: number, normalised = false): TokenLogprob {
  const shift = normalised ? 0 : logSumExp(row);
  const lp = (id: number) => row[id] - shift;
  // The k largest, kept sorted in a small array (k ≤ 20).
  const top: number[] = [];
  for (let id = 0; id < row.length && k > 0; id++) {
    const v = row[id];
    if (v === -Infinity || (top.length === k && v <= row[top[k - 1]])) continue;
    let at = top.length;
    while (at > 0 && row[top[at - 1]] < v) at--;
    top.splice(at, 0, id);
    if (top.length > k) top.pop();
  }
  const own = lp(token);
  return { logprob: Number.isFinite(own) ? own : null, top: top.map((id) => [id, lp(id)] as [number, number]) };
}
