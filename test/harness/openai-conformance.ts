// The OpenAI conformance checks shared by the Node and the Workers end-to-end tests: the official
// `openai` client against a running alia-edge, compared with target-only greedy decoding on the fixture
// target (decoded the way the API decodes continuations).
import OpenAI from "openai";
import { expect, it } from "vitest";
import { SPANISH_PROMPTS } from "./prompts.ts";
import type { ServedModel } from "../../src/model-pair/served-model.ts";
import type { CausalLM } from "../../src/common/models/causal-lm.ts";
import type { TextTokenizer } from "../../src/common/models/tokenizer.ts";

export interface ConformanceContext {
  client: OpenAI;
  url: string;
  modelId: string;
  target: CausalLM;
  served: ServedModel;
  tok: TextTokenizer;
}

/**
 * Target-only greedy output, decoded as the API decodes it: a completion as the continuation of its prompt
 * (keeping a leading word-start space), a chat reply as a text of its own (transformers' decoding).
 */
export async function reference(x: ConformanceContext, prompt: number[], maxTokens: number, stopIds: number[], kind: "completion" | "chat" = "completion"): Promise<{ text: string; tokens: number; hitStop: boolean }> {
  const out = await x.target.greedy(prompt, maxTokens, stopIds);
  const hitStop = stopIds.includes(out.at(-1)!);
  const ids = hitStop ? out.slice(0, -1) : out;
  if (kind === "chat") return { text: x.tok.decode(ids, { skipSpecialTokens: true }), tokens: ids.length, hitStop };
  const tail = prompt.slice(-4);
  const head = x.tok.decode(tail, { skipSpecialTokens: true });
  return { text: x.tok.decode([...tail, ...ids], { skipSpecialTokens: true }).slice(head.length), tokens: ids.length, hitStop };
}

export function openAiConformance(ctx: () => ConformanceContext): void {
  it("lists the model", async () => {
    const { client, modelId } = ctx();
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([modelId]);
  });

  it("completions at temperature 0 equal target-only greedy text, with usage and speculation statistics", async () => {
    const x = ctx();
    const { client, modelId, tok, served } = x;
    for (const text of SPANISH_PROMPTS.slice(0, 5)) {
      const r = await client.completions.create({ model: modelId, prompt: text, max_tokens: 24, temperature: 0 });
      const ref = await reference(x, tok.encode(text), 24, served.stopIds);
      expect(r.choices[0].text).toBe(ref.text);
      expect(r.choices[0].finish_reason).toBe(ref.hitStop ? "stop" : "length");
      expect(r.usage).toEqual({ prompt_tokens: tok.encode(text).length, completion_tokens: ref.tokens, total_tokens: tok.encode(text).length + ref.tokens });
      expect(r.system_fingerprint).toContain(modelId);
      expect((r as unknown as { alia_speculation: { target_passes: number } }).alia_speculation.target_passes).toBeGreaterThan(0);
    }
  });

  it("chat at temperature 0 renders the ChatML template and equals target-only greedy", async () => {
    const x = ctx();
    const { client, modelId, tok, served } = x;
    const messages = [
      { role: "system" as const, content: "Eres un asistente." },
      { role: "user" as const, content: "Dime un refrán." },
    ];
    const r = await client.chat.completions.create({ model: modelId, messages, max_tokens: 32, temperature: 0 });
    const prompt = tok.encode(served.renderChat(messages));
    const ref = await reference(x, prompt, 32, served.chatStopIds, "chat");
    expect(r.choices[0].message).toMatchObject({ role: "assistant", content: ref.text });
    expect(ref.text.length).toBeGreaterThan(0);
    expect(r.choices[0].message.content).not.toMatch(/^\s/); // no word-start space after the assistant header
    expect(r.object).toBe("chat.completion");
    expect(r.usage?.prompt_tokens).toBe(prompt.length);
  });

  it("streams chunks that concatenate to the non-streamed text for the same seed, with include_usage", async () => {
    const x = ctx();
    const { client, modelId, tok, served } = x;
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
    expect(ctext).toBe((await reference(x, tok.encode("La vida es"), 20, served.stopIds)).text);
  });

  it("ends at a stop sequence (excluded) and at max_tokens", async () => {
    const x = ctx();
    const { client, modelId, tok } = x;
    const ref = await reference(x, tok.encode("El amor es"), 40, []);
    const stop = ref.text.slice(8, 11);
    const r = await client.completions.create({ model: modelId, prompt: "El amor es", max_tokens: 40, temperature: 0, stop: [stop] });
    expect(r.choices[0].text).toBe(ref.text.slice(0, ref.text.indexOf(stop)));
    expect(r.choices[0].finish_reason).toBe("stop");
    const short = await client.completions.create({ model: modelId, prompt: "Nunca es tarde", max_tokens: 3, temperature: 0 });
    expect(short.usage?.completion_tokens).toBeLessThanOrEqual(3);
    if (short.choices[0].finish_reason === "length") expect(short.usage?.completion_tokens).toBe(3);
  });

  it("surfaces errors as the SDK's typed errors", async () => {
    const x = ctx();
    const { client, modelId, url } = x;
    await expect(client.completions.create({ model: "gpt-4", prompt: "hola" })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const bad = await client.chat.completions.create({ model: modelId, messages: [{ role: "user", content: "hola" }], n: 9 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("n");
    const tools = await client.chat.completions.create({ model: modelId, messages: [{ role: "user", content: "hola" }], tools: [{ type: "function", function: { name: "f", parameters: {} } }] }).catch((e: unknown) => e);
    expect(tools).toBeInstanceOf(OpenAI.BadRequestError);
    expect((tools as Error).message).toMatch(/tools/);
    const long = await client.completions.create({ model: modelId, prompt: "palabra ".repeat(2000), max_tokens: 5 }).catch((e: unknown) => e);
    expect(long).toMatchObject({ status: 400, code: "context_length_exceeded" });
    const unknown = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: modelId, prompt: "x", frobnicate: 1 }) });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: { message: string } }).error.message).toMatch(/Unrecognized request argument supplied: frobnicate/);
  });
}
