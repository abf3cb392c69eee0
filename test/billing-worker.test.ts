// Pay-per-request in workerd: the suffix-drafting Worker (bundled by wrangler as for deploy) with a Hyperdrive
// binding to the real PostgreSQL server (a fresh schema), beside a Node edge process on the same schema and
// one verifier behind both. Account keys, scopes, rate limits and costs behave as on Node, with the official
// `openai` client's typed errors, translations are rate-limited and signed translation URLs served; and a budget is never overrun: 50 concurrent requests to the Worker, or split between
// the Worker and the Node edge after the Worker spent part of it, never spend past a budget that allows 10.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountStore } from "../src/billing/account-store.ts";
import { DEFAULT_PRICE_TABLE, maximumCost, requestCost } from "../src/billing/prices.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { TARGET_FACTS } from "../src/model-pair/load-model-pair.ts";
import { billingSchema, PG_URL, type BillingSchema } from "./harness/billing-schema.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";
import { startEdgeProcess, startVerifierProcess, type EdgeProcess, type ListeningProcess } from "./harness/processes.ts";
import { bundleObjects, startWorkerd, type WorkerdEdge } from "./harness/workerd.ts";

const TOKEN = "billing-worker-token-0123456789";
const SIGNING_SECRET = "billing-worker-url-signing-secret-0123456789";

let billing: BillingSchema;
let store: AccountStore;
let verifier: ListeningProcess;
let worker: WorkerdEdge;
let node: EdgeProcess;
let modelId: string;
let tok: TextTokenizer;

beforeAll(async () => {
  const pair = await loadDefaultPair();
  ({ modelId, tok } = pair);
  billing = await billingSchema("worker");
  store = billing.store;
  verifier = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN });
  // Hyperdrive's local mode wants a password; the server trusts loopback, so any will do.
  const pg = new URL(PG_URL);
  pg.password = "local";
  [worker, node] = await Promise.all([
    startWorkerd({
      env: "suffix",
      bindings: { TARGET_BUNDLE_PREFIX: "bundles/target/", POOL_NODES: verifier.url, POOL_TOKEN: TOKEN, SPEC_GAMMA: "4", BILLING_DB_SCHEMA: billing.schema, URL_SIGNING_SECRET: SIGNING_SECRET },
      models: await bundleObjects(pair.targetDir, "bundles/target/", ["manifest.json", ...TARGET_FACTS]),
      hyperdrives: { BILLING_DB: pg.href },
    }),
    startEdgeProcess({ POOL_NODES: verifier.url, POOL_TOKEN: TOKEN, BILLING_DATABASE_URL: billing.url, LOG_REQUESTS: "false" }),
  ]);
});

afterAll(async () => {
  await worker?.stop();
  await node?.stop("SIGKILL");
  await verifier?.stop("SIGKILL");
  await billing?.close();
});

const client = (key: string) => new OpenAI({ baseURL: `${worker.url}/v1`, apiKey: key, maxRetries: 0, timeout: 60_000 });

