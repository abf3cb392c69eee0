// The public API end to end on Node: `src/node.ts` (npm start's entry, which starts its own local
// verifier) queried with the official `openai` npm client — completions, chat, streaming, usage, stop
// sequences, max_tokens, typed errors — plus 16 concurrent streams and hostile bodies (fast-check).
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import path from "node:path";
import fc from "fast-check";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SPANISH_PROMPTS } from "../bench/prompts.ts";
import { servedModel, type ServedModel } from "../src/api/served-model.ts";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import type { CausalLM } from "../src/models/causal-lm.ts";
import { loadDraftModel } from "../src/models/draft-model.ts";
import { loadBundle } from "../src/models/model-store.ts";
import { TextTokenizer } from "../src/models/tokenizer.ts";
import { DEFAULT_PAIR_DIR } from "../tools/fixtures/synthetic-bundles.ts";

let edge: ChildProcess;
let url: string;
let client: OpenAI;
let target: CausalLM;
let served: ServedModel;
let tok: TextTokenizer;
let modelId: string;

async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export async function startEdge(env: Record<string, string>): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/node.ts"], { env: { ...process.env, PORT: "0", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const deadline = Date.now() + 120_000;
  while (!/listening on (http:\/\/127\.0\.0\.1:\d+)/.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`edge did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url: out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)![1], output: () => out };
}

beforeAll(async () => {
  const t = await loadBundle(path.join(DEFAULT_PAIR_DIR, "target"));
  const d = await loadBundle(path.join(DEFAULT_PAIR_DIR, "draft"));
  target = await loadTargetModel(t);
  tok = TextTokenizer.fromBundle(t);
  served = servedModel({ target: t, draft: d, draftModel: await loadDraftModel(d), tokenizer: tok });
  modelId = t.manifest.id;
  ({ child: edge, url } = await startEdge({ POOL_NODES: `http://127.0.0.1:${await freePort()}` }));
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused-locally", maxRetries: 0 });
});
afterAll(async () => {
  if (edge && edge.exitCode === null) {
    edge.kill("SIGINT");
    await once(edge, "exit");
  }
});

/** Target-only greedy continuation, decoded as the API decodes it. */
async function reference(prompt: number[], maxTokens: number, stopIds: number[]): Promise<{ text: string; tokens: number; hitStop: boolean }> {
  const out = await target.greedy(prompt, maxTokens, stopIds);
  const hitStop = stopIds.includes(out.at(-1)!);
  const ids = hitStop ? out.slice(0, -1) : out;
  const tail = prompt.slice(-4);
  const head = tok.decode(tail, { skipSpecialTokens: true });
  return { text: tok.decode([...tail, ...ids], { skipSpecialTokens: true }).slice(head.length), tokens: ids.length, hitStop };
}

