// Pay-per-request at the edge (docs/BILLING.md): who is calling (an account key, or a static API_KEYS
// key), what the key may do (scopes), and each generation's metering — its requests and tokens per minute
// taken (429 beyond them), its maximum cost reserved against the key's budget before it starts, the actual
// cost settled into the usage ledger when it ends, the reservation released when it fails or its client
// leaves. The store keeps every edge process to one budget and one set of per-minute limits.
import type { Context, MiddlewareHandler } from "hono";
import { bearerTokenOf } from "../common/bearer-auth.ts";
import { errorBody, type ErrorBody } from "../common/errors.ts";
import type { AccountStore, KeyRecord, ReserveRefusal, Scope } from "../billing/account-store.ts";
import type { RateLimitDecision, RateLimitHeaders, RateLimits } from "../billing/rate-limit.ts";
import { costHeader, costWithoutSpeculation, maximumCost, targetWorkOf, usageCost, type CostWithSaving, type PassTimer, type PriceTable } from "../billing/prices.ts";
import type { DecodeStats } from "../speculative/speculative-decoder.ts";

export interface BillingSettings {
  store: AccountStore;
  prices: PriceTable;
  /** How long a reservation holds if its edge dies without settling it (the store expires it after); a running request renews it. */
  reservationTtlMs: number;
  /** Target pass times for the cost without speculation (none: every pass costs the same). */
  gpu?: PassTimer;
}

/**
 * Renews a reservation every third of its TTL until the returned stop is called, so that a request longer
 * than the TTL keeps its budget held (an expired reservation no longer counts against the budget), while an
 * edge that dies frees it within one TTL. A failed renewal is retried at the next tick.
 */
export function keepReserved(b: BillingSettings, reservationId: string): () => void {
  const timer = setInterval(() => void b.store.renew(reservationId, b.reservationTtlMs).catch(() => false), Math.max(500, b.reservationTtlMs / 3));
  return () => clearInterval(timer);
}

/** The key behind a request: an account key's record, or undefined for a static API_KEYS key. */
const accounts = new WeakMap<Request, KeyRecord>();
export const accountOf = (c: Context): KeyRecord | undefined => accounts.get(c.req.raw);

/** The scope a route needs (none: any valid key). */
function scopeOf(path: string): Scope | undefined {
  if (path === "/v1/chat/completions" || path === "/v1/completions") return "chat";
  if (path.startsWith("/v1/translate")) return "translate";
  if (path.startsWith("/v1/admin")) return "admin";
  return undefined;
}

const reply = (status: 401 | 403, message: string, type: "authentication_error" | "permission_error", code: string) =>
  new Response(JSON.stringify(errorBody(message, type, code)), { status, headers: { "content-type": "application/json" } });

/**
 * /v1/* needs a key: one of the static API_KEYS (a single-user install; every scope) or an account key
 * from the store, checked on every request so that a revocation holds at once.
 */
export function requireAccountKey(store: AccountStore, staticKeys: readonly string[] = []): MiddlewareHandler {
  const fixed = new Set(staticKeys);
  return async (c, next) => {
    const header = c.req.header("authorization");
    if (!header) return reply(401, "You didn't provide an API key (Authorization: Bearer <key>).", "authentication_error", "invalid_api_key");
    const token = bearerTokenOf(c);
    if (!fixed.has(token)) {
      const key = /^Bearer\s+/i.test(header) ? await store.verifyKey(token) : undefined;
      if (!key) return reply(401, "Incorrect API key provided.", "authentication_error", "invalid_api_key");
      const needed = scopeOf(c.req.path);
      if (needed && !key.scopes.includes(needed)) return reply(403, `This key may not use ${c.req.path} (it needs the '${needed}' scope).`, "permission_error", "permission_denied");
      accounts.set(c.req.raw, key);
    }
    await next();
  };
}

const QUOTA_MESSAGES: Record<ReserveRefusal["reason"], string> = {
  budget: "This key's budget cannot cover the request (its maximum cost is reserved up front: lower max_tokens or raise the budget).",
  org_budget: "This key's organization budget cannot cover the request (its maximum cost is reserved up front: lower max_tokens or raise the organization's budget).",
  revoked: "This key is no longer valid.",
  unknown_key: "This key is no longer valid.",
};

/** A generation refused for its key's budget or its org's: 402 insufficient_quota. */
export class QuotaRefused extends Error {
  constructor(readonly reason: ReserveRefusal["reason"]) {
    super(QUOTA_MESSAGES[reason]);
  }

  /** The 402 body (OpenAI's shape, with OpenRouter's `limit_source`: whose budget refused). */
  get body(): ErrorBody {
    const { error } = errorBody(this.message, "insufficient_quota", "insufficient_quota");
    return { error: { ...error, limit_source: this.reason === "org_budget" ? "org" : "key" } };
  }
}

/**
 * A generation refused by its key's requests or tokens per minute: 429 rate_limit_exceeded with Retry-After
 * and the x-ratelimit-* headers. `tooLarge`: prompt + max_tokens exceed a whole minute's tokens, so waiting
 * never admits it: still 429 (as OpenAI answers "Request too large"), but without Retry-After and with
 * `x-should-retry: false`, which OpenAI's clients honour instead of retrying in vain.
 */
export class RateLimitRefused extends Error {
  constructor(
    readonly decision: RateLimitDecision,
    readonly limits: RateLimits,
    readonly requestedTokens: number,
    /** What the tokens counted are, for the message. */
    counted = "prompt + max_tokens",
  ) {
    super(
      decision.tooLarge
        ? `Request too large: it needs ${requestedTokens} tokens (${counted}) but this key's limit is ${limits.tokensPerMinute} tokens per minute, so it can never be admitted; lower max_tokens or shorten the prompt.`
        : `Rate limit reached for this key (${describeLimits(decision, limits)}); retry in ${decision.retryAfterS} s.`,
    );
  }

