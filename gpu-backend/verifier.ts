// The verifier's core, independent of HTTP: sessions with KV caches, exactly-once rounds (a repeated
// sequence number is answered from the stored result), re-open by full history, and exact verification.
// One round feeds [last committed token, ...drafts] to the target engine in one pass and scores γ+1
// positions.
import { GENERATE_LOAD_EVERY, MAX_GAMMA, VerifyError, type PoolLoad, type GenerateEvent, type GenerateRequest, type Sampling, type VerifyRequest, type VerifyResponse } from "../src/common/protocol.ts";
import { SeededRng, argmax, sampleIndex, targetDistribution, type SamplingParams } from "../src/common/sampling.ts";
import { verifyGreedy, verifySampling, type VerifyResult } from "../src/common/verification.ts";
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
  /** A round is queued or running. */
  active: boolean;
  /** The KvSequence interface the store needs. */
  readonly kvBytes: number;
  readonly busy: boolean;
}

/** Random streams of /v1/generate (per position) start here, far from the verify rounds' (per seq). */
const GENERATE_STREAM = 0x40000000;

export type VerifierOptions = Omit<SessionKvStoreOptions<Session>, "onEvict"> & {
  /** Most drafts per round (≤ the protocol's MAX_GAMMA). */
  maxGamma?: number;
  /** Most tokens a session may hold (≤ the engine's positions). */
  maxContext?: number;
};

export class Verifier {
  readonly sessions: SessionKvStore<Session>;
  /** Running totals for /metrics. */
  readonly counters = { rounds: 0, retries: 0, drafted: 0, accepted: 0, generated: 0 };
  readonly maxGamma: number;
  readonly maxContext: number;

  constructor(
    readonly engine: TargetEngine,
    opts: VerifierOptions,
  ) {
    this.sessions = new SessionKvStore<Session>({ ...opts, onEvict: (_id, s) => s.seq.reset() });
    this.maxGamma = Math.min(opts.maxGamma ?? MAX_GAMMA, MAX_GAMMA);
    this.maxContext = Math.min(opts.maxContext ?? engine.maxPositions, engine.maxPositions);
  }

  private checkTokens(tokens: readonly number[]): void {
    const vocab = this.engine.vocab;
    for (const t of tokens) if (t >= vocab) throw new VerifyError("invalid_request", `token id ${t} outside the vocabulary (0..${vocab - 1})`);
  }

  /** Sampling parameters as the verification math takes them; greedy (undefined) at temperature 0. */
  private samplingParams(s: Sampling | undefined): (SamplingParams & { seed: number }) | undefined {
    if (!s || s.temperature === 0) return undefined;
    const K = this.engine.exactTop;
    if (K < this.engine.vocab && !(s.top_k > 0 && s.top_k <= K))
      throw new VerifyError("invalid_request", `the ${this.engine.name} engine returns only its top ${K} log-probs: sampling is exact only with 0 < top_k ≤ ${K}`);
    return { temperature: s.temperature, topP: s.top_p, topK: s.top_k, seed: s.seed };
  }

