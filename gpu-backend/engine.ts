// The target engine behind the verifier (docs/ARCHITECTURE.md, "How to add a verifier engine"). The Verifier speaks only this interface; one file per
// implementation: OnnxEngine (onnxruntime-node, batched, full logits) and SglangEngine (production
// ALIA-40b on SGLang's /generate, top-K log-probs, prefix kept by SGLang's radix cache).
import type { PassAccounting } from "./pass-accounting.ts";

/** A session's state in the engine: the tokens it holds (or will find in a prefix cache). */
export interface EngineSequence {
  readonly length: number;
  /** Bytes this sequence holds on the verifier (for the session store's budget). */
  readonly kvBytes: number;
  /** A pass is running: the sequence must not be truncated or evicted meanwhile. */
  readonly busy: boolean;
  /** Roll back to the first `length` tokens (after rejected drafts). */
  truncate(length: number): void;
  reset(): void;
}

/** The target's scores for the positions of one chunk: row i scores the token after fed token i. */
export interface ChunkScores {
  /** Logits or log-probs (any per-row constant shift); entries an engine did not return are −Infinity. */
  rows: ArrayLike<number>[];
  /** ln p (temperature 1) of fed tokens 1…n−1 at rows 0…n−2, when rows are partial and cannot give it. */
  tokenLogprobs?: number[];
}

export interface TargetEngine<S extends EngineSequence = EngineSequence> {
  readonly name: string;
  readonly vocab: number;
  readonly maxPositions: number;
  /**
   * How many of each row's highest entries are exact (vocab: full rows). Greedy verification needs only
   * the first; sampling is exact only when its top_k keeps no more than this many tokens.
   */
  readonly exactTop: number;
  /** Passes waiting for the engine: the load hint sent to the edge's γ policy. */
  readonly queueDepth: number;
  /** The passes run so far and, with a cost model, what the next one would cost (the rest of the load hint). */
  readonly accounting: PassAccounting;
  /** A sequence holding `prefix` (may be empty). */
  open(prefix: readonly number[]): Promise<S>;
  /** Run `tokens` after the sequence's tokens, append them, and score each position. */
  score(seq: S, tokens: readonly number[]): Promise<ChunkScores>;
  /**
   * A verify round's answer is going out (`allAccepted`: every draft passed). An engine that batches may
   * expect the session back and hold a pass for it (OnnxEngine: VERIFIER_WAIT_FOR_COMPANY).
   */
  roundAnswered?(seq: S, allAccepted: boolean): void;
  /**
   * Greedy generation in one streamed request (an engine that streams its own decoding: SGLang), instead
   * of one score() per token. Yields each new token; ends after a stop id or `maxTokens`, or when `signal`
   * aborts; throws VerifyError("engine_unavailable") when the engine fails mid-stream.
   */
  generateGreedy?(prefix: readonly number[], o: { maxTokens: number; stopIds: readonly number[]; signal?: AbortSignal }): AsyncGenerator<number>;
}
