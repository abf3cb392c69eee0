// The verifier's core, independent of HTTP: sessions with KV caches, exactly-once rounds (a repeated
// sequence number with the same content is answered from the stored result), re-open by full history,
// and exact verification. One round feeds [last committed token, ...drafts] to the target engine in one
// pass and scores γ+1 positions. A session runs one round at a time; closing or evicting it mid-round
// frees its sequence only once that round has ended.
import { createHash } from "node:crypto";
import { tokenLogprob } from "../src/common/logprobs.ts";
import {
  GENERATE_LOAD_EVERY,
  MAX_FOLLOW_PASSES,
  MAX_GAMMA,
  MAX_RESUME_PAIRS,
  MAX_RESUME_TOKENS,
  MAX_RESUME_WINDOW,
  MAX_TOP_LOGPROBS,
  VerifyError,
  type PoolLoad,
  type GenerateEvent,
  type GenerateRequest,
  type Sampling,
  type TokenLogprob,
  type VerifyRequest,
  type VerifyResponse,
} from "../src/common/protocol.ts";
import { SeededRng, argmax, sampleIndex, targetDistribution, type SamplingParams, type SparseDist } from "../src/common/sampling.ts";
import { allows, decodeMask, maskRow, type TokenMask } from "../src/common/token-mask.ts";
import { logSoftmaxAt, verifyGreedy, verifySampling, type VerifyResult } from "../src/common/verification.ts";
import type { ChunkScores, EngineSequence, TargetEngine } from "./engine.ts";
import { SessionKvStore, SessionTooLargeError, type SessionKvStoreOptions } from "./session-kv-store.ts";

interface Session {
  seq: EngineSequence;
  /** Committed but not yet run through the target (the previous round's token, or the history's last). */
  pendingToken: number;
  /** What the client must report as `committed` in the next round. */
  expectCommitted: number[];
  sampling?: SamplingParams & { seed: number };
  lastSeq: number;
  lastResponse?: VerifyResponse;
  /** Content hash of the request `lastResponse` answered: only the same request gets it again. */
  lastHash?: string;
  /** Settles when the round in flight (queued or running) has ended; undefined when none is. */
  running?: Promise<void>;
  /** Left the store (closed, evicted, replaced) while a round ran: that round frees the sequence. */
  released: boolean;
  /** The KvSequence interface the store needs. */
  readonly kvBytes: number;
  readonly busy: boolean;
}

/** How long a round that overtook the round before it (seq two past the last answered) waits for that one. */
const OVERTAKEN_WAIT_MS = 1000;

/** Random streams of /v1/generate (per position) start here, far from the verify rounds' (per seq). */
const GENERATE_STREAM = 0x40000000;
/** Random streams of a resumed round's follow passes (per position of a pass's first row), apart from those and the edge's. */
const FOLLOW_STREAM = 0x60000000;

/**
 * A DELETE of a session the verifier does not hold may have overtaken the round opening it (still in its
 * prefill, or behind on another connection): it is remembered this long, at most this many at once, and
 * applies to an opening round that arrived before it or at most TOMBSTONE_GRACE_MS after it.
 */
const TOMBSTONE_TTL_MS = 10_000;
const MAX_TOMBSTONES = 4096;
const TOMBSTONE_GRACE_MS = 1000;

export type VerifierOptions = Omit<SessionKvStoreOptions<Session>, "onEvict"> & {
  /** Most drafts per round (≤ the protocol's MAX_GAMMA). */
  maxGamma?: number;
  /** Most tokens a session may hold (≤ the engine's positions). */
  maxContext?: number;
};

/** What identifies a round's content: a retry must repeat it exactly to get the stored answer. */
export function roundHash(r: VerifyRequest): string {
  const s = r.sampling;
  const content = [
    r.session,
    r.seq,
    r.history ?? null,
    r.committed ?? null,
    r.drafts,
    r.q?.map((d) => [d.ids, d.probs]) ?? null,
    s ? [s.temperature, s.top_p, s.top_k, s.seed] : null,
    r.masks ?? null,
    r.logprobs ?? null,
    r.resume ? [r.resume.window, r.resume.pairs ?? [], r.resume.max_tokens, r.resume.stop_ids, r.resume.follow ?? 0] : null,
  ];
  return createHash("sha256").update(JSON.stringify(content)).digest("base64url");
}

