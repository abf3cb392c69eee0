// The OpenAPI 3.1 document of the public API, generated from the same zod schemas that validate requests
// (src/api/schemas.ts) and whose types build the response bodies: every route the app serves, with an
// operationId, its response schemas (streams as text/event-stream of chunk events), OpenAI-shaped errors,
// the headers that carry meaning, and bearer security on /v1.
import { z } from "zod";
import { LANGUAGES } from "../translate/languages.ts";
import {
  AliaSpeculationSchema,
  ChatCompletionChunkSchema,
  ChatCompletionSchema,
  ChatRequestSchema,
  CompletionChunkSchema,
  CompletionRequestSchema,
  CompletionSchema,
  ErrorResponseSchema,
  FinishReasonSchema,
  HealthSchema,
  LanguageSchema,
  ModelListSchema,
  ModelSchema,
  ReadySchema,
  SignedTranslationUrlSchema,
  SignTranslationRequestSchema,
  TranslateStatsSchema,
  TranslationBatchSchema,
  TranslationSchema,
  UsageSchema,
} from "./schemas.ts";

type Json = Record<string, unknown>;

/** Request bodies: JSON Schema of what the API accepts. */
const REQUEST_SCHEMAS: Record<string, z.ZodType> = { CompletionRequest: CompletionRequestSchema, ChatRequest: ChatRequestSchema, SignTranslationRequest: SignTranslationRequestSchema };
/** Response bodies (and the pieces they share): JSON Schema of what the API sends. */
const RESPONSE_SCHEMAS: Record<string, z.ZodType> = {
  Model: ModelSchema,
  ModelList: ModelListSchema,
  Completion: CompletionSchema,
  ChatCompletion: ChatCompletionSchema,
  CompletionChunk: CompletionChunkSchema,
  ChatCompletionChunk: ChatCompletionChunkSchema,
  FinishReason: FinishReasonSchema,
  Usage: UsageSchema,
  AliaSpeculation: AliaSpeculationSchema,
  Language: LanguageSchema,
  Translation: TranslationSchema,
  TranslationBatch: TranslationBatchSchema,
  TranslateStats: TranslateStatsSchema,
  SignedTranslationUrl: SignedTranslationUrlSchema,
  Health: HealthSchema,
  Ready: ReadySchema,
  Error: ErrorResponseSchema,
};

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/** components.schemas: one JSON Schema per named zod schema, shared pieces referenced by $ref. */
function componentSchemas(): Record<string, Json> {
  const convert = (schemas: Record<string, z.ZodType>, io: "input" | "output") => {
    const registry = z.registry<{ id: string }>();
    for (const [id, s] of Object.entries(schemas)) registry.add(s, { id });
    const out = z.toJSONSchema(registry, { target: "draft-2020-12", io, unrepresentable: "any", uri: (id) => ref(id).$ref }).schemas as Record<string, Json>;
    // Inside an OpenAPI document each schema is a component, not a standalone JSON Schema resource.
    for (const s of Object.values(out)) {
      delete s.$schema;
      delete s.$id;
    }
    return out;
  };
  return { ...convert(REQUEST_SCHEMAS, "input"), ...convert(RESPONSE_SCHEMAS, "output"), TranslateRequest: TRANSLATE_REQUEST };
}

// src/api/translate.ts validates these (with the language check in its handler).
const languages = { type: "string", enum: Object.keys(LANGUAGES), description: "A language code (case-insensitive)." };
const TRANSLATE_REQUEST: Json = {
  type: "object",
  required: ["text", "source", "target"],
  additionalProperties: false,
  properties: {
    text: { oneOf: [{ type: "string" }, { type: "array", items: { type: "string" }, minItems: 1, maxItems: 128 }], description: "One text, or a batch (translations in the same order)." },
    source: { ...languages, description: "The language of the text (required: alia-edge does not guess)." },
    target: languages,
    format: { const: "text", description: 'Only "text".' },
  },
};

