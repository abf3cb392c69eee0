// Speculative decoding at the edge: prompt → stream of committed tokens. Each round a proposer drafts γ
// tokens, the target verifies them in one pass, and the accepted prefix plus the target's own token are
// committed. γ comes from the session's policy (session-gamma.ts) or is fixed; γ = 0 hands the session to
// the target generating alone for a chunk of tokens, after which the policy decides again. Runtime-agnostic
// (Node and workerd): the proposer and the verifier come in. docs/ARCHITECTURE.md explains the whole path.
import type { CausalLM } from "../common/models/causal-lm.ts";
import type { PoolLoad, Sampling, TokenLogprob, VerifyRequest } from "../common/protocol.ts";
import type { SparseDist } from "../common/sampling.ts";
import { allows as allowsToken, encodeMask, type TokenMask } from "../common/token-mask.ts";
import { GrammarCursor, type GrammarMatcher } from "../structured/grammar.ts";
import { DecodeStatsRecorder, type DecodeStats } from "./decode-stats.ts";
import { ProposerFactory } from "./proposer-factory.ts";
import { OutputTracker, type DecodeEvent, type FinishReason, type OutputLimits } from "./output-tracker.ts";
import type { OpeningWindow, PeekedProposal, Proposal, Proposer } from "./proposer.ts";
import { SessionGamma } from "./session-gamma.ts";
import type { SpeculationSettings } from "./settings.ts";
import type { TargetVerifier, VerifiedRound } from "./target-verifier.ts";

export type { DecodeEvent, DecodeStats, FinishReason };

/** Tokens of the first pool-generation chunk of an adaptive session (then `generateChunk`). */
const FIRST_GENERATE_CHUNK = 4;
/**
 * Most tokens the target generates after a copying round's token until the copy can resume
 * (VerifyRequest.resume): an edit of a word or two. Past it the policy decides again.
 */
const RESUME_TOKENS = 8;
/**
 * An answer expected to open by copying its prompt (openingWindow) starts with a round without drafts that
 * generates at most this many tokens after its first to find where the copy joins, as a first
 * pool-generation chunk would, and copies on from there (VerifyRequest.resume with `follow`). Expected:
 * at least this share of the edge's recent answers opened so (SpeculationPrior.copiedOpening).
 */
const OPENING_TOKENS = 3;
const OPENING_MIN_SHARE = 0.5;
/** An answer opened by copying when its first this many tokens follow each other in the window: a copy worth a follow pass. */
const OPENING_RUN = 4;
/**
 * Pipelining (sendAhead) bets on the round in flight accepting all its drafts and the copy's next token
 * at least this likely (a lost bet costs no pass, only a refused request), and drafts the next round's
 * tokens while all of them stay at least this likely.
 */
const AHEAD_MIN_CHANCE = 0.3;
const AHEAD_MIN_DRAFT_CHANCE = 0.1;

export interface SpeculativeDecoderOptions extends SpeculationSettings, OutputLimits {
  /** Who drafts; or `draft`, a draft model, for the model proposer on it. */
  proposer?: Proposer;
  draft?: CausalLM;
  pool: TargetVerifier;
  /** Omitted or temperature 0: greedy. */
  sampling?: Sampling;
  /** True when the caller chose the seed: the γ policy then ignores measured timings so the text repeats. */
  seeded?: boolean;
  session: string;
  signal?: AbortSignal;
  /**
   * Constrained decoding: a fresh matcher of the grammar the output must follow (the decoder disposes of
   * it). Drafts are cut where the grammar refuses them, tokens it forces are drafted, and every round sends
   * the masks the target is verified under. Pool generation takes no masks: such a session only runs rounds.
   */
  grammar?: GrammarMatcher;
  /** Collect the target's log-probs of the output tokens, each with this many alternatives (0–20). */
  logprobs?: number;
  /** Adaptive only: a copying round asks the target to go on after a broken copy until it can resume (default true). */
  resume?: boolean;
}

