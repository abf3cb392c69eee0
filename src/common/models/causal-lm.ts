// A decoder-only causal LM over an ONNX Runtime session (web or node — both expose onnxruntime-common's
// API), with a per-sequence KV cache that can be truncated to any committed length. The drafter and the
// verifier engine both build on this; speculative decoding needs exactly: prefill, one step, a chunk of
// several tokens scored at once (verify), logits for every position, and rollback.
import type { InferenceSession, Tensor } from "onnxruntime-common";
import { headDim, type ModelConfig } from "./bundle.ts";
import { argmax } from "../sampling.ts";

/** The two things we need from an onnxruntime package: its Tensor class and session factory. */
export interface OrtRuntime {
  Tensor: typeof Tensor;
  InferenceSession: { create(model: Uint8Array | string, options?: InferenceSession.SessionOptions): Promise<InferenceSession> };
}

/** Logits of a chunk: `rows` positions × `vocab`, row i scores the token that follows input i. */
export class ChunkLogits {
  constructor(
    readonly data: Float32Array,
    readonly rows: number,
    readonly vocab: number,
  ) {}
  row(i: number): Float32Array {
    if (i < 0 || i >= this.rows) throw new RangeError(`logits row ${i} of ${this.rows}`);
    return this.data.subarray(i * this.vocab, (i + 1) * this.vocab);
  }
  last(): Float32Array {
    return this.row(this.rows - 1);
  }
}

/** One generation's state: the tokens run so far and their keys/values per layer. */
export class KvSequence {
  /** Tokens whose keys/values are in the cache, in order. */
  readonly tokens: number[] = [];
  /** Per layer: [key, value] tensors of shape [1, kvHeads, tokens.length, headDim]. */
  past: Tensor[] = [];
  /** A forward pass is running: the cache must not be read or changed meanwhile. */
  busy = false;

  constructor(private readonly model: CausalLM) {
    this.past = model.emptyPast();
  }

  get length(): number {
    return this.tokens.length;
  }

  /** Bytes held by the KV cache (for budgets in the session store). */
  get kvBytes(): number {
    return this.past.reduce((s, t) => s + t.size * 4, 0);
  }

  /** Roll back to the first `length` tokens (e.g. after rejected drafts). */
  truncate(length: number): void {
    if (this.busy) throw new Error("truncate() during a forward pass");
    if (!Number.isInteger(length) || length < 0 || length > this.tokens.length) throw new RangeError(`truncate(${length}) on a sequence of ${this.tokens.length} tokens`);
    if (length === this.tokens.length) return;
    this.tokens.length = length;
    this.past = this.past.map((t) => this.model.sliceTime(t, length));
  }

  reset(): void {
    this.truncate(0);
  }

  /**
   * An independent copy holding the same tokens and keys/values (prefill shared between sessions with
   * one prompt). The KV data is copied, so either sequence may then run, truncate or reset on its own.
   */
  fork(): KvSequence {
    if (this.busy) throw new Error("fork() during a forward pass");
    const copy = new KvSequence(this.model);
    copy.tokens.push(...this.tokens);
    copy.past = this.past.map((t) => this.model.copyTensor(t));
    return copy;
  }
}

export interface CausalLMOptions {
  /** ONNX Runtime session options (execution providers, threads, optimisation level). */
  sessionOptions?: InferenceSession.SessionOptions;
}

export class CausalLM {
  readonly vocab: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly layers: number;
  readonly maxPositions: number;