const header = (description: string, schema: Json = { type: "string" }) => ({ description, schema });
const HEADERS = {
  RequestId: header("The request's id: the client's `x-request-id` when sane, else a new one; it is in the server's log line."),
  RetryAfter: header("Seconds to wait before retrying.", { type: "integer", minimum: 0 }),
  TokensPerRound: header("alia_speculation.tokens_per_round (non-streamed responses; absent when there were no speculative rounds).", { type: "number" }),
  AcceptanceRate: header("alia_speculation.acceptance_rate (non-streamed responses; absent when nothing was drafted).", { type: "number" }),
  TargetPassesSaved: header("alia_speculation.target_passes_saved (non-streamed responses).", { type: "integer" }),
  ETag: header("Strong ETag: SHA-256 of the body; the same request gets the same bytes and the same ETag."),
  CacheControl: header("`public, max-age=TRANSLATE_MAX_AGE_S, s-maxage=TRANSLATE_S_MAXAGE_S`: translations are cacheable by CDNs."),
  XCache: header("`MISS` when any sentence was computed, else `HIT` and the cache tiers that answered (`HIT memory`, `HIT cache-api,r2`)."),
  Sentences: header("Sentences per source: `total=…, computed=…, <tier>=…` (pricing can charge hits less than misses)."),
};
const h = (name: keyof typeof HEADERS) => ({ $ref: `#/components/headers/${name}` });

const errorResponse = (description: string, headers: Json = {}) => ({ description, headers: { "x-request-id": h("RequestId"), ...headers }, content: { "application/json": { schema: ref("Error") } } });
const ERRORS = {
  "400": errorResponse("Invalid request: the message names the parameter, what is wrong and what is allowed; `context_length_exceeded` when the prompt and the requested tokens exceed the context."),
  "401": errorResponse("Missing or wrong API key (`invalid_api_key`), when the server has API_KEYS set."),
  "403": errorResponse("The key lacks the route's scope (`permission_denied`); a signed URL that expired (`signature_expired`); a static key asked to sign (`no_account`)."),
  "404": errorResponse("No such model (`model_not_found`)."),
  "413": errorResponse("The request body is over MAX_BODY_BYTES (`request_too_large`)."),
  "429": errorResponse("MAX_CONCURRENT generations are running (`rate_limit_exceeded`); retry after Retry-After.", { "Retry-After": h("RetryAfter") }),
  "500": errorResponse("Internal error (no internals in the message)."),
  "503": errorResponse("No healthy verifier (`service_unavailable`); retry after Retry-After.", { "Retry-After": h("RetryAfter") }),
};
const errors = (...codes: (keyof typeof ERRORS)[]) => Object.fromEntries(codes.map((c) => [c, ERRORS[c]]));

const BEARER = [{ bearer: [] }];
const OPEN: never[] = [];

function generation(o: { operationId: string; summary: string; request: string; result: string; chunk: string; description: string }) {
  return {
    operationId: o.operationId,
    summary: o.summary,
    description: o.description,
    tags: ["OpenAI"],
    security: BEARER,
    requestBody: { required: true, content: { "application/json": { schema: ref(o.request) } } },
    responses: {
      "200": {
        description:
          `Without \`stream\`: the ${o.result} as JSON, with \`alia_speculation\` (speculation statistics) and the main statistics repeated in x-alia-* headers. ` +
          `With \`stream: true\`: Server-Sent Events; each \`data:\` event is a ${o.chunk} JSON object, the last one before \`data: [DONE]\` carries \`alia_speculation\`; ` +
          "an error after the stream started is a last `data:` event with an Error object.",
        headers: {
          "x-request-id": h("RequestId"),
          "x-alia-tokens-per-round": h("TokensPerRound"),
          "x-alia-acceptance-rate": h("AcceptanceRate"),
          "x-alia-target-passes-saved": h("TargetPassesSaved"),
        },
        content: {
          "application/json": { schema: ref(o.result) },
          "text/event-stream": { schema: { oneOf: [ref(o.chunk), ref("Error")], description: `The JSON of each \`data:\` event (then \`data: [DONE]\`).` } },
        },
      },
      ...errors("400", "401", "404", "413", "429", "500", "503"),
    },
  };
}

