// Wire types of the verify protocol between the edge (src/) and the verifier pool (gpu-backend/), in
// one module so that both sides validate the same shapes. A round carries only what is new: the tokens
// committed since the previous round (checked by the verifier against its own record) and the drafts.
// The first round of a session, or a re-open after eviction, carries the whole token history instead.
import { z } from "zod";

export const MAX_GAMMA = 16;
export const MAX_Q_SUPPORT = 64;
/** Most alternatives per token in log-prob answers (OpenAI's top_logprobs limit). */
export const MAX_TOP_LOGPROBS = 20;
/** Most tokens a round's `resume` may generate after its token, most tokens of its window, most extra pairs. */
export const MAX_RESUME_TOKENS = 16;
export const MAX_RESUME_WINDOW = 256;
export const MAX_RESUME_PAIRS = 64;
/** Most follow passes in one round's `resume` (VerifyRequest.resume.follow). */
export const MAX_FOLLOW_PASSES = 3;
/** Most tokens a round may commit after its drafts and token: resumed ones and its follow passes'. */
const MAX_AFTER_TOKEN = MAX_RESUME_TOKENS + MAX_FOLLOW_PASSES * (MAX_GAMMA + 1);

const tokenId = z.number().int().min(0);

export const SparseDistSchema = z
  .object({ ids: z.array(tokenId).min(1).max(MAX_Q_SUPPORT), probs: z.array(z.number().positive().max(1)) })
  .refine((q) => q.ids.length === q.probs.length, { message: "ids and probs differ in length" })
  .refine((q) => Math.abs(q.probs.reduce((s, p) => s + p, 0) - 1) < 1e-4, { message: "probs must sum to 1" })
  .refine((q) => new Set(q.ids).size === q.ids.length, { message: "ids must be distinct" });

export const SamplingSchema = z.object({
  temperature: z.number().min(0).max(2),
  top_p: z.number().gt(0).lte(1).default(1),
  top_k: z.number().int().min(0).default(0),
  /** Seeds the verifier's draws; each round draws from its own stream, so a retry or re-open repeats them. */
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
export type Sampling = z.infer<typeof SamplingSchema>;

export const VerifyRequestSchema = z
  .object({
    session: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "session id: 1–128 letters, digits, '_' or '-'"),
    /** Round number: 0 for the first round, +1 each round; a repeated number with the same body is a retry. */
    seq: z.number().int().min(0),
    /** Whole token history (prompt + everything committed): opens or re-opens the session. */
    history: z.array(tokenId).min(1).optional(),
    /** Tokens committed since the previous round (its accepted drafts, its token and any after it). */
    committed: z
      .array(tokenId)
      .max(MAX_GAMMA + 1 + MAX_AFTER_TOKEN)
      .optional(),
    drafts: z.array(tokenId).max(MAX_GAMMA),
    /** The drafter's sparse q̃ for each draft; required when sampling with drafts. */
    q: z.array(SparseDistSchema).max(MAX_GAMMA).optional(),
    /** Omitted: greedy. Only read when the session is opened. */
    sampling: SamplingSchema.optional(),
    /**
     * Constrained decoding (a grammar: structured outputs): the tokens allowed at each scored position, one
     * per draft plus one for the token after them (token-mask.ts's wire form). The target's rows are masked
     * with them before verification, so greedy picks and samples only among allowed tokens.
     */
    masks: z
      .array(z.string().min(1))
      .max(MAX_GAMMA + 1)
      .optional(),
    /** Return the target's log-probs of the committed tokens, each with this many most likely alternatives (0–20). */
    logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).optional(),
    /**
     * After its token, the target goes on generating alone until the last two committed tokens occur one
     * after the other in `window` (where the edge's copy can resume: a suffix match's text) or are one of
     * `pairs` (where the copied text branches: the other continuations the edge knows), a stop id, or
     * `max_tokens`. Saves a copy broken by an edit the stream start-up and re-opening round of switching
     * to pool generation and back. With `follow`, once a round whose drafts were not all accepted (or that
     * had none) has resumed inside `window`, the target verifies up to `follow` tokens of the window after
     * that pair in one more pass, as drafts: the copy goes on within the round, a round trip saved. Not
     * with masks.
     */
    resume: z
      .object({
        window: z.array(tokenId).min(2).max(MAX_RESUME_WINDOW),
        pairs: z
          .array(z.tuple([tokenId, tokenId]))
          .max(MAX_RESUME_PAIRS)
          .default([]),
        max_tokens: z.number().int().min(1).max(MAX_RESUME_TOKENS),
        stop_ids: z.array(tokenId).max(16).default([]),
        follow: z.number().int().min(0).max(MAX_GAMMA).optional(),
      })
      .optional(),
  })
  .superRefine((r, ctx) => {
    if (r.history && r.committed) ctx.addIssue({ code: "custom", message: "send either history (open) or committed (continue), not both" });
    if (r.masks && r.masks.length !== r.drafts.length + 1) ctx.addIssue({ code: "custom", path: ["masks"], message: `one mask per draft plus one: ${r.drafts.length + 1}, got ${r.masks.length}` });
    if (r.sampling && r.sampling.temperature > 0 && r.drafts.length && r.q?.length !== r.drafts.length) ctx.addIssue({ code: "custom", path: ["q"], message: "sampling needs one q̃ per draft" });
    if (r.resume && r.masks) ctx.addIssue({ code: "custom", path: ["resume"], message: "resume generates without masks: not with masks" });
  });