/** A request's `logprobs`, checked again here: the Verifier may be called with bodies no schema parsed. */
function checkLogprobs(k: number | undefined): void {
  if (k !== undefined && !(Number.isInteger(k) && k >= 0 && k <= MAX_TOP_LOGPROBS)) throw new VerifyError("invalid_request", `logprobs must be an integer in 0..${MAX_TOP_LOGPROBS}`);
}

/** Verification of `drafts` against the target's `rows`: greedy, or sampled with uniforms from the session seed's `stream`. */
function verifyRows(sampling: (SamplingParams & { seed: number }) | undefined, drafts: readonly number[], q: readonly SparseDist[], rows: readonly ArrayLike<number>[], stream: number): VerifyResult {
  if (!sampling) return verifyGreedy(drafts, rows);
  const rng = new SeededRng(sampling.seed, stream);
  return verifySampling(
    drafts,
    q,
    rows.map((r) => targetDistribution(r, sampling)),
    () => rng.next(),
  );
}

const clientClosed = (session: string) => new VerifyError("client_closed", `session ${session}: the client went away before its round ran`);

export class Verifier {
  readonly sessions: SessionKvStore<Session>;
  /** Running totals for /metrics. */
  readonly counters = { rounds: 0, retries: 0, drafted: 0, accepted: 0, generated: 0, followed: 0 };
  readonly maxGamma: number;
  readonly maxContext: number;
  /** Sessions whose opening round is in its prefill (id → how many such rounds). */
  private readonly opening = new Map<string, number>();
  /** Rounds sent ahead waiting for a round of their session to start (roundStart). */
  private readonly waitingForRound = new Map<string, Set<() => void>>();
  /** DELETEs of sessions not held (id → when), oldest first. */
  private readonly tombstones = new Map<string, number>();
  private readonly now: () => number;

  constructor(
    readonly engine: TargetEngine,
    opts: VerifierOptions,
  ) {
    this.sessions = new SessionKvStore<Session>({ ...opts, onEvict: (_id, s) => this.free(s) });
    this.maxGamma = Math.min(opts.maxGamma ?? MAX_GAMMA, MAX_GAMMA);
    this.maxContext = Math.min(opts.maxContext ?? engine.maxPositions, engine.maxPositions);
    this.now = opts.now ?? Date.now;
  }