export class SpeculativeDecoder {
  private readonly tracker: OutputTracker;
  private readonly proposer: Proposer;
  private readonly policy: SessionGamma;
  private readonly recorder: DecodeStatsRecorder;
  private readonly sampling: Sampling | undefined;
  /** The proposer checking a pool-generated token; it may outlive the stream, not the next proposal. */
  private observing: Promise<void> | undefined;
  /** Time of the last peek (a peeked proposal's drafting time). */
  private peekMs = 0;
  private readonly cursor: GrammarCursor | undefined;
  /** The target's log-probs of every committed token (stop ids included), with `logprobs`. */
  private readonly committedLogprobs: TokenLogprob[] = [];

  constructor(private readonly o: SpeculativeDecoderOptions) {
    this.tracker = new OutputTracker(o);
    this.sampling = o.sampling && o.sampling.temperature > 0 ? o.sampling : undefined;
    const s = this.sampling;
    if (!o.proposer && !o.draft) throw new RangeError("a proposer or a draft model is needed");
    this.proposer = o.proposer ?? new ProposerFactory({ kind: "model", draft: o.draft, support: o.support }).create({ promptLength: 0, sampling: s, tenant: "" });
    this.cursor = o.grammar && new GrammarCursor(o.grammar);
    this.policy = new SessionGamma(
      o.grammar ? { ...o, allowGenerate: false } : o,
      !!(o.seeded && s),
      () => o.pool.roundTripMs,
      () => this.tracker.remaining,
      o.priors?.for(this.proposer.name).figures,
    );
    this.recorder = new DecodeStatsRecorder(this.proposer.name);
  }

  get stats(): DecodeStats {
    return this.recorder.stats;
  }

  /** Committed output tokens (stop ids excluded). */
  get output(): readonly number[] {
    return this.tracker.output;
  }

  get finishReason(): FinishReason | undefined {
    return this.tracker.finishReason;
  }

  /** With `logprobs`: the target's log-probs of the output tokens, one per token of `output`. */
  get logprobs(): readonly TokenLogprob[] {
    return this.committedLogprobs.slice(0, this.tracker.output.length);
  }

  /** Committed tokens, as events; ends at a stop id, a stop string, maxTokens, or when the signal aborts. */
  async *run(prompt: readonly number[]): AsyncGenerator<DecodeEvent> {
    if (prompt.length === 0) throw new RangeError("the prompt must have at least one token");
    const state: RoundState = { history: [...prompt], promptLength: prompt.length, opened: false, seq: 0, lastCommitted: [], generatedChunks: 0 };
    const openingWindow = this.policy.adaptive && !this.cursor && this.o.resume !== false ? this.proposer.openingWindow?.(prompt) : undefined;
    let opening = this.openingResume(openingWindow);
    let mode = -1;
    try {
      while (!this.o.signal?.aborted) {
        const ahead = state.ahead;
        state.ahead = undefined;
        let steps: AsyncGenerator<Step>;
        if (ahead && sameTokens(ahead.body.committed ?? [], state.lastCommitted)) {
          // The round sent ahead bet on what the last one committed, and won: it is this step.
          this.recorder.chose(ahead.proposal.tokens.length, mode);
          mode = ahead.proposal.tokens.length;
          steps = this.aheadRound(state, ahead);
        } else if (opening) {
          // A round, though without drafts: the policy then weighs the next one as a round, not a switch.
          this.recorder.chose(0, mode);
          mode = 1;
          steps = this.round(state, 0, undefined, opening);
          opening = undefined;
        } else {
          // A proposer that knows its odds proposes first: the policy prices this very proposal.
          const proposal = this.policy.adaptive ? await this.peek(state.history) : undefined;
          const { gamma, peeked } = this.policy.chooseRound(mode, proposal?.confidence, !proposal || this.proposer.draftsBeyondPeek === true, proposal?.run);
          this.recorder.chose(gamma, mode);
          mode = gamma;
          // A constrained session's γ = 0 is a round without drafts: the pool's generation takes no masks.
          steps = gamma === 0 && !this.cursor ? this.generateChunk(state) : this.round(state, gamma, peeked ? proposal : undefined);
        }
        let done = false;
        for await (const step of steps) {
          if (step.event.tokens.length || step.event.text) yield step.event;
          done ||= step.done;
        }
        if (done) return;
      }
    } catch (e) {
      if (this.o.signal?.aborted) return; // cancelled: the caller went away; nothing to report
      throw e;
    } finally {
      try {
        // A check still running ends in its own time: the caller does not wait for it, the reset does.
        const reset = (this.observing ?? Promise.resolve()).then(() => this.proposer.reset());
        if (!this.observing) await reset;
        else reset.catch(() => {});
        this.recorder.ahead(this.proposer.aheadUsed, this.proposer.aheadDiscarded);
        this.cursor?.dispose();
        const out = this.tracker.output;
        const copiedOpening = openingWindow && out.length >= OPENING_RUN ? containsRun(openingWindow.tokens, out.slice(0, OPENING_RUN)) : undefined;
        if (this.stats.rounds > 0 || this.stats.generatedTokens > 0) this.o.priors?.for(this.proposer.name).learn({ ...this.policy.measured(), copiedOpening });
      } finally {
        // Close the verifier's session whether the generation ended, failed or the client went away (even
        // mid-round: the verifier answers the round in flight, then frees the session), whatever the
        // bookkeeping above threw. The pool knows no node for a session whose opening round was cut off:
        // the verifier closes that one itself when its client goes before the answer.
        await this.o.pool.close(this.o.session);
      }
    }
  }

