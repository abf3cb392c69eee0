// Pure statistics of the benchmark (tested in test/bench-report.test.ts): acceptance from verify rounds,
// the τ that acceptance predicts, and summaries.

/** One verify round as the edge saw it: drafts sent and drafts accepted. */
export interface RoundRecord {
  gamma: number;
  accepted: number;
}

/**
 * Per-position acceptance αᵢ = P(draft i accepted | drafts before it accepted), i = 1…max γ, counted over
 * rounds that tested position i; and the pooled α (accepted tests / all tests).
 */
export function acceptanceOf(rounds: readonly RoundRecord[]): { alpha: number; perPosition: number[] } {
  const maxG = Math.max(0, ...rounds.map((r) => r.gamma));
  const tested = new Array(maxG).fill(0);
  const passed = new Array(maxG).fill(0);
  let tests = 0;
  let ok = 0;
  for (const r of rounds) {
    for (let i = 0; i < Math.min(r.accepted + 1, r.gamma); i++) {
      tested[i]++;
      tests++;
      if (i < r.accepted) {
        passed[i]++;
        ok++;
      }
    }
  }
  return { alpha: tests ? ok / tests : 0, perPosition: tested.map((t, i) => (t ? passed[i] / t : 0)) };
}

/** τ = 1 + Σₖ Πᵢ≤ₖ αᵢ for a round of γ drafts (per-position product form; constant α: (1−α^(γ+1))/(1−α)). */
export function tauTheory(perPosition: readonly number[], gamma: number): number {
  let all = 1;
  let tau = 1;
  for (let k = 0; k < gamma; k++) {
    all *= perPosition[k] ?? 0;
    tau += all;
  }
  return tau;
}

/** τ predicted for a set of rounds from their own per-position acceptance (mixed γ: averaged per round). */
export function tauTheoryOf(rounds: readonly RoundRecord[]): number {
  const { perPosition } = acceptanceOf(rounds);
  return rounds.length ? rounds.reduce((s, r) => s + tauTheory(perPosition, r.gamma), 0) / rounds.length : 0;
}

/** Mean tokens a round committed (accepted drafts + the target's token). */
export function tauMeasured(rounds: readonly RoundRecord[]): number {
  return rounds.length ? rounds.reduce((s, r) => s + r.accepted + 1, 0) / rounds.length : 0;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
