// The verifier's core, independent of HTTP: sessions with KV caches, exactly-once rounds (a repeated
// sequence number is answered from the stored result), re-open by full history, and exact verification.
// One round feeds [last committed token, ...drafts] to the target in one pass and scores γ+1 positions.
import type { CausalLM, KvSequence } from "../src/models/causal-lm.ts";
import { argmax } from "../src/models/causal-lm.ts";
import { VerifyError, type GenerateEvent, type GenerateRequest, type VerifyRequest, type VerifyResponse } from "../src/protocol.ts";
import { sampleIndex } from "../src/spec/sampling.ts";
import { SeededRng, targetDistribution, type SamplingParams } from "../src/spec/sampling.ts";
import { verifyGreedy, verifySampling, type VerifyResult } from "../src/spec/verify.ts";
import { MicroBatcher, type MicroBatcherOptions } from "./micro-batcher.ts";
import { SessionKvStore, SessionTooLargeError, type SessionKvStoreOptions } from "./session-kv-store.ts";

interface Session {
  seq: KvSequence;
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

export type VerifierOptions = Omit<SessionKvStoreOptions<Session>, "onEvict"> & { batch?: MicroBatcherOptions };

export class Verifier {
  readonly sessions: SessionKvStore<Session>;
  readonly batcher: MicroBatcher;
  /** Running totals for /metrics. */
  readonly counters = { rounds: 0, retries: 0, drafted: 0, accepted: 0, generated: 0 };

  constructor(
    private readonly model: CausalLM,
    opts: VerifierOptions,
  ) {
    this.sessions = new SessionKvStore<Session>({ ...opts, onEvict: (_id, s) => s.seq.reset() });
    this.batcher = new MicroBatcher(model, opts.batch ?? { windowMs: 0, maxBatch: 32, maxQueue: 256 });
  }

  async round(req: VerifyRequest): Promise<VerifyResponse> {
    for (const t of [...req.drafts, ...(req.committed ?? []), ...(req.history ?? [])])
      if (t >= this.model.vocab) throw new VerifyError("invalid_request", `token id ${t} outside the vocabulary (0..${this.model.vocab - 1})`);
    let session = req.history ? undefined : this.sessions.get(req.session);
    if (!req.history) {
      if (!session) throw new VerifyError("session_not_found", `session ${req.session} is unknown or was evicted; re-open it with its full history`);
      if (req.seq === session.lastSeq && session.lastResponse) {
        this.counters.retries++;
        return session.lastResponse;
      }
      if (req.seq !== session.lastSeq + 1)
        throw new VerifyError("seq_out_of_order", `session ${req.session}: expected round ${session.lastSeq + 1} (or a retry of ${session.lastSeq}), got ${req.seq}`);
      const got = req.committed ?? [];
      if (got.length !== session.expectCommitted.length || got.some((t, i) => t !== session!.expectCommitted[i]))
        throw new VerifyError("history_mismatch", `session ${req.session}: committed tokens [${got}] differ from the verifier's [${session.expectCommitted}]; re-open with the full history`);
    } else {
      const history = req.history;
      if (history.length + req.drafts.length > this.model.maxPositions)
        throw new VerifyError("context_too_long", `history of ${history.length} tokens plus ${req.drafts.length} drafts exceeds the model's ${this.model.maxPositions} positions`);
      const seq = this.model.newSequence();
      if (history.length > 1) await this.model.forward(seq, history.slice(0, -1));
      session = {
        seq,
        pendingToken: history[history.length - 1],
        expectCommitted: [],
        sampling: req.sampling && req.sampling.temperature > 0 ? { temperature: req.sampling.temperature, topP: req.sampling.top_p, topK: req.sampling.top_k, seed: req.sampling.seed } : undefined,
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
    if (s.seq.length + 1 + req.drafts.length > this.model.maxPositions)
      throw new VerifyError("context_too_long", `session ${req.session} would exceed the model's ${this.model.maxPositions} positions`);
    if (s.sampling && req.drafts.length && req.q?.length !== req.drafts.length)
      throw new VerifyError("invalid_request", "sampling sessions need one q̃ per draft");

    s.active = true; // queued for a batch: not evictable from here on
    let result: VerifyResult;
    const base = s.seq.length;
    try {
      const logits = await this.batcher.forward(s.seq, [s.pendingToken, ...req.drafts]);
      const rows = Array.from({ length: logits.rows }, (_, i) => logits.row(i));
      if (s.sampling) {
        const rng = new SeededRng(s.sampling.seed, req.seq); // per-round stream: retries and re-opens repeat it
        const p = rows.map((r) => targetDistribution(r, s.sampling!));
        result = verifySampling(req.drafts, req.q ?? [], p, () => rng.next());
      } else result = verifyGreedy(req.drafts, rows);
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
      load: { queue_depth: this.batcher.queueDepth, sessions: this.sessions.stats().sessions },
    };
    this.sessions.resized(req.session);
    this.counters.rounds++;
    this.counters.drafted += req.drafts.length;
    this.counters.accepted += result.accepted;
    return s.lastResponse;
  }

  /** Plain autoregressive decoding, one event per token; stops early when `signal` aborts. */
  async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateEvent> {
    for (const t of req.history)
      if (t >= this.model.vocab) throw new VerifyError("invalid_request", `token id ${t} outside the vocabulary (0..${this.model.vocab - 1})`);
    if (req.history.length + req.max_tokens > this.model.maxPositions)
      throw new VerifyError("context_too_long", `history of ${req.history.length} tokens plus max_tokens ${req.max_tokens} exceeds the model's ${this.model.maxPositions} positions`);
    const sampling = req.sampling && req.sampling.temperature > 0 ? req.sampling : undefined;
    const params = sampling && { temperature: sampling.temperature, topP: sampling.top_p, topK: sampling.top_k };
    const rng = sampling && new SeededRng(sampling.seed, 0x67656e); // "gen": its own stream
    const seq = this.model.newSequence();
    try {
      let logits = await this.model.forward(seq, req.history);
      for (let n = 1; ; n++) {
        const row = logits.last();
        const token = params ? sampleIndex(targetDistribution(row, params), rng!.next()) : argmax(row);
        this.counters.generated++;
        yield { token };
        if (req.stop_ids.includes(token)) return yield { done: true, finish_reason: "stop", tokens: n };
        if (n === req.max_tokens) return yield { done: true, finish_reason: "length", tokens: n };
        if (signal?.aborted) return;
        logits = await this.model.forward(seq, [token]);
      }
    } finally {
      seq.reset();
    }
  }

  close(session: string): boolean {
    return this.sessions.close(session);
  }
}