  /** The proposer's proposal and its odds, when it can give them cheaply (Proposer.peek). */
  private async peek(history: readonly number[]): Promise<PeekedProposal | undefined> {
    if (!this.proposer.peek) return undefined;
    if (!this.proposer.peeksWhileObserving) await this.observing;
    const p0 = this.proposer.proposeMs;
    const proposal = this.proposer.peek(history, this.policy.maxGamma);
    this.peekMs = this.proposer.proposeMs - p0;
    return proposal;
  }

  /**
   * γ = 0: the target generates alone over one stream. Adaptive asks the policy again every chunk and, if
   * speculation now pays, leaves the stream (closing it stops the pool). The verifier's session, if any,
   * no longer matches the history: the next round re-opens it. The proposer follows the stream without
   * holding it up — it checks whether it would have proposed a token when it is free, and skips tokens
   * that arrive while it is busy — so α and its step time are measured before speculating.
   */
  private async *generateChunk(st: RoundState): AsyncGenerator<Step> {
    const o = this.o;
    st.opened = false;
    // The first chunk is short: the policy gets its first say after a few tokens, not after a whole chunk.
    const chunk = st.generatedChunks++ === 0 ? Math.min(FIRST_GENERATE_CHUNK, o.generateChunk ?? 16) : (o.generateChunk ?? 16);
    const t0 = performance.now();
    let tFirst = 0;
    let got = 0;
    const observe = (context: number[], token: number) => {
      const p0 = this.proposer.proposeMs;
      this.observing = this.proposer.observe(context, token).then((hit) => {
        const ms = this.proposer.proposeMs - p0; // one forward: about one draft step
        this.policy.observeProposalHit(hit);
        this.policy.observeDraftStep(ms);
        this.recorder.drafting(ms);
        this.observing = undefined;
      });
    };
    try {
      const req = { history: [...st.history], max_tokens: this.tracker.remaining, stop_ids: this.tracker.stopIdList, sampling: this.sampling, logprobs: o.logprobs };
      let serverFirstMs: number | undefined;
      const onLoad = (load: PoolLoad, serverMs?: number) => {
        this.policy.observeLoad(load);
        this.recorder.load(load.rows);
        serverFirstMs ??= serverMs;
      };
      // A seeded request's choices must not depend on timing: its proposer checks every token, and the
      // stream waits for it, rather than checking the ones that happen to arrive while it is free.
      const everyToken = this.policy.timingFree;
      const onLogprob = (lp: TokenLogprob) => this.committedLogprobs.push(lp);
      for await (const token of o.pool.generate(req, o.signal, onLoad, o.logprobs === undefined ? undefined : onLogprob)) {
        if (++got === 1) tFirst = performance.now();
        if (everyToken) await this.observing;
        if (this.policy.adaptive && !this.observing) observe([...st.history], token);
        st.history.push(token);
        const step = this.tracker.commit([token]);
        this.recorder.generated(step.event.tokens.length > 0);
        yield step;
        if (step.done) return;
        // A proposer that knows its odds is asked at every token: a strong match ends the stream at once.
        const peeked = this.policy.adaptive && got % chunk !== 0 && (everyToken || !this.observing || this.proposer.peeksWhileObserving) ? await this.peek(st.history) : undefined;
        if (peeked?.tokens.length && this.policy.choose(0, peeked.confidence, peeked.run) !== 0) return;
        if (this.policy.adaptive && got % chunk === 0) {
          const perToken = (performance.now() - tFirst) / (got - 1);
          // The stream's start-up beyond the pool's own time to the first token is the round trip.
          this.policy.observeGeneration(perToken, got === chunk && serverFirstMs !== undefined ? tFirst - t0 - serverFirstMs : undefined);
          // A chunk's end waits for the proposer, so a proposal that knows its odds is priced here too: a
          // proposer that takes a while to check each token (the hybrid's model) leaves no peek in between.
          const p = await this.peek(st.history);
          // Speculate next: leaving the loop closes the stream.
          if (this.policy.chooseRound(0, p?.confidence, !p || this.proposer.draftsBeyondPeek === true, p?.run).gamma !== 0) return;
        }
      }
      // The pool ended (on a stop id) before the tracker saw a reason to.
      this.tracker.finishReason ??= "stop";
      yield { event: { tokens: [], text: "" }, done: true };
    } finally {
      this.recorder.generation(performance.now() - t0);
    }
  }

