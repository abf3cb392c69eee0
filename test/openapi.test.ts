// The response contract: `npm start`'s entry (src/node.ts, with API keys and its own local verifier) as a
// real process, every kind of body it sends validated against the zod schemas of src/api/schemas.ts — the
// ones whose types build those bodies and from which /openapi.json is generated — and /openapi.json checked
// against the routes the app really registers: every route documented with an operationId, response
// schemas, error schemas, security and headers.
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import path from "node:path";
import type { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { z } from "zod";
import { createAppFromConfig } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { servedModel } from "../src/model-pair/served-model.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { TextTokenizer } from "../src/common/models/tokenizer.ts";
import {
  ChatCompletionChunkSchema,
  ChatCompletionSchema,
  ChatRequestSchema,
  CompletionChunkSchema,
  CompletionSchema,
  ErrorResponseSchema,
  HealthSchema,
  ModelListSchema,
  ModelSchema,
  ReadySchema,
  TranslateStatsSchema,
  TranslationBatchSchema,
  TranslationSchema,
} from "../src/api/schemas.ts";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";
import { deadEndpoint } from "./harness/ports.ts";
import { startEdgeProcess } from "./harness/processes.ts";

const KEY = "contract-key-0123456789";
let edge: ChildProcess;
let url: string;
let modelId: string;
let app: Hono;

// biome-ignore lint/suspicious/noExplicitAny: walks arbitrary JSON documents (OpenAPI, JSON Schema)
type Json = Record<string, any>;

beforeAll(async () => {
  const started = await startEdgeProcess({ API_KEYS: KEY, LOG_REQUESTS: "false" });
  ({ child: edge, url } = started);
  const poolUrl = started.pool;
  // The same app in-process, built by the same code from the same configuration, to list its routes.
  const t = await loadBundle(path.join(DEFAULT_PAIR_DIR, "target"));
  const d = await loadBundle(path.join(DEFAULT_PAIR_DIR, "draft"));
  const model = servedModel({ target: t, draft: d, draftModel: await loadDraftModel(d), tokenizer: TextTokenizer.fromBundle(t) });
  modelId = model.id;
  app = createAppFromConfig(loadConfig({ API_KEYS: KEY, POOL_NODES: poolUrl, EMBEDDED_VERIFIER: "false" }), model, []);
});
afterAll(async () => {
  if (edge && edge.exitCode === null) {
    edge.kill("SIGINT");
    await once(edge, "exit");
  }
});

const auth = { authorization: `Bearer ${KEY}` };
const get = (p: string, headers: Record<string, string> = auth) => fetch(`${url}${p}`, { headers });
const post = (p: string, body: unknown, headers: Record<string, string> = auth) =>
  fetch(`${url}${p}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });

/** Parses with the schema, failing the test with zod's issues (not just "false"). */
async function bodyOf<S extends z.ZodType>(res: Response, schema: S, status = 200): Promise<z.infer<S>> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  const parsed = schema.safeParse(JSON.parse(text));
  expect(parsed.error?.issues ?? [], text).toEqual([]);
  return parsed.data as z.infer<S>;
}

/** The `data:` payloads of an SSE body, [DONE] excluded (asserted to be last). */
async function events(res: Response): Promise<unknown[]> {
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const data = (await res.text())
    .split("\n")
    .filter((l) => l.startsWith("data: "))
    .map((l) => l.slice(6));
  expect(data.at(-1)).toBe("[DONE]");
  expect(data.indexOf("[DONE]")).toBe(data.length - 1);
  return data.slice(0, -1).map((d) => JSON.parse(d));
}

function expectAll(schema: z.ZodType, values: unknown[]): void {
  for (const v of values) expect(schema.safeParse(v).error?.issues ?? [], JSON.stringify(v)).toEqual([]);
}

describe("response bodies match the zod schemas that type them", () => {
  it("models: the list and one model; an unknown model is a 404 error body", async () => {
    const list = await bodyOf(await get("/v1/models"), ModelListSchema);
    expect(list.data.map((m) => m.id)).toEqual([modelId]);
    expect(list.data[0].draft_bundle).toBeTruthy();
    const one = await bodyOf(await get(`/v1/models/${encodeURIComponent(modelId)}`), ModelSchema);
    expect(one.id).toBe(modelId);
    const missing = await bodyOf(await get("/v1/models/gpt-4"), ErrorResponseSchema, 404);
    expect(missing.error).toMatchObject({ code: "model_not_found", type: "invalid_request_error" });
  });

  it("completions and chat as JSON, with the x-alia-* headers", async () => {
    const r = await post("/v1/completions", { model: modelId, prompt: "La vida es", max_tokens: 12, temperature: 0 });
    expect(Number(r.headers.get("x-alia-target-passes-saved"))).toBeGreaterThanOrEqual(0);
    const c = await bodyOf(r, CompletionSchema);
    expect(c.alia_speculation.target_passes).toBeGreaterThan(0);
    expect(c.usage.total_tokens).toBe(c.usage.prompt_tokens + c.usage.completion_tokens);
    const chat = await bodyOf(
      await post("/v1/chat/completions", { model: modelId, messages: [{ role: "user", content: [{ type: "text", text: "Hola" }] }], max_tokens: 12, temperature: 0.7, seed: 3 }),
      ChatCompletionSchema,
    );
    expect(chat.choices[0].message.role).toBe("assistant");
  });

  it("every streamed chunk of completions and chat, with and without include_usage", async () => {
    for (const include_usage of [false, true]) {
      const stream_options = include_usage ? { include_usage } : undefined;
      const c = await events(await post("/v1/completions", { model: modelId, prompt: "El amor es", max_tokens: 16, temperature: 0, stream: true, stream_options }));
      expectAll(CompletionChunkSchema, c);
      const chat = await events(await post("/v1/chat/completions", { model: modelId, messages: [{ role: "user", content: "Hola" }], max_tokens: 16, temperature: 0, stream: true, stream_options }));
      expectAll(ChatCompletionChunkSchema, chat);
      for (const chunks of [c, chat] as Json[][]) {
        expect(chunks.length).toBeGreaterThan(1);
        expect(chunks.at(-1)!.alia_speculation).toBeDefined(); // the statistics ride on the last chunk
        expect(chunks.some((ch) => ch.choices[0]?.finish_reason)).toBe(true);
        if (include_usage) expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { total_tokens: expect.any(Number) } });
      }
      expect((chat as Json[])[0].choices[0].delta.role).toBe("assistant");
    }
  });

  it("translation: GET, POST batch, 304, the cache headers, and the stats", async () => {
    const q = `/v1/translate?${new URLSearchParams({ text: "La vida es bella.", source: "es", target: "ca" })}`;
    const r = await get(q);
    const etag = r.headers.get("etag");
    expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
    expect(r.headers.get("x-cache")).toMatch(/^(MISS|HIT .+)$/);
    expect(r.headers.get("x-alia-sentences")).toMatch(/^total=1, computed=\d/);
    expect((await bodyOf(r, TranslationSchema)).source).toBe("es");
    const again = await get(q, { ...auth, "if-none-match": etag! });
    expect(again.status).toBe(304);
    expect(again.headers.get("etag")).toBe(etag);
    const batch = await bodyOf(await post("/v1/translate", { text: ["Hola.", "Adiós."], source: "es", target: "ca" }), TranslationBatchSchema);
    expect(batch.translations).toHaveLength(2);
    const stats = await bodyOf(await get("/v1/translate/stats"), TranslateStatsSchema);
    expect(stats.computed).toBeGreaterThan(0);
    expect(stats.tier_errors).toHaveProperty("memory");
  });

  it("error bodies (400, 401, 404, 413) from every layer of the app; health and readiness", async () => {
    await bodyOf(await post("/v1/chat/completions", { model: modelId, messages: [] }), ErrorResponseSchema, 400);
    await bodyOf(await post("/v1/completions", "{not json"), ErrorResponseSchema, 400);
    await bodyOf(await get("/v1/translate?text=hola&source=es&target=xx"), ErrorResponseSchema, 400);
    await bodyOf(await post("/v1/translate", { text: 5, source: "es", target: "ca" }), ErrorResponseSchema, 400);
    // Over MAX_BODY_BYTES: on a connection of its own. The server answers by Content-Length, before the body:
    // the body goes only if no answer came within a second (one in flight when the server closes can make the
    // kernel reset the connection and lose the answer).
    const big = await new Promise<Response>((resolve, reject) => {
      const payload = JSON.stringify({ model: modelId, prompt: "a".repeat(2 << 20) });
      let answered = false;
      const req = http.request(
        `${url}/v1/completions`,
        { method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload), connection: "close", ...auth } },
        (res) => {
          answered = true;
          clearTimeout(late);
          let text = "";
          res.on("data", (d) => (text += d));
          res.on("end", () => {
            resolve(new Response(text, { status: res.statusCode }));
            req.destroy();
          });
        },
      );
      req.on("error", (e) => answered || reject(e));
      req.flushHeaders();
      const late = setTimeout(() => req.end(payload), 1000);
    });
    await bodyOf(big, ErrorResponseSchema, 413);
    await bodyOf(await get("/v1/nowhere"), ErrorResponseSchema, 404);
    const anon = await bodyOf(await get("/v1/models", {}), ErrorResponseSchema, 401);
    expect(anon.error.type).toBe("authentication_error");
    await bodyOf(await get("/v1/models", { authorization: "Bearer wrong-key-0123456789" }), ErrorResponseSchema, 401);
    expect(HealthSchema.parse(await (await get("/healthz", {})).json())).toEqual({ status: "ok" });
    expect((await bodyOf(await get("/readyz", {}), ReadySchema)).model).toBe(modelId);
  });

  it("503 without a healthy verifier is an error body with Retry-After", async () => {
    const nowhere = await deadEndpoint();
    const dead = await startEdgeProcess({ POOL_NODES: nowhere.url, EMBEDDED_VERIFIER: "false", LOG_REQUESTS: "false" });
    try {
      const r = await fetch(`${dead.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: modelId, prompt: "hola", max_tokens: 4 }) });
      expect(r.headers.get("retry-after")).toBe("2");
      expect((await bodyOf(r, ErrorResponseSchema, 503)).error.code).toBe("service_unavailable");
    } finally {
      dead.child.kill("SIGKILL");
      await nowhere.close();
    }
  });
});

