// Structured outputs, log-probs and n > 1 end to end (issue 17's acceptance tests): a real verifier
// process and a real edge (`src/node.ts`, drafting with the draft model at a fixed γ = 4) over HTTP,
// checked against target-only references computed here, in this process, on the fixture target with the
// same grammar engine: constrained greedy decoding token for token, the masked sampling distribution
// (chi-square, with power), the target's own log-probs, seeded n = 3, the official client's parse helper
// and the schema refusals.
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { TokenBytes } from "../src/api/logprob-format.ts";
import type { CausalLM, KvSequence } from "../src/common/models/causal-lm.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { allowedIds, maskRow } from "../src/common/token-mask.ts";
import { argmax } from "../src/common/sampling.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { servedModel, type ServedModel } from "../src/model-pair/served-model.ts";
import { GrammarCursor, type GrammarSpec } from "../src/structured/grammar.ts";
import { XgrammarEngine } from "../src/structured/xgrammar-engine.ts";
import { chiSquareTest, totalVariation } from "./harness/chi-square.ts";
import { concurrently } from "./harness/concurrently.ts";
import { loadDefaultBundles } from "./harness/default-pair.ts";
import { startEdgeProcess, startVerifierProcess, type EdgeProcess, type ListeningProcess } from "./harness/processes.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";

const TOKEN = "structured-test-token-0123456789";

let verifier: ListeningProcess;
let edge: EdgeProcess;
let client: OpenAI;
let target: CausalLM;
let tok: TextTokenizer;
let served: ServedModel;
let engine: XgrammarEngine;
let bytes: TokenBytes;
let modelId: string;

beforeAll(async () => {
  const b = await loadDefaultBundles();
  ({ tok, modelId } = b);
  target = await loadTargetModel(b.targetBundle);
  served = servedModel({ target: b.targetBundle, tokenizer: tok });
  engine = await XgrammarEngine.create(tok);
  bytes = new TokenBytes(tok);
  verifier = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN });
  edge = await startEdgeProcess({ POOL_NODES: verifier.url, POOL_TOKEN: TOKEN, EMBEDDED_VERIFIER: "false", SPEC_PROPOSER: "model", SPEC_GAMMA: "4", LOG_REQUESTS: "false", MAX_CONCURRENT: "32" });
  client = new OpenAI({ baseURL: `${edge.url}/v1`, apiKey: "unused-locally", maxRetries: 0, timeout: 120_000 });
});
afterAll(async () => {
  if (process.env.DEBUG_EDGE) console.log(edge?.output(), verifier?.output()); // DEBUG_EDGE=1: the processes' output
  await edge?.stop("SIGKILL");
  await verifier?.stop("SIGKILL");
});

// ---------------------------------------------------------------------------------------------------------
// Schemas. The fixture model writes Spanish prose, never JSON of its own: the grammar forces the JSON, and
// it never ends an unbounded string or integer by itself, so every schema a test needs complete is bounded.

const PERSON = {
  type: "object",
  properties: { name: { type: "string", maxLength: 12 }, age: { type: "integer", minimum: 0, maximum: 120 }, adult: { type: "boolean" } },
  required: ["name", "age", "adult"],
  additionalProperties: false,
};
const INVOICE = {
  type: "object",
  properties: {
    estado: { enum: ["pagada", "pendiente", "anulada"] },
    cliente: {
      type: "object",
      properties: { nombre: { type: "string", maxLength: 6 }, id: { type: "integer", minimum: 0, maximum: 999 } },
      required: ["nombre", "id"],
      additionalProperties: false,
    },
    lineas: { type: "array", maxItems: 3, items: { type: "integer", minimum: 1, maximum: 99 } },
  },
  required: ["estado", "cliente", "lineas"],
  additionalProperties: false,
};

