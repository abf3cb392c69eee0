// The OpenAPI 3.1 document of the public API, generated from the same zod schemas that validate requests.
import { z } from "zod";
import { LANGUAGES } from "../translate/languages.ts";
import { ChatRequestSchema, CompletionRequestSchema } from "./schemas.ts";

export function openApiDocument(serverUrl?: string): Record<string, unknown> {
  const schema = (s: z.ZodType) => z.toJSONSchema(s, { target: "draft-2020-12", io: "input", unrepresentable: "any" });
  const error = {
    description: "OpenAI-shaped error",
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  };
  const op = (summary: string, ref: string) => ({
    summary,
    security: [{}, { bearer: [] }],
    requestBody: { required: true, content: { "application/json": { schema: { $ref: `#/components/schemas/${ref}` } } } },
    responses: {
      "200": {
        description: "The completion (JSON), or with `stream: true` Server-Sent Events of chunks ending with `data: [DONE]`. Responses carry `alia_speculation` (rounds, drafted/accepted tokens, tokens per round, target passes saved).",
        content: { "application/json": { schema: { type: "object" } }, "text/event-stream": { schema: { type: "string" } } },
      },
      "400": error,
      "401": error,
      "404": error,
      "413": error,
      "429": error,
      "503": error,
    },
  });
  return {
    openapi: "3.1.0",
    info: { title: "alia-edge", version: "1", description: "OpenAI-compatible API over speculative decoding of ALIA-40b (drafts at the edge, verification on a GPU pool)." },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    paths: {
      "/v1/completions": { post: op("Text completion", "CompletionRequest") },
      "/v1/chat/completions": { post: op("Chat completion (ChatML template of the model)", "ChatRequest") },
      "/v1/translate": {
        get: {
          summary: "Translate a text (sentence-level cache; cacheable by CDNs)",
          parameters: [
            { name: "text", in: "query", required: true, schema: { type: "string" } },
            { name: "source", in: "query", required: true, schema: { type: "string", enum: Object.keys(LANGUAGES) } },
            { name: "target", in: "query", required: true, schema: { type: "string", enum: Object.keys(LANGUAGES) } },
          ],
          responses: { "200": { description: "{translation, source, target}; headers ETag, Cache-Control, X-Cache, X-Alia-Sentences" }, "304": { description: "Not modified (If-None-Match)" }, "400": error },
        },
        post: {
          summary: "Translate one text or a batch",
          requestBody: { required: true, content: { "application/json": { schema: { type: "object", required: ["text", "source", "target"], properties: { text: { oneOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] }, source: { type: "string", enum: Object.keys(LANGUAGES) }, target: { type: "string", enum: Object.keys(LANGUAGES) }, format: { const: "text" } } } } } },
          responses: { "200": { description: "{translation | translations, source, target}" }, "400": error },
        },
      },
      "/v1/models": { get: { summary: "The served model", responses: { "200": { description: "OpenAI model list" } } } },
      "/healthz": { get: { summary: "Liveness", responses: { "200": { description: "ok" } } } },
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "An API key, when the server has API_KEYS set" } },
      schemas: {
        CompletionRequest: schema(CompletionRequestSchema),
        ChatRequest: schema(ChatRequestSchema),
        Error: {
          type: "object",
          properties: { error: { type: "object", properties: { message: { type: "string" }, type: { type: "string" }, param: { type: ["string", "null"] }, code: { type: ["string", "null"] } } } },
        },
      },
    },
  };
}
