// Whether a pass that could start now should wait for sessions expected back soon (pure, no I/O, no clock).
// Speculating sessions return one round trip after their answer. Without a wait, sessions that once drifted
// apart stay apart: 8 sessions at a 20 ms round trip settled into ~3 groups of 2–3 rows, each round waiting
// for the other groups' passes. While passes are memory-bound, one pass over everyone costs about what one
// group's pass costs, so joining them saves the GPU whole passes and each session the wait for them.
//
// The rule: wait for the first k sessions expected back, for the largest k whose wait the GPU time saved
// pays for. The GPU idles w ms; it saves what the joined rows would add to the pass they would otherwise
// share — the one after this, with the other sessions due before this one ends — less what they add to
// this one. While passes are memory-bound that is about a whole pass; once they are compute-bound, or
// many others are due anyway, about nothing, and passes pipeline instead of waiting.
// A two-pass view (minimise the rows' completion times over this pass and the next) rejects waits that
// merge groups for good: it sees the queued rows' delay, not the merged rounds that follow.
import type { PassRow } from "../src/common/pass-cost-model.ts";

/** Arrivals waited for at most (the earliest): each candidate wait costs model evaluations on the verifier's event loop. */
const MAX_AWAITED = 8;

export interface ExpectedArrival {
  /** Milliseconds from now until the row is expected. */
  inMs: number;
  row: PassRow;
}

/**
 * Milliseconds to wait before the pass (0: start now), given the rows queued, the rows expected, and the
 * time of a pass over given rows. `generating`: how many queued rows are generations, whose next pass is
 * queued as their token leaves — they are in every pass already, so a wait only delays their tokens: it must
 * also save the awaited rows at least the time it costs those rows.
 */
export function companyWaitMs(queued: readonly PassRow[], expected: readonly ExpectedArrival[], passMs: (rows: readonly PassRow[]) => number, generating = 0): number {
  if (queued.length === 0) return 0;
  const alone = passMs(queued);
  const due = expected.filter((a) => a.inMs >= 0 && a.inMs < alone).sort((a, b) => a.inMs - b.inMs);
  if (!due.length) return 0;
  const addedTo = (base: readonly PassRow[], extra: readonly PassRow[]) => passMs([...base, ...extra]) - (base.length ? passMs(base) : 0);
  // A pass where one more row costs half what it costs alone is compute-bound: nothing to save.
  if (addedTo(queued, [due[0].row]) >= passMs([due[0].row]) / 2) return 0;
  let wait = 0;
  for (let k = 1; k <= Math.min(due.length, MAX_AWAITED); k++) {
    const w = due[k - 1].inMs;
    const joined = due.slice(0, k).map((a) => a.row);
    const rest = due.slice(k).map((a) => a.row);
    if (addedTo(rest, joined) - addedTo(queued, joined) < w) continue;
    // Latency: an awaited row ends with this pass instead of after it and the next; a generation's token waits.
    const together = passMs([...queued, ...joined]);
    const saved = k * (alone + passMs([...rest, ...joined]) - w - together);
    if (saved >= generating * (w + together - alone)) wait = w;
  }
  return wait;
}

/**
 * When each session is expected back: its turnaround (answer sent → next request), smoothed, per session
 * and per kind of answer — an edge that drafted ahead returns at once after a round whose drafts were all
 * accepted, and drafts again first after one that rejected some. A session whose expected time has passed
 * by more than `graceMs` is not expected any more (it ended, or went to pool generation) until it comes back.
 */
export class ArrivalForecast<K extends object> {
  private readonly turnaround = new WeakMap<K, Map<string, number>>();
  private readonly answeredAt = new Map<K, { at: number; kind: string }>();
  /** How far arrivals miss their forecast, over all sessions (ms, mean absolute error). */
  private lateness = 0;
  private checked = 0;

  constructor(
    private readonly graceMs = 2,
    /** Turnarounds shorter than this are back-to-back passes (a generation), queued before they are due. */
    private readonly minTurnaroundMs = 1,
  ) {}

  answered(key: K, now: number, kind = ""): void {
    this.answeredAt.set(key, { at: now, kind });
  }

  /** A session's row came in; true when it came back after an answer (a verify round, not a generation). */
  arrived(key: K, now: number): boolean {
    const a = this.answeredAt.get(key);
    if (a === undefined) return false;
    this.answeredAt.delete(key);
    const t = now - a.at;
    const byKind = this.turnaround.get(key) ?? new Map<string, number>();
    this.turnaround.set(key, byKind);
    const prev = byKind.get(a.kind);
    if (prev !== undefined) {
      const miss = Math.abs(t - prev);
      this.lateness = this.checked++ ? 0.9 * this.lateness + 0.1 * miss : miss;
    }
    byKind.set(a.kind, prev === undefined ? t : 0.7 * prev + 0.3 * t);
    return true;
  }

  /**
   * Sessions expected back, with ms until then: the forecast plus its usual error, so that a wait does
   * not end just before the awaited arrive (at least 0: one a little late may come any moment).
   */
  expected(now: number): { key: K; inMs: number }[] {
    const slack = this.lateness;
    const out: { key: K; inMs: number }[] = [];
    for (const [key, a] of this.answeredAt) {
      const t = this.turnaround.get(key)?.get(a.kind);
      if (t === undefined || t < this.minTurnaroundMs) continue;
      const inMs = a.at + t + slack - now;
      if (inMs < -this.graceMs) {
        // Not coming back on time: drop it, so that a finished session is waited for at most once.
        this.answeredAt.delete(key);
        continue;
      }
      out.push({ key, inMs: Math.max(0, inMs) });
    }
    return out;
  }
}