type Format = { type: "json_object" } | { type: "json_schema"; json_schema: { name: string; schema: Record<string, unknown> } };
/** The three formats of the identity test, each with the budget it is decoded to and a validator. */
const FORMATS: { name: string; format: Format; spec: GrammarSpec; max: number; valid: (x: unknown) => boolean }[] = [
  { name: "person", format: { type: "json_schema", json_schema: { name: "person", schema: PERSON } }, spec: { kind: "json_schema", schema: PERSON }, max: 48, valid: (x) => validPerson(x) },
  { name: "invoice", format: { type: "json_schema", json_schema: { name: "invoice", schema: INVOICE } }, spec: { kind: "json_schema", schema: INVOICE }, max: 96, valid: (x) => validInvoice(x) },
  { name: "json_object", format: { type: "json_object" }, spec: { kind: "json_object" }, max: 40, valid: (x) => isObject(x) },
];

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const keysExactly = (x: Record<string, unknown>, keys: string[]) => Object.keys(x).sort().join() === [...keys].sort().join();
const intIn = (x: unknown, lo: number, hi: number) => Number.isInteger(x) && (x as number) >= lo && (x as number) <= hi;
const strMax = (x: unknown, n: number) => typeof x === "string" && [...x].length <= n;
function validPerson(x: unknown): boolean {
  return isObject(x) && keysExactly(x, ["name", "age", "adult"]) && strMax(x.name, 12) && intIn(x.age, 0, 120) && typeof x.adult === "boolean";
}
function validInvoice(x: unknown): boolean {
  if (!isObject(x) || !keysExactly(x, ["estado", "cliente", "lineas"])) return false;
  const c = x.cliente;
  return (
    ["pagada", "pendiente", "anulada"].includes(x.estado as string) &&
    isObject(c) &&
    keysExactly(c, ["nombre", "id"]) &&
    strMax(c.nombre, 6) &&
    intIn(c.id, 0, 999) &&
    Array.isArray(x.lineas) &&
    x.lineas.length <= 3 &&
    x.lineas.every((l) => intIn(l, 1, 99))
  );
}

// ---------------------------------------------------------------------------------------------------------
// Target-only references, in this process.

/** ln softmax(row) (temperature 1, no mask). */
function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i] - max);
  const lz = max + Math.log(z);
  return Float64Array.from(row as ArrayLike<number>, (x) => x - lz);
}

/** Softmax of `row` restricted to `ids` at temperature `t` (renormalised), in the order of `ids`. */
function restrictedSoftmax(row: ArrayLike<number>, ids: readonly number[], t = 1): number[] {
  const max = Math.max(...ids.map((id) => row[id]));
  const e = ids.map((id) => Math.exp((row[id] - max) / t));
  const z = e.reduce((s, x) => s + x, 0);
  return e.map((x) => x / z);
}

interface Reference {
  /** Output ids, the stop id excluded. */
  ids: number[];
  hitStop: boolean;
  /** Unmasked ln p (temperature 1) of each output id. */
  logprobs: number[];
  /** At each output position, the 3 most likely ids with their ln p, most likely first (ties: lower id). */
  tops: [number, number][][];
}

/** Target-only greedy decoding under `spec` (argmax of the masked logits), or unconstrained without one. */
async function constrainedGreedy(prompt: readonly number[], spec: GrammarSpec | undefined, maxTokens: number, stopIds: readonly number[]): Promise<Reference> {
  const m = spec && (await (await engine.compile(spec)).matcher(stopIds));
  const seq = target.newSequence();
  const ids: number[] = [];
  const logprobs: number[] = [];
  const tops: [number, number][][] = [];
  let hitStop = false;
  try {
    let row = (await target.forward(seq, prompt)).last();
    while (ids.length < maxTokens) {
      const next = argmax(m ? maskRow(row, await m.allowed()) : row);
      if (stopIds.includes(next)) {
        hitStop = true;
        break;
      }
      const lp = logSoftmax(row);
      logprobs.push(lp[next]);
      const order = Array.from(lp.keys())
        .sort((a, b) => lp[b] - lp[a] || a - b)
        .slice(0, 3);
      tops.push(order.map((id) => [id, lp[id]]));
      if (m && !m.accept(next)) throw new Error(`the grammar refused its own argmax ${next}`);
      ids.push(next);
      if (ids.length === maxTokens) break;
      row = (await target.forward(seq, [next])).last();
    }
  } finally {
    m?.dispose();
  }
  return { ids, hitStop, logprobs, tops };
}

