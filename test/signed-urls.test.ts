// Signed translation URLs through the whole edge: `npm start`'s entry with BILLING_DATABASE_URL on the real
// PostgreSQL server (a fresh schema) and URL_SIGNING_SECRET. An account key signs a URL; anyone fetches it
// without a key and gets the translation with public cache headers bounded by its expiry; the key pays in
// the usage ledger (computed sentence, then the edge's cache hit). Changed, expired, revoked, unsigned and
// re-spelled and doubly authorised requests are refused, with no-store, and charge nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountStore } from "../src/billing/account-store.ts";
import { DEFAULT_PRICE_TABLE, translationCost } from "../src/billing/prices.ts";
import { importSigningSecret, MAX_EXPIRES_IN_S, signQuery } from "../src/billing/signed-url.ts";
import { billingSchema, type BillingSchema } from "./harness/billing-schema.ts";
import { startEdgeProcess, type EdgeProcess } from "./harness/processes.ts";

const SECRET = "signed-urls-test-secret-0123456789abcdef";
const STATIC_KEY = "static-key-0123456789";
const COMPUTED = translationCost(DEFAULT_PRICE_TABLE, { computed: 1, cached: 0 });
const CACHED = translationCost(DEFAULT_PRICE_TABLE, { computed: 0, cached: 1 });

let billing: BillingSchema;
let store: AccountStore;
let edge: EdgeProcess;

beforeAll(async () => {
  billing = await billingSchema("signed");
  store = billing.store;
  edge = await startEdgeProcess({ BILLING_DATABASE_URL: billing.url, URL_SIGNING_SECRET: SECRET, API_KEYS: STATIC_KEY, LOG_REQUESTS: "false" });
});
afterAll(async () => {
  await edge?.stop("SIGKILL");
  await billing?.close();
});

interface ErrorJson {
  error: { message: string; type: string; code: string; param: string | null };
}