  /**
   * A proposal under the grammar, and the masks its round is verified under. Where the grammar forces the
   * next text (a brace, a key, `":`), its tokens are drafted whatever the proposer said, and past γ up to the
   * session's largest, since they are nearly sure and a row costs the pass little: the only token allowed
   * is accepted for sure (its q̃ and the masked p both one-hot); forced text that several spellings could
   * write is drafted as the tokenizer spells it (a deterministic draft, exact like a suffix proposal). A
   * proposed token the grammar refuses ends the proposal (it could not be accepted), as does one after a
   * forced token that differed from it. With γ = 0 nothing is drafted.
   */
  private async constrain(st: RoundState, proposal: Proposal, gamma: number): Promise<[Proposal, string[]]> {
    const cursor = this.cursor!;
    const path = st.history.slice(st.promptLength);
    const tokens: number[] = [];
    const q: SparseDist[] | undefined = this.sampling ? [] : undefined;
    const masks: string[] = [];
    const limit = gamma > 0 ? Math.min(Math.max(gamma, this.policy.maxGamma), this.tracker.remaining - 1) : 0;
    const stopIds = new Set(this.tracker.stopIdList);
    let proposed = proposal.tokens.length;
    for (let k = 0; ; k++) {
      const mask = await cursor.maskAfter(path);
      if (!mask) throw new Error("the output so far is refused by its grammar");
      masks.push(encodeMask(mask, cursor.vocab));
      if (tokens.length >= limit) break;
      const forced = onlyAllowed(mask) ?? cursor.forcedAfter(path)[0];
      let next: number | undefined;
      let qk: SparseDist | undefined;
      if (forced !== undefined) {
        [next, qk] = [forced, { ids: [forced], probs: [1] }];
        if (k < proposed && proposal.tokens[k] !== next) proposed = k; // drafted after another token: void
      } else if (k < proposed && allowsToken(mask, proposal.tokens[k])) [next, qk] = [proposal.tokens[k], proposal.q?.[k]];
      // A stop id ends the output: the verifier's own token after the drafts may be it, no draft goes past it.
      if (next === undefined || stopIds.has(next)) break;
      tokens.push(next);
      q?.push(qk ?? { ids: [next], probs: [1] });
      path.push(next);
    }
    return [{ tokens, ...(q ? { q } : {}), ...(proposal.by ? { by: proposal.by } : {}) }, masks];
  }

  /**
   * The first round's `resume` when the answer is expected to open by copying `window` (its prompt's text):
   * no drafts; the target generates until its first two tokens follow each other in the window, then
   * verifies the window's next tokens (VerifyRequest.resume.follow).
   */
  private openingResume(opening: OpeningWindow | undefined): OpeningRound | undefined {
    const window = opening?.tokens;
    const share = this.o.priors?.for(this.proposer.name).copiedOpening;
    const remaining = this.tracker.remaining;
    const tokens = Math.min(OPENING_TOKENS, remaining - 1);
    const follow = Math.min(this.policy.maxGamma, remaining - 1 - tokens - 1);
    if (!window || window.length < 2 || !(share !== undefined && share >= OPENING_MIN_SHARE) || tokens < 1 || follow < 1) return undefined;
    return { resume: { window, pairs: [], max_tokens: tokens, stop_ids: this.tracker.stopIdList, follow }, by: opening.by };
  }

