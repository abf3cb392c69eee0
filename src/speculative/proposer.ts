// What the speculative decoder needs from anything that proposes draft tokens. One implementation per
// file: model-proposer.ts (a small draft model); a model-free one (suffix matching) can sit beside it.
// A proposer lives for one generation: it may keep state (a KV cache, an index) that follows the
// committed text.
import type { SparseDist } from "../common/sampling.ts";

export interface Proposal {
  tokens: number[];
  /**
   * Sampling only: the distribution q̃ each token was drawn from, sent to the verifier with it. A proposer
   * that picks tokens deterministically sends a one-hot q̃ (or none when greedy).
   */
  q?: SparseDist[];
}

export interface Proposer {
  /** Short label for statistics and metrics ("model", "suffix"). */
  readonly name: string;
  /** Milliseconds spent proposing so far (statistics and the γ policy's cost of drafting). */
  readonly proposeMs: number;
  /** Up to γ tokens to follow `history` (the prompt plus everything committed). */
  propose(history: readonly number[], gamma: number): Promise<Proposal>;
  /**
   * Optional: while `proposal` is being verified, work ahead on the assumption that all of it is accepted
   * (proactive drafting). The next `propose` settles it.
   */
  proposeAhead?(history: readonly number[], proposal: Proposal, gamma: number): void;
  /**
   * Tokens committed without a proposal (the pool generated them): `token` follows `history`. Resolves to
   * whether the proposer would have proposed it first, so acceptance can be measured before speculating.
   */
  observe(history: readonly number[], token: number): Promise<boolean>;
  /** Ahead-drafting outcomes, for statistics (proposers without it report zeros). */
  readonly aheadUsed: number;
  readonly aheadDiscarded: number;
  /** End of the generation: drop all state. */
  reset(): Promise<void>;
}
