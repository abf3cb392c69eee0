// Pay-per-request through the whole edge: `npm start`'s entry with BILLING_DATABASE_URL on the real
// PostgreSQL server (a fresh schema), keys made with the account store, requests with the official
// `openai` client. Every response carries its cost; keys are checked for scope; a budget is never
// overrun by concurrent requests (each reserves its maximum cost first); usage and limits are readable.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountStore } from "../src/billing/account-store.ts";
import { billingSchema, type BillingSchema } from "./harness/billing-schema.ts";
import { DEFAULT_PRICE_TABLE, maximumCost } from "../src/billing/prices.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { startEdgeProcess, type EdgeProcess } from "./harness/processes.ts";

let billing: BillingSchema;
let store: AccountStore;
let edge: EdgeProcess;
let modelId: string;
let tok: TextTokenizer;

beforeAll(async () => {
  ({ modelId, tok } = await loadDefaultPair());
  billing = await billingSchema("billing");
  store = billing.store;
  edge = await startEdgeProcess({ BILLING_DATABASE_URL: billing.url, LOG_REQUESTS: "false" });
});
afterAll(async () => {
  await edge?.stop("SIGKILL");
  await billing?.close();
});

const client = (key: string) => new OpenAI({ baseURL: `${edge.url}/v1`, apiKey: key, maxRetries: 0 });

