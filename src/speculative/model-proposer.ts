// The model proposer: proposes blocks of tokens with a small draft model, keeping one KV cache per generation
// that follows the committed text (prefix reuse, rollback after rejections), and drafts ahead while a
// verify call is in flight (proactive drafting). Sampling drafts are drawn from the sparse q̃ that is sent
// with them (docs/ARCHITECTURE.md, "Exact verification"), with a random stream per absolute position: a drafted position gets the same draw
// whatever the round layout, so proactive drafting and re-sent rounds draft exactly what plain rounds do.
import type { CausalLM, KvSequence } from "../common/models/causal-lm.ts";
import type { DraftVocabulary } from "../common/models/draft-vocabulary.ts";
import type { Proposal, Proposer } from "./proposer.ts";
import { SeededRng, argmax, sampleSparse, targetDistribution, truncateTopK, type SamplingParams, type SparseDist } from "../common/sampling.ts";
import { allows } from "../common/token-mask.ts";
import { GrammarCursor, type GrammarMatcher } from "../structured/grammar.ts";

/** Draft streams start here (verifier rounds use the round number, generation 0x40000000 + position). */
const DRAFT_STREAM = 0x20000000;

type DraftBlock = Proposal;

export interface ModelProposerOptions {
  /** Omitted or temperature 0: greedy drafts. */
  sampling?: SamplingParams & { seed: number };
  /** Support of the transmitted q̃ (top-K of the draft distribution). */
  support?: number;
  /**
   * The draft's trimmed vocabulary, when its rows are a subset of the target's ids: the cache then holds
   * draft rows, and only proposals (and q̃) are mapped back to target ids.
   */
  vocabulary?: DraftVocabulary;
  /**
   * Constrained decoding: the grammar over the output (the history past `promptLength`). Drafts are drawn
   * from the draft's distribution masked to what the grammar allows, and q̃ is that masked distribution.
   */
  grammar?: { matcher: () => Promise<GrammarMatcher>; promptLength: number };
}

export class ModelProposer implements Proposer {
  readonly name = "model";
  /** The draft's cache: tokens as draft rows (target ids unless the vocabulary is trimmed). */
  readonly seq: KvSequence;
  /** Draft logits row after each fed length of the current path (length → row). */
  private rows = new Map<number, Float32Array>();
  /** Time spent in draft forward passes (ms). */
  proposeMs = 0;
  /** Blocks drafted ahead that the next round used, and that it had to discard. */
  aheadUsed = 0;
  aheadDiscarded = 0;
  /** A block drafted ahead for the history it assumed. */
  private ahead?: { history: number[]; block: DraftBlock };
  private aheadRun?: Promise<void>;
  private stopAhead = false;
  /** The grammar's cursor, opened at the first constrained draft. */
  private cursor?: Promise<GrammarCursor>;

  constructor(
    private readonly model: CausalLM,
    private readonly o: ModelProposerOptions = {},
  ) {
    this.seq = model.newSequence();
  }

  get sampling(): boolean {
    return !!this.o.sampling && this.o.sampling.temperature > 0;
  }

  /** Feeds draft rows; returns the logits of the next position (a trimmed vocabulary's fallback masked). */
  private async forward(rows: readonly number[]): Promise<Float32Array> {
    const t0 = performance.now();
    const logits = await this.model.forward(this.seq, rows);
    this.proposeMs += performance.now() - t0;
    const last = logits.last().slice();
    if (this.o.vocabulary) last[this.o.vocabulary.fallback] = -Infinity;
    this.rows.set(this.seq.length, last);
    return last;
  }

  /** Target ids as the draft's rows. */
  private rowsOf(tokens: readonly number[]): readonly number[] {
    return this.o.vocabulary ? this.o.vocabulary.toDraft(tokens) : tokens;
  }

  /** A draft row as the target id it proposes. */
  private tokenOf(row: number): number {
    return this.o.vocabulary ? this.o.vocabulary.toTarget(row) : row;
  }

  /** Make the cache hold exactly `history` and return the draft's logits for the next position. */
  async sync(targetHistory: readonly number[]): Promise<Float32Array> {
    if (targetHistory.length === 0) throw new RangeError("sync() needs a non-empty history");
    // Tokens outside a trimmed vocabulary share the fallback row: histories that differ only there are one
    // and the same to the draft, so its cache serves both.
    const history = this.rowsOf(targetHistory);
    const have = this.seq.tokens;
    let common = 0;
    while (common < have.length && common < history.length && have[common] === history[common]) common++;
    if (common === history.length && this.rows.has(common)) {
      this.truncate(common);
      return this.rows.get(common)!;
    }
    // Re-feed at least the last token: its row is what drafting needs.
    this.truncate(Math.min(common, history.length - 1));
    return this.forward(history.slice(this.seq.length));
  }

  private truncate(length: number): void {
    this.seq.truncate(length);
    for (const k of this.rows.keys()) if (k > length) this.rows.delete(k);
  }