const translated = (schema: Json) => ({
  description: "The translation. The body holds only the translation, so a repeated request gets the same bytes and the same ETag; cache statistics travel in headers.",
  headers: { "x-request-id": h("RequestId"), ETag: h("ETag"), "Cache-Control": h("CacheControl"), "X-Cache": h("XCache"), "X-Alia-Sentences": h("Sentences") },
  content: { "application/json": { schema } },
});
const notModified = { description: "Not modified: `If-None-Match` holds the current ETag.", headers: { ETag: h("ETag"), "Cache-Control": h("CacheControl"), "X-Cache": h("XCache"), "X-Alia-Sentences": h("Sentences") } };
const ifNoneMatch = { name: "If-None-Match", in: "header", required: false, schema: { type: "string" }, description: "ETags of a cached response: 304 when it is still current." };

// A signed URL (POST /v1/translate/sign) carries these instead of Authorization.
const SIGNED_URL_PARAMS = [
  { name: "kid", in: "query", required: false, schema: { type: "string" }, description: "Signed URL: the key that pays." },
  { name: "exp", in: "query", required: false, schema: { type: "integer" }, description: "Signed URL: unix seconds after which it is refused (403 `signature_expired`)." },
  {
    name: "sig",
    in: "query",
    required: false,
    schema: { type: "string" },
    description: "Signed URL: HMAC-SHA256 of the other parameters (docs/BILLING.md). With kid, exp and sig no Authorization is sent, and the answer is `Cache-Control: public` until exp.",
  },
];

let components: Record<string, Json> | undefined;

