// Requests and tokens per minute per key (pure: the caller passes `now`; docs/BILLING.md). GCRA, kept as a
// leaky bucket of integer "ticks" so that the state is three numbers a Postgres row or a Durable Object can
// hold, and every comparison is exact:
//
// * A unit (a request, a token) adds WINDOW_MS ticks; the bucket drains `limit` ticks per ms, so one unit
//   drains in WINDOW_MS / limit ms: `limit` units per minute on average.
// * The bucket holds WINDOW_MS × limit ticks: a key that was idle for a minute may spend its whole minute's
//   limit at once (GCRA with a burst tolerance of one window), and then one unit per WINDOW_MS / limit.
// * Integers: ticks ≤ WINDOW_MS × limit ≤ 6·10^13 for limits ≤ 10^9, and the drain is never multiplied
//   out beyond what the bucket holds, so nothing passes 2^53. `now` is integer ms (Date.now()).
// * A refused request changes nothing (no unit of either dimension is spent); an admitted one spends both.

export const WINDOW_MS = 60_000;
const MAX_LIMIT = 1_000_000_000;

/** Per key; null: that dimension is not limited (its bucket stays empty and its headers are left out). */
export interface RateLimits {
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
}

/** A key's state: the buckets' contents in ticks, as of `at` (ms). */
export interface RateLimitState {
  at: number;
  requestTicks: number;
  tokenTicks: number;
}

/** A key never seen: both buckets empty. */
export const EMPTY_RATE_LIMIT_STATE: RateLimitState = { at: 0, requestTicks: 0, tokenTicks: 0 };

/** OpenAI's headers, for each limited dimension. */
export interface RateLimitHeaders {
  "x-ratelimit-limit-requests"?: string;
  "x-ratelimit-remaining-requests"?: string;
  "x-ratelimit-reset-requests"?: string;
  "x-ratelimit-limit-tokens"?: string;
  "x-ratelimit-remaining-tokens"?: string;
  "x-ratelimit-reset-tokens"?: string;
}

export type RateLimitDimension = "requests" | "tokens";

export interface RateLimitDecision {
  allowed: boolean;
  /** The state to store: spent when allowed, the same buckets (drained to `now`) when refused. */
  state: RateLimitState;
  /** Whole seconds until the same request would be admitted (≥ 1) when refused; 0 when allowed. */
  retryAfterS: number;
  /** The dimensions that refused. */
  refusedBy: RateLimitDimension[];
  /** A request larger than a whole minute's limit: waiting never admits it. */
  tooLarge: boolean;
  headers: RateLimitHeaders;
}

function checkLimit(name: string, n: number | null): void {
  if (n !== null && (!Number.isSafeInteger(n) || n < 1 || n > MAX_LIMIT)) throw new RangeError(`${name} must be an integer in 1…${MAX_LIMIT}, got ${n}`);
}

function checkCount(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_LIMIT) throw new RangeError(`${name} must be an integer in 0…${MAX_LIMIT}, got ${n}`);
}

function checkNow(now: number): void {
  if (!Number.isSafeInteger(now) || now < 0) throw new RangeError(`now must be integer ms, got ${now}`);
}

/** Ticks left in a bucket after draining from `at` to `now` (a clock that went back drains nothing). */
function drained(ticks: number, at: number, now: number, limit: number | null): number {
  if (limit === null) return 0;
  const elapsed = Math.max(0, now - at);
  // Compared before multiplying: elapsed × limit over a long idle time could pass 2^53.
  return elapsed >= Math.ceil(ticks / limit) ? 0 : ticks - elapsed * limit;
}

/** Both buckets as of `now`. */
function drainedState(limits: RateLimits, state: RateLimitState, now: number): RateLimitState {
  checkLimit("requestsPerMinute", limits.requestsPerMinute);
  checkLimit("tokensPerMinute", limits.tokensPerMinute);
  checkNow(now);
  return {
    at: Math.max(now, state.at),
    requestTicks: drained(state.requestTicks, state.at, now, limits.requestsPerMinute),
    tokenTicks: drained(state.tokenTicks, state.at, now, limits.tokensPerMinute),
  };
}

/** Units a bucket still admits now (a lowered limit may leave it over capacity: 0). */
function remaining(ticks: number, limit: number): number {
  return Math.max(0, Math.floor((WINDOW_MS * limit - ticks) / WINDOW_MS));
}