const chatPrompt = (content: string) => tok.encode(served.renderChat([{ role: "user", content }]));
const idBytes = (ids: readonly number[]) => ids.map((id) => bytes.bytes(id));
const speculation = (r: unknown) => (r as { alia_speculation: { drafted_tokens: number; accepted_tokens: number; rounds: number; by_proposer: Record<string, { drafted_tokens: number }> } }).alia_speculation;

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${edge.url}/v1/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: AbortSignal.timeout(120_000) });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

// ---------------------------------------------------------------------------------------------------------

describe("greedy decoding under a response_format is token-identical to constrained target-only decoding", () => {
  it("50 prompts × 3 formats (person, invoice, json_object), γ = 4 with the draft model; every finished answer parses and validates", async () => {
    const started = Date.now();
    const cases = SPANISH_PROMPTS.flatMap((prompt, p) => FORMATS.map((f) => ({ prompt, p, f })));
    expect(cases.length).toBe(150);
    let drafted = 0;
    let accepted = 0;
    let finished = 0;
    const finishedBy = new Map<string, number>();
    await concurrently(cases, 6, async ({ prompt, p, f }) => {
      const ids = chatPrompt(prompt);
      const [r, ref] = await Promise.all([
        client.chat.completions.create({ model: modelId, messages: [{ role: "user", content: prompt }], max_tokens: f.max, temperature: 0, response_format: f.format, logprobs: true }),
        constrainedGreedy(ids, f.spec, f.max, served.chatStopIds),
      ]);
      const what = `prompt ${p} (${prompt}), ${f.name}`;
      const ch = r.choices[0];
      // Token for token: each output token's bytes (the ids' spelling), their number, the text, the finish.
      expect(
        ch.logprobs?.content?.map((c) => c.bytes),
        what,
      ).toEqual(idBytes(ref.ids));
      expect(r.usage?.completion_tokens, what).toBe(ref.ids.length);
      expect(ch.message.content, what).toBe(tok.decode(ref.ids, { skipSpecialTokens: true }));
      expect(ch.finish_reason, what).toBe(ref.hitStop ? "stop" : "length");
      expect(r.usage?.prompt_tokens, what).toBe(ids.length);
      // Never invalid JSON: a finished answer parses and validates against its schema.
      if (ch.finish_reason === "stop") {
        finished++;
        finishedBy.set(f.name, (finishedBy.get(f.name) ?? 0) + 1);
        const parsed = JSON.parse(ch.message.content!) as unknown;
        expect(f.valid(parsed), `${what}: ${ch.message.content}`).toBe(true);
      }
      const s = speculation(r);
      drafted += s.drafted_tokens;
      accepted += s.accepted_tokens;
    });
    const seconds = (Date.now() - started) / 1000;
    console.log(`constrained greedy identity: 150 cases in ${seconds.toFixed(1)} s; drafted ${drafted}, accepted ${accepted}; finished (stop) ${finished}: ${JSON.stringify(Object.fromEntries(finishedBy))}`);
    // Speculation really ran: drafts were sent and a good share accepted.
    expect(drafted).toBeGreaterThan(1000);
    expect(accepted / drafted).toBeGreaterThan(0.2);
    // The bounded schemas finish within the budget (the checks above then covered complete JSON).
    expect(finishedBy.get("person") ?? 0).toBeGreaterThan(40);
    expect(finishedBy.get("invoice") ?? 0).toBeGreaterThan(40);
    expect(seconds).toBeLessThan(240);
  });
});

// ---------------------------------------------------------------------------------------------------------

/**
 * The exact distribution of whole answers under `spec` when sampling the masked target at temperature `t`:
 * every token path the grammar allows (a tree walked depth first, each branch on a fork of the KV cache),
 * keyed by the answer's JSON value. Branches below `minProb` are dropped; their mass is returned as `lost`.
 */
