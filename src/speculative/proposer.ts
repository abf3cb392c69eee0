// What the speculative decoder needs from anything that proposes draft tokens. One implementation per
// file: model-proposer.ts (a small draft model), suffix-proposer.ts (no model: matching the committed text).
// A proposer lives for one generation: it may keep state (a KV cache, an index) that follows the
// committed text.
import type { SparseDist } from "../common/sampling.ts";

/** The proposers an edge can be configured with (Proposer.name). */
export const PROPOSER_KINDS = ["model", "suffix", "hybrid"] as const;
export type ProposerKind = (typeof PROPOSER_KINDS)[number];

export interface Proposal {
  tokens: number[];
  /** Who drafted it, when a proposer combines several (the hybrid): statistics are kept per drafter. */
  by?: string;
  /**
   * Sampling only: the distribution q̃ each token was drawn from, sent to the verifier with it. A proposer
   * that picks tokens deterministically sends a one-hot q̃ (or none when greedy).
   */
  q?: SparseDist[];
  /** P(token k accepted | the tokens before it accepted), per token, when the proposer knows its odds. */
  confidence?: number[];
}

/** A proposal that knows its odds (Proposer.peek). */
export interface PeekedProposal extends Proposal {
  confidence: number[];
  /**
   * Tokens the match behind it is expected to commit over this round and the rounds that would follow it
   * while it lasts (1 + Σₖ Πᵢ≤ₖ cᵢ along the match beyond the proposal): what leaving generation for it can
   * win back a switch over. Omitted: the proposal's own expected tokens.
   */
  run?: number;
}

/** Proposer.openingWindow: prompt text an answer may open by copying, and the drafter the copy counts for. */
export interface OpeningWindow {
  tokens: number[];
  by: string;
}

/** Proposer.resumeWindow: where a broken copy can resume. */
export interface ResumeWindow {
  tokens: number[];
  pairs: [number, number][];
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
   * Optional, for proposers whose proposals cost next to nothing and know their own odds (suffix matching):
   * the proposal after `history`, at most `max` tokens, each with P(accepted | the ones before accepted).
   * The γ policy then prices each round from it, and pool generation stops when a good proposal appears.
   */
  peek?(history: readonly number[], max: number): PeekedProposal;
  /**
   * With `peek`: propose() drafts by other means than peek (the hybrid's draft model), so each round the
   * policy also prices fresh drafts from their measured acceptance and step time, and takes the better.
   */
  readonly draftsBeyondPeek?: boolean;
  /**
   * peek() is a lookup that nothing observe() is still doing can change (the suffix index, updated at the
   * start of observe): the decoder may peek at every generated token even while an observation runs (the
   * hybrid's model forward), instead of only at a chunk's end.
   */
  readonly peeksWhileObserving?: boolean;
  /**
   * Tokens committed without a proposal (the pool generated them): `token` follows `history`. Resolves to
   * whether the proposer would have proposed it first, so acceptance can be measured before speculating.
   */
  observe(history: readonly number[], token: number): Promise<boolean>;
  /**
   * Optional, for proposers that copy text (suffix matching): where the copy can pick up again after the
   * target departs from `proposal` — the text it copies, from the last committed token through the proposal
   * and on past it, and the (previous, next) token pairs where that text branches (other continuations it
   * knows at each drafted position). With it a round asks the target to keep generating after a rejection
   * until the copy can resume (VerifyRequest.resume). Undefined: the proposal copies nothing.
   */
  resumeWindow?(history: readonly number[], proposal: Proposal): ResumeWindow | undefined;
  /**
   * Optional, with resumeWindow: the text of `prompt` an answer may open by copying (a passage to rewrite,
   * a source to translate), for a first round that finds where the answer joins it and copies on from
   * there (VerifyRequest.resume with `follow`); `by`: the drafter it counts for. Undefined: nothing to copy.
   */
  openingWindow?(prompt: readonly number[]): OpeningWindow | undefined;
  /**
   * Optional, with resumeWindow: the proposal that would follow if `proposal` and then the copy's next token
   * were committed after `history` (its first token is that next token), without committing anything — for
   * sending the next round while `proposal`'s is in flight. Undefined: `proposal` copies nothing.
   */
  lookahead?(history: readonly number[], proposal: Proposal, max: number): PeekedProposal | undefined;
  /** Ahead-drafting outcomes, for statistics (proposers without it report zeros). */
  readonly aheadUsed: number;
  readonly aheadDiscarded: number;
  /** End of the generation: drop all state. */
  reset(): Promise<void>;
}