/** Ms until a bucket is empty again (OpenAI's "reset to its initial state"). */
function resetMs(ticks: number, limit: number): number {
  return Math.ceil(ticks / limit);
}

/** Ms until a bucket admits `units` more (0: now); a request larger than the bucket waits a window and is `tooLarge`. */
function waitMs(ticks: number, limit: number | null, units: number): number {
  if (limit === null) return 0;
  if (units > limit) return Math.max(WINDOW_MS, resetMs(ticks, limit));
  return Math.max(0, Math.ceil((ticks - (limit - units) * WINDOW_MS) / limit));
}

/**
 * A duration as OpenAI's x-ratelimit-reset-* headers write it (Go's time.Duration at ms precision): "0s",
 * "250ms", "1s", "1.5s", "6m0s", "1h0m0s".
 */
export function formatResetDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`not a duration in ms: ${ms}`);
  if (ms === 0) return "0s";
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const wholeS = Math.floor((ms % 60_000) / 1000);
  const frac =
    ms % 1000
      ? `.${String(ms % 1000)
          .padStart(3, "0")
          .replace(/0+$/, "")}`
      : "";
  const s = `${wholeS}${frac}s`;
  if (h) return `${h}h${m}m${s}`;
  if (m) return `${m}m${s}`;
  return s;
}

/** The x-ratelimit-* headers of a state drained to now. */
export function rateLimitHeaders(limits: RateLimits, drainedNow: RateLimitState): RateLimitHeaders {
  const rpm = limits.requestsPerMinute;
  const tpm = limits.tokensPerMinute;
  return {
    ...(rpm === null
      ? {}
      : {
          "x-ratelimit-limit-requests": String(rpm),
          "x-ratelimit-remaining-requests": String(remaining(drainedNow.requestTicks, rpm)),
          "x-ratelimit-reset-requests": formatResetDuration(resetMs(drainedNow.requestTicks, rpm)),
        }),
    ...(tpm === null
      ? {}
      : {
          "x-ratelimit-limit-tokens": String(tpm),
          "x-ratelimit-remaining-tokens": String(remaining(drainedNow.tokenTicks, tpm)),
          "x-ratelimit-reset-tokens": formatResetDuration(resetMs(drainedNow.tokenTicks, tpm)),
        }),
  };
}

/**
 * Admits one request of `tokens` tokens (its reservation: prompt + max_tokens, settled later by
 * `refundTokens`) at `now`, or refuses it with how long to wait: the later of the two dimensions, in whole
 * seconds rounded up and at least 1, so that a client honouring Retry-After is admitted when it retries
 * (unless others spent the key meanwhile).
 */
export function checkRateLimit(limits: RateLimits, state: RateLimitState, now: number, tokens: number): RateLimitDecision {
  checkCount("tokens", tokens);
  const s = drainedState(limits, state, now);
  const rpm = limits.requestsPerMinute;
  const tpm = limits.tokensPerMinute;
  const tooLarge = tpm !== null && tokens > tpm;
  const waits: [RateLimitDimension, number][] = [
    ["requests", waitMs(s.requestTicks, rpm, 1)],
    ["tokens", waitMs(s.tokenTicks, tpm, tokens)],
  ];
  const refusedBy = waits.filter(([, ms]) => ms > 0).map(([d]) => d);
  if (refusedBy.length) {
    const wait = Math.max(...waits.map(([, ms]) => ms));
    return { allowed: false, state: s, retryAfterS: Math.max(1, Math.ceil(wait / 1000)), refusedBy, tooLarge, headers: rateLimitHeaders(limits, s) };
  }
  const spent = { at: s.at, requestTicks: rpm === null ? 0 : s.requestTicks + WINDOW_MS, tokenTicks: tpm === null ? 0 : s.tokenTicks + tokens * WINDOW_MS };
  return { allowed: true, state: spent, retryAfterS: 0, refusedBy: [], tooLarge: false, headers: rateLimitHeaders(limits, spent) };
}

/** Gives back tokens reserved but not used (reservation − actual) once a request has ended. */
export function refundTokens(limits: RateLimits, state: RateLimitState, now: number, tokens: number): RateLimitState {
  checkCount("tokens", tokens);
  const s = drainedState(limits, state, now);
  return { ...s, tokenTicks: Math.max(0, s.tokenTicks - tokens * WINDOW_MS) };
}
