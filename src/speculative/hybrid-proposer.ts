// The hybrid proposer: suffix matching and the draft model, chosen per round by expected committed tokens
// per unit of time (or GPU time). The suffix proposal costs microseconds and carries its odds, so it is
// made first (`peek`); the γ policy prices it against fresh model drafts priced from the model's measured
// acceptance and step time (`draftsBeyondPeek`), and against pool generation — a strong match wins with
// no drafting cost, elsewhere the model drafts. Statistics are kept per drafter (Proposal.by).
import type { ModelProposer } from "./model-proposer.ts";
import type { OpeningWindow, PeekedProposal, Proposal, Proposer, ResumeWindow } from "./proposer.ts";
import type { SuffixProposer } from "./suffix-proposer.ts";

export class HybridProposer implements Proposer {
  readonly name = "hybrid";
  readonly draftsBeyondPeek = true;
  /** Its peek is the suffix's, whose index observe() updates before the model's forward starts. */
  readonly peeksWhileObserving = true;

  constructor(
    readonly suffix: SuffixProposer,
    readonly model: ModelProposer,
  ) {}

  get proposeMs(): number {
    return this.suffix.proposeMs + this.model.proposeMs;
  }

  get aheadUsed(): number {
    return this.model.aheadUsed;
  }

  get aheadDiscarded(): number {
    return this.model.aheadDiscarded;
  }

  peek(history: readonly number[], max: number): PeekedProposal {
    return { ...this.suffix.peek(history, max), by: this.suffix.name };
  }

  /**
   * γ drafts without the policy's choice (a fixed γ): the suffix proposal when it expects at least one
   * accepted token (Σ of its cumulative odds), else the model's.
   */
  async propose(history: readonly number[], gamma: number): Promise<Proposal> {
    const s = this.peek(history, gamma);
    let all = 1;
    let expected = 0;
    for (const c of s.confidence) {
      all *= c;
      expected += all;
    }
    if (expected >= 1) return s;
    return { ...(await this.model.propose(history, gamma)), by: this.model.name };
  }

  resumeWindow(history: readonly number[], proposal: Proposal): ResumeWindow | undefined {
    return proposal.by === this.suffix.name ? this.suffix.resumeWindow(history, proposal) : undefined;
  }

  openingWindow(prompt: readonly number[]): OpeningWindow | undefined {
    return this.suffix.openingWindow(prompt);
  }

  lookahead(history: readonly number[], proposal: Proposal, max: number): PeekedProposal | undefined {
    return proposal.by === this.suffix.name ? { ...this.suffix.lookahead(history, proposal, max), by: this.suffix.name } : undefined;
  }

  proposeAhead(history: readonly number[], proposal: Proposal, gamma: number): void {
    this.model.proposeAhead(history, proposal, gamma);
  }

  /** Both follow the pool's stream; the model's answer measures its acceptance (the suffix's odds are its own). */
  async observe(history: readonly number[], token: number): Promise<boolean> {
    const [model] = await Promise.all([this.model.observe(history, token), this.suffix.observe(history, token)]);
    return model;
  }

  async reset(): Promise<void> {
    await Promise.all([this.model.reset(), this.suffix.reset()]);
  }
}
