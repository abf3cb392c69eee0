// The Worker that drafts by suffix matching alone (src/worker-suffix.ts, wrangler.toml's `[env.suffix]`):
// bundled by wrangler as for deploy — no model runtime, a small bundle whose only WebAssembly is the grammar
// engine's — and run by Miniflare with only the target's facts in R2 and a real verifier process as its pool.
// The same OpenAI conformance checks as the model-drafting Worker; a key's repeated request is drafted from
// its own cached output; structured outputs run xgrammar from the WebAssembly module compiled at upload.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TARGET_FACTS } from "../src/model-pair/load-model-pair.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";
import { openAiConformance, type ConformanceContext } from "./harness/openai-conformance.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { bundleObjects, startWorkerd, type WorkerdEdge } from "./harness/workerd.ts";

const TOKEN = "worker-suffix-token-0123456789";
// The API is open here (the conformance checks send no key); the bearer a client sends still names its
// tenant, whose suffix cache no other tenant sees.
const KEYS = ["suffix-key-a-0123456789", "suffix-key-b-0123456789"];

let edge: WorkerdEdge;
let verifier: ListeningProcess;
let context: ConformanceContext;

beforeAll(async () => {
  const pair = await loadDefaultPair();
  verifier = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN });
  edge = await startWorkerd({
    env: "suffix",
    // A fixed γ: on loopback the fixture generates a token in about a millisecond, less than a round trip,
    // so the adaptive policy rightly prefers pool generation here, whatever the proposals.
    bindings: { TARGET_BUNDLE_PREFIX: "bundles/target/", POOL_NODES: verifier.url, POOL_TOKEN: TOKEN, SPEC_GAMMA: "8" },
    // The target's facts only: manifest, config and tokenizer. No draft bundle exists here.
    models: await bundleObjects(pair.targetDir, "bundles/target/", ["manifest.json", ...TARGET_FACTS]),
  });
  const { target, served, tok, modelId } = pair;
  context = { client: new OpenAI({ baseURL: `${edge.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 }), url: edge.url, modelId, target, served, tok };
});

afterAll(async () => {
  await verifier?.stop("SIGKILL");
  await edge?.stop();
});

describe("the suffix-drafting Worker", () => {
  it("is a small bundle with no model runtime (its only WASM xgrammar's), and says it drafts without a model", async () => {
    const wasm = edge.modules.filter((m) => m.endsWith(".wasm"));
    expect(wasm).toEqual([expect.stringMatching(/xgrammar\.wasm$/)]);
    expect(edge.bundleBytes).toBeLessThan(2 * 1024 * 1024);
    const ready = (await (await fetch(`${edge.url}/readyz`)).json()) as { proposer: string; draft?: unknown };
    expect(ready.proposer).toBe("suffix");
    expect(ready.draft).toBeUndefined();
  });

  it("drafts a key's repeated request from that key's cached output; another key's first request gets no such help", async () => {
    type Body = { choices: { text: string }[]; usage: { completion_tokens: number }; alia_speculation: { rounds: number; drafted_tokens: number; accepted_tokens: number } };
    const complete = async (key: string, prompt: string) => {
      const res = await fetch(`${edge.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: context.modelId, prompt, max_tokens: 48, temperature: 0 }),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as Body;
    };
    // The prompt with the longest answer of the first few (the fixture ends many answers early).
    let prompt = "";
    let first: Body | undefined;
    for (const p of SPANISH_PROMPTS.slice(0, 12)) {
      const b = await complete(KEYS[0], p);
      if (!first || b.usage.completion_tokens > first.usage.completion_tokens) [first, prompt] = [b, p];
    }
    const n = first!.usage.completion_tokens;
    expect(n).toBeGreaterThanOrEqual(16);
    const again = await complete(KEYS[0], prompt);
    const other = await complete(KEYS[1], prompt);
    expect(again.choices[0].text).toBe(first!.choices[0].text);
    expect(other.choices[0].text).toBe(first!.choices[0].text);
    const s = again.alia_speculation;
    expect(s.accepted_tokens, JSON.stringify(s)).toBeGreaterThanOrEqual(0.4 * n);
    expect(s.accepted_tokens).toBeGreaterThan(0.75 * s.drafted_tokens);
    expect(other.alia_speculation.accepted_tokens).toBeLessThan(s.accepted_tokens);
  });
});

describe("structured outputs in the suffix-drafting Worker (xgrammar in workerd)", () => {
  const PERSONA = {
    type: "object",
    properties: { nombre: { type: "string", maxLength: 12 }, edad: { type: "integer", minimum: 0, maximum: 120 } },
    required: ["nombre", "edad"],
    additionalProperties: false,
  };
  type Chat = { choices: { finish_reason: string; message: { content: string } }[]; error?: { message: string; type: string; param: string | null } };
  const chat = async (responseFormat: Record<string, unknown>) => {
    const res = await fetch(`${edge.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: context.modelId, messages: [{ role: "user", content: SPANISH_PROMPTS[0] }], temperature: 0, max_tokens: 60, response_format: responseFormat }),
    });
    return { status: res.status, body: (await res.json()) as Chat };
  };

  it("json_schema: a bounded schema ends by itself in JSON that parses and holds to it", async () => {
    const { status, body } = await chat({ type: "json_schema", json_schema: { name: "persona", strict: true, schema: PERSONA } });
    expect(status, JSON.stringify(body)).toBe(200);
    const [choice] = body.choices;
    expect(choice.finish_reason, choice.message.content).toBe("stop");
    const value = JSON.parse(choice.message.content) as Record<string, unknown>;
    expect(Object.keys(value).sort()).toEqual(["edad", "nombre"]);
    expect(typeof value.nombre).toBe("string");
    expect([...(value.nombre as string)].length).toBeLessThanOrEqual(12);
    expect(Number.isInteger(value.edad)).toBe(true);
    expect(value.edad).toBeGreaterThanOrEqual(0);
    expect(value.edad).toBeLessThanOrEqual(120);
  });

  it("json_object: the answer is a JSON object (or, cut by max_tokens, the start of one)", async () => {
    const { status, body } = await chat({ type: "json_object" });
    expect(status, JSON.stringify(body)).toBe(200);
    const [choice] = body.choices;
    expect(choice.message.content.startsWith("{"), choice.message.content).toBe(true);
    expect(["stop", "length"]).toContain(choice.finish_reason);
    if (choice.finish_reason === "stop") {
      const value = JSON.parse(choice.message.content) as unknown;
      expect(typeof value === "object" && value !== null && !Array.isArray(value)).toBe(true);
    }
  });

  it("refuses a schema keyword the grammar does not enforce (oneOf): 400 naming it", async () => {
    const schema = { type: "object", properties: { a: { oneOf: [{ type: "integer" }, { type: "string" }] } } };
    const { status, body } = await chat({ type: "json_schema", json_schema: { name: "s", schema } });
    expect(status).toBe(400);
    expect(body.error?.type).toBe("invalid_request_error");
    expect(body.error?.param).toBe("response_format.json_schema.schema");
    expect(body.error?.message).toMatch(/oneOf/);
  });
});

describe("OpenAI-compatible API in the suffix-drafting Worker (official openai client)", () => {
  openAiConformance(() => context);
});
