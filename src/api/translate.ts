// GET /v1/translate?text=…&source=es&target=ca (cacheable by any CDN when the deployment is open) and
// POST /v1/translate for batches and long texts. The body holds only the translation, so that a repeated
// request gets the same bytes and the same strong ETag; cache statistics travel in headers (X-Cache,
// X-Alia-Sentences). Computed sentences take generation slots (admission.ts) and stop when the client leaves.
import type { Context } from "hono";
import { bearerTokenOf } from "../common/bearer-auth.ts";
import type { UnofficialStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { UNAVAILABLE, errorBody } from "../common/errors.ts";
import { AdmissionRefused, type GenerationAdmission } from "./admission.ts";
import { QuotaRefused, RateLimitRefused, accountOf, keepReserved, takeRequestLimits, type BillingSettings } from "./billing.ts";
import type { KeyRecord } from "../billing/account-store.ts";
import { translationCost } from "../billing/prices.ts";
import { splitSentences } from "../translate/sentences.ts";
import { PoolError } from "../pool/pool-client.ts";
import { LANGUAGES, languageName } from "../translate/languages.ts";
import { sha256Hex } from "../common/hash.ts";
import type { TranslationStats, Translator } from "../translate/translator.ts";
import { describeIssue, type Translation, type TranslationBatch } from "./schemas.ts";

export interface TranslateSettings {
  maxChars: number;
  maxAgeS: number;
  sMaxAgeS: number;
  /** API keys are required: answers are for the key holder only, never for shared caches (set by createApp). */
  keyed?: boolean;
}

const lang = z.string().min(1).max(32);
const GetQuery = z.strictObject({ text: z.string(), source: lang.optional(), target: lang });
const PostBody = z.strictObject({
  text: z.union([z.string(), z.array(z.string()).min(1).max(128)]),
  source: lang.optional(),
  target: lang,
  format: z.literal("text", 'only format "text" is supported').optional(),
});

const bad = (c: Context, message: string, param: string | null, code = "invalid_request") => c.json(errorBody(message, "invalid_request_error", code, param), 400);

/** `admission`: the generation slots shared with chat (none: sentences are computed without a limit). */
export function createTranslateHandlers(translator: Translator, s: TranslateSettings, admission?: GenerationAdmission, billing?: BillingSettings) {
  // Open deployments: one answer for everyone, cacheable by CDNs. With keys a shared cache would hand a
  // keyed answer to anyone without a key (a request with Authorization may only be stored by shared caches
  // when the response says `public`): private, and varying by key for the browser's own cache.
  const cacheControl = s.keyed ? `private, max-age=${s.maxAgeS}` : `public, max-age=${s.maxAgeS}, s-maxage=${s.sMaxAgeS}`;

  /** `payer`: a signed URL's key and cache policy (signed-urls.ts); otherwise the request's bearer key. */
  async function run(c: Context, texts: string[], sourceIn: string | undefined, targetIn: string, single: boolean, payer?: SignedPayer): Promise<Response> {
    const checked = checkTranslation(s.maxChars, texts, sourceIn, targetIn);
    if ("message" in checked) return bad(c, checked.message, checked.param, checked.code);
    const { source, target } = checked;

    // An account key pays per sentence: every sentence computed is reserved up front, the cached ones and
    // the computed ones are settled at their prices once answered; nothing is charged for a failure.
    const account = payer ? payer.account : billing && accountOf(c);
    let reservation: string | undefined;
    let limitHeaders: Record<string, string> = {};
    // Renewed like a generation's (a large batch under load may outlast the TTL), until settled or released.
    let stopRenewing = () => {};
    if (account) {
      // A key's per-minute limits count the request and its text's tokens twice (the text and a translation
      // about as long), before anything is reserved or computed.
      try {
        ({ headers: limitHeaders } = await takeRequestLimits(billing!, account, 2 * translator.countTokens(texts), "the text's tokens, twice: the text and its translation"));
      } catch (e) {
        if (e instanceof RateLimitRefused) return c.json(errorBody(e.message, "rate_limit_error", "rate_limit_exceeded"), 429, e.headers);
        if (e instanceof QuotaRefused) return c.json(e.body, 402);
        throw e;
      }
      const sentences = texts.reduce((n, t) => n + splitSentences(t, source).filter((p) => p.kind === "sentence").length, 0);
      const r = await billing!.store.reserve(account.keyId, translationCost(billing!.prices, { computed: sentences, cached: 0 }), billing!.reservationTtlMs);
      if ("refused" in r) return c.json(new QuotaRefused(r.reason).body, 402);
      reservation = r.id;
      stopRenewing = keepReserved(billing!, r.id);
    }
    const stats: TranslationStats = { sentences: 0, computed: 0, hits: {} };
    let out: string[];
    const clientGone = c.req.raw.signal;
    try {
      out = await translator.translateAll(texts, source, target, stats, { signal: clientGone, slots: admission?.request(payer?.tenant ?? bearerTokenOf(c)) });
      if (reservation) {
        const cost = translationCost(billing!.prices, { computed: stats.computed, cached: stats.sentences - stats.computed });
        await billing!.store.settle(reservation, {
          requestId: `${payer ? "trs" : "tr"}-${randomHex(12)}`, // trs-: paid through a signed URL
          model: `translate:${source}-${target}`,
          promptTokens: 0,
          completionTokens: 0,
          targetPasses: 0,
          costMicroEur: cost,
          costWithoutSpeculationMicroEur: cost,
          status: "completed",
        });
        reservation = undefined;
      }
    } catch (e) {
      if (reservation) await billing!.store.release(reservation).catch(() => false);
      // The client went away: nobody reads this answer (the request log records the cancellation).
      if (clientGone.aborted) return c.body(null, 499 as UnofficialStatusCode); // nginx's "client closed request"
      if (e instanceof RangeError) return bad(c, e.message, "text", "text_too_long");
      if (e instanceof AdmissionRefused) return c.json(errorBody(`too many generations at once; retry shortly (${e.message})`, "rate_limit_error", "rate_limit_exceeded"), 429, { "Retry-After": String(e.retryAfterS) });
      if (e instanceof PoolError && e.status === 503) return c.json(UNAVAILABLE.body, 503, UNAVAILABLE.headers);
      throw e;
    } finally {
      stopRenewing();
    }
    const body = JSON.stringify(single ? ({ translation: out[0], source, target } satisfies Translation) : ({ translations: out, source, target } satisfies TranslationBatch));
    const etag = `"${await sha256Hex(body)}"`;
    const tiers = Object.keys(stats.hits);
    const headers: Record<string, string> = {
      ETag: etag,
      // A signed URL's answer is the same for everyone who holds the URL: public, whatever the deployment.
      "Cache-Control": payer ? payer.cacheControl() : cacheControl,
      ...(s.keyed && !payer ? { Vary: "Authorization" } : {}),
      // A key's own limits, not for the public answer of a signed URL that caches keep.
      ...(payer ? {} : limitHeaders),
      "X-Cache": stats.computed ? "MISS" : `HIT ${tiers.join(",")}`,
      "X-Alia-Sentences": [`total=${stats.sentences}`, `computed=${stats.computed}`, ...tiers.map((t) => `${t}=${stats.hits[t]}`)].join(", "),
    };
    const inm = c.req.header("if-none-match");
    if (inm?.split(",").some((t) => t.trim() === etag)) return c.body(null, 304, headers);
    return c.body(body, 200, { ...headers, "Content-Type": "application/json; charset=utf-8" });
  }

  return {
    get: async (c: Context) => {
      const parsed = GetQuery.safeParse(c.req.query());
      if (!parsed.success) {
        const { message, param } = describeIssue(parsed.error);
        return bad(c, message, param);
      }
      const q = parsed.data;
      return run(c, [q.text], q.source, q.target, true);
    },
    post: async (c: Context) => {
      const raw = await c.req.json().catch(() => undefined);
      if (raw === undefined) return bad(c, "We could not parse the JSON body of your request.", null, "invalid_json");
      const parsed = PostBody.safeParse(raw);
      if (!parsed.success) {
        const { message, param } = describeIssue(parsed.error);
        return bad(c, message, param);
      }
      const b = parsed.data;
      return run(c, typeof b.text === "string" ? [b.text] : b.text, b.source, b.target, typeof b.text === "string");
    },
    /** A signed URL's translation (its signature and key already checked), paid by `payer`. */
    signed: (c: Context, q: { text: string; source: string; target: string }, payer: SignedPayer) => run(c, [q.text], q.source, q.target, true, payer),
  };
}

export type TranslateHandlers = ReturnType<typeof createTranslateHandlers>;

/** Who pays for a signed URL's translation, and how long caches may keep the answer. */
export interface SignedPayer {
  account: KeyRecord;
  /** Read when the answer is ready, so the lifetime is counted to `exp` from then. */
  cacheControl: () => string;
  /** Whose generation slots (admission.ts) its sentences take. */
  tenant: string;
}

/** The checks every translation passes (and a URL is signed for): the languages lower-cased, or the 400 to answer. */
export function checkTranslation(maxChars: number, texts: string[], sourceIn: string | undefined, targetIn: string): { source: string; target: string } | { message: string; param: string; code: string } {
  if (!sourceIn) return { message: "source is required: alia-edge does not guess the language of a text", param: "source", code: "invalid_request" };
  const source = sourceIn.toLowerCase();
  const target = targetIn.toLowerCase();
  const known = Object.keys(LANGUAGES).join(", ");
  if (!languageName(source)) return { message: `unknown source language '${sourceIn}' (known: ${known})`, param: "source", code: "unsupported_language" };
  if (!languageName(target)) return { message: `unknown target language '${targetIn}' (known: ${known})`, param: "target", code: "unsupported_language" };
  if (source === target) return { message: "source and target are the same language", param: "target", code: "unsupported_language_pair" };
  if (texts.some((t) => !t.trim())) return { message: "text is empty", param: "text", code: "empty_text" };
  const chars = texts.reduce((n, t) => n + t.length, 0);
  if (chars > maxChars) return { message: `text has ${chars} characters; the limit is ${maxChars} (split it into several requests)`, param: "text", code: "text_too_long" };
  return { source, target };
}

function randomHex(bytes: number): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