  protected constructor(
    protected readonly ort: OrtRuntime,
    protected readonly session: InferenceSession,
    readonly config: ModelConfig,
  ) {
    this.vocab = config.vocab_size;
    this.kvHeads = config.num_key_value_heads;
    this.headDim = headDim(config);
    this.layers = config.num_hidden_layers;
    this.maxPositions = config.max_position_embeddings;
    const want = ["input_ids", "attention_mask", "position_ids", "past_key_values.0.key"];
    const missing = want.filter((n) => !session.inputNames.includes(n));
    if (!session.outputNames.includes("logits")) missing.push("output logits");
    if (missing.length) throw new Error(`ONNX model does not have the Optimum decoder-with-past I/O (missing ${missing.join(", ")})`);
    // The KV cache is kept as float32; an fp16 export needs fp16 past tensors, which this runner does not make.
    const past = session.inputMetadata.find((m) => m.name === "past_key_values.0.key");
    if (past?.isTensor && past.type !== "float32") throw new Error(`ONNX model keeps its KV cache as ${past.type}; this runner supports float32 graphs (q4 weights are fine)`);
    const pastInputs = session.inputNames.filter((n) => n.startsWith("past_key_values.")).length;
    if (pastInputs !== 2 * this.layers) throw new Error(`ONNX model has ${pastInputs / 2} KV layers but config.json says num_hidden_layers=${this.layers}`);
  }