export function openApiDocument(serverUrl?: string): Json {
  components ??= componentSchemas();
  return {
    openapi: "3.1.0",
    info: {
      title: "alia-edge",
      version: "1",
      description:
        "OpenAI-compatible API over speculative decoding of ALIA-40b (drafts at the edge, verification on a GPU pool), and sentence-cached translation. " +
        "Every /v1 route takes `Authorization: Bearer <key>` when the server has API_KEYS set (without keys it is open); /healthz, /readyz, /openapi.json and /metrics take no API key.",
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    tags: [{ name: "OpenAI", description: "OpenAI's API shapes" }, { name: "Translation" }, { name: "Operations" }],
    security: BEARER,
    paths: {
      "/v1/models": {
        get: {
          operationId: "listModels",
          summary: "The served model",
          tags: ["OpenAI"],
          security: BEARER,
          responses: { "200": { description: "OpenAI model list (one model).", headers: { "x-request-id": h("RequestId") }, content: { "application/json": { schema: ref("ModelList") } } }, ...errors("401", "500") },
        },
      },
      "/v1/models/{id}": {
        get: {
          operationId: "retrieveModel",
          summary: "One model by id",
          tags: ["OpenAI"],
          security: BEARER,
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" }, description: "The model id (GET /v1/models)." }],
          responses: { "200": { description: "The model.", headers: { "x-request-id": h("RequestId") }, content: { "application/json": { schema: ref("Model") } } }, ...errors("401", "404", "500") },
        },
      },
      "/v1/completions": {
        post: generation({
          operationId: "createCompletion",
          summary: "Text completion",
          request: "CompletionRequest",
          result: "Completion",
          chunk: "CompletionChunk",
          description:
            "`prompt` is a string, an array of token ids (integers from 0 to the vocabulary size - 1, used as they are: no BOS is added), or an array holding one string or one array of token ids. " +
            "alia-edge generates one prompt per request: several prompts are refused with a 400 (send one request each). Greedy at temperature 0: the target model's own output, token for token.",
        }),
      },
      "/v1/chat/completions": {
        post: generation({
          operationId: "createChatCompletion",
          summary: "Chat completion",
          request: "ChatRequest",
          result: "ChatCompletion",
          chunk: "ChatCompletionChunk",
          description: "Messages are rendered with the model's chat template (ChatML). Content is a string or text parts; other part types are refused.",
        }),
      },
      "/v1/translate": {
        get: {
          operationId: "translateText",
          summary: "Translate a text (sentence-level cache; cacheable by CDNs)",
          tags: ["Translation"],
          security: BEARER,
          parameters: [
            { name: "text", in: "query", required: true, schema: { type: "string" } },
            { name: "source", in: "query", required: true, schema: languages },
            { name: "target", in: "query", required: true, schema: languages },
            ...SIGNED_URL_PARAMS,
            ifNoneMatch,
          ],
          responses: { "200": translated(ref("Translation")), "304": notModified, ...errors("400", "401", "403", "500", "503") },
        },
        post: {
          operationId: "translateTexts",
          summary: "Translate one text or a batch",
          tags: ["Translation"],
          security: BEARER,
          parameters: [ifNoneMatch],
          requestBody: { required: true, content: { "application/json": { schema: ref("TranslateRequest") } } },
          responses: { "200": translated({ oneOf: [ref("Translation"), ref("TranslationBatch")] }), "304": notModified, ...errors("400", "401", "413", "500", "503") },
        },
      },
      "/v1/translate/sign": {
        post: {
          operationId: "signTranslationUrl",
          summary: "A signed, public, CDN-cacheable translation URL paid by the calling account key",
          description:
            "Returns `/v1/translate?exp=…&kid=…&sig=…&source=…&target=…&text=…` (use it exactly as returned): anyone may GET it without a key until `expires_at`, and any CDN may cache the answer (never past `expires_at`). " +
            "The key pays each request that reaches the server (computed sentences at the computed price, the edge's cache hits at the hit price); a CDN hit costs nothing. Account keys only (`no_account` for a static key); 404 `signed_urls_disabled` without URL_SIGNING_SECRET.",
          tags: ["Translation"],
          security: BEARER,
          requestBody: { required: true, content: { "application/json": { schema: ref("SignTranslationRequest") } } },
          responses: {
            "200": { description: "The signed URL.", headers: { "x-request-id": h("RequestId") }, content: { "application/json": { schema: ref("SignedTranslationUrl") } } },
            ...errors("400", "401", "403", "404", "413", "500"),
          },
        },
      },
      "/v1/translate/stats": {
        get: {
          operationId: "getTranslateStats",
          summary: "Translation cache counters",
          tags: ["Translation"],
          security: BEARER,
          responses: {
            "200": {
              description: "Sentences computed, coalesced and served from the cache; errors per cache tier.",
              headers: { "x-request-id": h("RequestId") },
              content: { "application/json": { schema: ref("TranslateStats") } },
            },
            ...errors("401", "500"),
          },
        },
      },
      "/healthz": {
        get: {
          operationId: "getHealth",
          summary: "Liveness",
          tags: ["Operations"],
          security: OPEN,
          responses: { "200": { description: "The process serves.", content: { "application/json": { schema: ref("Health") } } } },
        },
      },
      "/readyz": {
        get: {
          operationId: "getReadiness",
          summary: "Readiness",
          tags: ["Operations"],
          security: OPEN,
          responses: {
            "200": { description: "The model pair is loaded; what is served.", content: { "application/json": { schema: ref("Ready") } } },
            "500": errorResponse("Loading the model pair failed (Workers: `model_unavailable`, the message names the bundle or variable)."),
          },
        },
      },
      "/openapi.json": {
        get: {
          operationId: "getOpenApiDocument",
          summary: "This document",
          tags: ["Operations"],
          security: OPEN,
          responses: {
            "200": {
              description: "The OpenAPI 3.1 document of this API.",
              content: {
                "application/json": {
                  schema: {
                    type: "object",
                    required: ["openapi", "info", "paths"],
                    properties: { openapi: { type: "string", const: "3.1.0" }, info: { type: "object" }, paths: { type: "object" }, components: { type: "object" } },
                  },
                },
              },
            },
          },
        },
      },
      "/metrics": {
        get: {
          operationId: "getMetrics",
          summary: "Prometheus metrics",
          tags: ["Operations"],
          security: [{ metricsToken: [] }],
          responses: {
            "200": { description: "Prometheus text exposition format.", content: { "text/plain": { schema: { type: "string", description: "Prometheus text exposition format (version 0.0.4)." } } } },
            "401": errorResponse("METRICS_TOKEN is set and the request does not carry it (`invalid_metrics_token`)."),
          },
        },
      },
    },
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "An API key; required when the server has API_KEYS set." },
        metricsToken: { type: "http", scheme: "bearer", description: "METRICS_TOKEN; required when the server has it set." },
      },
      headers: HEADERS,
      schemas: components,
    },
  };
}