  get headers(): Record<string, string> {
    return { ...rateLimitHeaderRecord(this.decision.headers), ...(this.decision.tooLarge ? { "x-should-retry": "false" } : { "Retry-After": String(this.decision.retryAfterS) }) };
  }
}

function describeLimits(d: RateLimitDecision, l: RateLimits): string {
  return d.refusedBy.map((x) => (x === "requests" ? `${l.requestsPerMinute} requests per minute` : `${l.tokensPerMinute} tokens per minute`)).join(", ");
}

const rateLimitHeaderRecord = (h: RateLimitHeaders): Record<string, string> => Object.fromEntries(Object.entries(h).filter((e): e is [string, string] => e[1] !== undefined));

/**
 * Takes one request and `tokens` tokens from an account key's per-minute limits (nothing for a key without
 * limits): the admitted request's x-ratelimit-* headers, and the tokens taken (0 when tokens are not
 * limited). RateLimitRefused, or QuotaRefused for a key revoked meanwhile.
 */
export async function takeRequestLimits(b: BillingSettings, key: KeyRecord, tokens: number, counted?: string): Promise<{ headers: Record<string, string>; tokensTaken: number }> {
  if (key.rpmLimit === null && key.tpmLimit === null) return { headers: {}, tokensTaken: 0 };
  const take = await b.store.takeRateLimit(key.keyId, tokens);
  if ("refused" in take) throw new QuotaRefused(take.reason);
  if (!take.allowed) throw new RateLimitRefused(take, take.limits, tokens, counted);
  return { headers: rateLimitHeaderRecord(take.headers), tokensTaken: take.limits.tokensPerMinute !== null ? tokens : 0 };
}

export interface MeteredCost {
  cost: CostWithSaving;
  /** `usage.cost` of the response. */
  usage: ReturnType<typeof usageCost>;
  header: string;
}

/** One generation's metering: reserved when created, then settled (with what it cost) or released. */
export class RequestMeter {
  private done = false;
  private readonly stopRenewing: () => void;

  private constructor(
    private readonly b: BillingSettings,
    private readonly key: KeyRecord,
    private readonly reservationId: string,
    private readonly model: string,
    /** Completion tokens taken from the key's tokens per minute (max_tokens; 0 when not limited). */
    private readonly limitedMaxTokens: number,
    /** The x-ratelimit-* headers of the admitted request (empty for a key without limits). */
    readonly rateLimitHeaders: Record<string, string>,
  ) {
    this.stopRenewing = keepReserved(b, reservationId);
  }

  /**
   * Takes the request (1 request, prompt + max_tokens tokens) from the key's per-minute limits, then reserves
   * its maximum cost (every prompt token and max_tokens output tokens) on the key. RateLimitRefused or
   * QuotaRefused when either refuses; a request refused for its budget gives its tokens back (it still
   * counts as a request).
   */
  static async start(b: BillingSettings, key: KeyRecord, r: { model: string; promptTokens: number; maxTokens: number }): Promise<RequestMeter> {
    const { headers, tokensTaken: limited } = await takeRequestLimits(b, key, r.promptTokens + r.maxTokens);
    const res = await b.store.reserve(key.keyId, maximumCost(b.prices, r), b.reservationTtlMs);
    if ("refused" in res) {
      if (limited) await b.store.refundRateLimitTokens(key.keyId, limited).catch(() => {});
      throw new QuotaRefused(res.reason);
    }
    return new RequestMeter(b, key, res.id, r.model, limited ? r.maxTokens : 0, headers);
  }

  /** Gives back the completion tokens taken but not generated; in the background (the response need not wait). */
  private refundUnused(completionTokens: number): void {
    const unused = this.limitedMaxTokens - completionTokens;
    if (unused > 0) void this.b.store.refundRateLimitTokens(this.key.keyId, unused).catch(() => {}); // lost: the key waits a little longer
  }

  /** What the finished generation cost (and would have cost without speculation). */
  cost(stats: DecodeStats, promptTokens: number, completionTokens: number): MeteredCost {
    // The passes are costed at the rows the pool said they carried (other sessions' included): under load
    // a verify chunk's extra tokens cost more, and the saving shown shrinks as it really does.
    const rows = stats.passRows.reports ? Math.max(1, Math.round(stats.passRows.sum / stats.passRows.reports)) : 1;
    const gpu = this.b.gpu && { timer: this.b.gpu, rowsPerPass: rows };
    const cost = costWithoutSpeculation(this.b.prices, { model: this.model, promptTokens, completionTokens }, targetWorkOf(stats), gpu);
    return { cost, usage: usageCost(cost), header: costHeader(cost.total) };
  }

  /** Records the generation in the ledger and counts its cost against the budget (once). */
  async settle(requestId: string, stats: DecodeStats, m: MeteredCost, usage: { promptTokens: number; completionTokens: number }, status = "completed"): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.stopRenewing();
    this.refundUnused(usage.completionTokens);
    await this.b.store.settle(this.reservationId, {
      requestId,
      model: this.model,
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      targetPasses: stats.targetPasses,
      costMicroEur: m.cost.total,
      costWithoutSpeculationMicroEur: m.cost.withoutSpeculation,
      status,
    });
  }

  /** A generation that failed or whose client left: nothing is charged, and its completion tokens go back to the key's tokens per minute. */
  async release(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.stopRenewing();
    this.refundUnused(0);
    await this.b.store.release(this.reservationId).catch(() => false); // expires anyway
  }

  get keyId(): string {
    return this.key.keyId;
  }
}
