// SglangEngine: production ALIA-40b on SGLang's native /generate API (docs/ARCHITECTURE.md, "The verifier (GPU pool)"). One request
// per pass: input_ids = the session's tokens + the chunk, logprob_start_len = P − 1 (P: tokens before the
// first scored position) so that SGLang's radix cache serves the prefix, top-K log-probs at every scored
// position, token_ids_logprob for the drafts, and max_new_tokens 1 whose output distribution is the
// bonus position. The KV cache lives in SGLang; a sequence here is just its token list.
// Only the top K log-probs come back: greedy verification is exact (it needs the argmax alone), and so is
// sampling whose top_k ≤ K (the top-k renormalisation then needs nothing beyond the K) — see PROTOCOL.md.
import { z } from "zod";
import { VerifyError } from "../src/common/protocol.ts";
import type { ChunkScores, EngineSequence, TargetEngine } from "./engine.ts";
import { PassAccounting, type AccountedRow } from "./pass-accounting.ts";

/** SGLang's logprob entries are [logprob, token_id, text|null]. */
const Entry = z.tuple([z.number().nullable(), z.number().int(), z.string().nullable()]);
const SglangResponseSchema = z.object({
  meta_info: z.object({
    input_token_logprobs: z.array(Entry),
    input_top_logprobs: z.array(z.array(Entry).nullable()),
    output_top_logprobs: z.array(z.array(Entry)),
    cached_tokens: z.number().int().min(0),
  }),
});

/** A chunk of SGLang's streamed /generate: output ids (all so far, or only the new ones with --incremental-streaming-output). */
const SglangStreamChunkSchema = z.object({
  output_ids: z.array(z.number().int()),
  meta_info: z.object({
    completion_tokens: z.number().int().min(0),
    finish_reason: z
      .object({ type: z.string(), matched: z.union([z.number(), z.string(), z.null()]).optional() })
      .nullable()
      .optional(),
  }),
});

export interface SglangEngineOptions {
  baseUrl: string;
  vocab: number;
  maxPositions: number;
  /** K: top log-probs requested per position. */
  topLogprobs: number;
  timeoutMs: number;
  apiKey?: string;
}

export class SglangSequence implements EngineSequence {
  readonly tokens: number[] = [];
  busy = false;
  get length(): number {
    return this.tokens.length;
  }
  /** The token list; the keys/values themselves live in SGLang's radix cache. */
  get kvBytes(): number {
    return this.tokens.length * 8;
  }
  truncate(length: number): void {
    if (this.busy) throw new Error("truncate() during a pass");
    if (!Number.isInteger(length) || length < 0 || length > this.tokens.length) throw new RangeError(`truncate(${length}) on ${this.tokens.length} tokens`);
    this.tokens.length = length;
  }
  reset(): void {
    this.truncate(0);
  }
}

export class SglangEngine implements TargetEngine<SglangSequence> {
  readonly name = "sglang";
  /** Rows this verifier has in SGLang now: the composition it can see of SGLang's batch. */
  private readonly inFlight = new Set<AccountedRow>();
  /** Prefix reuse: tokens before the scored range, and how many of them SGLang found in its radix cache. */
  readonly cache = { prefixTokens: 0, cachedTokens: 0 };

  constructor(
    private readonly o: SglangEngineOptions,
    readonly accounting = new PassAccounting(),
  ) {}

  get vocab(): number {
    return this.o.vocab;
  }
  get maxPositions(): number {
    return this.o.maxPositions;
  }
  get exactTop(): number {
    return this.o.topLogprobs;
  }
  get queueDepth(): number {
    return this.inFlight.size;
  }

  async open(prefix: readonly number[]): Promise<SglangSequence> {
    const seq = new SglangSequence();
    seq.tokens.push(...prefix); // SGLang prefills it with the first scored pass
    return seq;
  }

