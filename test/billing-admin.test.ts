// The key admin API and paid translations through an edge process on the real PostgreSQL (a fresh
// schema): an admin key creates, lists, limits and revokes keys; the secret appears in the creating answer
// only; a key without the `admin` scope is refused (403), a revoked key at once (401); a translation is
// paid per sentence, computed or from the edge's cache; an org's budget binds its keys (402, limit_source
// "org"), on one edge and across three.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountStore } from "../src/billing/account-store.ts";
import { billingSchema, type BillingSchema } from "./harness/billing-schema.ts";
import { DEFAULT_PRICE_TABLE, eur, maximumCost, translationCost } from "../src/billing/prices.ts";
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
  billing = await billingSchema("admin");
  store = billing.store;
  edge = await startEdgeProcess({ BILLING_DATABASE_URL: billing.url, LOG_REQUESTS: "false" });
});
afterAll(async () => {
  await edge?.stop("SIGKILL");
  await billing?.close();
});

const call = (key: string, method: string, path: string, body?: unknown) =>
  fetch(`${edge.url}${path}`, { method, headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });

describe("key admin API", () => {
  it("creates a key shown once, lists it without its secret, limits it and revokes it at once", async () => {
    const { key: root } = await store.createKey({ name: "ops", scopes: ["admin"] });
    const made = await call(root, "POST", "/v1/admin/keys", { name: "acme", scopes: ["chat"], budget_eur: 2.5, budget_period: "month", rpm_limit: 60 });
    expect(made.status).toBe(201);
    const k = (await made.json()) as { key: string; key_id: string; budget_eur: number; scopes: string[] };
    expect(k.key).toMatch(/^sk-alia-/);
    expect(k).toMatchObject({ budget_eur: 2.5, scopes: ["chat"] });

    const client = new OpenAI({ baseURL: `${edge.url}/v1`, apiKey: k.key, maxRetries: 0 });
    const r = await client.completions.create({ model: modelId, prompt: "La vida es", max_tokens: 4, temperature: 0 });
    expect(r.choices[0].text.length).toBeGreaterThan(0);

    const list = await (await call(root, "GET", "/v1/admin/keys")).text();
    expect(list).toContain(k.key_id);
    expect(list).not.toContain(k.key.split("_").at(-1)); // the secret is never listed

    const limited = (await (await call(root, "PATCH", `/v1/admin/keys/${k.key_id}`, { budget_eur: null, tpm_limit: 1000 })).json()) as { budget_eur: number | null; tpm_limit: number };
    expect(limited).toMatchObject({ budget_eur: null, tpm_limit: 1000 });
    expect((await call(root, "PATCH", `/v1/admin/keys/${k.key_id}`, { budget_eur: 0.0000001 })).status).toBe(400);

    // Without the admin scope: 403; the key itself cannot make keys.
    expect((await call(k.key, "POST", "/v1/admin/keys", { name: "x" })).status).toBe(403);

    expect((await call(root, "DELETE", `/v1/admin/keys/${k.key_id}`)).status).toBe(204);
    await expect(client.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    expect((await call(root, "DELETE", "/v1/admin/keys/aaaaaaaaaaaa")).status).toBe(404);
  });

  it("charges a translation per sentence — computed, then from the cache — and refuses one the budget cannot hold", async () => {
    const computed = translationCost(DEFAULT_PRICE_TABLE, { computed: 1, cached: 0 });
    const cached = translationCost(DEFAULT_PRICE_TABLE, { computed: 0, cached: 1 });
    const { key, keyId } = await store.createKey({ name: "web", scopes: ["translate"], budgetMicroEur: 2 * computed + cached, budgetPeriod: "month" });
    const url = `/v1/translate?text=${encodeURIComponent("El perro de San Roque no tiene rabo.")}&source=es&target=ca`;
    const first = await call(key, "GET", url);
    expect(first.status).toBe(200);
    expect(first.headers.get("cache-control")).toMatch(/^private/);
    expect((await store.budgetState(keyId))!.spentMicroEur).toBe(computed);
    expect((await call(key, "GET", url)).headers.get("x-cache")).toMatch(/^HIT/);
    expect((await store.budgetState(keyId))!.spentMicroEur).toBe(computed + cached);
    // Each sentence is reserved at the computed price: two of them are more than is left.
    const two = await call(key, "POST", "/v1/translate", { text: "Hola amigo. Buenos días a todos.", source: "es", target: "ca" });
    expect(two.status).toBe(402);
    expect((await two.json()) as unknown).toMatchObject({ error: { code: "insufficient_quota", limit_source: "key" } });
    expect((await store.budgetState(keyId))!).toMatchObject({ spentMicroEur: computed + cached, reservedMicroEur: 0 });
  });

  it("orgs: created, listed and limited by the admin API; a key with room left is refused (limit_source org) while its org's budget is spent", async () => {
    const { key: root } = await store.createKey({ name: "ops-orgs", scopes: ["admin"] });
    const prompt = tok.encode("El amor");
    const perRequest = maximumCost(DEFAULT_PRICE_TABLE, { model: modelId, promptTokens: prompt.length, maxTokens: 4 });
    const made = await call(root, "POST", "/v1/admin/orgs", { name: "acme", budget_eur: (perRequest - 1) / 1e6, budget_period: "month" });
    expect(made.status).toBe(201);
    const org = (await made.json()) as { org_id: string };
    expect(org).toMatchObject({ object: "organization", name: "acme", budget_eur: (perRequest - 1) / 1e6, budget_period: "month", spent_eur: 0, key_count: 0 });

    // Validation and unknown orgs, in OpenAI's error shape.
    const bad = await call(root, "POST", "/v1/admin/orgs", { name: "x", budget_eur: -1 });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { type: "invalid_request_error", param: "budget_eur" } });
    const unknown = await call(root, "POST", "/v1/admin/keys", { name: "x", org_id: "org-aaaaaaaaaaaa" });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: "org_not_found", param: "org_id", message: "no org 'org-aaaaaaaaaaaa' (see GET /v1/admin/orgs)" } });
    expect((await call(root, "POST", "/v1/admin/keys", { name: "x", org_id: "acme" })).status).toBe(400);
    expect((await call(root, "GET", "/v1/admin/orgs/org-aaaaaaaaaaaa")).status).toBe(404);
    expect((await call(root, "PATCH", `/v1/admin/orgs/${org.org_id}`, { name: "renamed" })).status).toBe(400);

    const k = (await (await call(root, "POST", "/v1/admin/keys", { name: "acme-dev", scopes: ["chat", "translate"], budget_eur: 10, org_id: org.org_id })).json()) as { key: string; key_id: string };
    expect(k).toMatchObject({ org_id: org.org_id, budget_eur: 10 });
    const complete = () => call(k.key, "POST", "/v1/completions", { model: modelId, prompt, max_tokens: 4, temperature: 0 });

    // The key has 10 € of its own; the org cannot hold one request.
    const refused = await complete();
    expect(refused.status).toBe(402);
    expect(await refused.json()).toMatchObject({ error: { type: "insufficient_quota", code: "insufficient_quota", limit_source: "org" } });
    const client = new OpenAI({ baseURL: `${edge.url}/v1`, apiKey: k.key, maxRetries: 0 });
    await expect(client.completions.create({ model: modelId, prompt, max_tokens: 4, temperature: 0 })).rejects.toMatchObject({ status: 402, code: "insufficient_quota" });

    const raised = (await (await call(root, "PATCH", `/v1/admin/orgs/${org.org_id}`, { budget_eur: perRequest / 1e6 })).json()) as { budget_eur: number };
    expect(raised).toMatchObject({ budget_eur: perRequest / 1e6, key_count: 1 });
    const ok = await complete();
    expect(ok.status).toBe(200);
    await ok.body?.cancel();
    // What is left of the org no longer covers a request, nor a translated sentence (translate.ts, same 402).
    expect(await (await complete()).json()).toMatchObject({ error: { limit_source: "org" } });
    const tr = await call(k.key, "POST", "/v1/translate", { text: "Hola amigo.", source: "es", target: "ca" });
    expect(tr.status).toBe(402);
    expect(await tr.json()).toMatchObject({ error: { code: "insufficient_quota", limit_source: "org" } });

    const spent = (await store.budgetState(k.key_id))!.spentMicroEur;
    expect(spent).toBeGreaterThan(0);
    expect(spent).toBeLessThanOrEqual(perRequest);
    const me = (await (await call(k.key, "GET", "/v1/key")).json()) as Record<string, unknown>;
    expect(me).toMatchObject({
      budget: 10,
      remaining: eur(10_000_000 - spent),
      org: { org_id: org.org_id, name: "acme", budget: perRequest / 1e6, spent: spent / 1e6, reserved: 0, remaining: (perRequest - spent) / 1e6 },
    });

    const list = (await (await call(root, "GET", "/v1/admin/orgs")).json()) as { object: string; data: { org_id: string }[] };
    expect(list.data.find((o) => o.org_id === org.org_id)).toMatchObject({ spent_eur: spent / 1e6, key_count: 1 });
    expect(await (await call(root, "PATCH", `/v1/admin/orgs/${org.org_id}`, { budget_eur: null })).json()).toMatchObject({ budget_eur: null, remaining_eur: null });
    expect((await complete()).status).toBe(200);
    // Out of the org, the key is as any other: GET /v1/key has no org.
    expect(await (await call(root, "PATCH", `/v1/admin/keys/${k.key_id}`, { org_id: null })).json()).toMatchObject({ org_id: null });
    expect(await (await call(k.key, "GET", "/v1/key")).json()).toMatchObject({ org: null });
  });

  it("holds one budget across three edge processes sharing the database: 50 concurrent requests never overspend — a key's, then an org's over two keys", async () => {
    const env = { BILLING_DATABASE_URL: billing.url, LOG_REQUESTS: "false", POOL_NODES: edge.pool, EMBEDDED_VERIFIER: "false" };
    const others = await Promise.all([startEdgeProcess(env), startEdgeProcess(env)]);
    try {
      const edges = [edge, ...others];
      const prompt = tok.encode("El amor");
      const perRequest = maximumCost(DEFAULT_PRICE_TABLE, { model: modelId, promptTokens: prompt.length, maxTokens: 12 });
      const budget = 10 * perRequest;
      const { key, keyId } = await store.createKey({ name: "shared", scopes: ["chat"], budgetMicroEur: budget, budgetPeriod: "month" });
      const statuses = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const r = await fetch(`${edges[i % 3].url}/v1/completions`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
            body: JSON.stringify({ model: modelId, prompt, max_tokens: 12, temperature: 0 }),
          });
          await r.body?.cancel();
          return r.status;
        }),
      );
      const ok = statuses.filter((x) => x === 200).length;
      expect(ok).toBeGreaterThanOrEqual(10);
      expect(statuses.filter((x) => x === 402).length).toBe(50 - ok);
      const state = (await store.budgetState(keyId))!;
      expect(state.spentMicroEur).toBeLessThanOrEqual(budget);
      expect(state.reservedMicroEur).toBe(0);

      // The same budget for an org, spent by two keys with room of their own through the three edges.
      const org = await store.createOrg({ name: "shared-org", budgetMicroEur: budget, budgetPeriod: "month" });
      const keys = await Promise.all([0, 1].map((i) => store.createKey({ name: `shared-org-${i}`, scopes: ["chat"], budgetMicroEur: 100 * budget, orgId: org.orgId })));
      const answers = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const r = await fetch(`${edges[i % 3].url}/v1/completions`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${keys[i % 2].key}` },
            body: JSON.stringify({ model: modelId, prompt, max_tokens: 12, temperature: 0 }),
          });
          if (r.status !== 402) {
            await r.body?.cancel();
            return { status: r.status };
          }
          return { status: r.status, body: (await r.json()) as { error: { limit_source?: string } } };
        }),
      );
      const orgOk = answers.filter((a) => a.status === 200).length;
      expect(orgOk).toBeGreaterThanOrEqual(10);
      const refusedForOrg = answers.filter((a) => a.status === 402 && a.body?.error.limit_source === "org").length;
      expect(refusedForOrg).toBe(50 - orgOk);
      const orgState = (await store.getOrg(org.orgId))!;
      expect(orgState.spentMicroEur).toBeLessThanOrEqual(budget);
      expect(orgState.reservedMicroEur).toBe(0);
    } finally {
      await Promise.all(others.map((e) => e.stop("SIGKILL")));
    }
  });
});
