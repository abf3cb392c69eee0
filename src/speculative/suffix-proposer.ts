// The suffix proposer: drafts with no model at all, by matching the end of the committed text against what
// came before — the prompt and the session's own output (prompt lookup), and the tenant's recent outputs
// (SuffixDecoding) — and copying what followed the longest match, most frequent continuation first. Costs
// microseconds and no memory for weights, so it runs in any Worker.
//
// Exact under sampling: a proposal is a deterministic function of the committed text, i.e. drawn from a
// one-hot q̃; the verification rule then accepts token x with probability p(x) and corrects from p without
// x, so the output keeps the target's distribution.
//
// Each proposed token carries a confidence: the acceptance rate measured so far for matches of its kind
// (context length, how dominant the continuation is). It decides how far a proposal goes, and the γ policy
// prices rounds from it. Outcomes need no feedback: the next history shows which proposed tokens came true.
import type { SparseDist } from "../common/sampling.ts";
import { MAX_GAMMA, MAX_RESUME_PAIRS, MAX_RESUME_WINDOW } from "../common/protocol.ts";
import type { OpeningWindow, PeekedProposal, Proposal, Proposer, ResumeWindow } from "./proposer.ts";
import { SuffixIndex, contextKeys } from "./suffix-index.ts";
import type { TenantSuffixEntry } from "./tenant-suffix-cache.ts";

/** Dominance classes of a continuation (its count over its context's total). */
const DOMINANCE = [0.99, 0.6, 0] as const;
/** Prior acceptance by context length (before any outcome), and its weight in outcomes. */
const PRIOR_BY_ORDER = [0.2, 0.35, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8];
const PRIOR_WEIGHT = 4;
/** How far past a proposal the match's run is followed (PeekedProposal.run). */
const RUN_LOOKAHEAD = 32;
/** Most tokens of a copy's resume window: the copy from the last committed token on. */
const COPY_WINDOW = 64;

/** Measured acceptance of suffix proposals by kind of match (pure). */
export class SuffixCalibration {
  private readonly hits = new Map<number, { accepted: number; tried: number }>();

  private static bucket(order: number, dominance: number): number {
    return order * 4 + DOMINANCE.findIndex((d) => dominance >= d);
  }

  /** P(accepted) of a token proposed after a matched context of `order` tokens, `dominance` = count/total. */
  rate(order: number, dominance: number): number {
    const d = DOMINANCE.findIndex((x) => dominance >= x);
    const prior = PRIOR_BY_ORDER[Math.min(order, PRIOR_BY_ORDER.length) - 1] * [1, 0.8, 0.5][d];
    const h = this.hits.get(SuffixCalibration.bucket(order, dominance));
    return h ? (h.accepted + PRIOR_WEIGHT * prior) / (h.tried + PRIOR_WEIGHT) : prior;
  }

  observe(order: number, dominance: number, accepted: boolean): void {
    const b = SuffixCalibration.bucket(order, dominance);
    const h = this.hits.get(b) ?? { accepted: 0, tried: 0 };
    h.tried++;
    if (accepted) h.accepted++;
    this.hits.set(b, h);
  }
}

export interface SuffixProposerOptions {
  /** Longest context matched (default 8). */
  maxOrder?: number;
  /** Shortest context worth proposing from (default 2). */
  minOrder?: number;
  /** A proposal stops where the chance that all of it is accepted falls below this (default 0.1). */
  minConfidence?: number;
  /** Tokens of the first history that are the prompt: the rest is output, kept for the tenant at the end. */
  promptLength?: number;
  /** The tenant's recent outputs (read while proposing; this generation's output is added at the end). */
  tenant?: TenantSuffixEntry;
  /** Sampling: send a one-hot q̃ with each token. */
  sampling?: boolean;
}

interface Pending {
  /** History length the proposal followed. */
  at: number;
  tokens: number[];
  kinds: { order: number; dominance: number }[];
}

export class SuffixProposer implements Proposer {
  readonly name = "suffix";
  proposeMs = 0;
  readonly aheadUsed = 0;
  readonly aheadDiscarded = 0;
  private readonly maxOrder: number;
  private session: SuffixIndex;
  private readonly calibration: SuffixCalibration;
  /** The history indexed so far. */
  private history: number[] = [];
  private pending: Pending | undefined;