const sign = (key: string, body: unknown, base = edge.url) =>
  fetch(`${base}/v1/translate/sign`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` }, body: JSON.stringify(body) });

async function signedUrl(key: string, body: Record<string, unknown>): Promise<{ url: string; expires_at: number; key_id: string; object: string }> {
  const r = await sign(key, body);
  const text = await r.text();
  expect(r.status, text).toBe(200);
  return JSON.parse(text);
}

/** GET without Authorization, as a browser or a CDN would. */
const open = (url: string, headers: Record<string, string> = {}) => fetch(`${edge.url}${url}`, { headers });

/** Replaces one query parameter of a path + query. */
function tamper(url: string, name: string, value: string | null): string {
  const u = new URL(url, "http://edge.test");
  if (value === null) u.searchParams.delete(name);
  else u.searchParams.set(name, value);
  return `${u.pathname}${u.search}`;
}

async function refused(r: Response, status: number, code: string): Promise<ErrorJson> {
  const body = (await r.json()) as ErrorJson;
  expect(r.status, JSON.stringify(body)).toBe(status);
  expect(body.error.code).toBe(code);
  expect(r.headers.get("cache-control")).toBe("no-store");
  return body;
}

const spent = async (keyId: string) => (await store.budgetState(keyId))!.spentMicroEur;

describe("signed translation URLs on the Node edge (PostgreSQL)", () => {
  it("signs a URL that anyone may fetch without a key: the translation, public cache headers bounded by its expiry, billed to the key", async () => {
    const { key, keyId } = await store.createKey({ name: "site", scopes: ["translate"] });
    const text = "El perro de San Roque no tiene rabo.";
    const before = Math.floor(Date.now() / 1000);
    const s = await signedUrl(key, { text, source: "ES", target: "ca", expires_in: 3600 });
    expect(s).toMatchObject({ object: "translate.signed_url", key_id: keyId });
    expect(s.url).toMatch(/^\/v1\/translate\?exp=\d+&kid=[a-z2-7]{12}&sig=[A-Za-z0-9_-]{43}&source=es&target=ca&text=[^&]+$/);
    expect(s.expires_at - before).toBeGreaterThanOrEqual(3600);
    expect(s.expires_at - before).toBeLessThanOrEqual(3602);

    const first = await open(s.url);
    const body = await first.text();
    expect(first.status, body).toBe(200);
    expect(JSON.parse(body)).toMatchObject({ source: "es", target: "ca" });
    expect(JSON.parse(body).translation.length).toBeGreaterThan(0);
    const cc = /^public, max-age=(\d+), s-maxage=(\d+)$/.exec(first.headers.get("cache-control") ?? "");
    expect(cc, first.headers.get("cache-control") ?? "").not.toBeNull();
    // Never past exp (the edge's TRANSLATE_MAX_AGE_S / S_MAXAGE_S are a day and a week: the expiry bounds both).
    for (const age of [Number(cc![1]), Number(cc![2])]) {
      expect(age).toBeLessThanOrEqual(s.expires_at - before);
      expect(age).toBeGreaterThan(3500);
    }
    expect(first.headers.get("vary")).toBeNull();
    expect(first.headers.get("x-cache")).toBe("MISS");
    expect(first.headers.get("etag")).toMatch(/^"[0-9a-f]{64}"$/);
    expect(await spent(keyId)).toBe(COMPUTED);

    // The same URL again reaches the edge (no CDN here): its own cache answers, at the hit price.
    const second = await open(s.url);
    expect(second.status).toBe(200);
    expect(await second.text()).toBe(body);
    expect(second.headers.get("x-cache")).toMatch(/^HIT/);
    expect(await spent(keyId)).toBe(COMPUTED + CACHED);

    // The ledger: one event per request, both on this key, marked as paid through a signed URL.
    const days = await store.usageByDay(keyId, "2000-01-01", "2100-01-01");
    expect(days).toEqual([expect.objectContaining({ model: "translate:es-ca", requests: 2, costMicroEur: COMPUTED + CACHED })]);
    const events = (await store.pendingExport(1000))!.events.filter((e) => e.keyId === keyId);
    expect(events.map((e) => e.requestId)).toEqual([expect.stringMatching(/^trs-/), expect.stringMatching(/^trs-/)]);
    expect(events.map((e) => e.costMicroEur)).toEqual([COMPUTED, CACHED]);

    // The same answer as the key gets with its bearer token (which stays private to it).
    const keyed = await fetch(`${edge.url}/v1/translate?${new URLSearchParams({ text, source: "es", target: "ca" })}`, { headers: { authorization: `Bearer ${key}` } });
    expect(await keyed.text()).toBe(body);
    expect(keyed.headers.get("cache-control")).toMatch(/^private/);

    // A conditional GET with the ETag: 304, still public.
    const revalidated = await open(s.url, { "if-none-match": first.headers.get("etag")! });
    expect(revalidated.status).toBe(304);
    expect(revalidated.headers.get("cache-control")).toMatch(/^public, max-age=\d+, s-maxage=\d+$/);
  });

  it("refuses a URL with any parameter changed, its signature missing or mangled, or a parameter repeated: 401, nothing charged", async () => {
    const { key, keyId } = await store.createKey({ name: "tamper", scopes: ["translate"] });
    const s = await signedUrl(key, { text: "La vida es bella.", source: "es", target: "gl", expires_in: 600 });
    const other = await store.createKey({ name: "victim", scopes: ["translate"] });
    const cases: [string, string][] = [
      [tamper(s.url, "text", "La vida es bella!"), "sig"],
      [tamper(s.url, "target", "ca"), "sig"],
      [tamper(s.url, "kid", other.keyId), "sig"],
      [tamper(s.url, "exp", String(s.expires_at + 86_400)), "sig"],
      [tamper(s.url, "sig", null), "sig"],
      [tamper(s.url, "sig", "x"), "sig"],
      [tamper(s.url, "kid", null), "kid"],
      [`${s.url}&text=otra`, "text"],
      [`${s.url}&format=text`, "sig"],
    ];
    for (const [url, param] of cases) {
      const body = await refused(await open(url), 401, "invalid_signature");
      expect(body.error).toMatchObject({ type: "authentication_error", param });
    }
    // The same values spelled otherwise (a CDN would cache it apart): refused too, so one URL is one cache entry.
    expect(s.url).toContain("%20");
    await refused(await open(s.url.replace(/%20/g, "+")), 401, "invalid_signature");
    expect(await spent(keyId)).toBe(0);
    expect(await spent(other.keyId)).toBe(0);
    // The URL itself still works.
    expect((await open(s.url)).status).toBe(200);
  });

  it("refuses an expired URL with 403 signature_expired, and one that expires while it is embedded", async () => {
    const { key, keyId } = await store.createKey({ name: "old", scopes: ["translate"] });
    // Signed with the server's secret but an exp in the past, as only the server could (the pure module).
    const past = await signQuery(await importSigningSecret(SECRET), {
      path: "/v1/translate",
      params: { text: "Hola.", source: "es", target: "ca" },
      kid: keyId,
      exp: Math.floor(Date.now() / 1000) - 1,
    });
    const body = await refused(await open(`/v1/translate?${past}`), 403, "signature_expired");
    expect(body.error).toMatchObject({ type: "permission_error", param: "exp" });

    const s = await signedUrl(key, { text: "Buenos días.", source: "es", target: "ca", expires_in: 1 });
    const deadline = Date.now() + 10_000;
    while (Date.now() / 1000 < s.expires_at && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await refused(await open(s.url), 403, "signature_expired");
    expect(await spent(keyId)).toBe(0);
  });

  it("refuses the URLs of a revoked key (401) and of a key without the translate scope (403)", async () => {
    const { key, keyId } = await store.createKey({ name: "revoked", scopes: ["translate"] });
    const s = await signedUrl(key, { text: "El amor es ciego.", source: "es", target: "ca" });
    expect((await open(s.url)).status).toBe(200);
    const charged = await spent(keyId);
    await store.revokeKey(keyId);
    const body = await refused(await open(s.url), 401, "invalid_api_key");
    expect(body.error.message).toMatch(/revoked/);
    expect(await spent(keyId)).toBe(charged);

    // A chat-only key cannot sign (the key check), nor pay for a URL made for it with the server's secret.
    const chat = await store.createKey({ name: "chat", scopes: ["chat"] });
    expect((await sign(chat.key, { text: "Hola.", source: "es", target: "ca" })).status).toBe(403);
    const forged = await signQuery(await importSigningSecret(SECRET), { path: "/v1/translate", params: { text: "Hola.", source: "es", target: "ca" }, kid: chat.keyId, exp: Math.floor(Date.now() / 1000) + 60 });
    await refused(await open(`/v1/translate?${forged}`), 403, "permission_denied");
  });

  it("answers a key whose budget is spent with 402, never cached", async () => {
    const { key } = await store.createKey({ name: "broke", scopes: ["translate"], budgetMicroEur: 0, budgetPeriod: "month" });
    const s = await signedUrl(key, { text: "No tengo dinero.", source: "es", target: "ca" });
    await refused(await open(s.url), 402, "insufficient_quota");
  });

  it("still refuses an unsigned request without a key, and a signed one that also sends a key", async () => {
    const unsigned = await open(`/v1/translate?${new URLSearchParams({ text: "Hola.", source: "es", target: "ca" })}`);
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as ErrorJson).error.code).toBe("invalid_api_key");
    const { key } = await store.createKey({ name: "both", scopes: ["translate"] });
    const s = await signedUrl(key, { text: "Hola.", source: "es", target: "ca" });
    await refused(await open(s.url, { authorization: `Bearer ${key}` }), 400, "invalid_request");
  });

  it("validates what it signs: account keys only, expires_in within 30 days, the translation's own checks, URL length", async () => {
    const { key } = await store.createKey({ name: "checks", scopes: ["translate"] });
    const unauthenticated = await fetch(`${edge.url}/v1/translate/sign`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(unauthenticated.status).toBe(401);
    const staticKey = await sign(STATIC_KEY, { text: "Hola.", source: "es", target: "ca" });
    expect(staticKey.status).toBe(403);
    expect(((await staticKey.json()) as ErrorJson).error).toMatchObject({ code: "no_account", type: "permission_error" });
    const bad: [Record<string, unknown>, string, string][] = [
      [{ text: "Hola.", source: "es", target: "ca", expires_in: 0 }, "expires_in", "invalid_request"],
      [{ text: "Hola.", source: "es", target: "ca", expires_in: MAX_EXPIRES_IN_S + 1 }, "expires_in", "invalid_request"],
      [{ text: "Hola.", source: "es", target: "ca", expires_in: 1.5 }, "expires_in", "invalid_request"],
      [{ text: "Hola.", source: "es", target: "xx" }, "target", "unsupported_language"],
      [{ text: "Hola.", source: "es", target: "es" }, "target", "unsupported_language_pair"],
      [{ text: "  ", source: "es", target: "ca" }, "text", "empty_text"],
      [{ text: "Hola.", target: "ca" }, "source", "invalid_request"],
      [{ text: "Hola.", source: "es", target: "ca", kid: "abcdefghijkl" }, "kid", "invalid_request"],
      [{ text: "é".repeat(2000), source: "es", target: "ca" }, "text", "url_too_long"],
      [{ text: "Hola \ud800", source: "es", target: "ca" }, "text", "invalid_request"],
    ];
    for (const [body, param, code] of bad) {
      const r = await sign(key, body);
      const j = (await r.json()) as ErrorJson;
      expect(r.status, JSON.stringify(j)).toBe(400);
      expect(j.error, JSON.stringify(body).slice(0, 80)).toMatchObject({ type: "invalid_request_error", param, code });
    }
    // Just under the bound, and the longest life: signed.
    const ok = await signedUrl(key, { text: "é".repeat(1000), source: "es", target: "ca", expires_in: MAX_EXPIRES_IN_S });
    expect(ok.url.length).toBeLessThanOrEqual(8000);
  });

  it("says so when signed URLs are off (no URL_SIGNING_SECRET): 404 signed_urls_disabled for signing and for a signed URL", async () => {
    const { key } = await store.createKey({ name: "off", scopes: ["translate"] });
    const s = await signedUrl(key, { text: "Hola.", source: "es", target: "ca" });
    const off = await startEdgeProcess({ BILLING_DATABASE_URL: billing.url, URL_SIGNING_SECRET: "", LOG_REQUESTS: "false", POOL_NODES: edge.pool, EMBEDDED_VERIFIER: "false" });
    try {
      const r = await fetch(`${off.url}${s.url}`);
      const body = (await r.json()) as ErrorJson;
      expect(r.status).toBe(404);
      expect(body.error).toMatchObject({ code: "signed_urls_disabled" });
      expect(body.error.message).toMatch(/URL_SIGNING_SECRET/);
      expect((await sign(key, { text: "Hola.", source: "es", target: "ca" }, off.url)).status).toBe(404);
      // Unsigned requests are untouched.
      expect((await fetch(`${off.url}/v1/translate?text=Hola.&source=es&target=ca`)).status).toBe(401);
    } finally {
      await off.stop("SIGKILL");
    }
  });
});