async function answerDistribution(
  prompt: readonly number[],
  spec: GrammarSpec,
  stopIds: readonly number[],
  t: number,
  model = target,
  minProb = 1e-6,
): Promise<{ probs: Map<string, number>; lost: number; nodes: number }> {
  const cursor = new GrammarCursor(await (await engine.compile(spec)).matcher(stopIds));
  const probs = new Map<string, number>();
  let lost = 0;
  let nodes = 0;
  const walk = async (seq: KvSequence, row: Float32Array, path: number[], prob: number): Promise<void> => {
    if (++nodes > 5000) throw new Error("the answer tree is too large for an exact distribution");
    const mask = await cursor.maskAfter(path);
    if (!mask) throw new Error("the grammar refuses a path it allowed");
    const ids = allowedIds(mask, cursor.vocab);
    const ps = restrictedSoftmax(row, ids, t);
    for (let i = 0; i < ids.length; i++) {
      const p = prob * ps[i];
      if (p < minProb) {
        lost += p;
        continue;
      }
      if (stopIds.includes(ids[i])) {
        const key = JSON.stringify(JSON.parse(tok.decode(path, { skipSpecialTokens: true })));
        probs.set(key, (probs.get(key) ?? 0) + p);
        continue;
      }
      const child = seq.fork();
      await walk(child, (await model.forward(child, [ids[i]])).last(), [...path, ids[i]], p);
    }
  };
  try {
    const seq = model.newSequence();
    await walk(seq, (await model.forward(seq, prompt)).last(), [], 1);
  } finally {
    cursor.dispose();
  }
  return { probs, lost, nodes };
}