export type VerifyRequest = z.infer<typeof VerifyRequestSchema>;

/**
 * What a round costs the pool now, for the edge's γ policy (docs/ARCHITECTURE.md, "The γ policy"). The pass
 * figures are present when the verifier has a GPU cost model: the last pass's composition and time, and the
 * predicted time of the next pass if this session's row carries 1, 2, … tokens while the other rows stay as
 * in the last pass — the marginal cost of more drafts at the current load.
 */
export const PoolLoadSchema = z.object({
  queue_depth: z.number().int().min(0),
  sessions: z.number().int().min(0),
  /** Rows and tokens of the last pass, and its (modelled) time. */
  rows: z.number().int().min(0).optional(),
  tokens: z.number().int().min(0).optional(),
  pass_ms: z.number().min(0).optional(),
  /**
   * How long a row arriving now can expect to wait for other sessions' pass in flight (ms, averaged over
   * the last second): the part of a round's server time beyond its own pass that load adds.
   */
  pass_wait_ms: z.number().min(0).optional(),
  /** Index i: predicted ms of the next pass with this session's row at chunk i + 1 (γ = i drafts). */
  pass_ms_by_chunk: z
    .array(z.number().positive())
    .max(MAX_GAMMA + 1)
    .optional(),
});
export type PoolLoad = z.infer<typeof PoolLoadSchema>;

/**
 * The target's log-probability of a committed token (ln p at temperature 1, before any mask or sampling
 * setting: what the model gives it) and its most likely alternatives, most likely first.
 */
export const TokenLogprobSchema = z.object({
  logprob: z.number().nullable(),
  top: z.array(z.tuple([tokenId, z.number()])).max(MAX_TOP_LOGPROBS),
});
export type TokenLogprob = z.infer<typeof TokenLogprobSchema>;

export const VerifyResponseSchema = z.object({
  session: z.string(),
  seq: z.number().int(),
  accepted: z.number().int().min(0),
  /** Correction (at the first rejected draft) or bonus (after all drafts). */
  token: tokenId,
  /** Target log-prob of each draft (null where −∞). */
  draft_logprobs: z.array(z.number().nullable()),
  /**
   * With `resume`: the tokens committed after `token` (committed too), in order: those the target generated
   * alone and, with `resume.follow`, each follow pass's accepted window tokens and its token after them.
   */
  generated: z.array(tokenId).max(MAX_AFTER_TOKEN).optional(),
  /**
   * With `resume.follow`, the follow passes that ran: the window tokens each verified and how many it
   * accepted (each pass's accepted tokens and the target's token after them are in `generated`).
   */
  followed: z
    .array(z.object({ drafted: z.number().int().min(1).max(MAX_GAMMA), accepted: z.number().int().min(0).max(MAX_GAMMA) }))
    .max(MAX_FOLLOW_PASSES)
    .optional(),
  /** With `logprobs`: the committed tokens' (accepted drafts, then `token`, then `generated`). */
  logprobs: z.array(TokenLogprobSchema).optional(),
  load: PoolLoadSchema,
  /** Time the round spent in the verifier (queue + pass), so the edge can tell network RTT from it. */
  server_ms: z.number().min(0),
  /** Of `server_ms`, the time spent on `generated` (its passes). */
  generate_ms: z.number().min(0).optional(),
});
export type VerifyResponse = z.infer<typeof VerifyResponseSchema>;

/** Autoregressive generation on the verifier (γ = 0: the baseline, and the edge's path when speculation does not pay). */
export const GenerateRequestSchema = z.object({
  history: z.array(tokenId).min(1),
  max_tokens: z.number().int().min(1).max(8192),
  /** Generation ends after emitting one of these (EOS by default on the edge's side). */
  stop_ids: z.array(tokenId).max(16).default([]),
  sampling: SamplingSchema.optional(),
  /** Attach each token's log-prob and this many alternatives to its event (0–20). */
  logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).optional(),
});
export type GenerateRequest = z.infer<typeof GenerateRequestSchema>;

/** One streamed event of /v1/generate (SSE `data:` lines). */
export type GenerateEvent =
  /** `server_ms` (first token only): time from the request's arrival to the first token, so the edge can tell the round trip from it. */
  { token: number; load?: PoolLoad; server_ms?: number; logprob?: TokenLogprob } | { done: true; finish_reason: "stop" | "length"; tokens: number };

/** /v1/generate attaches the pool's load to its first token event and to every this-many-th after it. */
export const GENERATE_LOAD_EVERY = 16;

/** Error codes of the verify protocol; the HTTP layer maps them to statuses. */
export const VERIFY_ERRORS = {
  invalid_request: 400,
  session_not_found: 404,
  seq_out_of_order: 409,
  history_mismatch: 409,
  /** The round's seq was already answered for a request with other content (a retry must repeat it exactly). */
  seq_conflict: 409,
  /** The client went away before its round ran (nobody reads this answer; 499 as in nginx). */
  client_closed: 499,
  context_too_long: 413,
  overloaded: 503,
  /** The engine behind the verifier failed (SGLang unreachable, timed out or answered an error). */
  engine_unavailable: 503,
} as const;
export type VerifyErrorCode = keyof typeof VERIFY_ERRORS;

export class VerifyError extends Error {
  override name = "VerifyError";
  constructor(
    readonly code: VerifyErrorCode,
    message: string,
  ) {
    super(message);
  }
  get status(): number {
    return VERIFY_ERRORS[this.code];
  }
}
