// The public API end to end on Node: `src/node.ts` (npm start's entry, which starts its own local
// verifier) queried with the official `openai` npm client — completions, chat, streaming, usage, stop
// sequences, max_tokens, typed errors — plus 16 concurrent streams and hostile bodies (fast-check).
import { request } from "node:http";
import fc from "fast-check";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServedModel } from "../src/model-pair/served-model.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { openAiConformance, reference, type ConformanceContext } from "./harness/openai-conformance.ts";
import { deadEndpoint } from "./harness/ports.ts";
import { startEdgeProcess, type EdgeProcess } from "./harness/processes.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";

let edge: EdgeProcess;
/** The verifier npm start started itself. */
let pool: string;
let url: string;
let client: OpenAI;
let target: CausalLM;
let served: ServedModel;
let tok: TextTokenizer;
let modelId: string;

beforeAll(async () => {
  ({ target, tok, served, modelId } = await loadDefaultPair());
  edge = await startEdgeProcess({});
  ({ url, pool } = edge);
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused-locally", maxRetries: 0 });
});
afterAll(async () => {
  await edge?.stop("SIGINT");
});

const context = (): ConformanceContext => ({ client, url, modelId, target, served, tok });

describe("OpenAI-compatible API on Node (official openai client)", () => {
  openAiConformance(context);

  it("serves /openapi.json generated from the request schemas, and requires a key when API_KEYS is set", async () => {
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown>; components: { schemas: { ChatRequest: { properties: Record<string, unknown> } } } };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v1/completions", "/v1/chat/completions"]));
    expect(Object.keys(doc.components.schemas.ChatRequest.properties)).toEqual(expect.arrayContaining(["messages", "max_completion_tokens", "stream_options"]));
    const keyed = await startEdgeProcess({ API_KEYS: "key-one-0123456789,key-two-0123456789", POOL_NODES: pool, EMBEDDED_VERIFIER: "false" });
    try {
      const anon = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: "wrong-key", maxRetries: 0 });
      await expect(anon.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
      const ok = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: "key-two-0123456789", maxRetries: 0 });
      const r = await ok.completions.create({ model: modelId, prompt: "La vida es", max_tokens: 4, temperature: 0 });
      expect(r.choices[0].text.length).toBeGreaterThan(0);
      expect((await fetch(`${keyed.url}/healthz`)).status).toBe(200); // probes need no key
    } finally {
      await keyed.stop("SIGKILL");
    }
  });

  it("stops generating when the client disconnects mid-stream, far short of what it would have generated", async () => {
    // Tokens the verifier committed: each round its accepted drafts plus one, /v1/generate one per token
    // (nothing else uses this verifier while the test runs).
    const committed = async () => {
      const m = await (await fetch(`${pool}/metrics`)).text();
      const v = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(m)?.[1] ?? NaN);
      return v("alia_verifier_rounds_total") + v("alia_verifier_accepted_tokens_total") + v("alia_verifier_generated_tokens_total");
    };
    // A request that would run long: the fixture's fortunes usually end (EOS) within a few dozen tokens,
    // so take the first seed whose run, uninterrupted, makes at least 300 tokens (temperature 2 flattens the
    // target, which delays EOS). A seed gives the same text again, so the streamed request below would too.
    const body = { model: modelId, prompt: "La vida es", max_tokens: 900, temperature: 2 };
    let seed = 0;
    let uninterrupted = 0;
    while (uninterrupted < 300 && seed < 40) uninterrupted = (await client.completions.create({ ...body, seed: ++seed })).usage!.completion_tokens;
    expect(uninterrupted, `no seed in 1…${seed} runs to 300 tokens`).toBeGreaterThanOrEqual(300);

    const before = await committed();
    const ctl = new AbortController();
    const res = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, seed, stream: true }),
      signal: ctl.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    ctl.abort();
    await reader.cancel().catch(() => undefined);
    // Within a bounded wait the verifier's work stops growing…
    let last = await committed();
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const now = await committed();
      if (now === last) break;
      last = now;
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(await committed()).toBe(last);
    // …far short of the run it was cut from (and of the 900 tokens asked for).
    const spent = last - before;
    expect(spent).toBeGreaterThan(0);
    expect(spent).toBeLessThan(uninterrupted / 4);
  });

  it("answers 429 beyond MAX_CONCURRENT and 503 without a healthy verifier, both with Retry-After", async () => {
    // A pool node that cannot answer: a held port that resets every connection (see deadEndpoint).
    const unreachable = await deadEndpoint();
    const started = await Promise.allSettled([startEdgeProcess({ MAX_CONCURRENT: "1", POOL_NODES: pool, EMBEDDED_VERIFIER: "false" }), startEdgeProcess({ POOL_NODES: unreachable.url, EMBEDDED_VERIFIER: "false" })]);
    const [busy, dead] = started.map((r) => (r.status === "fulfilled" ? r.value : undefined));
    try {
      for (const r of started) if (r.status === "rejected") throw r.reason;
      // Eight requests at once against a limit of one: some are refused, none fails otherwise.
      const rs = await Promise.all(
        Array.from({ length: 8 }, () =>
          fetch(`${busy!.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: modelId, prompt: "La vida es", max_tokens: 64, temperature: 0 }) }),
        ),
      );
      const refused = rs.filter((r) => r.status === 429);
      expect(refused.length).toBeGreaterThan(0);
      expect(rs.every((r) => r.status === 200 || r.status === 429)).toBe(true);
      expect(refused[0].headers.get("retry-after")).toBe("1");
      expect(((await refused[0].json()) as { error: { type: string } }).error.type).toBe("rate_limit_error");
      await Promise.all(rs.filter((r) => !r.bodyUsed).map((r) => r.body?.cancel()));
      const sdk = new OpenAI({ baseURL: `${dead!.url}/v1`, apiKey: "x", maxRetries: 0 });
      const err = await sdk.completions.create({ model: modelId, prompt: "hola", max_tokens: 4 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      expect((err as InstanceType<typeof OpenAI.InternalServerError>).status).toBe(503);
      expect((err as InstanceType<typeof OpenAI.InternalServerError>).headers?.get("retry-after")).toBe("2");
    } finally {
      await Promise.all([busy?.stop("SIGKILL"), dead?.stop("SIGKILL"), unreachable.close()]);
    }
  });

  it("serves 16 simultaneous streams, each identical to its sequential greedy output", async () => {
    const prompts = SPANISH_PROMPTS.slice(10, 26);
    const refs = await Promise.all(prompts.map(async (p) => (await reference(context(), tok.encode(p), 32, served.stopIds)).text));
    const texts = await Promise.all(
      prompts.map(async (prompt) => {
        const s = await client.completions.create({ model: modelId, prompt, max_tokens: 32, temperature: 0, stream: true });
        let t = "";
        for await (const ch of s) t += ch.choices[0]?.text ?? "";
        return t;
      }),
    );
    expect(texts).toEqual(refs);
  });

  it("answers random and hostile bodies with 4xx, never 5xx or a hang (fast-check)", async () => {
    const post = async (body: BodyInit, path = "/v1/chat/completions") => {
      const r = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body, signal: AbortSignal.timeout(30_000) });
      await r.arrayBuffer();
      return r.status;
    };
    const field = fc.oneof(fc.anything(), fc.string(), fc.integer(), fc.double(), fc.constant(null), fc.constant(1e308), fc.constant(-1), fc.array(fc.anything()));
    const hostile = fc.record(
      {
        model: fc.oneof(fc.constant(modelId), fc.string()),
        messages: fc.oneof(field, fc.array(fc.record({ role: fc.string(), content: field }))),
        prompt: field,
        max_tokens: field,
        temperature: field,
        top_p: field,
        stop: field,
        seed: field,
        stream: field,
        n: field,
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(hostile, fc.constantFrom("/v1/chat/completions", "/v1/completions"), async (body, p) => {
        const status = await post(JSON.stringify(body), p);
        expect(status).toBeLessThan(500);
      }),
      { numRuns: 150, seed: 42 },
    );
    expect(await post("[".repeat(100_000) + "]".repeat(100_000))).toBeLessThan(500); // deep JSON
    expect(await post(new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]))).toBeLessThan(500); // invalid UTF-8
    expect(await postLarge(`${url}/v1/completions`, JSON.stringify({ model: modelId, prompt: "a".repeat(10 << 20) }))).toBe(413); // 10 MB string
    expect(await post("not json at all")).toBe(400);
  });
});

/**
 * POSTs the headers of a large body (its Content-Length) and resolves with the answer's status: the edge
 * answers an over-long Content-Length at once, with `Connection: close`, without reading the body. Sending
 * the body too would race the close (a write error, EPIPE, where the machine is slow to write 10 MB).
 */
function postLarge(target: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(target, { method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) }, timeout: 30_000 }, (res) => {
      resolve(res.statusCode!);
      req.destroy();
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("no answer within 30 s")));
    req.flushHeaders();
    req.write(body.slice(0, 1024)); // a first piece, as a client streaming it would
  });
}