  constructor(private readonly o: SuffixProposerOptions = {}) {
    this.maxOrder = o.maxOrder ?? 8;
    this.session = new SuffixIndex(this.maxOrder);
    this.calibration = o.tenant?.calibration ?? new SuffixCalibration();
  }

  /** Up to γ tokens; past γ (up to MAX_GAMMA) while the whole proposal is still very likely accepted. */
  async propose(history: readonly number[], gamma: number): Promise<PeekedProposal> {
    return this.timed(() => this.draft(history, gamma, Math.max(gamma, Math.min(MAX_GAMMA, 2 * gamma))));
  }

  /** The proposal after `history`, at most `max` tokens, without the extension past γ; and the match's run. */
  peek(history: readonly number[], max: number): PeekedProposal {
    return this.timed(() => ({ ...this.draft(history, max, max), run: this.expectedRun(history) }));
  }

  /**
   * Tokens the match is expected to commit from `history` on while it lasts: 1 + Σₖ Πᵢ≤ₖ cᵢ along the
   * matched continuation, at most RUN_LOOKAHEAD tokens (a passage being copied runs far past one round).
   */
  private expectedRun(history: readonly number[]): number {
    let [all, sum, k] = [1, 1, 0];
    for (const m of this.continuation(history)) {
      if (k++ >= RUN_LOOKAHEAD || all < 0.01) break;
      all *= m.confidence;
      sum += all;
    }
    return sum;
  }

  /**
   * The matched text from the last committed token through `proposal` and on (at most COPY_WINDOW tokens), and where it branches: at each drafted position and the one after, the other tokens that
   * followed its context (text that repeats with variations: the proposal took the likeliest branch).
   */
  resumeWindow(history: readonly number[], proposal: Proposal): ResumeWindow | undefined {
    if (!proposal.tokens.length) return undefined;
    const tokens = [history[history.length - 1], ...proposal.tokens, ...this.lookahead(history, proposal, COPY_WINDOW).tokens].slice(0, COPY_WINDOW);
    return this.timed(() => {
      const pairs: [number, number][] = [];
      const ctx = history.slice(-this.maxOrder);
      for (let k = 0; k <= proposal.tokens.length && pairs.length < MAX_RESUME_PAIRS; k++) {
        const prev = ctx[ctx.length - 1];
        for (const t of this.followers(ctx)) if (t !== proposal.tokens[k] && pairs.length < MAX_RESUME_PAIRS) pairs.push([prev, t]);
        if (k < proposal.tokens.length) {
          ctx.push(proposal.tokens[k]);
          if (ctx.length > this.maxOrder) ctx.shift();
        }
      }
      return { tokens, pairs };
    });
  }

  /** The prompt's last MAX_RESUME_WINDOW tokens: where a rewritten passage or a translated source sits. */
  openingWindow(prompt: readonly number[]): OpeningWindow | undefined {
    return prompt.length >= 2 ? { tokens: prompt.slice(-MAX_RESUME_WINDOW), by: this.name } : undefined;
  }

  /** Every token that followed the longest context ending `ctx` (of at least minOrder tokens), in the session or the tenant's outputs. */
  private followers(ctx: readonly number[]): number[] {
    const keys = contextKeys(ctx, ctx.length, this.maxOrder);
    for (let o = keys.length; o >= (this.o.minOrder ?? 2); o--) {
      const found = [this.session.followers(keys[o - 1]), this.o.tenant?.index.followers(keys[o - 1])].filter((f) => f !== undefined);
      if (found.length) return [...new Set(found.flatMap((f) => (f.counts ? [...f.counts.keys()] : [f.best])))];
    }
    return [];
  }

  /** The match's continuation after `history` and `proposal` (not committed: nothing is indexed), at most `max` tokens. */
  lookahead(history: readonly number[], proposal: Proposal, max: number): PeekedProposal {
    return this.timed(() => {
      const tokens: number[] = [];
      const confidence: number[] = [];
      for (const m of this.continuation([...history.slice(-this.maxOrder), ...proposal.tokens])) {
        if (tokens.length >= max) break;
        tokens.push(m.token);
        confidence.push(m.confidence);
      }
      return { tokens, confidence };
    });
  }

