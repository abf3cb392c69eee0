// Benchmarks only: a proposer with a set acceptance rate and a set step time, standing in for a drafter of
// known quality and speed without spending the benchmark machine's CPU on it (with 128 sessions, 128 real
// drafters would share two cores here; in deployment each session drafts on its own edge). It knows the
// target's greedy continuation of the prompt and proposes each position's true token with probability α
// (one fixed draw per position, so acceptance is α at every position, independently), otherwise a wrong
// one. Each drafted token costs `stepMs` of waiting, not work, so concurrent sessions draft in parallel as
// separate edges would. Greedy only.
import type { Proposal, Proposer } from "../src/speculative/proposer.ts";

export interface ReplayProposerOptions {
  /** Length of the prompt `continuation` follows. */
  promptLength: number;
  /** The target's greedy tokens after the prompt (at least as many as the session will commit + γ). */
  continuation: readonly number[];
  alpha: number;
  stepMs: number;
  vocab: number;
  seed: number;
}

const sleep = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

export class ReplayProposer implements Proposer {
  readonly name = "replay";
  proposeMs = 0;
  aheadUsed = 0;
  aheadDiscarded = 0;
  /** Proactive drafting: when the next block started and the history it assumed. */
  private ahead: { startedAt: number; expectLength: number; expectTail: number[] } | undefined;

  constructor(private readonly o: ReplayProposerOptions) {}

  /** The token proposed at output position `i`: the target's with probability α (a fixed draw per position). */
  private tokenAt(i: number): number {
    const right = this.o.continuation[i] ?? 0;
    return uniform(this.o.seed, i) < this.o.alpha ? right : (right + 1) % this.o.vocab;
  }

  async propose(history: readonly number[], gamma: number): Promise<Proposal> {
    const t0 = performance.now();
    const at = history.length - this.o.promptLength;
    let wait = gamma * this.o.stepMs;
    const a = this.ahead;
    this.ahead = undefined;
    if (a) {
      const matches = history.length === a.expectLength && a.expectTail.every((t, k) => history[a.expectLength - a.expectTail.length + k] === t);
      if (matches) {
        this.aheadUsed++;
        wait = Math.max(0, wait - (t0 - a.startedAt)); // drafted while the round was in flight
      } else this.aheadDiscarded++;
    }
    await sleep(wait);
    this.proposeMs += performance.now() - t0;
    return { tokens: Array.from({ length: gamma }, (_, k) => this.tokenAt(at + k)) };
  }

  /** Assume every draft and then the draft's own next token are accepted, and start drafting past them. */
  proposeAhead(history: readonly number[], proposal: Proposal, gamma: number): void {
    const at = history.length - this.o.promptLength;
    this.ahead = { startedAt: performance.now(), expectLength: history.length + gamma + 1, expectTail: [...proposal.tokens, this.tokenAt(at + gamma)] };
  }

  async observe(history: readonly number[], token: number): Promise<boolean> {
    const t0 = performance.now();
    await sleep(this.o.stepMs);
    this.proposeMs += performance.now() - t0;
    return this.tokenAt(history.length - this.o.promptLength) === token;
  }

  async reset(): Promise<void> {
    this.ahead = undefined;
  }
}

/** A uniform draw in [0, 1) fixed by (seed, i) (splitmix32-style mixing). */
function uniform(seed: number, i: number): number {
  let h = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(i + 1, 0xc2b2ae35)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32;
}