  /** One speculative round: propose, verify, commit the accepted prefix and the target's token (`resume`: the opening round's). */
  private async *round(st: RoundState, gamma: number, peeked?: Proposal, opening?: OpeningRound): AsyncGenerator<Step> {
    const o = this.o;
    const budget = Math.max(0, this.tracker.remaining - 1); // drafts past it could never be output
    const g = Math.min(gamma, budget);
    await this.observing; // the proposer is free again before it proposes
    const tRound = performance.now();
    const p0 = this.proposer.proposeMs;
    const ahead0 = this.proposer.aheadUsed;
    // A proposer may go past γ (a long, sure suffix match), never past the budget.
    let proposal = sliceProposal(g <= 0 ? { tokens: [], ...(opening ? { by: opening.by } : {}) } : peeked ? sliceProposal(peeked, g) : await this.proposer.propose(st.history, g), budget);
    let masks: string[] | undefined;
    if (this.cursor) [proposal, masks] = await this.constrain(st, proposal, g);
    const n = proposal.tokens.length;
    const draftMs = peeked ? this.peekMs : this.proposer.proposeMs - p0;
    // Only fresh drafting times a step: a peeked proposal's time is a lookup's (the hybrid's model drafts the
    // rest), and a block drafted ahead cost its steps while the last round was in flight, not now.
    if (n > 0 && !peeked && this.proposer.aheadUsed === ahead0) this.policy.observeDraftStep(draftMs / n);
    this.recorder.drafting(draftMs);
    // Drafting ahead (if on) keeps running through the round; the next propose() settles it.
    if (o.proactive && n > 0) this.proposer.proposeAhead?.(st.history, proposal, n);
    const { seq, lastCommitted } = st;
    const history = [...st.history];
    const resume = opening?.resume ?? this.resumeFor(history, proposal, this.tracker.remaining);
    const build = (reopen: boolean): VerifyRequest => ({
      session: o.session,
      seq,
      drafts: proposal.tokens,
      ...(proposal.q ? { q: proposal.q } : {}),
      ...(reopen || !st.opened ? { history, ...(this.sampling ? { sampling: this.sampling } : {}) } : { committed: lastCommitted }),
      ...(masks ? { masks } : {}),
      ...(o.logprobs !== undefined ? { logprobs: o.logprobs } : {}),
      ...(resume ? { resume } : {}),
    });
    const reopening = !st.opened;
    const sent = o.pool.round(o.session, build, o.signal);
    st.ahead = this.sendAhead(history, proposal, seq, this.tracker.remaining);
    const r = await sent;
    const p1 = this.proposer.proposeMs;
    const step = this.settle(st, proposal, r, { peeked: !!peeked, reopening, edgeMs: Math.max(0, performance.now() - tRound - draftMs - r.elapsedMs) });
    // Draft time spent ahead while the round was in flight counts as drafting.
    this.recorder.drafting(this.proposer.proposeMs - p1);
    yield step;
  }

  /**
   * A round sent ahead (sendAhead) whose bet came true: its answer, or — when it was refused or failed on
   * the way — the same round sent again (a retry: a verifier that did run it answers it again).
   */
  private async *aheadRound(st: RoundState, ahead: Ahead): AsyncGenerator<Step> {
    const o = this.o;
    const history = [...st.history];
    const { body, proposal } = ahead;
    // The next round may go ahead too, on the bet that this one accepts everything.
    const next = this.sendAhead(history, proposal, body.seq, this.tracker.remaining);
    const r = (await ahead.result) ?? (await o.pool.round(o.session, (reopen) => (reopen ? { ...body, committed: undefined, history, ...(this.sampling ? { sampling: this.sampling } : {}) } : body), o.signal));
    st.ahead = next;
    this.recorder.pipelined();
    yield this.settle(st, proposal, r, { peeked: true, reopening: false, edgeMs: undefined });
  }