  async observe(history: readonly number[], token: number): Promise<boolean> {
    return this.timed(() => this.draft(history, 1, 1).tokens[0] === token);
  }

  async reset(): Promise<void> {
    const out = this.history.slice(this.o.promptLength ?? this.history.length);
    this.o.tenant?.addOutput(out);
    this.session = new SuffixIndex(this.maxOrder);
    this.history = [];
    this.pending = undefined;
  }

  private timed<T>(f: () => T): T {
    const t0 = performance.now();
    try {
      return f();
    } finally {
      this.proposeMs += performance.now() - t0;
    }
  }

  private draft(history: readonly number[], gamma: number, extendTo: number): PeekedProposal {
    this.sync(history);
    const tokens: number[] = [];
    const confidence: number[] = [];
    const kinds: Pending["kinds"] = [];
    const floor = this.o.minConfidence ?? 0.1;
    let all = 1;
    for (const m of this.continuation(history)) {
      // Past γ only while the whole proposal is still a good bet.
      if (tokens.length >= extendTo || all * m.confidence < (tokens.length < gamma ? floor : 0.8)) break;
      all *= m.confidence;
      tokens.push(m.token);
      confidence.push(m.confidence);
      kinds.push({ order: m.order, dominance: m.dominance });
    }
    this.pending = tokens.length ? { at: history.length, tokens, kinds } : undefined;
    const q: SparseDist[] | undefined = this.o.sampling ? tokens.map((t) => ({ ids: [t], probs: [1] })) : undefined;
    return { tokens, confidence, ...(q ? { q } : {}) };
  }

  /** The matched continuation of `history` (indexed already), token by token, with each token's odds. */
  private *continuation(history: readonly number[]): Generator<{ token: number; confidence: number; order: number; dominance: number }> {
    const ctx = history.slice(-this.maxOrder);
    const minOrder = this.o.minOrder ?? 2;
    for (;;) {
      const m = this.match(ctx);
      if (!m || m.order < minOrder) return;
      const dominance = m.count / m.total;
      yield { token: m.token, confidence: this.calibration.rate(m.order, dominance), order: m.order, dominance };
      ctx.push(m.token);
      ctx.shift();
    }
  }

  /** Index the new part of `history`; score the last proposal against what was committed after it. */
  private sync(history: readonly number[]): void {
    const have = this.history.length;
    const appended = history.length >= have && (have === 0 || history[have - 1] === this.history[have - 1]);
    if (!appended) {
      // Not a continuation (a new generation on the same proposer): start over.
      this.session.remove(this.history);
      this.history = [];
      this.pending = undefined;
    }
    const from = this.history.length;
    for (let i = from; i < history.length; i++) this.history.push(history[i]);
    this.session.add(this.history, from);
    const p = this.pending;
    if (p && history.length > p.at) {
      const seen = Math.min(p.tokens.length, history.length - p.at);
      for (let k = 0; k < seen; k++) {
        const hit = history[p.at + k] === p.tokens[k];
        this.calibration.observe(p.kinds[k].order, p.kinds[k].dominance, hit);
        if (!hit) break;
      }
      this.pending = undefined;
    }
  }

  /** The longest context ending `ctx` seen in the session or the tenant's outputs, counts of both merged. */
  private match(ctx: readonly number[]): { token: number; count: number; total: number; order: number } | undefined {
    const keys = contextKeys(ctx, ctx.length, this.maxOrder);
    const tenant = this.o.tenant?.index;
    for (let o = keys.length; o >= 1; o--) {
      const s = this.session.followers(keys[o - 1]);
      const t = tenant?.followers(keys[o - 1]);
      if (!s && !t) continue;
      if (!s || !t) {
        const f = (s ?? t)!;
        return { token: f.best, count: f.bestCount, total: f.total, order: o };
      }
      const countOf = (x: number) => followerCount(s, x) + followerCount(t, x);
      const [cs, ct] = [countOf(s.best), countOf(t.best)];
      return { token: cs >= ct ? s.best : t.best, count: Math.max(cs, ct), total: s.total + t.total, order: o };
    }
    return undefined;
  }
}

function followerCount(f: { best: number; bestCount: number; counts?: Map<number, number> }, token: number): number {
  return f.counts ? (f.counts.get(token) ?? 0) : f.best === token ? f.bestCount : 0;
}
