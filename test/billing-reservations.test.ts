// A request's budget reservation over the whole edge (Node edge process, real PostgreSQL, a fresh schema),
// with a 2-second reservation TTL and a verifier 300 ms away (a delay proxy) so that one stream lasts longer
// than the TTL: a running stream renews its reservation, so the budget it holds is never handed to another
// request mid-stream; an edge killed with -9 mid-stream frees it within about one TTL, and the key can
// spend it again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountStore } from "../src/billing/account-store.ts";
import { DEFAULT_PRICE_TABLE, maximumCost } from "../src/billing/prices.ts";
import { billingSchema, type BillingSchema } from "./harness/billing-schema.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { startDelayProxy, type DelayProxy } from "./harness/delay-proxy.ts";
import { startEdgeProcess, startVerifierProcess, type EdgeProcess, type ListeningProcess } from "./harness/processes.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";

const TOKEN = "billing-reservations-token-0123456789";
const TTL_S = 2;
const MAX_TOKENS = 40;

let billing: BillingSchema;
let store: AccountStore;
let verifier: ListeningProcess;
let proxy: DelayProxy;
let modelId: string;
/** The prompt (token ids) whose greedy answer is longest (the fixture ends many early): the stream that lasts. */
let prompt: number[] = [];
let answerTokens = 0;

beforeAll(async () => {
  const pair = await loadDefaultPair();
  modelId = pair.modelId;
  for (const text of SPANISH_PROMPTS.slice(0, 12)) {
    const ids = pair.tok.encode(text);
    const n = (await pair.target.greedy(ids, MAX_TOKENS, pair.eos)).length;
    if (n > answerTokens) [prompt, answerTokens] = [ids, n];
  }
  billing = await billingSchema("reservations");
  store = billing.store;
  verifier = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN });
  proxy = await startDelayProxy({ target: verifier.url, delayMs: 150 });
});

afterAll(async () => {
  await proxy?.close();
  await verifier?.stop("SIGKILL");
  await billing?.close();
});

/** An edge whose every round waits 300 ms on the network and commits at most two tokens (γ = 1). */
const startEdge = () => startEdgeProcess({ POOL_NODES: proxy.url, POOL_TOKEN: TOKEN, SPEC_GAMMA: "1", BILLING_DATABASE_URL: billing.url, BILLING_RESERVATION_TTL_S: String(TTL_S), LOG_REQUESTS: "false" });

/** A key whose budget holds one request's maximum cost, not two. */
async function oneRequestKey(): Promise<{ key: string; keyId: string; budget: number }> {
  const budget = 2 * maximumCost(DEFAULT_PRICE_TABLE, { model: modelId, promptTokens: prompt.length, maxTokens: MAX_TOKENS }) - 1;
  return { budget, ...(await store.createKey({ name: "one", scopes: ["chat"], budgetMicroEur: budget, budgetPeriod: "month" })) };
}

/** Starts a streamed completion and waits for its first chunk; `rest` reads it to the end (its text). */
async function startStream(edge: EdgeProcess, key: string): Promise<{ rest: Promise<string> }> {
  const r = await fetch(`${edge.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: modelId, prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true }),
  });
  expect(r.status).toBe(200);
  const reader = r.body!.getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value);
  const rest = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += decoder.decode(value);
    }
  })();
  rest.catch(() => {}); // a killed edge cuts it
  return { rest };
}

/** The same request, not streamed. */
const secondRequest = (edge: EdgeProcess, key: string) =>
  fetch(`${edge.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: modelId, prompt, max_tokens: MAX_TOKENS, temperature: 0 }),
  });

describe("budget reservations over a whole stream", () => {
  it("renews a stream's reservation past its TTL: another request cannot take the budget mid-stream", async () => {
    expect(answerTokens).toBeGreaterThanOrEqual(24); // ≥ 12 rounds of ≥ 300 ms: longer than the TTL
    const edge = await startEdge();
    try {
      const { key, keyId, budget } = await oneRequestKey();
      const t0 = Date.now();
      const { rest } = await startStream(edge, key);
      await new Promise((r) => setTimeout(r, 1.6 * TTL_S * 1000));
      const mid = await store.budgetState(keyId);
      const streaming = Date.now() - t0 < answerTokens * 150; // still generating (at most 2 tokens per 300 ms round)
      expect(streaming).toBe(true);
      expect(mid!.reservedMicroEur).toBeGreaterThan(0);
      const second = await secondRequest(edge, key);
      expect(second.status).toBe(402);
      const text = await rest;
      expect(text).toContain("[DONE]");
      const end = await store.budgetState(keyId);
      expect(end).toMatchObject({ reservedMicroEur: 0 });
      expect(end!.spentMicroEur).toBeGreaterThan(0);
      expect(end!.spentMicroEur).toBeLessThanOrEqual(budget);
    } finally {
      await edge.stop("SIGKILL");
    }
  });

  it("frees the reservation of an edge killed with -9 mid-stream within about one TTL; the key can spend it again", async () => {
    const { key, keyId } = await oneRequestKey();
    const edge = await startEdge();
    await startStream(edge, key);
    await edge.stop("SIGKILL");
    expect((await store.budgetState(keyId))!.reservedMicroEur).toBeGreaterThan(0);
    const fresh = await startEdge();
    try {
      // The reservation lapses TTL_S after its last renewal; a bounded wait.
      let reserved = -1;
      for (let i = 0; i < 40 && reserved !== 0; i++) {
        await new Promise((r) => setTimeout(r, 250));
        reserved = (await store.budgetState(keyId))!.reservedMicroEur;
      }
      expect(reserved).toBe(0);
      expect((await store.budgetState(keyId))!.spentMicroEur).toBe(0); // nothing was charged for the lost stream
      const again = await secondRequest(fresh, key);
      expect(again.status).toBe(200);
      await again.arrayBuffer();
    } finally {
      await fresh.stop("SIGKILL");
    }
  });
});