describe("pay-per-request keys on the Node edge (PostgreSQL)", () => {
  it("answers with the request's cost and its saving, in plain and streamed responses", async () => {
    const { key } = await store.createKey({ name: "acme", scopes: ["chat"] });
    const r = await fetch(`${edge.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: modelId, messages: [{ role: "user", content: "Hola" }], max_tokens: 16, temperature: 0 }),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { usage: { completion_tokens: number; cost: { currency: string; total: number; without_speculation: number; saving: number } } };
    expect(body.usage.cost.currency).toBe("EUR");
    expect(body.usage.cost.total).toBeGreaterThan(0);
    expect(body.usage.cost.without_speculation).toBeGreaterThanOrEqual(body.usage.cost.total);
    expect(body.usage.cost.saving).toBeCloseTo(body.usage.cost.without_speculation - body.usage.cost.total, 6);
    expect(r.headers.get("x-alia-cost")).toBe(`${body.usage.cost.total.toFixed(6)} EUR`);

    const stream = await client(key).chat.completions.create({
      model: modelId,
      messages: [{ role: "user", content: "Buenos días" }],
      max_tokens: 16,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let last: OpenAI.Chat.Completions.ChatCompletionChunk | undefined;
    for await (const chunk of stream) last = chunk;
    const streamed = last?.usage as unknown as { cost?: { total: number } } | undefined;
    expect(streamed?.cost?.total).toBeGreaterThan(0);
  });

  it("refuses a wrong key (401) and a key without the route's scope (403), with OpenAI's error classes", async () => {
    await expect(client("sk-alia-aaaaaaaaaaaa_wrong").models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const { key } = await store.createKey({ name: "translator", scopes: ["translate"] });
    await expect(client(key).chat.completions.create({ model: modelId, messages: [{ role: "user", content: "Hola" }], max_tokens: 4 })).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
    const { key: revoked, keyId } = await store.createKey({ name: "gone", scopes: ["chat"] });
    await store.revokeKey(keyId);
    await expect(client(revoked).models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("limits a key to 3 requests per minute: the 4th gets 429 rate_limit_exceeded with Retry-After and x-ratelimit-*", async () => {
    const { key } = await store.createKey({ name: "rpm3", scopes: ["chat"], rpmLimit: 3, tpmLimit: 10_000 });
    const prompt = tok.encode("La vida es");
    const post = (body: Record<string, unknown>) =>
      fetch(`${edge.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: modelId, prompt, max_tokens: 2, temperature: 0, ...body }),
      });
    // A burst: two plain requests and a stream, all admitted, each with the key's headers (known before a stream starts).
    const ok = await Promise.all([post({}), post({}), post({ stream: true })]);
    for (const r of ok) {
      expect(r.status).toBe(200);
      expect(r.headers.get("x-ratelimit-limit-requests")).toBe("3");
      expect(r.headers.get("x-ratelimit-limit-tokens")).toBe("10000");
      expect(r.headers.get("x-ratelimit-reset-requests")).toMatch(/^\d+(\.\d+)?(ms|s)$|^\d+m[\d.]+s$/);
      await r.text();
    }
    expect(ok.map((r) => r.headers.get("x-ratelimit-remaining-requests")).sort()).toEqual(["0", "1", "2"]);

    const refused = await post({});
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    expect(((await refused.json()) as { error: { type: string; code: string } }).error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
    await expect(client(key).completions.create({ model: modelId, prompt, max_tokens: 2 })).rejects.toBeInstanceOf(OpenAI.RateLimitError);

    // Larger than a whole minute's tokens: 429 that says so, and that no client should retry.
    const { key: small } = await store.createKey({ name: "tpm8", scopes: ["chat"], tpmLimit: 8 });
    const tooLarge = await fetch(`${edge.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${small}` },
      body: JSON.stringify({ model: modelId, prompt, max_tokens: 16 }),
    });
    expect(tooLarge.status).toBe(429);
    expect(tooLarge.headers.get("retry-after")).toBeNull();
    expect(tooLarge.headers.get("x-should-retry")).toBe("false");
    expect(((await tooLarge.json()) as { error: { message: string } }).error.message).toMatch(/can never be admitted/);
  });

  it("never lets 50 concurrent requests spend past a budget that allows 10; the rest get 402 insufficient_quota", async () => {
    const prompt = tok.encode("La vida es");
    const maxTokens = 12;
    const perRequest = maximumCost(DEFAULT_PRICE_TABLE, { model: modelId, promptTokens: prompt.length, maxTokens });
    const budget = 10 * perRequest;
    const { key, keyId } = await store.createKey({ name: "small", scopes: ["chat"], budgetMicroEur: budget, budgetPeriod: "month" });
    const statuses = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const r = await fetch(`${edge.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
          body: JSON.stringify({ model: modelId, prompt, max_tokens: maxTokens, temperature: 0 }),
        });
        const j = (await r.json()) as { error?: { code: string; limit_source?: string } };
        if (r.status === 402) expect(j.error).toMatchObject({ code: "insufficient_quota", limit_source: "key" });
        return r.status;
      }),
    );
    const ok = statuses.filter((s) => s === 200).length;
    expect(ok).toBeGreaterThanOrEqual(10);
    expect(statuses.filter((s) => s === 402).length).toBe(50 - ok);
    const state = await store.budgetState(keyId);
    expect(state!.spentMicroEur).toBeLessThanOrEqual(budget);
    expect(state!.reservedMicroEur).toBe(0);
    const days = await store.usageByDay(keyId, "2000-01-01", "2100-01-01");
    expect(days.reduce((n, d) => n + d.requests, 0)).toBe(ok);
    expect(days.reduce((n, d) => n + d.costMicroEur, 0)).toBe(state!.spentMicroEur);

    // The key's own view: limits and spend, usage by day.
    const me = (await (await fetch(`${edge.url}/v1/key`, { headers: { authorization: `Bearer ${key}` } })).json()) as { key_id: string; spent: number; remaining: number };
    expect(me.key_id).toBe(keyId);
    expect(me.spent).toBeCloseTo(state!.spentMicroEur / 1e6, 6);
    expect(me.remaining).toBeCloseTo((budget - state!.spentMicroEur) / 1e6, 6);
    const usage = (await (await fetch(`${edge.url}/v1/usage`, { headers: { authorization: `Bearer ${key}` } })).json()) as { data: { requests: number }[] };
    expect(usage.data.reduce((n, d) => n + d.requests, 0)).toBe(ok);
  });
});