  /**
   * The token after `path` drawn from `row` (greedy: argmax), with its q̃ when sampling (target ids), drawn
   * per absolute position; undefined where the grammar allows no token the draft has.
   */
  private async pick(raw: Float32Array, path: readonly number[]): Promise<{ token: number; q?: SparseDist } | undefined> {
    const pos = path.length;
    const row = await this.masked(raw, path);
    if (!row) return undefined;
    const s = this.o.sampling;
    if (!s || s.temperature === 0) return { token: this.tokenOf(argmax(row)) };
    const q = truncateTopK(targetDistribution(row, s), this.o.support ?? 8);
    const token = this.tokenOf(sampleSparse(q, new SeededRng(s.seed, DRAFT_STREAM + pos).next()));
    return { token, q: this.o.vocabulary ? { ids: q.ids.map((r) => this.tokenOf(r)), probs: q.probs } : q };
  }

  /** `row` with the tokens the grammar refuses after `path` at −∞ (the row itself without a grammar). */
  private async masked(row: Float32Array, path: readonly number[]): Promise<Float32Array | undefined> {
    const g = this.o.grammar;
    if (!g) return row;
    this.cursor ??= g.matcher().then((m) => new GrammarCursor(m));
    const mask = await (await this.cursor).maskAfter(path.slice(g.promptLength));
    if (!mask) return undefined;
    const out = row.slice();
    let any = false;
    for (let r = 0; r < out.length; r++) {
      if (out[r] === -Infinity) continue;
      if (allows(mask, this.tokenOf(r))) any = true;
      else out[r] = -Infinity;
    }
    return any ? out : undefined;
  }

  /** Whether the draft's greedy choice after `history` is `token` (the pool generated it). */
  async observe(history: readonly number[], token: number): Promise<boolean> {
    return this.tokenOf(argmax(await this.sync(history))) === token;
  }

  /** γ drafts after `history` (reusing a block drafted ahead for exactly this history). */
  async propose(history: readonly number[], gamma: number): Promise<DraftBlock> {
    await this.settleAhead();
    const ahead = this.ahead;
    this.ahead = undefined;
    if (ahead && ahead.history.length === history.length && ahead.history.every((t, i) => t === history[i])) {
      this.aheadUsed++;
      const block = slice(ahead.block, gamma);
      if (block.tokens.length === gamma) return block;
      return this.extend(history, block, gamma);
    }
    if (ahead) this.aheadDiscarded++;
    return this.extend(history, { tokens: [], ...(this.sampling ? { q: [] } : {}) }, gamma);
  }

  /** Continue `block` (already drafted after `history`) to γ tokens. */
  private async extend(history: readonly number[], block: DraftBlock, gamma: number): Promise<DraftBlock> {
    let row = await this.sync([...history, ...block.tokens]);
    while (block.tokens.length < gamma) {
      const picked = await this.pick(row, [...history, ...block.tokens]);
      if (!picked) break;
      const { token, q } = picked;
      block.tokens.push(token);
      if (q) block.q!.push(q);
      if (block.tokens.length < gamma) row = await this.forward(this.rowsOf([token]));
    }
    return block;
  }

  /**
   * While `block` (drafted after `history`) is being verified: assume it is all accepted and that the
   * bonus is the draft's own next token, and draft up to `gamma` tokens after that, one step at a time
   * until `settleAhead()` (called by the next propose) stops it.
   */
  proposeAhead(history: readonly number[], block: DraftBlock, gamma: number): void {
    this.stopAhead = false;
    this.aheadRun = (async () => {
      const path = [...history, ...block.tokens];
      let row = await this.sync(path);
      const bonus = (await this.pick(row, path))?.token;
      if (bonus === undefined) return;
      const assumed = [...path, bonus];
      const next: DraftBlock = { tokens: [], ...(this.sampling ? { q: [] } : {}) };
      this.ahead = { history: assumed, block: next };
      if (this.stopAhead) return;
      row = await this.forward(this.rowsOf([bonus]));
      while (next.tokens.length < gamma && !this.stopAhead) {
        const picked = await this.pick(row, [...assumed, ...next.tokens]);
        if (!picked) break;
        const { token, q } = picked;
        next.tokens.push(token);
        if (q) next.q!.push(q);
        if (next.tokens.length < gamma) row = await this.forward(this.rowsOf([token]));
      }
    })();
  }

  /** Stop drafting ahead and wait for the step in progress (the cache must be idle to roll back). */
  async settleAhead(): Promise<void> {
    this.stopAhead = true;
    const run = this.aheadRun;
    this.aheadRun = undefined;
    if (run) await run.catch(() => undefined);
  }

  /** Forget everything (end of a generation). */
  async reset(): Promise<void> {
    await this.settleAhead();
    this.ahead = undefined;
    this.truncate(0);
    const cursor = this.cursor;
    this.cursor = undefined;
    (await cursor)?.dispose();
  }
}

function slice(b: DraftBlock, n: number): DraftBlock {
  return { tokens: b.tokens.slice(0, n), ...(b.q ? { q: b.q.slice(0, n) } : {}) };
}