  /** `model`: the graph's bytes, or its path (onnxruntime-node then finds external data next to it). */
  static async load(ort: OrtRuntime, model: Uint8Array | string, config: ModelConfig, opts: CausalLMOptions = {}): Promise<CausalLM> {
    const session = await ort.InferenceSession.create(model, opts.sessionOptions);
    try {
      return new CausalLM(ort, session, config);
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  newSequence(): KvSequence {
    return new KvSequence(this);
  }

  emptyPast(): Tensor[] {
    const out: Tensor[] = [];
    for (let i = 0; i < 2 * this.layers; i++) out.push(new this.ort.Tensor("float32", new Float32Array(0), [1, this.kvHeads, 0, this.headDim]));
    return out;
  }

  /** A float32 tensor with its own copy of the data. */
  copyTensor(t: Tensor): Tensor {
    return new this.ort.Tensor("float32", Float32Array.from(t.data as Float32Array), t.dims);
  }

  /** Copy of a [1, kvHeads, T, headDim] tensor keeping the first `length` time steps. */
  sliceTime(t: Tensor, length: number): Tensor {
    const T = t.dims[2];
    const src = t.data as Float32Array;
    const hd = this.headDim;
    const out = new Float32Array(this.kvHeads * length * hd);
    for (let h = 0; h < this.kvHeads; h++) out.set(src.subarray(h * T * hd, h * T * hd + length * hd), h * length * hd);
    return new this.ort.Tensor("float32", out, [1, this.kvHeads, length, hd]);
  }

  /**
   * Run `tokens` after the sequence's cached tokens and append them to the cache. One token is a decode
   * step, many are a prefill or a verify chunk; returns logits for every position of the chunk.
   */
  async forward(seq: KvSequence, tokens: readonly number[]): Promise<ChunkLogits> {
    return (await this.forwardBatch([{ seq, tokens }]))[0];
  }

  /**
   * One forward pass for several sequences at once (micro-batching in the verifier). Rows of different
   * past and chunk lengths share one padded layout: row r's cached slots end at column Pmax and its new
   * tokens end at column Pmax+S; padding slots get attention_mask 0, so each row computes exactly what
   * it would alone (the graph's mask combines causality with attention_mask).
   */
  async forwardBatch(items: readonly { seq: KvSequence; tokens: readonly number[] }[]): Promise<ChunkLogits[]> {
    if (items.length === 0) return [];
    if (new Set(items.map((x) => x.seq)).size !== items.length) throw new Error("forwardBatch() got the same sequence twice");
    for (const { seq, tokens } of items) {
      if (tokens.length === 0) throw new RangeError("forward() needs at least one token");
      if (seq.busy) throw new Error("forward() called on a sequence that is already running a forward pass");
      if (seq.length + tokens.length > this.maxPositions) throw new RangeError(`sequence of ${seq.length + tokens.length} tokens exceeds the model's ${this.maxPositions} positions`);
      for (const t of tokens) if (!Number.isInteger(t) || t < 0 || t >= this.vocab) throw new RangeError(`token id ${t} outside the vocabulary (0..${this.vocab - 1})`);
    }
    const { Tensor } = this.ort;
    const B = items.length;
    const P = Math.max(...items.map((x) => x.seq.length));
    const S = Math.max(...items.map((x) => x.tokens.length));
    const T = P + S;
    const ids = new BigInt64Array(B * S);
    const mask = new BigInt64Array(B * T);
    const pos = new BigInt64Array(B * S);
    items.forEach(({ seq, tokens }, r) => {
      const p = seq.length;
      const s = tokens.length;
      for (let j = P - p; j < P; j++) mask[r * T + j] = 1n;
      for (let i = 0; i < s; i++) {
        const col = S - s + i;
        ids[r * S + col] = BigInt(tokens[i]);
        pos[r * S + col] = BigInt(p + i);
        mask[r * T + P + col] = 1n;
      }
    });
    const feeds: Record<string, Tensor> = {
      input_ids: new Tensor("int64", ids, [B, S]),
      attention_mask: new Tensor("int64", mask, [B, T]),
      position_ids: new Tensor("int64", pos, [B, S]),
    };
    const hd = this.headDim;
    const kvh = this.kvHeads;
    for (let k = 0; k < 2 * this.layers; k++) {
      const name = `past_key_values.${k >> 1}.${k & 1 ? "value" : "key"}`;
      if (B === 1) {
        feeds[name] = items[0].seq.past[k];
        continue;
      }
      // Right-align each row's cache in [0, P): zeros (masked) before it.
      const data = new Float32Array(B * kvh * P * hd);
      items.forEach(({ seq }, r) => {
        const src = seq.past[k].data as Float32Array;
        const p = seq.length;
        for (let h = 0; h < kvh; h++) data.set(src.subarray(h * p * hd, (h + 1) * p * hd), ((r * kvh + h) * P + (P - p)) * hd);
      });
      feeds[name] = new Tensor("float32", data, [B, kvh, P, hd]);
    }
    for (const { seq } of items) seq.busy = true;
    let out: InferenceSession.ReturnType;
    try {
      out = await this.session.run(feeds);
    } finally {
      for (const { seq } of items) seq.busy = false;
    }
    const [, rows, vocab] = out.logits.dims;
    if (rows !== S || vocab !== this.vocab) throw new Error(`ONNX logits have shape [${out.logits.dims}] but config.json says vocab_size=${this.vocab}`);
    const logits = out.logits.data as Float32Array;
    return items.map(({ seq, tokens }, r) => {
      const p = seq.length;
      const s = tokens.length;
      const next: Tensor[] = [];
      for (let k = 0; k < 2 * this.layers; k++) {
        const present = out[`present.${k >> 1}.${k & 1 ? "value" : "key"}`];
        if (B === 1) {
          next.push(present);
          continue;
        }
        // Keep this row's real slots: its cache [P−p, P) and its new tokens [P+S−s, T).
        const src = present.data as Float32Array;
        const data = new Float32Array(kvh * (p + s) * hd);
        for (let h = 0; h < kvh; h++) {
          const base = (r * kvh + h) * T * hd;
          data.set(src.subarray(base + (P - p) * hd, base + P * hd), h * (p + s) * hd);
          data.set(src.subarray(base + (P + S - s) * hd, base + T * hd), (h * (p + s) + p) * hd);
        }
        next.push(new Tensor("float32", data, [1, kvh, p + s, hd]));
      }
      seq.past = next;
      seq.tokens.push(...tokens);
      const rowStart = (r * S + S - s) * vocab;
      return new ChunkLogits(B === 1 ? logits : logits.slice(rowStart, rowStart + s * vocab), s, vocab);
    });
  }

  /** Greedy continuation of `prompt` (no speculation): the reference every speculative path must match. */
  async greedy(prompt: readonly number[], maxNewTokens: number, stopIds: readonly number[] = []): Promise<number[]> {
    const seq = this.newSequence();
    const out: number[] = [];
    let logits = await this.forward(seq, prompt);
    while (out.length < maxNewTokens) {
      const next = argmax(logits.last());
      out.push(next);
      if (stopIds.includes(next) || out.length === maxNewTokens) break;
      logits = await this.forward(seq, [next]);
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