  /** Resolves when a round of session `id` starts (or an opening of it ends), or after OVERTAKEN_WAIT_MS. */
  private roundStart(id: string): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiters = this.waitingForRound.get(id) ?? new Set<() => void>();
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        if (!waiters.size && this.waitingForRound.get(id) === waiters) this.waitingForRound.delete(id);
        resolve();
      };
      const timer = setTimeout(done, OVERTAKEN_WAIT_MS);
      waiters.add(done);
      this.waitingForRound.set(id, waiters);
    });
  }

  private roundStarted(id: string): void {
    for (const done of [...(this.waitingForRound.get(id) ?? [])]) done();
  }

  /** A session left the store: free its sequence now, or when its round in flight ends (a pass may be using it). */
  private free(s: Session): void {
    s.released = true;
    if (!s.running) s.seq.reset();
  }

  private checkTokens(tokens: readonly number[]): void {
    const vocab = this.engine.vocab;
    for (const t of tokens) if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new VerifyError("invalid_request", `token id ${t} outside the vocabulary (0..${vocab - 1})`);
  }

  /** Everything in a round's body that names a token, q̃'s probabilities and the masks, before anything runs; returns the decoded masks. */
  private checkRequest(req: VerifyRequest): TokenMask[] | undefined {
    if (req.drafts.length > this.maxGamma) throw new VerifyError("invalid_request", `${req.drafts.length} drafts: this verifier takes at most ${this.maxGamma} per round`);
    this.checkTokens([...req.drafts, ...(req.committed ?? []), ...(req.history ?? [])]);
    for (const [i, d] of (req.q ?? []).entries()) {
      this.checkTokens(d.ids);
      if (d.ids.length !== d.probs.length || d.probs.some((p) => !(Number.isFinite(p) && p >= 0 && p <= 1))) throw new VerifyError("invalid_request", `q[${i}]: one probability in [0, 1] per id`);
    }
    checkLogprobs(req.logprobs);
    const rz = req.resume;
    if (rz) {
      if (req.masks) throw new VerifyError("invalid_request", "resume generates without masks: not with masks");
      if (!(Number.isInteger(rz.max_tokens) && rz.max_tokens >= 1 && rz.max_tokens <= MAX_RESUME_TOKENS)) throw new VerifyError("invalid_request", `resume.max_tokens must be an integer in 1..${MAX_RESUME_TOKENS}`);
      if (!(rz.window?.length >= 2 && rz.window.length <= MAX_RESUME_WINDOW)) throw new VerifyError("invalid_request", `resume.window: 2..${MAX_RESUME_WINDOW} tokens`);
      if (!(Number.isInteger(rz.follow ?? 0) && (rz.follow ?? 0) >= 0 && (rz.follow ?? 0) <= this.maxGamma)) throw new VerifyError("invalid_request", `resume.follow must be an integer in 0..${this.maxGamma}`);
      if ((rz.pairs?.length ?? 0) > MAX_RESUME_PAIRS || rz.pairs?.some((p) => p?.length !== 2)) throw new VerifyError("invalid_request", `resume.pairs: at most ${MAX_RESUME_PAIRS} pairs of two tokens`);
      this.checkTokens([...rz.window, ...(rz.pairs ?? []).flat(), ...(rz.stop_ids ?? [])]);
    }
    if (!req.masks) return undefined;
    if (req.masks.length !== req.drafts.length + 1) throw new VerifyError("invalid_request", `masks: one per draft plus one (${req.drafts.length + 1}), got ${req.masks.length}`);
    const vocab = this.engine.vocab;
    return req.masks.map((wire, i) => {
      let mask: TokenMask;
      try {
        mask = decodeMask(wire, vocab);
      } catch (e) {
        if (e instanceof RangeError) throw new VerifyError("invalid_request", `masks[${i}]: ${e.message}`);
        throw e;
      }
      // An empty mask leaves nothing to pick or sample: no verification is defined for it. (Decoded
      // masks set no bit past the vocabulary.)
      if (mask.every((w) => w === 0)) throw new VerifyError("invalid_request", `masks[${i}] allows no token`);
      return mask;
    });
  }

  /**
   * Masked partial rows (top K only) are exact only where the grammar's best tokens are among the K: at
   * least one allowed entry for greedy, and for sampling top_k of them or every allowed token. The K
   * highest entries count: a row may also hold its draft's own log-prob from below the K.
   */
  private checkPartialMasks(raw: readonly ArrayLike<number>[], masks: readonly TokenMask[], sampling: SamplingParams | undefined): void {
    const K = this.engine.exactTop;
    for (const [i, row] of raw.entries()) {
      const finite: number[] = [];
      for (let id = 0; id < row.length; id++) if (row[id] > -Infinity) finite.push(id);
      finite.sort((a, b) => row[b] - row[a]);
      const inTop = finite.slice(0, K).filter((id) => allows(masks[i], id)).length;
      if (inTop === 0) throw new VerifyError("invalid_request", `masks[${i}]: no token the grammar allows is among the ${this.engine.name} engine's top ${K} at that position, so the constrained choice there is unknown`);
      if (sampling) {
        let allowed = 0;
        for (let id = 0; id < this.engine.vocab; id++) if (allows(masks[i], id)) allowed++;
        const need = Math.min(sampling.topK || allowed, allowed);
        if (inTop < need)
          throw new VerifyError(
            "invalid_request",
            `masks[${i}]: only ${inTop} of the tokens the grammar allows are among the ${this.engine.name} engine's top ${K} at that position; sampling with top_k ${sampling.topK} needs ${need} of them to be exact`,
          );
      }
    }
  }

  /** Sampling parameters as the verification math takes them; greedy (undefined) at temperature 0. */
  private samplingParams(s: Sampling | undefined): (SamplingParams & { seed: number }) | undefined {
    if (!s || s.temperature === 0) return undefined;
    const K = this.engine.exactTop;
    if (K < this.engine.vocab && !(s.top_k > 0 && s.top_k <= K))
      throw new VerifyError("invalid_request", `the ${this.engine.name} engine returns only its top ${K} log-probs: sampling is exact only with 0 < top_k ≤ ${K}`);
    return { temperature: s.temperature, topP: s.top_p, topK: s.top_k, seed: s.seed };
  }

  /**
   * One verify round. `signal` aborts when the client goes away before it has the answer (over HTTP: the
   * request's signal). Aborted before the pass starts, the round is refused (`client_closed`); a session
   * this round opened is closed again once its pass has ended, or when the abort comes later.
   */
  async round(req: VerifyRequest, signal?: AbortSignal): Promise<VerifyResponse> {
    const arrived = this.now();
    const masks = this.checkRequest(req);
    const hash = roundHash(req);
    let session = this.sessions.get(req.session);
    for (let waited = false; ; waited = true) {
      // One round at a time per session: a retry racing its original, or a duplicate, waits for it and is
      // then judged against its answer. The running promise never rejects.
      while (session?.running) {
        await session.running;
        session = this.sessions.get(req.session);
      }
      // A round sent ahead (pipelining) may overtake the round before it on the way, or find it still
      // opening the session (its prefill): it waits, once and a little while, for that round to start.
      const opening = this.opening.has(req.session);
      if (waited || req.history || !(opening || (session && req.seq === session.lastSeq + 2))) break;
      await this.roundStart(req.session);
      session = this.sessions.get(req.session);
    }
    if (session && req.seq === session.lastSeq && session.lastResponse) {
      if (session.lastHash === hash) {
        this.counters.retries++;
        return session.lastResponse;
      }
      // A re-open by history rebuilds whatever was there; a continuation must not pass as the stored round.
      if (!req.history) throw new VerifyError("seq_conflict", `session ${req.session}: round ${req.seq} was already answered for a different request; a retry must repeat it exactly`);
    }
    if (signal?.aborted) throw clientClosed(req.session);
    let opened = false;
    if (!req.history) {
      const s: Session | undefined = session;
      if (!s) throw new VerifyError("session_not_found", `session ${req.session} is unknown or was evicted; re-open it with its full history`);
      if (req.seq !== s.lastSeq + 1) throw new VerifyError("seq_out_of_order", `session ${req.session}: expected round ${s.lastSeq + 1} (or a retry of ${s.lastSeq}), got ${req.seq}`);
      const got = req.committed ?? [];
      if (got.length !== s.expectCommitted.length || got.some((t, i) => t !== s.expectCommitted[i]))
        throw new VerifyError("history_mismatch", `session ${req.session}: committed tokens [${got}] differ from the verifier's [${s.expectCommitted}]; re-open with the full history`);
      if (s.seq.length + 1 + req.drafts.length > this.maxContext) throw new VerifyError("context_too_long", `session ${req.session} would exceed the ${this.maxContext}-token context`);
      if (s.sampling && req.drafts.length && req.q?.length !== req.drafts.length) throw new VerifyError("invalid_request", "sampling sessions need one q̃ per draft");
    } else {
      const history = req.history;
      if (history.length + req.drafts.length > this.maxContext)
        throw new VerifyError("context_too_long", `history of ${history.length} tokens plus ${req.drafts.length} drafts exceeds the ${this.maxContext}-token context`);
      const sampling = this.samplingParams(req.sampling);
      if (sampling && req.drafts.length && req.q?.length !== req.drafts.length) throw new VerifyError("invalid_request", "sampling sessions need one q̃ per draft");
      this.opening.set(req.session, (this.opening.get(req.session) ?? 0) + 1);
      let seq: EngineSequence | undefined;
      try {
        seq = await this.engine.open(history.slice(0, -1));
      } finally {
        const n = this.opening.get(req.session)! - 1;
        if (n) this.opening.set(req.session, n);
        else this.opening.delete(req.session);
        if (!seq) this.roundStarted(req.session); // rounds waiting for this one: it will not start
      }
      // The client went away during the prefill: keep nothing, run nothing.
      if (signal?.aborted) {
        seq.reset();
        this.roundStarted(req.session);
        throw clientClosed(req.session);
      }
      session = {
        seq,
        pendingToken: history[history.length - 1],
        expectCommitted: [],
        sampling,
        lastSeq: req.seq - 1,
        released: false,
        get kvBytes() {
          return seq.kvBytes;
        },
        get busy() {
          return this.running !== undefined || seq.busy;
        },
      };
      try {
        this.sessions.put(req.session, session);
      } catch (e) {
        if (e instanceof SessionTooLargeError) throw new VerifyError("context_too_long", e.message);
        throw e;
      }
      opened = true;
    }
    const s: Session = session!;

    const t0 = performance.now();
    let ended!: () => void;
    s.running = new Promise<void>((r) => (ended = r)); // queued for a batch: not evictable from here on
    this.roundStarted(req.session);
    let response: VerifyResponse;
    let result: VerifyResult;
    const base = s.seq.length;
    try {
      const { rows: raw, tokenLogprobs } = await this.engine.score(s.seq, [s.pendingToken, ...req.drafts]);
      const partial = this.engine.exactTop < this.engine.vocab;
      if (masks && partial) this.checkPartialMasks(raw, masks, s.sampling);
      // The grammar's mask comes before verification: greedy takes the best allowed token, sampling draws
      // from the masked, renormalised distribution, and a draft outside its mask has p = 0.
      const rows = masks ? raw.map((r, i) => maskRow(r, masks[i])) : raw;
      // Sampling draws from the round's own stream: retries and re-opens repeat it.
      result = verifyRows(s.sampling, req.drafts, req.q ?? [], rows, req.seq);
      // draft_logprobs stay those of the unmasked distribution, as without a grammar.
      if (masks) result.draftLogprobs = req.drafts.map((d, i) => (s.sampling ? Math.log(targetDistribution(raw[i], s.sampling)[d]) : logSoftmaxAt(raw[i], d)));
      // Partial rows (top-K) cannot normalise: the engine's own log-probs are the true ones.
      if (tokenLogprobs) result.draftLogprobs = tokenLogprobs;
      let logprobs: TokenLogprob[] | undefined;
      if (req.logprobs !== undefined) {
        // Of the raw rows: the model's own figures, before the mask. Partial rows rank only their top K
        // exactly (a row may also hold its draft's log-prob from further down), so no more alternatives than K.
        const k = Math.min(req.logprobs, this.engine.exactTop);
        const accepted = result.accepted;
        logprobs = [...req.drafts.slice(0, accepted), result.token].map((t, i) => {
          const lp = tokenLogprob(raw[i], t, k, partial);
          if (tokenLogprobs && i < accepted) lp.logprob = Number.isFinite(tokenLogprobs[i]) ? tokenLogprobs[i] : null;
          return lp;
        });
      }
      // Keep the pending token and the accepted drafts; the new token is fed next round. Done before the
      // round ends, so that a close waiting for it finds a consistent sequence to free.
      s.seq.truncate(base + 1 + result.accepted);
      const g0 = performance.now();
      const prev = result.accepted ? req.drafts[result.accepted - 1] : s.pendingToken;
      // A follow pass only where the round's own copy broke: after a round that accepted every draft the
      // edge's next round (perhaps already sent ahead) continues the copy.
      const follow = result.accepted < req.drafts.length || req.drafts.length === 0;
      const resumed = req.resume ? await this.resume(s, req.resume, prev, result.token, follow, req.logprobs, logprobs) : undefined;
      const generated = resumed?.tokens;
      const generateMs = performance.now() - g0;
      s.pendingToken = generated?.at(-1) ?? result.token;
      s.expectCommitted = [...req.drafts.slice(0, result.accepted), result.token, ...(generated ?? [])];
      s.lastSeq = req.seq;
      s.lastHash = hash;
      response = s.lastResponse = {
        session: req.session,
        seq: req.seq,
        accepted: result.accepted,
        token: result.token,
        draft_logprobs: result.draftLogprobs.map((l) => (Number.isFinite(l) ? l : null)),
        ...(generated ? { generated } : {}),
        ...(resumed?.followed.length ? { followed: resumed.followed } : {}),
        ...(logprobs ? { logprobs } : {}),
        load: this.load(s.seq),
        server_ms: performance.now() - t0,
        ...(generated ? { generate_ms: generateMs } : {}),
      };
    } catch (e) {
      if (!s.seq.busy) s.seq.truncate(Math.min(base, s.seq.length));
      // Nobody got an answer for a session this round opened: it must not stay behind.
      if (opened) this.closeHeld(req.session, s);
      if (e instanceof RangeError) throw new VerifyError("invalid_request", e.message);
      throw e;
    } finally {
      s.running = undefined;
      ended();
      if (s.released && !s.seq.busy) s.seq.reset();
    }
    if (this.sessions.peek(req.session) === s) {
      try {
        this.sessions.resized(req.session);
      } catch (e) {
        // Grown past the whole budget: the store dropped it; the answer stands, the next round re-opens (413).
        if (!(e instanceof SessionTooLargeError)) throw e;
      }
      this.engine.roundAnswered?.(s.seq, result.accepted === req.drafts.length);
    }
    // A session opened for a client that went away, or closed while this round was opening it, would
    // otherwise be held until the idle TTL. The client may also go while the answer is on its way (on
    // Node the request's signal aborts only while the response is undelivered): the session is closed
    // then, unless a later round or a re-open has made it someone's.
    if (opened) {
      if (signal?.aborted || this.takeTombstone(req.session, arrived)) this.closeHeld(req.session, s);
      else signal?.addEventListener("abort", () => s.lastResponse === response && this.closeHeld(req.session, s), { once: true });
    }
    this.counters.rounds++;
    this.counters.drafted += req.drafts.length;
    this.counters.accepted += result.accepted;
    return response;
  }

  /**
   * A round's `resume`: after `token` (which followed `prev`), the target generates alone — one pass per
   * token, drawn like /v1/generate's (greedy, or seeded per absolute position) — until the last two tokens
   * occur one after the other in the window or are one of its pairs, a stop id, `max_tokens` tokens or the
   * context's end. With `follow` (and `rz.follow`), where they occur in the window, the window's next tokens
   * are then verified as drafts in one more pass (deterministic drafts: the usual rule keeps the output
   * the target's own; sampling draws from the pass's own per-position stream); after a rejection there the
   * target generates on the same way, within the same `max_tokens`, and up to MAX_FOLLOW_PASSES passes. The
   * tokens after `token`, their log-probs appended to `logprobs` when asked; the follow passes that ran.
   */
  private async resume(
    s: Session,
    rz: NonNullable<VerifyRequest["resume"]>,
    prev: number,
    token: number,
    follow: boolean,
    k: number | undefined,
    logprobs: TokenLogprob[] | undefined,
  ): Promise<{ tokens: number[]; followed: { drafted: number; accepted: number }[] }> {
    const vocab = this.engine.vocab;
    const window = rz.window;
    const pairs = new Set<number>();
    for (let i = 1; i < window.length; i++) pairs.add(window[i - 1] * vocab + window[i]);
    for (const [a, b] of rz.pairs ?? []) pairs.add(a * vocab + b);
    const stopIds = rz.stop_ids ?? [];
    const room = () => this.maxContext - s.seq.length - 1;
    const tokens: number[] = [];
    const followed: { drafted: number; accepted: number }[] = [];
    let alone = 0;
    let last = token;
    for (;;) {
      while (alone < rz.max_tokens && room() > 0 && !stopIds.includes(last) && !pairs.has(prev * vocab + last)) {
        const row = (await this.engine.score(s.seq, [last])).rows[0];
        // The sequence now holds every token before the new one: its length is the new token's position.
        const next = this.generatedToken(row, s.sampling, s.seq.length);
        if (k !== undefined) logprobs?.push(this.logprobOf(row, next, k));
        tokens.push(next);
        alone++;
        [prev, last] = [last, next];
      }
      if (!follow || !rz.follow || followed.length >= MAX_FOLLOW_PASSES || stopIds.includes(last)) break;
      const at = window.findIndex((t, i) => i > 0 && window[i - 1] === prev && t === last);
      const drafts: number[] = [];
      for (const t of at < 0 ? [] : window.slice(at + 1, at + 1 + Math.min(rz.follow, room()))) {
        if (stopIds.includes(t)) break; // the target's own token may end the output, no draft goes past it
        drafts.push(t);
      }
      if (!drafts.length) break;
      const base = s.seq.length;
      const rows = (await this.engine.score(s.seq, [last, ...drafts])).rows;
      const oneHot = drafts.map((d) => ({ ids: [d], probs: [1] }));
      const result = verifyRows(s.sampling, drafts, oneHot, rows, FOLLOW_STREAM + base);
      s.seq.truncate(base + 1 + result.accepted);
      const committed = [...drafts.slice(0, result.accepted), result.token];
      if (k !== undefined) logprobs?.push(...committed.map((t, i) => this.logprobOf(rows[i], t, k)));
      tokens.push(...committed);
      followed.push({ drafted: drafts.length, accepted: result.accepted });
      this.counters.followed += result.accepted;
      [prev, last] = [committed.length > 1 ? committed[committed.length - 2] : last, result.token];
      if (result.accepted === drafts.length) break; // the copy holds: the edge's next round goes on with it
    }
    this.counters.generated += alone;
    return { tokens, followed };
  }

  /**
   * The token the target generates alone at absolute `position` from its `row`: the argmax, or a draw from
   * the position's own random stream, so a generation resumed elsewhere from its history draws the same.
   */
  private generatedToken(row: ArrayLike<number>, sampling: (SamplingParams & { seed: number }) | undefined, position: number): number {
    return sampling ? sampleIndex(targetDistribution(row, sampling), new SeededRng(sampling.seed, GENERATE_STREAM + position).next()) : argmax(row);
  }

  /** A generated token's log-prob and `k` alternatives (no more than the engine's exact top). */
  private logprobOf(row: ArrayLike<number>, token: number, k: number): TokenLogprob {
    return tokenLogprob(row, token, Math.min(k, this.engine.exactTop), this.engine.exactTop < this.engine.vocab);
  }

  /** Plain autoregressive decoding, one event per token; stops early when `signal` aborts. */
  async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateEvent> {
    this.checkTokens([...req.history, ...req.stop_ids]);
    if (req.history.length + req.max_tokens > this.maxContext)
      throw new VerifyError("context_too_long", `history of ${req.history.length} tokens plus max_tokens ${req.max_tokens} exceeds the ${this.maxContext}-token context`);
    const params = this.samplingParams(req.sampling);
    checkLogprobs(req.logprobs);
    const t0 = performance.now();
    // Greedy on an engine that streams its own decoding (SGLang): one request for the whole stream. Sampling
    // keeps the per-token path below, whose draws are seeded per absolute position (a stream resumed on
    // another node from its history draws the same tokens), which an engine's own sampler does not promise.
    // Log-probs also take the per-token path: the stream yields token ids only, each pass's row has them.
    if (!params && req.logprobs === undefined && this.engine.generateGreedy) {
      let n = 0;
      // No sequence of ours holds the stream's tokens, so no next-pass costs: the queue and sessions only.
      const load = () => ({ queue_depth: this.engine.queueDepth, sessions: this.sessions.stats().sessions });
      for await (const token of this.engine.generateGreedy(req.history, { maxTokens: req.max_tokens, stopIds: req.stop_ids, signal })) {
        n++;
        this.counters.generated++;
        yield n === 1 ? { token, load: load(), server_ms: performance.now() - t0 } : (n - 1) % GENERATE_LOAD_EVERY === 0 ? { token, load: load() } : { token };
        if (req.stop_ids.includes(token)) return yield { done: true, finish_reason: "stop", tokens: n };
        if (n === req.max_tokens) return yield { done: true, finish_reason: "length", tokens: n };
      }
      if (signal?.aborted) return;
      throw new VerifyError("engine_unavailable", `the ${this.engine.name} engine's stream ended after ${n} of ${req.max_tokens} tokens without a stop id`);
    }
    const seq = await this.engine.open(req.history.slice(0, -1));
    let next: Promise<ChunkScores> | undefined;
    try {
      if (signal?.aborted) return;
      let rows = (await this.engine.score(seq, req.history.slice(-1))).rows;
      for (let n = 1; ; n++) {
        const row = rows[rows.length - 1];
        const token = this.generatedToken(row, params, req.history.length + n - 1);
        const logprob = req.logprobs === undefined ? undefined : this.logprobOf(row, token, req.logprobs);
        this.counters.generated++;
        const last = req.stop_ids.includes(token) || n === req.max_tokens;
        // Queue the next pass before handing the token over, as a continuous-batching engine keeps a running
        // generation in its next step: every generation served by the last pass joins the next one.
        // A client already gone gets no further pass.
        if (!last && !signal?.aborted) next = this.engine.score(seq, [token]);
        const event: GenerateEvent = n === 1 ? { token, load: this.load(seq), server_ms: performance.now() - t0 } : (n - 1) % GENERATE_LOAD_EVERY === 0 ? { token, load: this.load(seq) } : { token };
        yield logprob ? { ...event, logprob } : event;
        if (req.stop_ids.includes(token)) return yield { done: true, finish_reason: "stop", tokens: n };
        if (n === req.max_tokens) return yield { done: true, finish_reason: "length", tokens: n };
        if (signal?.aborted || !next) return;
        rows = (await next).rows;
        next = undefined;
      }
    } finally {
      await next?.catch(() => {}); // a queued pass must end before the sequence is dropped
      seq.reset();
    }
  }

  /** The load hint for a session whose sequence is `seq`: queue, sessions, and what its next pass would cost. */
  private load(seq: EngineSequence): PoolLoad {
    return { queue_depth: this.engine.queueDepth, sessions: this.sessions.stats().sessions, ...this.engine.accounting.report(seq, seq.length, this.maxGamma + 1, performance.now()) };
  }

  /**
   * DELETE: false if the session was not held. A round in flight on it is answered, and its sequence is
   * freed when the round ends; a DELETE of a session not held is remembered briefly (TOMBSTONE_TTL_MS),
   * since the round opening it may still be on its way, and that round then closes the session after its pass.
   */
  close(session: string): boolean {
    if (this.sessions.close(session)) return true;
    const now = this.now();
    this.tombstones.delete(session);
    this.tombstones.set(session, now);
    for (const [id, at] of this.tombstones) {
      if (now - at <= TOMBSTONE_TTL_MS && this.tombstones.size <= MAX_TOMBSTONES) break;
      this.tombstones.delete(id);
    }
    return false;
  }

  /** Whether a DELETE of `session` came for an opening round that arrived at `arrived` (consumed). */
  private takeTombstone(session: string, arrived: number): boolean {
    const at = this.tombstones.get(session);
    if (at === undefined) return false;
    this.tombstones.delete(session);
    return at >= arrived - TOMBSTONE_GRACE_MS && this.now() - at <= TOMBSTONE_TTL_MS;
  }

  /** Close `session` if the store still holds this very value (not a newer re-open under the same id). */
  private closeHeld(id: string, s: Session): void {
    if (this.sessions.peek(id) === s) this.sessions.close(id);
  }
}