  async round(req: VerifyRequest): Promise<VerifyResponse> {
    if (req.drafts.length > this.maxGamma) throw new VerifyError("invalid_request", `${req.drafts.length} drafts: this verifier takes at most ${this.maxGamma} per round`);
    this.checkTokens([...req.drafts, ...(req.committed ?? []), ...(req.history ?? [])]);
    let session = req.history ? undefined : this.sessions.get(req.session);
    if (!req.history) {
      if (!session) throw new VerifyError("session_not_found", `session ${req.session} is unknown or was evicted; re-open it with its full history`);
      if (req.seq === session.lastSeq && session.lastResponse) {
        this.counters.retries++;
        return session.lastResponse;
      }
      if (req.seq !== session.lastSeq + 1) throw new VerifyError("seq_out_of_order", `session ${req.session}: expected round ${session.lastSeq + 1} (or a retry of ${session.lastSeq}), got ${req.seq}`);
      const got = req.committed ?? [];
      if (got.length !== session.expectCommitted.length || got.some((t, i) => t !== session!.expectCommitted[i]))
        throw new VerifyError("history_mismatch", `session ${req.session}: committed tokens [${got}] differ from the verifier's [${session.expectCommitted}]; re-open with the full history`);
    } else {
      const history = req.history;
      if (history.length + req.drafts.length > this.maxContext)
        throw new VerifyError("context_too_long", `history of ${history.length} tokens plus ${req.drafts.length} drafts exceeds the ${this.maxContext}-token context`);
      const sampling = this.samplingParams(req.sampling);
      const seq = await this.engine.open(history.slice(0, -1));
      session = {
        seq,
        pendingToken: history[history.length - 1],
        expectCommitted: [],
        sampling,
        lastSeq: req.seq - 1,
        active: false,
        get kvBytes() {
          return seq.kvBytes;
        },
        get busy() {
          return this.active || seq.busy;
        },
      };
      try {
        this.sessions.put(req.session, session);
      } catch (e) {
        if (e instanceof SessionTooLargeError) throw new VerifyError("context_too_long", e.message);
        throw e;
      }
    }
    const s = session;
    if (s.seq.length + 1 + req.drafts.length > this.maxContext) throw new VerifyError("context_too_long", `session ${req.session} would exceed the ${this.maxContext}-token context`);
    if (s.sampling && req.drafts.length && req.q?.length !== req.drafts.length) throw new VerifyError("invalid_request", "sampling sessions need one q̃ per draft");

    const t0 = performance.now();
    s.active = true; // queued for a batch: not evictable from here on
    let result: VerifyResult;
    const base = s.seq.length;
    try {
      const { rows, tokenLogprobs } = await this.engine.score(s.seq, [s.pendingToken, ...req.drafts]);
      if (s.sampling) {
        const rng = new SeededRng(s.sampling.seed, req.seq); // per-round stream: retries and re-opens repeat it
        const p = rows.map((r) => targetDistribution(r, s.sampling!));
        result = verifySampling(req.drafts, req.q ?? [], p, () => rng.next());
      } else result = verifyGreedy(req.drafts, rows);
      // Partial rows (top-K) cannot normalise: the engine's own log-probs are the true ones.
      if (tokenLogprobs) result.draftLogprobs = tokenLogprobs;
    } catch (e) {
      s.seq.truncate(Math.min(base, s.seq.length));
      if (e instanceof RangeError) throw new VerifyError("invalid_request", e.message);
      throw e;
    } finally {
      s.active = false;
    }
    // Keep the pending token and the accepted drafts; the new token is fed next round.
    s.seq.truncate(base + 1 + result.accepted);
    s.pendingToken = result.token;
    s.expectCommitted = [...req.drafts.slice(0, result.accepted), result.token];
    s.lastSeq = req.seq;
    s.lastResponse = {
      session: req.session,
      seq: req.seq,
      accepted: result.accepted,
      token: result.token,
      draft_logprobs: result.draftLogprobs.map((l) => (Number.isFinite(l) ? l : null)),
      load: this.load(s.seq),
      server_ms: performance.now() - t0,
    };
    this.sessions.resized(req.session);
    this.engine.roundAnswered?.(s.seq, result.accepted === req.drafts.length);
    this.counters.rounds++;
    this.counters.drafted += req.drafts.length;
    this.counters.accepted += result.accepted;
    return s.lastResponse;
  }

  /** Plain autoregressive decoding, one event per token; stops early when `signal` aborts. */
  async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateEvent> {
    this.checkTokens(req.history);
    if (req.history.length + req.max_tokens > this.maxContext)
      throw new VerifyError("context_too_long", `history of ${req.history.length} tokens plus max_tokens ${req.max_tokens} exceeds the ${this.maxContext}-token context`);
    const params = this.samplingParams(req.sampling);
    const t0 = performance.now();
    const seq = await this.engine.open(req.history.slice(0, -1));
    let next: Promise<ChunkScores> | undefined;
    try {
      let rows = (await this.engine.score(seq, req.history.slice(-1))).rows;
      for (let n = 1; ; n++) {
        const row = rows[rows.length - 1];
        // One stream per absolute position: a generation resumed elsewhere from its history draws the same.
        const u = () => new SeededRng(params!.seed, GENERATE_STREAM + req.history.length + n - 1).next();
        const token = params ? sampleIndex(targetDistribution(row, params), u()) : argmax(row);
        this.counters.generated++;
        const last = req.stop_ids.includes(token) || n === req.max_tokens;
        // Queue the next pass before handing the token over, as a continuous-batching engine keeps a running
        // generation in its next step: every generation served by the last pass joins the next one.
        if (!last) next = this.engine.score(seq, [token]);
        yield n === 1 ? { token, load: this.load(seq), server_ms: performance.now() - t0 } : (n - 1) % GENERATE_LOAD_EVERY === 0 ? { token, load: this.load(seq) } : { token };
        if (req.stop_ids.includes(token)) return yield { done: true, finish_reason: "stop", tokens: n };
        if (n === req.max_tokens) return yield { done: true, finish_reason: "length", tokens: n };
        if (signal?.aborted) return;
        rows = (await next!).rows;
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

  close(session: string): boolean {
    return this.sessions.close(session);
  }
}