  /**
   * A copy broken by an edit: the target goes on alone within the round until the copy can resume, which
   * saves the stream start-up and the re-opening round of switching to pool generation and back. Only
   * where the session may generate (adaptive, no grammar), and within the output's budget (`remaining`
   * tokens before the round).
   */
  private resumeFor(history: readonly number[], proposal: Proposal, remaining: number): VerifyRequest["resume"] {
    const tokens = Math.min(RESUME_TOKENS, remaining - proposal.tokens.length - 1);
    const w = this.o.resume !== false && this.policy.adaptive && !this.cursor && tokens > 0 ? this.proposer.resumeWindow?.(history, proposal) : undefined;
    if (!w || w.tokens.length < 2) return undefined;
    // The follow pass's drafts, within what the output has room for after the resumed tokens and its token.
    const follow = Math.max(0, Math.min(this.policy.maxGamma, remaining - proposal.tokens.length - 1 - tokens - 1));
    return { window: w.tokens, pairs: w.pairs, max_tokens: tokens, stop_ids: this.tracker.stopIdList, ...(follow ? { follow } : {}) };
  }

  /**
   * Pipelining: while the round of `proposal` (a copy, seq `seq`, sent after `history`) is in flight, send
   * the next one on the bet that it accepts every draft and its token is the copy's next — its drafts the
   * copy's continuation. The verifier runs it right after the first, so a copy that holds costs one round
   * trip for two rounds. A lost bet costs no pass (the verifier refuses a round whose `committed` differs
   * before running it) and the decoder then goes on as usual. Bets only where the copy is a good one, the
   * session may generate (adaptive, no grammar) and the output's budget (`remaining`) has room.
   */
  private sendAhead(history: readonly number[], proposal: Proposal, seq: number, remaining: number): Ahead | undefined {
    const o = this.o;
    const n = proposal.tokens.length;
    const room = remaining - (n + 1) - 1; // drafts of the next round, after this one's commits and before its own token
    if (o.pipeline === false || !o.pool.roundAhead || !this.proposer.lookahead || !this.policy.adaptive || this.cursor || n === 0 || room < 1) return undefined;
    const sure = (proposal.confidence ?? []).reduce((a, c) => a * c, proposal.confidence ? 1 : 0);
    if (sure < AHEAD_MIN_CHANCE) return undefined;
    const p0 = this.proposer.proposeMs;
    const next = this.proposer.lookahead(history, proposal, 1 + Math.min(this.policy.maxGamma, room));
    if (!next || next.tokens.length < 2) return undefined;
    const stopIds = this.tracker.stopIdList;
    const [token, ...rest] = next.tokens;
    if (stopIds.includes(token) || sure * next.confidence[0] < AHEAD_MIN_CHANCE) return undefined;
    // The next round's drafts: while all of them stay a fair bet, up to a stop id.
    const tokens: number[] = [];
    let all = 1;
    for (const [k, t] of rest.entries()) {
      all *= next.confidence[k + 1];
      if (stopIds.includes(t) || all < AHEAD_MIN_DRAFT_CHANCE) break;
      tokens.push(t);
    }
    if (!tokens.length) return undefined;
    const drafted: Proposal = { tokens, confidence: next.confidence.slice(1, 1 + tokens.length), ...(this.sampling ? { q: tokens.map((t) => ({ ids: [t], probs: [1] })) } : {}), ...(next.by ? { by: next.by } : {}) };
    const committed = [...proposal.tokens, token];
    const resume = this.resumeFor([...history, ...committed], drafted, remaining - committed.length);
    const body: VerifyRequest = {
      session: o.session,
      seq: seq + 1,
      committed,
      drafts: tokens,
      ...(drafted.q ? { q: drafted.q } : {}),
      ...(o.logprobs !== undefined ? { logprobs: o.logprobs } : {}),
      ...(resume ? { resume } : {}),
    };
    this.recorder.drafting(this.proposer.proposeMs - p0);
    return { body, proposal: drafted, result: o.pool.roundAhead(o.session, body, o.signal) };
  }

