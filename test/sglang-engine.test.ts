// SglangEngine against a CONTRACT SERVER: SGLang cannot run here, so this test serves SGLang's documented
// /generate request and response shapes (meta_info.input_token_logprobs / input_top_logprobs with index 0
// null, output_top_logprobs, cached_tokens from a simulated radix cache), computed by our own target.
// It checks the adapter's requests, alignment and exactness claims, not SGLang itself.
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine } from "../gpu-backend/onnx-engine.ts";
import { PassAccounting } from "../gpu-backend/pass-accounting.ts";
import { SglangEngine } from "../gpu-backend/sglang-engine.ts";
import { h200Alia40b } from "../src/common/h200-alia-40b.ts";
import { Verifier } from "../gpu-backend/verifier.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { VerifyRequestSchema, type Sampling, type VerifyRequest } from "../src/common/protocol.ts";
import { logSoftmaxAt } from "../src/common/verification.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { deadEndpoint } from "./harness/ports.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";

let target: CausalLM;
let draft: CausalLM;
let tok: TextTokenizer;
let server: ServerType;
let url: string;
const seen: number[][] = [];
const requests: Record<string, unknown>[] = [];
/** Answer the next request(s) with 500, as an overloaded or restarting SGLang would. */
let failNext = 0;
/** Streamed generation: output_ids only new ones per chunk (SGLang's --incremental-streaming-output), and a connection cut after this many tokens. */
const streaming = { incremental: false, cutAfter: Number.POSITIVE_INFINITY };

function topK(row: Float32Array, k: number): [number, number, null][] {
  const ids = Array.from(row.keys())
    .sort((a, b) => row[b] - row[a] || a - b)
    .slice(0, k);
  return ids.map((id) => [logSoftmaxAt(row, id), id, null]);
}

interface StreamedGenerate {
  input_ids: number[];
  sampling_params: { max_new_tokens: number; temperature: number; stop_token_ids?: number[] };
}

/**
 * SGLang's streamed /generate: SSE chunks of `{text, output_ids, meta_info: {completion_tokens, finish_reason}}`
 * (output_ids all so far, or the new ones), then `data: [DONE]`. SGLang leaves a matched stop token out of
 * output_ids and names it in finish_reason.matched; the adapter must still yield it.
 */
function streamGenerate(b: StreamedGenerate): Response {
  const p = b.sampling_params;
  if (p.temperature !== 0) return Response.json({ error: "contract: the adapter streams greedy generation only" }, { status: 400 });
  const stops = p.stop_token_ids ?? [];
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async start(ctl) {
      const out = await target.greedy(b.input_ids, p.max_new_tokens, stops);
      const stopped = out.length > 0 && stops.includes(out[out.length - 1]);
      const shown = stopped ? out.slice(0, -1) : out;
      for (let i = 0; i < shown.length; i++) {
        if (i === streaming.cutAfter) return ctl.error(new Error("contract: connection cut"));
        const ids = streaming.incremental ? [shown[i]] : shown.slice(0, i + 1);
        const last = i === shown.length - 1;
        const finish = last ? (stopped ? { type: "stop", matched: out[out.length - 1] } : { type: "length", length: p.max_new_tokens }) : null;
        ctl.enqueue(enc.encode(`data: ${JSON.stringify({ text: "", output_ids: ids, meta_info: { prompt_tokens: b.input_ids.length, completion_tokens: i + 1, finish_reason: finish } })}\n\n`));
        await new Promise((r) => setTimeout(r, 1)); // one decode step: each chunk leaves before the next
      }
      ctl.enqueue(enc.encode("data: [DONE]\n\n"));
      ctl.close();
    },
  });
  return new Response(body, { headers: { "content-type": "text/event-stream" } });
}

