// Signed translation URLs at the edge (docs/BILLING.md, "Signed translation URLs"). POST /v1/translate/sign
// makes one for the calling account key; GET /v1/translate?…&kid=…&exp=…&sig=… is then served to anyone,
// without Authorization, billed to that key through the translation's own metering, with an answer any CDN
// may cache until exp. The server signs (HMAC under URL_SIGNING_SECRET): customers hold no second secret,
// and a key's revocation, or a new secret, ends its URLs at once.
import type { Context, MiddlewareHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { errorBody, type ErrorType } from "../common/errors.ts";
import { CanonicalFormError, MAX_SIGNED_URL_BYTES, SIGNATURE_PARAMS, importSigningSecret, signQuery, signedCacheControl, verifySignedQuery } from "../billing/signed-url.ts";
import { accountOf, type BillingSettings } from "./billing.ts";
import { describeIssue, SignTranslationRequestSchema, type SignedTranslationUrl } from "./schemas.ts";
import { checkTranslation, type TranslateHandlers, type TranslateSettings } from "./translate.ts";

/** The one route a signed URL is good for (it is part of what is signed). */
const PATH = "/v1/translate";

/** What a signed URL may carry besides kid, exp and sig: GET /v1/translate's parameters. */
const SignedParams = z.strictObject({ text: z.string(), source: z.string().min(1).max(32), target: z.string().min(1).max(32) });

export interface SignedUrlOptions {
  /** URL_SIGNING_SECRET (signs and verifies), then URL_SIGNING_SECRET_PREVIOUS (only verifies); none: off. */
  secrets: readonly string[];
  /** The account store that pays (none: off, as there is no one to bill). */
  billing?: BillingSettings;
  translate: TranslateHandlers;
  settings: TranslateSettings;
}

export function signedUrlRoutes(o: SignedUrlOptions) {
  // Checked here, at start-up, rather than as a rejected promise on the first request.
  for (const secret of o.secrets) if (secret.length < 32) throw new RangeError("a URL signing secret needs at least 32 characters");
  const keys = o.secrets.length ? Promise.all(o.secrets.map(importSigningSecret)) : undefined;
  const now = () => Date.now() / 1000;
  const off = !keys
    ? "Signed translation URLs are not enabled on this server (the operator has not set URL_SIGNING_SECRET)."
    : !o.billing
      ? "Signed translation URLs are not available on this server: they are paid by account keys, and it has no account store (BILLING_DATABASE_URL on Node, the BILLING_DB binding in a Worker)."
      : undefined;
  const fail = (c: Context, status: ContentfulStatusCode, message: string, type: ErrorType, code: string, param: string | null = null) => c.json(errorBody(message, type, code, param), status);

  async function serve(c: Context, rawQuery: string): Promise<Response> {
    if (off) return fail(c, 404, off, "invalid_request_error", "signed_urls_disabled");
    // Two credentials would leave open which one pays.
    if (c.req.header("authorization") !== undefined)
      return fail(
        c,
        400,
        "A signed URL carries its own authorization (kid, exp, sig): send it without an Authorization header, or drop kid, exp and sig to use your key.",
        "invalid_request_error",
        "invalid_request",
        "sig",
      );
    const v = await verifySignedQuery(await keys!, PATH, rawQuery, now());
    if (!v.ok) return v.reason === "expired" ? fail(c, 403, v.message, "permission_error", "signature_expired", v.param) : fail(c, 401, v.message, "authentication_error", "invalid_signature", v.param);
    // Only now, for an authentic URL: the store is read (no cache), so a revocation holds from the next request.
    const key = await o.billing!.store.getKey(v.kid);
    if (!key || key.revokedAt) return fail(c, 401, "The key that signed this URL has been revoked: its signed URLs are refused.", "authentication_error", "invalid_api_key", "kid");
    if (!key.scopes.includes("translate")) return fail(c, 403, "The key that signed this URL may not translate (it needs the 'translate' scope).", "permission_error", "permission_denied", "kid");
    const q = SignedParams.safeParse(v.params);
    if (!q.success) {
      const { message, param } = describeIssue(q.error);
      return fail(c, 400, message, "invalid_request_error", "invalid_request", param);
    }
    return o.translate.signed(c, q.data, {
      account: key,
      tenant: `key:${key.keyId}`,
      cacheControl: () => signedCacheControl(v.exp, now(), o.settings.maxAgeS, o.settings.sMaxAgeS),
    });
  }

  return {
    /**
     * Before the key middleware on GET /v1/translate: a query carrying kid, exp or sig is a signed URL, checked
     * and answered here (never passed on to the key check); any other request goes on as before.
     */
    gate: (async (c, next) => {
      if (c.req.method !== "GET" && c.req.method !== "HEAD") return next();
      const rawQuery = new URL(c.req.url).search.slice(1);
      if (![...new URLSearchParams(rawQuery).keys()].some((name) => (SIGNATURE_PARAMS as readonly string[]).includes(name))) return next();
      const res = await serve(c, rawQuery);
      // A refusal holds for that moment only (a spent budget can be raised, a 503 passes): no cache may keep it.
      if (res.status !== 200 && res.status !== 304) res.headers.set("Cache-Control", "no-store");
      return res;
    }) satisfies MiddlewareHandler,

    /** POST /v1/translate/sign (after the key middleware): a signed URL paid by the calling account key. */
    sign: async (c: Context) => {
      if (off) return fail(c, 404, off, "invalid_request_error", "signed_urls_disabled");
      const key = accountOf(c);
      if (!key) return fail(c, 403, "Only an account key (sk-alia-…) can sign a URL: a static API_KEYS key has no account to bill for the translations.", "permission_error", "no_account");
      const raw = await c.req.json().catch(() => undefined);
      if (raw === undefined) return fail(c, 400, "We could not parse the JSON body of your request.", "invalid_request_error", "invalid_json");
      const parsed = SignTranslationRequestSchema.safeParse(raw);
      if (!parsed.success) {
        const { message, param } = describeIssue(parsed.error);
        return fail(c, 400, message, "invalid_request_error", "invalid_request", param);
      }
      const b = parsed.data;
      // A URL that can only ever be refused is not worth signing: the same checks as the translation itself.
      const checked = checkTranslation(o.settings.maxChars, [b.text], b.source, b.target);
      if ("message" in checked) return fail(c, 400, checked.message, "invalid_request_error", checked.code, checked.param);
      const exp = Math.floor(now()) + b.expires_in;
      let query: string;
      try {
        query = await signQuery((await keys!)[0], { path: PATH, params: { text: b.text, source: checked.source, target: checked.target }, kid: key.keyId, exp });
      } catch (e) {
        if (e instanceof CanonicalFormError) return fail(c, 400, e.message, "invalid_request_error", "invalid_request", "text");
        throw e;
      }
      const url = `${PATH}?${query}`; // percent-encoded: ASCII, so length is bytes
      if (url.length > MAX_SIGNED_URL_BYTES)
        return fail(
          c,
          400,
          `The signed URL would be ${url.length} bytes long; CDNs and proxies may cut or refuse URLs past ${MAX_SIGNED_URL_BYTES} bytes. Split the text into several URLs (or translate it with POST /v1/translate).`,
          "invalid_request_error",
          "url_too_long",
          "text",
        );
      return c.json({ object: "translate.signed_url", url, expires_at: exp, key_id: key.keyId } satisfies SignedTranslationUrl);
    },
  };
}
