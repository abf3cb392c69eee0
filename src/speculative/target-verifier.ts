// The decoder's port to the target model: verify rounds, target-only generation (γ = 0) and session
// close. PoolClient (src/pool/) implements it over HTTP; tests may implement it in-process.
import type { GenerateRequest, PoolLoad, TokenLogprob, VerifyRequest, VerifyResponse } from "../common/protocol.ts";

export interface VerifiedRound extends VerifyResponse {
  /** Wall time of the round as the edge saw it (ms): network and queueing included. */
  elapsedMs: number;
}

export interface TargetVerifier {
  /**
   * One verify round. `build(reopen)` makes the request; with `reopen` it must carry the full `history`
   * (the verifier lost or never had the session) and the same `seq`.
   */
  round(session: string, build: (reopen: boolean) => VerifyRequest, signal?: AbortSignal): Promise<VerifiedRound>;
  /**
   * The target generating alone, token by token (ends at a stop id or `max_tokens`). `onLoad` gets the
   * pool's load reports, the first with the pool's time to the first token; with `req.logprobs`, `onLogprob`
   * gets each token's log-probs before the token.
   */
  generate(req: GenerateRequest, signal?: AbortSignal, onLoad?: (load: PoolLoad, serverMs?: number) => void, onLogprob?: (lp: TokenLogprob) => void): AsyncIterable<number>;
  /**
   * Optional: a round sent while the round before it is still in flight, on the bet that it commits what
   * `body.committed` says; undefined when the bet was lost or the call failed (nothing else happens).
   */
  roundAhead?(session: string, body: VerifyRequest, signal?: AbortSignal): Promise<VerifiedRound | undefined>;
  /** Network time of a verify round now (its time minus the pool's own), over all sessions; optional. */
  readonly roundTripMs?: number;
  /** The session is over (best effort). */
  close(session: string): Promise<void>;
}