describe("pay-per-request keys in workerd (Hyperdrive to PostgreSQL)", () => {
  it("answers with the request's cost, plain and streamed, and records both in the ledger", async () => {
    const { key, keyId } = await store.createKey({ name: "acme", scopes: ["chat"] });
    const r = await fetch(`${worker.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: modelId, prompt: "La vida es", max_tokens: 12, temperature: 0 }),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { id: string; usage: { cost: { total: number; without_speculation: number } } };
    expect(body.usage.cost.total).toBeGreaterThan(0);
    expect(r.headers.get("x-alia-cost")).toBe(`${body.usage.cost.total.toFixed(6)} EUR`);

    const stream = await client(key).chat.completions.create({ model: modelId, messages: [{ role: "user", content: "Hola" }], max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let last: OpenAI.Chat.Completions.ChatCompletionChunk | undefined;
    for await (const chunk of stream) last = chunk;
    const streamed = (last?.usage as unknown as { cost?: { total: number } } | undefined)?.cost;
    expect(streamed?.total).toBeGreaterThan(0);

    // Settled before the answers ended: nothing is left reserved, both requests are in the ledger.
    const state = await store.budgetState(keyId);
    expect(state).toMatchObject({ reservedMicroEur: 0 });
    expect(state!.spentMicroEur).toBeCloseTo(Math.round(1e6 * body.usage.cost.total) + Math.round(1e6 * streamed!.total), -1);
    expect(await store.usageEvent(body.id)).toMatchObject({ keyId, status: "completed" });
    const days = await store.usageByDay(keyId, "2000-01-01", "2100-01-01");
    expect(days.reduce((n, d) => n + d.requests, 0)).toBe(2);
  });

  it("prices the saving by the H200 cost model: a verify pass of several tokens costs more than one of a single token", async () => {
    type Body = { id: string; usage: { prompt_tokens: number; completion_tokens: number }; alia_speculation: { target_passes: number; accepted_tokens: number } };
    const { key } = await store.createKey({ name: "again", scopes: ["chat"] });
    const ask = async (prompt: string) =>
      (await (
        await fetch(`${worker.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
          body: JSON.stringify({ model: modelId, prompt, max_tokens: 48, temperature: 0 }),
        })
      ).json()) as Body;
    // The prompt with the longest answer of a few: its cost is many micro-euros, so rounding does not decide.
    let longest = { prompt: "", tokens: 0 };
    for (const prompt of SPANISH_PROMPTS.slice(0, 8)) {
      const n = (await ask(prompt)).usage.completion_tokens;
      if (n > longest.tokens) longest = { prompt, tokens: n };
    }
    const again = await ask(longest.prompt); // drafted from the key's cached answer: fewer target passes than tokens
    const { usage, alia_speculation: spec } = again;
    expect(spec.accepted_tokens).toBeGreaterThan(0);
    expect(spec.target_passes).toBeLessThan(usage.completion_tokens);
    const event = (await store.usageEvent(again.id))!;
    const listed = requestCost(DEFAULT_PRICE_TABLE, { model: modelId, promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens });
    expect(event.costMicroEur).toBe(listed.total);
    // Counting passes alone, the output would have cost completion / passes times more; the cost model
    // charges the verify passes their extra tokens, so the saving it shows is positive but smaller.
    const outputWithout = event.costWithoutSpeculationMicroEur - listed.input;
    expect(outputWithout).toBeGreaterThan(listed.output);
    expect(outputWithout).toBeLessThan(Math.floor((listed.output * usage.completion_tokens) / spec.target_passes));
  });

  it("gives the openai client its typed errors: unknown key, wrong scope, revoked key, rate limit", async () => {
    await expect(client("sk-alia-unknown_0123456789abcdef").models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const { key: translateOnly } = await store.createKey({ name: "web", scopes: ["translate"] });
    const denied = await client(translateOnly)
      .completions.create({ model: modelId, prompt: "Hola", max_tokens: 2 })
      .catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((denied as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe("permission_denied");

    const { key: limited } = await store.createKey({ name: "slow", scopes: ["chat"], rpmLimit: 1 });
    await client(limited).completions.create({ model: modelId, prompt: "Hola", max_tokens: 2, temperature: 0 });
    const refused = await client(limited)
      .completions.create({ model: modelId, prompt: "Hola", max_tokens: 2 })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    const rl = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect(rl.code).toBe("rate_limit_exceeded");
    expect(Number(rl.headers?.get("retry-after"))).toBeGreaterThan(0);
    expect(rl.headers?.get("x-ratelimit-limit-requests")).toBe("1");

    const { key: gone, keyId } = await store.createKey({ name: "gone", scopes: ["chat"] });
    await client(gone).models.list();
    expect(await store.revokeKey(keyId)).toBe(true);
    await expect(client(gone).models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("limits a key's translations per minute and serves a signed translation URL without a key, billed to it", async () => {
    const { key, keyId } = await store.createKey({ name: "site", scopes: ["translate"], rpmLimit: 1 });
    const url = `${worker.url}/v1/translate?text=${encodeURIComponent("El perro de San Roque no tiene rabo.")}&source=es&target=ca`;
    const first = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
    expect(first.status).toBe(200);
    expect(first.headers.get("x-ratelimit-limit-requests")).toBe("1");
    const second = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
    expect(second.status).toBe(429);
    expect((await second.json()) as unknown).toMatchObject({ error: { code: "rate_limit_exceeded" } });
    expect(Number(second.headers.get("retry-after"))).toBeGreaterThan(0);

    const { key: signer, keyId: signerId } = await store.createKey({ name: "page", scopes: ["translate"] });
    const signed = await fetch(`${worker.url}/v1/translate/sign`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${signer}` },
      body: JSON.stringify({ text: "Buenos días a todos.", source: "es", target: "gl", expires_in: 600 }),
    });
    expect(signed.status).toBe(200);
    const { url: path } = (await signed.json()) as { url: string };
    const open = await fetch(`${worker.url}${path}`);
    expect(open.status).toBe(200);
    expect(open.headers.get("cache-control")).toMatch(/^public/);
    expect(((await open.json()) as { translation: string }).translation.length).toBeGreaterThan(0);
    expect((await store.budgetState(signerId))!.spentMicroEur).toBeGreaterThan(0);
    expect((await fetch(`${worker.url}${path.replace("gl", "ca")}`)).status).toBe(401);
    expect((await store.budgetState(keyId))!.spentMicroEur).toBeGreaterThan(0); // the limited key's one translation
  });

  /** One completion by `key` at `edge`: its status, a 402 checked for its OpenAI shape. */
  const complete = async (edge: string, key: string, prompt: number[], maxTokens: number) => {
    const r = await fetch(`${edge}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: modelId, prompt, max_tokens: maxTokens, temperature: 0 }),
    });
    const j = (await r.json()) as { error?: { code: string; limit_source?: string } };
    if (r.status === 402) expect(j.error).toMatchObject({ code: "insufficient_quota", limit_source: "key" });
    return r.status;
  };
  /** 50 concurrent completions, request i sent to `edgeOf(i)`. */
  const burst = (key: string, prompt: number[], maxTokens: number, edgeOf: (i: number) => string) => Promise.all(Array.from({ length: 50 }, (_, i) => complete(edgeOf(i), key, prompt, maxTokens)));

  /** A key whose budget holds exactly `n` requests' maximum cost. */
  const keyFor = async (n: number, prompt: number[], maxTokens: number) => {
    const budget = n * maximumCost(DEFAULT_PRICE_TABLE, { model: modelId, promptTokens: prompt.length, maxTokens });
    return { budget, ...(await store.createKey({ name: "small", scopes: ["chat"], budgetMicroEur: budget, budgetPeriod: "month" })) };
  };

  /** The key's ledger: spend within budget, nothing left reserved, one event per request served. */
  const expectLedger = async (keyId: string, budget: number, served: number) => {
    const state = await store.budgetState(keyId);
    expect(state!.spentMicroEur).toBeLessThanOrEqual(budget);
    expect(state!.reservedMicroEur).toBe(0);
    const days = await store.usageByDay(keyId, "2000-01-01", "2100-01-01");
    expect(days.reduce((n, d) => n + d.requests, 0)).toBe(served);
  };

  it("never lets 50 concurrent requests to the Worker spend past a budget that allows 10; the rest get 402", async () => {
    const prompt = tok.encode("La vida es");
    const { key, keyId, budget } = await keyFor(10, prompt, 12);
    const statuses = await burst(key, prompt, 12, () => worker.url);
    const ok = statuses.filter((s) => s === 200).length;
    expect(ok).toBeGreaterThanOrEqual(10);
    expect(statuses.filter((s) => s === 402).length).toBe(50 - ok);
    await expectLedger(keyId, budget, ok);
  });

  it("holds one budget across the Worker and a Node edge sharing the database", async () => {
    const prompt = tok.encode("El que madruga");
    const { key, keyId, budget } = await keyFor(10, prompt, 12);
    // The Worker spends first, then both runtimes draw on what is left at once.
    for (let i = 0; i < 4; i++) expect(await complete(worker.url, key, prompt, 12)).toBe(200);
    const statuses = await burst(key, prompt, 12, (i) => (i % 2 ? worker.url : node.url));
    const ok = statuses.filter((s) => s === 200).length;
    expect(ok).toBeGreaterThanOrEqual(6);
    expect(statuses.filter((s) => s === 402).length).toBe(50 - ok);
    await expectLedger(keyId, budget, 4 + ok);
  });
});