  /**
   * Greedy generation as one streamed /generate request (`stream: true`, temperature 0, stop_token_ids):
   * SGLang decodes continuously instead of answering a request per token. Output ids are taken as
   * cumulative when a chunk holds completion_tokens of them, else as the new ones; a stop id SGLang matched
   * but left out of output_ids is still yielded. `timeoutMs` bounds the wait for each chunk.
   */
  async *generateGreedy(prefix: readonly number[], o: { maxTokens: number; stopIds: readonly number[]; signal?: AbortSignal }): AsyncGenerator<number> {
    const ctl = new AbortController();
    const abort = () => ctl.abort();
    o.signal?.addEventListener("abort", abort);
    let idle: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => ctl.abort(new Error(`no chunk within ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
    };
    const row = { chunk: 1, past: prefix.length, owner: ctl };
    this.inFlight.add(row);
    let emitted = 0;
    let last: number | undefined;
    try {
      arm();
      const res = await fetch(`${this.o.baseUrl}/generate`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(this.o.apiKey ? { authorization: `Bearer ${this.o.apiKey}` } : {}) },
        body: JSON.stringify({ input_ids: prefix, sampling_params: { max_new_tokens: o.maxTokens, temperature: 0, stop_token_ids: o.stopIds }, stream: true }),
        signal: ctl.signal,
      });
      if (!res.ok || !res.body) throw new Error(`/generate answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
      const decoder = new TextDecoder();
      let buf = "";
      let t0 = performance.now();
      for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
        arm();
        buf += decoder.decode(bytes, { stream: true });
        for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
          const event = buf.slice(0, end).trim();
          buf = buf.slice(end + 2);
          if (!event.startsWith("data:")) continue;
          const data = event.slice(5).trim();
          if (data === "[DONE]") return;
          const parsed = SglangStreamChunkSchema.safeParse(JSON.parse(data));
          if (!parsed.success) throw new Error(`/generate streamed an unexpected shape: ${parsed.error.issues[0].path.join(".")}: ${parsed.error.issues[0].message}`);
          const { output_ids: ids, meta_info: m } = parsed.data;
          const fresh = ids.length === m.completion_tokens ? ids.slice(emitted) : ids;
          for (const token of fresh) {
            if (token < 0 || token >= this.o.vocab) throw new Error(`streamed token id ${token} outside the vocabulary of ${this.o.vocab}`);
            this.accounting.record(
              [row],
              performance.now() - t0,
              [...this.inFlight].filter((r) => r !== row),
            );
            t0 = performance.now();
            emitted++;
            last = token;
            yield token;
          }
          const matched = m.finish_reason?.matched;
          if (m.finish_reason?.type === "stop" && typeof matched === "number" && o.stopIds.includes(matched) && last !== matched) {
            emitted++;
            last = matched;
            yield matched;
          }
        }
      }
    } catch (e) {
      if (o.signal?.aborted) return; // the client left: not an engine failure
      throw new VerifyError("engine_unavailable", `SGLang ${(e as Error).message}`);
    } finally {
      clearTimeout(idle);
      o.signal?.removeEventListener("abort", abort);
      ctl.abort(); // ends the request if the consumer stopped early
      this.inFlight.delete(row);
    }
  }

  async score(seq: SglangSequence, tokens: readonly number[]): Promise<ChunkScores> {
    if (tokens.length === 0) throw new RangeError("score() needs at least one token");
    if (seq.busy) throw new Error("score() on a sequence that is already running a pass");
    const P = seq.length + 1; // the first chunk token is the last of the prefix; the rest are scored
    const scored = tokens.slice(1);
    const body = {
      input_ids: [...seq.tokens, ...tokens],
      sampling_params: { max_new_tokens: 1, temperature: 0 },
      return_logprob: true,
      logprob_start_len: P - 1,
      top_logprobs_num: this.o.topLogprobs,
      token_ids_logprob: [...new Set(scored)],
    };
    seq.busy = true;
    const row = { chunk: tokens.length, past: seq.length, owner: seq };
    this.inFlight.add(row);
    const t0 = performance.now();
    let m: z.infer<typeof SglangResponseSchema>["meta_info"];
    try {
      const res = await fetch(`${this.o.baseUrl}/generate`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(this.o.apiKey ? { authorization: `Bearer ${this.o.apiKey}` } : {}) },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
      if (!res.ok) throw new Error(`/generate answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
      const parsed = SglangResponseSchema.safeParse(await res.json());
      if (!parsed.success) throw new Error(`/generate answered an unexpected shape: ${parsed.error.issues[0].path.join(".")}: ${parsed.error.issues[0].message}`);
      m = parsed.data.meta_info;
      this.accounting.record(
        [row],
        performance.now() - t0,
        [...this.inFlight].filter((r) => r !== row),
      );
    } catch (e) {
      throw new VerifyError("engine_unavailable", `SGLang ${(e as Error).message}`);
    } finally {
      seq.busy = false;
      this.inFlight.delete(row);
    }
    // Index 0 is the last prefix token (nothing in the range predicts it: null); 1…γ score the rest.
    if (m.input_token_logprobs.length !== tokens.length || m.input_top_logprobs.length !== tokens.length)
      throw new VerifyError("engine_unavailable", `SGLang returned ${m.input_token_logprobs.length} input logprobs for ${tokens.length} tokens from logprob_start_len`);
    const lists = [...m.input_top_logprobs.slice(1), m.output_top_logprobs[0] ?? []];
    const tokenLogprobs = m.input_token_logprobs.slice(1).map(([lp]) => lp ?? -Infinity);
    const rows = lists.map((entries, i) => {
      const row = new Float32Array(this.o.vocab).fill(-Infinity);
      if (!entries?.length) throw new VerifyError("engine_unavailable", `SGLang returned no top logprobs at position ${i}`);
      for (const [lp, id] of entries) {
        if (id < 0 || id >= this.o.vocab) throw new VerifyError("engine_unavailable", `SGLang returned token id ${id} outside the vocabulary of ${this.o.vocab}`);
        row[id] = lp ?? -Infinity;
      }
      if (i < scored.length) row[scored[i]] = tokenLogprobs[i];
      return row;
    });
    this.cache.prefixTokens += P - 1;
    this.cache.cachedTokens += m.cached_tokens;
    seq.tokens.push(...tokens);
    return { rows, tokenLogprobs };
  }
}