  /** Commit a round's answer: the accepted drafts, the target's token and the tokens it generated after it. */
  private settle(st: RoundState, proposal: Proposal, r: VerifiedRound, t: { peeked: boolean; reopening: boolean; edgeMs: number | undefined }): Step {
    const o = this.o;
    const n = proposal.tokens.length;
    st.opened = true;
    st.seq++;
    // A round sent ahead also waited at the verifier for the one before it: no network time to learn from.
    const networkMs = Math.max(0, r.elapsedMs - r.server_ms);
    const serverMs = r.server_ms - (r.generate_ms ?? 0); // the round's own pass, without the tokens generated after it
    this.policy.observeRound(n, r.accepted, serverMs, t.reopening || t.edgeMs === undefined ? undefined : networkMs, r.load, t.peeked);
    this.recorder.load(r.load?.rows);
    const generated = r.generated ?? [];
    st.lastCommitted = [...proposal.tokens.slice(0, r.accepted), r.token, ...generated];
    st.history.push(...st.lastCommitted);
    if (o.logprobs !== undefined) this.committedLogprobs.push(...(r.logprobs ?? []));
    // The verifier chose among the masks' tokens: a token the grammar refuses means the two disagree.
    if (this.cursor && !this.cursor.moveTo(st.history.slice(st.promptLength))) throw new Error(`the verifier committed token ${r.token}, which the grammar refuses`);
    const step = this.tracker.commit(st.lastCommitted);
    if (!t.reopening && t.edgeMs !== undefined) this.policy.observeEdgeTime(t.edgeMs);
    this.recorder.round(proposal.by ?? this.proposer.name, n, r.accepted, r.accepted + 1, serverMs, networkMs, t.edgeMs ?? 0);
    // Generated tokens are the pool's own, as in a stream (those past the output's end are not output); a
    // follow pass's are a round of the copy's drafter without a round trip of its own.
    const followed = r.followed ?? [];
    const alone = generated.length - followed.reduce((a, f) => a + f.accepted + 1, 0);
    for (let i = 0; i < alone; i++) this.recorder.resumed(r.accepted + 1 + i < step.event.tokens.length);
    for (const f of followed) this.recorder.followPass(proposal.by ?? this.proposer.name, f.drafted, f.accepted);
    return step;
  }
}

/** `run` occurs in `text` as consecutive tokens. */
function containsRun(text: readonly number[], run: readonly number[]): boolean {
  for (let i = 0; i + run.length <= text.length; i++) if (run.every((t, k) => text[i + k] === t)) return true;
  return false;
}

function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

/** The one token a mask allows, if it allows exactly one. */
function onlyAllowed(mask: TokenMask): number | undefined {
  let only: number | undefined;
  for (let w = 0; w < mask.length; w++) {
    const bits = mask[w];
    if (bits === 0) continue;
    if (only !== undefined || (bits & (bits - 1)) !== 0) return undefined;
    only = w * 32 + (31 - Math.clz32(bits & -bits));
  }
  return only;
}

function sliceProposal(p: Proposal, n: number): Proposal {
  return { tokens: p.tokens.slice(0, n), ...(p.q ? { q: p.q.slice(0, n) } : {}), ...(p.confidence ? { confidence: p.confidence.slice(0, n) } : {}), ...(p.by ? { by: p.by } : {}) };
}

/** What consecutive rounds of one generation share. */
interface RoundState {
  /** Prompt and every committed token (stop ids included: the verifier saw them). */
  history: number[];
  promptLength: number;
  /** The verifier holds this session in step with `history`. */
  opened: boolean;
  seq: number;
  /** The previous round's committed tokens, reported with the next round. */
  lastCommitted: number[];
  /** The next round, sent while the previous one was in flight (sendAhead). */
  ahead?: Ahead;
  /** Pool-generation chunks started so far. */
  generatedChunks: number;
}

/** The first round of an answer expected to open by copying (openingResume): its resume, and the drafter of the copy. */
interface OpeningRound {
  resume: NonNullable<VerifyRequest["resume"]>;
  by: string;
}

/** A round sent on a bet (sendAhead): it stands if the round before it committed `body.committed`. */
interface Ahead {
  body: VerifyRequest;
  proposal: Proposal;
  /** Its answer; undefined when it was refused (the bet lost) or failed on the way. */
  result: Promise<VerifiedRound | undefined>;
}

interface Step {
  event: DecodeEvent;
  done: boolean;
}