beforeAll(async () => {
  ({ target, draft, tok } = await loadDefaultPair());
  const app = new Hono();
  app.post("/generate", async (c) => {
    const b = (await c.req.json()) as {
      input_ids: number[];
      sampling_params: { max_new_tokens: number };
      return_logprob: boolean;
      logprob_start_len: number;
      top_logprobs_num: number;
    };
    requests.push(b);
    if (failNext > 0) {
      failNext--;
      return c.json({ error: "contract: simulated failure" }, 500);
    }
    if ((b as { stream?: boolean }).stream) return streamGenerate(b as unknown as StreamedGenerate);
    const n = b.input_ids.length;
    if (b.sampling_params?.max_new_tokens !== 1 || b.return_logprob !== true || !(b.logprob_start_len >= 0 && b.logprob_start_len < n))
      return c.json({ error: "contract: expected max_new_tokens 1, return_logprob, 0 ≤ logprob_start_len < len" }, 400);
    const logits = await target.forward(target.newSequence(), b.input_ids);
    const start = b.logprob_start_len;
    const input_token_logprobs = b.input_ids.slice(start).map((id, k) => [k === 0 ? null : logSoftmaxAt(logits.row(start + k - 1), id), id, null]);
    const input_top_logprobs = b.input_ids.slice(start).map((_, k) => (k === 0 ? null : topK(logits.row(start + k - 1), b.top_logprobs_num)));
    const out = topK(logits.row(n - 1), b.top_logprobs_num);
    // Radix cache: the longest prefix shared with an earlier request (never the whole input).
    const cached = Math.max(
      0,
      ...seen.map((s) => {
        let i = 0;
        while (i < s.length && i < n - 1 && s[i] === b.input_ids[i]) i++;
        return i;
      }),
    );
    seen.push(b.input_ids);
    return c.json({
      text: "",
      output_ids: [out[0][1]],
      meta_info: { prompt_tokens: n, completion_tokens: 1, cached_tokens: cached, input_token_logprobs, input_top_logprobs, output_token_logprobs: [out[0]], output_top_logprobs: [out] },
    });
  });
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) => {
      url = `http://127.0.0.1:${info.port}`;
      resolve();
    });
  });
});
afterAll(() => server?.close());

const store = { maxBytes: 64 << 20, maxSessions: 64, idleTtlMs: 60_000 };
const sglang = (topLogprobs = 5, baseUrl = url) => new SglangEngine({ baseUrl, topLogprobs, timeoutMs: 10_000, vocab: target.vocab, maxPositions: target.maxPositions });
const req = (r: Partial<VerifyRequest> & Pick<VerifyRequest, "session" | "seq">): VerifyRequest => VerifyRequestSchema.parse({ drafts: [], ...r });

/** Greedy speculative decoding through a Verifier: n new tokens after `prompt`. */
async function speculate(v: Verifier, session: string, prompt: number[], n: number, gamma: number) {
  const out: number[] = [];
  let committed: number[] | undefined;
  for (let round = 0; out.length < n; round++) {
    const drafts = await draft.greedy([...prompt, ...out], gamma);
    const r = await v.round(req({ session, seq: round, drafts, ...(round === 0 ? { history: prompt } : { committed }) }));
    committed = [...drafts.slice(0, r.accepted), r.token];
    out.push(...committed);
  }
  return out.slice(0, n);
}