describe("sampling under a response_format draws from the masked target distribution (chi-square, with power)", () => {
  it("an enum of 4 colours at temperature 1: 800 seeds match the masked, renormalised target; other distributions are rejected", async () => {
    const schema = { enum: ["rojo", "verde", "azul", "negro"] };
    const question = "¿De qué color es el cielo?";
    const exact = await answerDistribution(chatPrompt(question), { kind: "json_schema", schema }, served.chatStopIds, 1);
    expect(exact.lost).toBeLessThan(1e-3);
    const keys = schema.enum.map((v) => JSON.stringify(v));
    expect([...exact.probs.keys()].sort()).toEqual([...keys].sort());
    const probs = keys.map((k) => exact.probs.get(k)! / (1 - exact.lost));
    // Alternatives a broken edge could produce: the draft's masked distribution (drafts committed as they
    // are), the masked target at another temperature, a uniform choice.
    const draft = await loadDraftModel((await loadDefaultBundles()).draftBundle);
    const alternative = async (t: number, model: CausalLM) => {
      const d = await answerDistribution(chatPrompt(question), { kind: "json_schema", schema }, served.chatStopIds, t, model);
      return keys.map((k) => (d.probs.get(k) ?? 0) / (1 - d.lost));
    };
    const alternatives: [string, number[]][] = [
      ["the draft's masked distribution", await alternative(1, draft)],
      ["masked target at temperature 2.5", await alternative(2.5, target)],
      ["uniform over the enum", keys.map(() => 1 / keys.length)],
    ];
    const N = 800;
    const counts = new Map<string, number>();
    let drafted = 0;
    let modelDrafted = 0;
    const started = Date.now();
    await concurrently(
      Array.from({ length: N }, (_, i) => i),
      8,
      async (seed) => {
        const r = await client.chat.completions.create({
          model: modelId,
          messages: [{ role: "user", content: question }],
          temperature: 1,
          seed,
          max_tokens: 16,
          response_format: { type: "json_schema", json_schema: { name: "color", schema } },
        });
        expect(r.choices[0].finish_reason, `seed ${seed}`).toBe("stop");
        const key = JSON.stringify(JSON.parse(r.choices[0].message.content!));
        counts.set(key, (counts.get(key) ?? 0) + 1);
        const s = speculation(r);
        drafted += s.drafted_tokens;
        modelDrafted += s.by_proposer.model?.drafted_tokens ?? 0;
      },
    );
    const observed = keys.map((k) => counts.get(k) ?? 0);
    expect([...counts.keys()].filter((k) => !keys.includes(k))).toEqual([]);
    const fit = chiSquareTest(observed, probs);
    console.log(
      `enum chi-square: ${N} samples in ${((Date.now() - started) / 1000).toFixed(1)} s (${exact.nodes} tree nodes); observed ${JSON.stringify(observed)}, expected ${JSON.stringify(probs.map((p) => +(p * N).toFixed(1)))}; ` +
        `chi² ${fit.statistic.toFixed(2)} (dof ${fit.dof}), p ${fit.pValue.toFixed(4)}; drafted ${drafted} (model ${modelDrafted})`,
    );
    expect(fit.pValue).toBeGreaterThan(1e-3);
    // Speculation ran: the draft model drafted (a sampled draft carries its q̃).
    expect(modelDrafted).toBeGreaterThan(N);
    // Power: the same samples reject each alternative, which is far enough from the exact distribution.
    for (const [name, alt] of alternatives) {
      expect(
        totalVariation(
          alt.map((p) => p * N),
          probs,
        ),
        name,
      ).toBeGreaterThan(0.08);
      const r = chiSquareTest(observed, alt);
      console.log(`  against ${name}: chi² ${r.statistic.toFixed(1)}, p ${r.pValue.toExponential(2)}`);
      expect(r.pValue, name).toBeLessThan(1e-6);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("the official openai client's parse helper (zodResponseFormat)", () => {
  it("parses every answer of the fixture model to the zod schema's object", async () => {
    const Persona = z.object({ nombre: z.string().max(12), edad: z.number().int().min(0).max(120), activo: z.boolean() });
    const format = zodResponseFormat(Persona, "persona");
    for (const prompt of SPANISH_PROMPTS.slice(0, 10)) {
      const r = await client.chat.completions.parse({ model: modelId, messages: [{ role: "user", content: prompt }], max_tokens: 64, temperature: 0, response_format: format });
      const ch = r.choices[0];
      expect(ch.finish_reason, prompt).toBe("stop");
      expect(ch.message.parsed, prompt).toEqual(JSON.parse(ch.message.content!));
      expect(Persona.safeParse(ch.message.parsed).success, `${prompt}: ${ch.message.content}`).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

type ChatTokenLogprob = { token: string; logprob: number; bytes: number[] | null; top_logprobs: { token: string; logprob: number; bytes: number[] | null }[] };

/** Each returned log-prob within 1e-4 of the target's ln softmax, its alternatives the target's top 3 in order. */
function expectChatLogprobs(content: ChatTokenLogprob[] | null | undefined, ref: Reference, what: string): void {
  expect(
    content?.map((c) => c.bytes),
    what,
  ).toEqual(idBytes(ref.ids));
  content!.forEach((c, i) => {
    expect(Math.abs(c.logprob - ref.logprobs[i]), `${what}, token ${i}: ${c.logprob} vs ${ref.logprobs[i]}`).toBeLessThan(1e-4);
    expect(
      c.top_logprobs.map((t) => t.bytes),
      `${what}, token ${i}`,
    ).toEqual(idBytes(ref.tops[i].map(([id]) => id)));
    c.top_logprobs.forEach((t, k) => expect(Math.abs(t.logprob - ref.tops[i][k][1]), `${what}, token ${i}, alternative ${k}`).toBeLessThan(1e-4));
  });
}

describe("log-probs are the target's own (ln softmax at temperature 1, before any mask)", () => {
  const tokenText = (id: number) => bytes.textOf(bytes.bytes(id));

  it("chat with logprobs and top_logprobs 3, with and without a response_format, streamed and not", async () => {
    const formats: [string, Format | undefined, GrammarSpec | undefined][] = [
      ["text", undefined, undefined],
      ["person", FORMATS[0].format, FORMATS[0].spec],
    ];
    for (const prompt of SPANISH_PROMPTS.slice(0, 4))
      for (const [name, format, spec] of formats) {
        const what = `${prompt}, ${name}`;
        const body = { model: modelId, messages: [{ role: "user" as const, content: prompt }], max_tokens: 24, temperature: 0, logprobs: true, top_logprobs: 3, ...(format ? { response_format: format } : {}) };
        const ref = await constrainedGreedy(chatPrompt(prompt), spec, 24, served.chatStopIds);
        const r = await client.chat.completions.create(body);
        expectChatLogprobs(r.choices[0].logprobs?.content as ChatTokenLogprob[], ref, what);
        expect(speculation(r).drafted_tokens, what).toBeGreaterThan(0);
        // Streamed: the chunks' log-probs concatenate to the same list.
        const stream = await client.chat.completions.create({ ...body, stream: true });
        const streamed: unknown[] = [];
        let text = "";
        for await (const ch of stream) {
          streamed.push(...(ch.choices[0]?.logprobs?.content ?? []));
          text += ch.choices[0]?.delta?.content ?? "";
        }
        expect(streamed, what).toEqual(r.choices[0].logprobs?.content);
        expect(text, what).toBe(r.choices[0].message.content);
      }
  });

  it("completions with logprobs 3 (a response_format or none), streamed and not", async () => {
    for (const prompt of SPANISH_PROMPTS.slice(4, 8))
      for (const f of [undefined, FORMATS[0]]) {
        const what = `${prompt}, ${f?.name ?? "text"}`;
        const ids = tok.encode(prompt);
        const ref = await constrainedGreedy(ids, f?.spec, 24, served.stopIds);
        const body = { model: modelId, prompt, max_tokens: 24, temperature: 0, logprobs: 3, ...(f ? { response_format: f.format } : {}) };
        const { status, json } = await post("completions", body);
        expect(status, what).toBe(200);
        const choice = (json.choices as { text: string; logprobs: { tokens: string[]; token_logprobs: number[]; top_logprobs: Record<string, number>[]; text_offset: number[] } }[])[0];
        const lp = choice.logprobs;
        expect(lp.tokens, what).toEqual(ref.ids.map(tokenText));
        lp.token_logprobs.forEach((x, i) => expect(Math.abs(x - ref.logprobs[i]), `${what}, token ${i}`).toBeLessThan(1e-4));
        lp.top_logprobs.forEach((top, i) => {
          const want = ref.tops[i].map(([id, l]) => [tokenText(id), l] as const);
          // Most likely first by value: a JSON object puts integer-like keys ("0", "5") first, ascending.
          expect(
            Object.entries(top)
              .sort((x, y) => y[1] - x[1])
              .map(([t]) => t),
            `${what}, token ${i}`,
          ).toEqual(want.map(([t]) => t));
          want.forEach(([t, l]) => expect(Math.abs(top[t] - l), `${what}, token ${i}, ${t}`).toBeLessThan(1e-4));
        });
        // Streamed: the chunks' parallel arrays concatenate to the same ones.
        const res = await fetch(`${edge.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true }), signal: AbortSignal.timeout(60_000) });
        const cat = { tokens: [] as string[], token_logprobs: [] as number[], top_logprobs: [] as Record<string, number>[], text_offset: [] as number[] };
        for (const line of (await res.text()).split("\n")) {
          if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
          const c = (JSON.parse(line.slice(6)) as { choices: { logprobs: typeof lp | null }[] }).choices[0]?.logprobs;
          if (!c) continue;
          cat.tokens.push(...c.tokens);
          cat.token_logprobs.push(...c.token_logprobs);
          cat.top_logprobs.push(...c.top_logprobs);
          cat.text_offset.push(...c.text_offset);
        }
        expect(cat, what).toEqual(lp);
      }
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("n choices", () => {
  const body = { model: modelId, messages: [{ role: "user" as const, content: "Cuéntame algo sobre la vida." }], max_tokens: 24, temperature: 1, seed: 42, n: 3, logprobs: true };
  type Choices = { index: number; message: { content: string | null }; finish_reason: string; logprobs?: { content?: unknown[] | null } | null }[];

  it("n = 3 with a seed: the same request gives the same 3 choices, which differ, and usage sums them; a response_format holds in each", async () => {
    const a = await client.chat.completions.create({ ...body, model: modelId });
    const b = await client.chat.completions.create({ ...body, model: modelId });
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    // Token for token (each token's bytes); the log-probs themselves may differ in the 7th digit, as the
    // verifier batches the rounds of concurrent sessions differently from one request to the next.
    const strip = (cs: Choices) => cs.map((c) => ({ index: c.index, content: c.message.content, finish: c.finish_reason, tokens: ((c.logprobs?.content ?? []) as ChatTokenLogprob[]).map((t) => t.bytes) }));
    expect(strip(b.choices as Choices)).toEqual(strip(a.choices as Choices));
    expect(new Set(a.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    expect(a.usage?.completion_tokens).toBe(a.choices.reduce((n, c) => n + (c.logprobs?.content?.length ?? 0), 0));
    expect(a.usage?.prompt_tokens).toBe(chatPrompt(body.messages[0].content).length);
    expect(speculation(a).drafted_tokens).toBeGreaterThan(0);
    // Choice 0 is the request's seed: it equals the same request with n = 1.
    const one = await client.chat.completions.create({ ...body, model: modelId, n: 1 });
    expect(one.choices[0].message.content).toBe(a.choices[0].message.content);

    const schema = await client.chat.completions.create({ ...body, model: modelId, max_tokens: 64, response_format: FORMATS[0].format });
    expect(schema.choices).toHaveLength(3);
    for (const c of schema.choices) {
      expect(c.finish_reason, c.message.content!).toBe("stop");
      expect(validPerson(JSON.parse(c.message.content!)), c.message.content!).toBe(true);
    }
    expect(new Set(schema.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
  });

  it("streamed n = 3: chunks for indexes 0, 1 and 2, each with a finish_reason, the same texts as not streamed", async () => {
    const whole = await client.chat.completions.create({ ...body, model: modelId });
    const stream = await client.chat.completions.create({ ...body, model: modelId, stream: true, stream_options: { include_usage: true } });
    const texts = ["", "", ""];
    const finishes: (string | null)[] = [null, null, null];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        expect([0, 1, 2]).toContain(c.index);
        texts[c.index] += c.delta?.content ?? "";
        if (c.finish_reason) {
          expect(finishes[c.index], `index ${c.index} finished twice`).toBeNull();
          finishes[c.index] = c.finish_reason;
        }
      }
    }
    expect(texts).toEqual(whole.choices.map((c) => c.message.content));
    expect(finishes).toEqual(whole.choices.map((c) => c.finish_reason));
    expect(usage).toEqual(whole.usage);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("refusals and validity", () => {
  const chat = (extra: Record<string, unknown>) => post("chat/completions", { model: modelId, messages: [{ role: "user", content: "hola" }], max_tokens: 8, ...extra });
  const schemaFormat = (schema: Record<string, unknown>) => ({ response_format: { type: "json_schema", json_schema: { name: "s", schema } } });
  const SCHEMA_PARAM = "response_format.json_schema.schema";

  it.each([
    ["oneOf", { type: "object", properties: { a: { oneOf: [{ type: "integer" }, { type: "string" }] } } }, /oneOf/],
    ["not", { type: "object", properties: { a: { not: { type: "string" } } } }, /'not'/],
    ["multipleOf", { type: "object", properties: { a: { type: "integer", multipleOf: 5 } } }, /multipleOf/],
    ["patternProperties", { type: "object", patternProperties: { "^x": { type: "string" } } }, /patternProperties/],
    ["a bad pattern", { type: "object", properties: { a: { type: "string", pattern: "(" } } }, /pattern/],
    ["bounds on a number", { type: "object", properties: { a: { type: "number", minimum: 0, maximum: 1 } } }, /integers only/],
  ])("refuses a schema with %s: 400 naming it, with param", async (_, schema, message) => {
    for (const path of ["chat/completions", "completions"]) {
      const body =
        path === "completions" ? { model: modelId, prompt: "hola", max_tokens: 8, ...schemaFormat(schema) } : { model: modelId, messages: [{ role: "user", content: "hola" }], max_tokens: 8, ...schemaFormat(schema) };
      const { status, json } = await post(path, body);
      expect(status, path).toBe(400);
      const error = json.error as { message: string; type: string; param: string | null; code: string | null };
      expect(error.type, path).toBe("invalid_request_error");
      expect(error.param, path).toBe(SCHEMA_PARAM);
      expect(error.message, path).toMatch(message);
    }
  });

  it.each([
    ["top_logprobs without logprobs", { top_logprobs: 3 }, "top_logprobs"],
    ["top_logprobs with logprobs false", { logprobs: false, top_logprobs: 3 }, "top_logprobs"],
    ["n = 9", { n: 9 }, "n"],
    ["n = 0", { n: 0 }, "n"],
    ["top_logprobs = 21", { logprobs: true, top_logprobs: 21 }, "top_logprobs"],
    ["a response_format of an unknown type", { response_format: { type: "yaml" } }, "response_format"],
  ])("refuses %s: 400 with param", async (_, extra, param) => {
    const { status, json } = await chat(extra);
    expect(status).toBe(400);
    expect((json.error as { type: string; param: string }).type).toBe("invalid_request_error");
    expect((json.error as { param: string }).param).toBe(param);
  });

  it("refuses completions' logprobs = 21 and n = 9 (param named), and the official client surfaces a schema refusal as BadRequestError", async () => {
    for (const [extra, param] of [
      [{ logprobs: 21 }, "logprobs"],
      [{ n: 9 }, "n"],
    ] as const) {
      const { status, json } = await post("completions", { model: modelId, prompt: "hola", max_tokens: 4, ...extra });
      expect(status).toBe(400);
      expect((json.error as { param: string }).param).toBe(param);
    }
    const err = await client.chat.completions
      .create({ model: modelId, messages: [{ role: "user", content: "hola" }], response_format: { type: "json_schema", json_schema: { name: "s", schema: { type: "object", properties: { a: { not: {} } } } } } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe(SCHEMA_PARAM);
  });

  it("never returns invalid JSON: sampled answers (temperatures 1 and 1.5, streamed and not) that stop parse and validate", async () => {
    const cases = SPANISH_PROMPTS.slice(0, 12).flatMap((prompt, i) => FORMATS.map((f) => ({ prompt, i, f })));
    let finished = 0;
    await concurrently(cases, 6, async ({ prompt, i, f }) => {
      const body = { model: modelId, messages: [{ role: "user" as const, content: prompt }], max_tokens: f.max + 16, temperature: i % 2 ? 1.5 : 1, seed: 1000 + i, response_format: f.format };
      const r = await client.chat.completions.create(body);
      const stream = await client.chat.completions.create({ ...body, stream: true });
      let text = "";
      let finish: string | null = null;
      for await (const ch of stream) {
        text += ch.choices[0]?.delta?.content ?? "";
        finish = ch.choices[0]?.finish_reason ?? finish;
      }
      expect(text, `${prompt}, ${f.name}`).toBe(r.choices[0].message.content);
      expect(finish).toBe(r.choices[0].finish_reason);
      if (r.choices[0].finish_reason !== "stop") return;
      finished++;
      const content = r.choices[0].message.content!;
      let parsed: unknown;
      expect(() => (parsed = JSON.parse(content)), `${prompt}, ${f.name}: ${content}`).not.toThrow();
      expect(f.valid(parsed), `${prompt}, ${f.name}: ${content}`).toBe(true);
    });
    console.log(`sampled validity: ${finished} of ${cases.length} answers stopped, all valid`);
    expect(finished).toBeGreaterThan(16);
  });
});