describe("/openapi.json", () => {
  let doc: Json;
  beforeAll(async () => {
    const r = await get("/openapi.json", {}); // open: no key
    expect(r.status).toBe(200);
    doc = (await r.json()) as Json;
  });
  const operations = () => Object.entries(doc.paths as Json).flatMap(([p, item]) => Object.entries(item as Json).map(([method, op]) => ({ path: p, method, op: op as Json })));

  /** Follows a local $ref ("#/components/…"); fails on a dangling one. */
  const deref = (node: Json): Json => {
    if (typeof node?.$ref !== "string") return node;
    const target = (node.$ref as string)
      .slice(2)
      .split("/")
      .reduce<Json | undefined>((n, k) => n?.[k], doc);
    expect(target, node.$ref).toBeDefined();
    return deref(target!);
  };

  it("documents every route the app serves, and serves every route it documents", () => {
    const served = app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    const documented = operations().map((o) => `${o.method} ${o.path}`);
    expect(new Set(documented)).toEqual(new Set(served));
    expect(served).toEqual(expect.arrayContaining(["get /v1/models/{id}", "get /v1/translate/stats", "post /v1/translate", "get /metrics"]));
  });

  it("gives every operation a unique operationId and a 2xx response with a non-trivial schema", () => {
    const ids = operations().map((o) => o.op.operationId);
    expect(ids.every((id) => typeof id === "string" && /^[a-z][A-Za-z]+$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { path: p, method, op } of operations()) {
      const ok = deref(op.responses["200"]);
      const media = Object.entries(ok.content as Json);
      expect(media.length, `${method} ${p}`).toBeGreaterThan(0);
      for (const [type, m] of media) {
        const schema = deref((m as Json).schema);
        const trivial = !schema || Object.keys(schema).length === 0 || (schema.type === "object" && !schema.properties && !schema.additionalProperties);
        expect(trivial, `${method} ${p} ${type}: ${JSON.stringify(schema)}`).toBe(false);
        if (type === "application/json" && schema.type === "object") expect(Object.keys(schema.properties).length).toBeGreaterThan(0);
      }
    }
  });

  it("generates the component schemas from the zod schemas: requests, results, stream chunks", () => {
    const s = doc.components.schemas as Json;
    expect(Object.keys(s.ChatRequest.properties).sort()).toEqual(Object.keys(ChatRequestSchema.shape).sort());
    for (const [id, schema] of Object.entries({
      Completion: CompletionSchema,
      ChatCompletion: ChatCompletionSchema,
      CompletionChunk: CompletionChunkSchema,
      ChatCompletionChunk: ChatCompletionChunkSchema,
      TranslateStats: TranslateStatsSchema,
      Error: ErrorResponseSchema,
    }))
      expect(Object.keys(s[id].properties).sort(), id).toEqual(Object.keys(schema.shape).sort());
    expect(s.CompletionRequest.properties.prompt.description).toMatch(/token ids/);
    expect(s.CompletionRequest.properties.prompt.anyOf).toHaveLength(4); // string, [string], ids, [ids]
    const completions = doc.paths["/v1/completions"].post;
    expect(completions.responses["200"].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/Completion" });
    expect(completions.responses["200"].content["text/event-stream"].schema.oneOf).toContainEqual({ $ref: "#/components/schemas/CompletionChunk" });
    expect(doc.paths["/v1/chat/completions"].post.responses["200"].content["text/event-stream"].schema.oneOf).toContainEqual({ $ref: "#/components/schemas/ChatCompletionChunk" });
    // Every $ref in the document resolves.
    const walk = (n: unknown): void => {
      if (Array.isArray(n)) n.forEach(walk);
      else if (n && typeof n === "object") {
        if (typeof (n as Json).$ref === "string") deref(n as Json);
        Object.values(n).forEach(walk);
      }
    };
    walk(doc);
  });

  it("answers errors with the Error schema and documents the headers that carry meaning", () => {
    for (const { path: p, method, op } of operations()) {
      for (const [status, r] of Object.entries(op.responses as Json)) {
        if (Number(status) < 400) continue;
        expect(deref(r as Json).content["application/json"].schema, `${method} ${p} ${status}`).toEqual({ $ref: "#/components/schemas/Error" });
      }
      if (p.startsWith("/v1/")) expect(Object.keys(op.responses), `${method} ${p}`).toEqual(expect.arrayContaining(["401", "500"]));
    }
    const completions = doc.paths["/v1/completions"].post.responses;
    expect(Object.keys(completions)).toEqual(expect.arrayContaining(["200", "400", "401", "404", "413", "429", "503"]));
    expect(Object.keys(completions["200"].headers)).toEqual(expect.arrayContaining(["x-alia-tokens-per-round", "x-alia-acceptance-rate", "x-alia-target-passes-saved"]));
    for (const status of ["429", "503"]) expect(completions[status].headers).toHaveProperty("Retry-After");
    const translate = doc.paths["/v1/translate"].get.responses;
    expect(Object.keys(translate["200"].headers)).toEqual(expect.arrayContaining(["ETag", "Cache-Control", "X-Cache", "X-Alia-Sentences"]));
    expect(translate).toHaveProperty("304");
  });

  it("puts bearer security on every /v1 route (translation included); health and the document stay open", () => {
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    for (const { path: p, method, op } of operations()) {
      if (p.startsWith("/v1/")) expect(op.security, `${method} ${p}`).toEqual([{ bearer: [] }]);
      if (["/healthz", "/readyz", "/openapi.json"].includes(p)) expect(op.security, p).toEqual([]);
    }
  });

  it("matches what the server enforces: every /v1 operation answers 401 without the key", async () => {
    for (const { path: p, method } of operations().filter((o) => o.path.startsWith("/v1/"))) {
      const r = await fetch(`${url}${p.replace("{id}", modelId)}`, { method: method.toUpperCase(), headers: { "content-type": "application/json" }, body: method === "post" ? "{}" : undefined });
      await bodyOf(r, ErrorResponseSchema, 401);
    }
  });
});