describe("SglangEngine (against a contract server)", () => {
  it("greedy verification over SGLang's API reproduces target-only greedy output, reusing the prefix cache", async () => {
    const engine = sglang();
    const v = new Verifier(engine, store);
    for (const [i, text] of SPANISH_PROMPTS.slice(0, 8).entries()) {
      const prompt = tok.encode(text);
      expect(await speculate(v, `g${i}`, prompt, 24, 4)).toEqual(await target.greedy(prompt, 24));
    }
    const last = requests.at(-1)!;
    expect(last).toMatchObject({ return_logprob: true, sampling_params: { max_new_tokens: 1 }, top_logprobs_num: 5 });
    expect(last.logprob_start_len).toBe((last.input_ids as number[]).length - 5); // γ = 4: P − 1
    // After each session's first round SGLang finds the earlier prefix in its radix cache.
    expect(engine.cache.cachedTokens / engine.cache.prefixTokens).toBeGreaterThan(0.8);
  });

  it("reports the same load shape as the ONNX engine: the rows it has in SGLang and, with a cost model, the next pass's cost per chunk", async () => {
    const model = h200Alia40b();
    const engine = new SglangEngine({ baseUrl: url, topLogprobs: 5, timeoutMs: 10_000, vocab: target.vocab, maxPositions: target.maxPositions }, new PassAccounting({ model }));
    const v = new Verifier(engine, store);
    const prompts = SPANISH_PROMPTS.slice(0, 3).map((t) => tok.encode(t));
    // Three sessions at once: each answer sees the rows this verifier had in SGLang when its pass ended.
    const answers = await Promise.all(prompts.map((p, i) => v.round(req({ session: `ld${i}`, seq: 0, history: p, drafts: [p[0], p[1]] }))));
    for (const [i, r] of answers.entries()) {
      expect(r.load.rows).toBeGreaterThanOrEqual(1);
      expect(r.load.rows).toBeLessThanOrEqual(3);
      const curve = r.load.pass_ms_by_chunk!;
      expect(curve).toHaveLength(v.maxGamma + 1);
      for (let c = 1; c < curve.length; c++) expect(curve[c]).toBeGreaterThanOrEqual(curve[c - 1]);
      expect(curve[0]).toBeGreaterThanOrEqual(model.passMs(1, 1, prompts[i].length));
    }
    expect(engine.accounting.totals.passes).toBe(3);
    expect(engine.accounting.totals.tokens).toBe(9);
    // Without a cost model: the measured time of the last call, no prediction.
    const plain = await new Verifier(sglang(), store).round(req({ session: "ld-plain", seq: 0, history: prompts[0], drafts: [] }));
    expect(plain.load.pass_ms).toBeGreaterThan(0);
    expect(plain.load.pass_ms_by_chunk).toBeUndefined();
  });

  it("reports the target's log-prob of each draft, aligned (index 0 is the last prefix token)", async () => {
    const v = new Verifier(sglang(), store);
    const prompt = tok.encode("La vida es");
    const drafts = [...(await draft.greedy(prompt, 2)), 7]; // the last one is rarely in the top K
    const r = await v.round(req({ session: "lp", seq: 0, history: prompt, drafts }));
    const logits = await target.forward(target.newSequence(), [...prompt, ...drafts]);
    drafts.forEach((d, i) => expect(r.draft_logprobs[i]).toBeCloseTo(logSoftmaxAt(logits.row(prompt.length - 1 + i), d), 5));
  });

  it("sampling with top_k ≤ K commits exactly what the full-logits engine commits; other top_k are refused", async () => {
    const prompt = tok.encode("El tiempo es");
    const run = async (v: Verifier, sampling: Sampling) => {
      const out: number[] = [];
      let committed: number[] | undefined;
      for (let round = 0; round < 8; round++) {
        const drafts = await draft.greedy([...prompt, ...out], 3);
        const q = drafts.map((d) => ({ ids: [d], probs: [1] }));
        const r = await v.round(req({ session: "s", seq: round, drafts, q, sampling, ...(round === 0 ? { history: prompt } : { committed }) }));
        committed = [...drafts.slice(0, r.accepted), r.token];
        out.push(...committed);
      }
      return out;
    };
    for (const seed of [1, 2, 3]) {
      const sampling = { temperature: 0.9, top_p: 0.9, top_k: 5, seed };
      expect(await run(new Verifier(sglang(5), store), sampling)).toEqual(await run(new Verifier(new OnnxEngine(target), store), sampling));
    }
    const v = new Verifier(sglang(5), store);
    for (const top_k of [0, 6])
      await expect(v.round(req({ session: "k", seq: 0, history: prompt, sampling: { temperature: 1, top_p: 1, top_k, seed: 1 } }))).rejects.toMatchObject({ code: "invalid_request", status: 400 });
  });

  it("a failing SGLang is a 503 engine_unavailable that leaves the session intact; the retry continues identically", async () => {
    const v = new Verifier(sglang(), store);
    const prompt = tok.encode("Quien mucho abarca");
    const out: number[] = [];
    let committed: number[] | undefined;
    for (let round = 0; out.length < 24; round++) {
      const drafts = await draft.greedy([...prompt, ...out], 3);
      const r0 = req({ session: "f", seq: round, drafts, ...(round === 0 ? { history: prompt } : { committed }) });
      if (round === 2) {
        failNext = 1;
        await expect(v.round(r0)).rejects.toMatchObject({ code: "engine_unavailable", status: 503 });
      }
      const r = await v.round(r0);
      committed = [...drafts.slice(0, r.accepted), r.token];
      out.push(...committed);
    }
    expect(out.slice(0, 24)).toEqual(await target.greedy(prompt, 24));
    const unreachable = await deadEndpoint(); // no SGLang can answer there
    try {
      const down = new Verifier(sglang(5, unreachable.url), store);
      await expect(down.round(req({ session: "d", seq: 0, history: prompt }))).rejects.toMatchObject({ code: "engine_unavailable" });
    } finally {
      await unreachable.close();
    }
  });

  /** A generation's tokens and its end event, through a Verifier on SGLang. */
  async function generate(v: Verifier, history: number[], max_tokens: number, stop_ids: number[] = [], sampling?: Sampling) {
    const tokens: number[] = [];
    let end: unknown;
    for await (const ev of v.generate({ history, max_tokens, stop_ids, ...(sampling ? { sampling } : {}) })) {
      if ("token" in ev) tokens.push(ev.token);
      else end = ev;
    }
    return { tokens, end };
  }

  it("generate (γ = 0, greedy) streams from SGLang in one request and equals target-only greedy, stop ids included", async () => {
    const v = new Verifier(sglang(), store);
    for (const incremental of [false, true]) {
      streaming.incremental = incremental;
      for (const text of SPANISH_PROMPTS.slice(0, 6)) {
        const prompt = tok.encode(text);
        const before = requests.length;
        const { tokens, end } = await generate(v, prompt, 40, [2]);
        expect(tokens).toEqual(await target.greedy(prompt, 40, [2]));
        expect(end).toEqual({ done: true, finish_reason: tokens.at(-1) === 2 ? "stop" : "length", tokens: tokens.length });
        // One streamed request for the whole generation, not one per token.
        expect(requests.slice(before)).toEqual([expect.objectContaining({ stream: true, input_ids: prompt, sampling_params: { max_new_tokens: 40, temperature: 0, stop_token_ids: [2] } })]);
      }
    }
    streaming.incremental = false;
  });

  it("a stream SGLang cuts mid-way fails as engine_unavailable after the tokens it gave (the edge then fails over by history)", async () => {
    const v = new Verifier(sglang(), store);
    const prompt = tok.encode("Más vale tarde");
    const want = await target.greedy(prompt, 16);
    streaming.cutAfter = 5;
    const tokens: number[] = [];
    try {
      await expect(
        (async () => {
          for await (const ev of v.generate({ history: prompt, max_tokens: 16, stop_ids: [] })) if ("token" in ev) tokens.push(ev.token);
        })(),
      ).rejects.toMatchObject({ code: "engine_unavailable" });
    } finally {
      streaming.cutAfter = Number.POSITIVE_INFINITY;
    }
    expect(tokens).toEqual(want.slice(0, 5));
    // Resumed from its history, on this node or another, the rest is the same.
    const rest = await generate(v, [...prompt, ...tokens], 11);
    expect([...tokens, ...rest.tokens]).toEqual(want);
  });

  it("sampled generation keeps the per-token path (draws seeded per position), one scoring request per token", async () => {
    const v = new Verifier(sglang(), store);
    const prompt = tok.encode("La vida es");
    const before = requests.length;
    const { tokens } = await generate(v, prompt, 6, [], { temperature: 0.8, top_p: 1, top_k: 5, seed: 7 });
    expect(tokens).toHaveLength(6);
    expect(requests.slice(before).every((r) => !r.stream && (r.sampling_params as { max_new_tokens: number }).max_new_tokens === 1)).toBe(true);
    expect((await generate(v, prompt, 6, [], { temperature: 0.8, top_p: 1, top_k: 5, seed: 7 })).tokens).toEqual(tokens);
  });
});