describe("OpenAI-compatible API on Node (official openai client)", () => {
  it("lists the model", async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([modelId]);
  });

  it("completions at temperature 0 equal target-only greedy text, with usage and speculation statistics", async () => {
    for (const text of SPANISH_PROMPTS.slice(0, 5)) {
      const r = await client.completions.create({ model: modelId, prompt: text, max_tokens: 24, temperature: 0 });
      const ref = await reference(tok.encode(text), 24, served.stopIds);
      expect(r.choices[0].text).toBe(ref.text);
      expect(r.choices[0].finish_reason).toBe(ref.hitStop ? "stop" : "length");
      expect(r.usage).toEqual({ prompt_tokens: tok.encode(text).length, completion_tokens: ref.tokens, total_tokens: tok.encode(text).length + ref.tokens });
      expect(r.system_fingerprint).toContain(modelId);
      expect((r as unknown as { alia_speculation: { target_passes: number } }).alia_speculation.target_passes).toBeGreaterThan(0);
    }
  });

  it("chat at temperature 0 renders the ChatML template and equals target-only greedy", async () => {
    const messages = [
      { role: "system" as const, content: "Eres un asistente." },
      { role: "user" as const, content: "Dime un refrán." },
    ];
    const r = await client.chat.completions.create({ model: modelId, messages, max_tokens: 32, temperature: 0 });
    const prompt = tok.encode(served.renderChat(messages));
    const ref = await reference(prompt, 32, served.chatStopIds);
    expect(r.choices[0].message).toMatchObject({ role: "assistant", content: ref.text });
    expect(r.object).toBe("chat.completion");
    expect(r.usage?.prompt_tokens).toBe(prompt.length);
  });

  it("streams chunks that concatenate to the non-streamed text for the same seed, with include_usage", async () => {
    const body = { model: modelId, messages: [{ role: "user" as const, content: "Cuéntame algo sobre la vida." }], max_tokens: 40, temperature: 0.9, top_p: 0.95, seed: 1234 };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let chunks = 0;
    for await (const ch of stream) {
      chunks++;
      if (ch.choices[0]?.delta?.content) text += ch.choices[0].delta.content;
      if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
      if (ch.usage) usage = ch.usage;
    }
    expect(chunks).toBeGreaterThan(3);
    expect(text).toBe(whole.choices[0].message.content);
    expect(finish).toBe(whole.choices[0].finish_reason);
    expect(usage).toEqual(whole.usage);
    // Completions stream too.
    const cs = await client.completions.create({ model: modelId, prompt: "La vida es", max_tokens: 20, temperature: 0, stream: true });
    let ctext = "";
    for await (const ch of cs) ctext += ch.choices[0]?.text ?? "";
    expect(ctext).toBe((await reference(tok.encode("La vida es"), 20, served.stopIds)).text);
  });

  it("ends at a stop sequence (excluded) and at max_tokens", async () => {
    const ref = await reference(tok.encode("El amor es"), 40, []);
    const stop = ref.text.slice(8, 11);
    const r = await client.completions.create({ model: modelId, prompt: "El amor es", max_tokens: 40, temperature: 0, stop: [stop] });
    expect(r.choices[0].text).toBe(ref.text.slice(0, ref.text.indexOf(stop)));
    expect(r.choices[0].finish_reason).toBe("stop");
    const short = await client.completions.create({ model: modelId, prompt: "Nunca es tarde", max_tokens: 3, temperature: 0 });
    expect(short.usage?.completion_tokens).toBeLessThanOrEqual(3);
    if (short.choices[0].finish_reason === "length") expect(short.usage?.completion_tokens).toBe(3);
  });

  it("surfaces errors as the SDK's typed errors", async () => {
    await expect(client.completions.create({ model: "gpt-4", prompt: "hola" })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const bad = await client.chat.completions.create({ model: modelId, messages: [{ role: "user", content: "hola" }], n: 2 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("n");
    const tools = await client.chat.completions
      .create({ model: modelId, messages: [{ role: "user", content: "hola" }], tools: [{ type: "function", function: { name: "f", parameters: {} } }] })
      .catch((e: unknown) => e);
    expect(tools).toBeInstanceOf(OpenAI.BadRequestError);
    expect((tools as Error).message).toMatch(/tools/);
    const long = await client.completions.create({ model: modelId, prompt: "palabra ".repeat(2000), max_tokens: 5 }).catch((e: unknown) => e);
    expect(long).toMatchObject({ status: 400, code: "context_length_exceeded" });
    const unknown = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: modelId, prompt: "x", frobnicate: 1 }) });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: { message: string } }).error.message).toMatch(/Unrecognized request argument supplied: frobnicate/);
  });

  it("serves 16 simultaneous streams, each identical to its sequential greedy output", async () => {
    const prompts = SPANISH_PROMPTS.slice(10, 26);
    const refs = await Promise.all(prompts.map(async (p) => (await reference(tok.encode(p), 32, served.stopIds)).text));
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
      { model: fc.oneof(fc.constant(modelId), fc.string()), messages: fc.oneof(field, fc.array(fc.record({ role: fc.string(), content: field }))), prompt: field, max_tokens: field, temperature: field, top_p: field, stop: field, seed: field, stream: field, n: field },
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
    expect(await post(JSON.stringify({ model: modelId, prompt: "a".repeat(10 << 20) }), "/v1/completions")).toBe(413); // 10 MB string
    expect(await post("not json at all")).toBe(400);
  });
});
