// The runners: chunked vs stepwise decoding, KV rollback, onnxruntime-web vs -node, Optimum I/O; and the
// verifier's session store accounting real KV sequences.
import * as ortNodeModule from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { SessionKvStore } from "../gpu-backend/session-kv-store.ts";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { argmax } from "../src/common/sampling.ts";
import { llamaOnnx, type LlamaArch } from "../fixtures/generate/llama-onnx.ts";
import { randomLlamaWeights } from "../fixtures/generate/random-weights.ts";
import { configFor, deriveDraft, expandKvHeads } from "../fixtures/generate/synthetic-pair.ts";

// float32 sums in a different order (one chunk vs many steps, WASM vs native kernels) differ by a few
// ULPs of the logits' magnitude (|logit| ≲ 20 here); 1e-4 absolute is far above that and far below any
// difference that could change an argmax in these tests.
const TOL = 1e-4;

const GQA: LlamaArch = {
  vocabSize: 512,
  hiddenSize: 64,
  intermediateSize: 160,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositions: 128,
};

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const weights = randomLlamaWeights(GQA, 7);
const onnx = llamaOnnx(weights);
const config = configFor(weights);
const mhaWeights = deriveDraft(weights, { noise: 0.05, seed: 9 });
const mhaOnnx = llamaOnnx(mhaWeights);
const prompt = [1, 17, 230, 45, 99, 310, 12];
const drafts = [401, 7, 88, 150];

let target: CausalLM;
let web: CausalLM;
let webMha: CausalLM;
let nodeMha: CausalLM;
beforeAll(async () => {
  target = await loadTargetModel({ onnx, config });
  web = await loadDraftModel({ onnx, config });
  webMha = await loadDraftModel({ onnx: mhaOnnx, config: configFor(mhaWeights) });
  nodeMha = await loadTargetModel({ onnx: mhaOnnx, config: configFor(mhaWeights) });
});

describe("ONNX graph", () => {
  it("has Optimum's decoder-with-past input/output names and symbolic dims", async () => {
    const s = await ortNodeModule.InferenceSession.create(onnx);
    const shape = (meta: readonly ortNodeModule.InferenceSession.ValueMetadata[], name: string) => {
      const m = meta.find((x) => x.name === name);
      return m?.isTensor ? [m.type, ...m.shape] : undefined;
    };
    expect(s.inputNames).toEqual(["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"]);
    expect(s.outputNames).toEqual(["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"]);
    expect(shape(s.inputMetadata, "input_ids")).toEqual(["int64", "batch_size", "sequence_length"]);
    expect(shape(s.inputMetadata, "attention_mask")).toEqual(["int64", "batch_size", "past_sequence_length + sequence_length"]);
    expect(shape(s.inputMetadata, "position_ids")).toEqual(["int64", "batch_size", "sequence_length"]);
    expect(shape(s.inputMetadata, "past_key_values.1.value")).toEqual(["float32", "batch_size", 2, "past_sequence_length", 16]);
    expect(shape(s.outputMetadata, "logits")).toEqual(["float32", "batch_size", "sequence_length", 512]);
    expect(shape(s.outputMetadata, "present.0.key")).toEqual(["float32", "batch_size", 2, "past_sequence_length + sequence_length", 16]);
    await s.release();
  });

  it("masks padded key slots: a left-padded batch row equals the unpadded sequence", async () => {
    // Two rows, the second left-padded by 3 with position ids restarting after the pad, as HF batches do.
    const s = await ortNodeModule.InferenceSession.create(onnx);
    const T = ortNodeModule.Tensor;
    const short = [1, 17, 230, 45];
    const row0 = [1, 5, 9, 13, 200, 201, 202];
    const row1 = [3, 3, 3, ...short];
    const i64 = (a: number[]) => BigInt64Array.from(a, BigInt);
    const feeds: Record<string, ortNodeModule.Tensor> = {
      input_ids: new T("int64", i64([...row0, ...row1]), [2, 7]),
      attention_mask: new T("int64", i64([1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1]), [2, 7]),
      position_ids: new T("int64", i64([0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 1, 2, 3]), [2, 7]),
    };
    for (let i = 0; i < 2; i++) for (const k of ["key", "value"]) feeds[`past_key_values.${i}.${k}`] = new T("float32", new Float32Array(0), [2, 2, 0, 16]);
    const out = await s.run(feeds);
    const batched = (out.logits.data as Float32Array).subarray(7 * 512 + 3 * 512, 14 * 512);
    const alone = await target.forward(target.newSequence(), short);
    expect(maxAbsDiff(batched, alone.data)).toBeLessThan(TOL);
    await s.release();
  });
});

describe.each([
  ["onnxruntime-node, GQA target", () => target],
  ["onnxruntime-web, GQA target", () => web],
  ["onnxruntime-web, MHA draft", () => webMha],
])("%s", (_name, lm) => {
  it("chunked and stepwise decoding give the same logits", async () => {
    const all = [...prompt, ...drafts];
    const chunk = await lm().forward(lm().newSequence(), all);
    const seq = lm().newSequence();
    const steps = [await lm().forward(seq, prompt)];
    for (const t of drafts) steps.push(await lm().forward(seq, [t]));
    const stepwise = new Float32Array(chunk.data.length);
    stepwise.set(steps[0].data, 0);
    drafts.forEach((_, i) => stepwise.set(steps[i + 1].data, (prompt.length + i) * chunk.vocab));
    expect(chunk.rows).toBe(all.length);
    expect(maxAbsDiff(chunk.data, stepwise)).toBeLessThan(TOL);
    expect(seq.length).toBe(all.length);
  });

  it("truncate then continue equals never having drafted", async () => {
    const seq = lm().newSequence();
    await lm().forward(seq, prompt);
    await lm().forward(seq, drafts); // verify chunk; pretend only drafts[0] was accepted
    seq.truncate(prompt.length + 1);
    expect(seq.tokens).toEqual([...prompt, drafts[0]]);
    const continued = await lm().forward(seq, [42, 43]);
    const fresh = await lm().forward(lm().newSequence(), [...prompt, drafts[0], 42, 43]);
    expect(maxAbsDiff(continued.data, fresh.data.subarray((prompt.length + 1) * fresh.vocab))).toBeLessThan(TOL);
    // Rolling back to zero and reusing the sequence works too.
    seq.reset();
    expect(seq.kvBytes).toBe(0);
    const again = await lm().forward(seq, prompt);
    expect(maxAbsDiff(again.data, fresh.data.subarray(0, prompt.length * fresh.vocab))).toBeLessThan(TOL);
  });
});

describe("forwardBatch (micro-batching)", () => {
  it.each([
    ["onnxruntime-node", () => target],
    ["onnxruntime-web", () => web],
  ])("%s: rows of different past and chunk lengths compute what each computes alone", async (_n, lm) => {
    const setups = [
      { past: [] as number[], chunk: [1, 17] },
      { past: [1, 5, 9, 13, 200], chunk: [7, 8, 9, 10] },
      { past: [1, 40, 41, 42, 43, 44, 45, 46, 47], chunk: [99] },
    ];
    const batched = await Promise.all(
      setups.map(async (x) => {
        const seq = lm().newSequence();
        if (x.past.length) await lm().forward(seq, x.past);
        return seq;
      }),
    );
    const out = await lm().forwardBatch(setups.map((x, r) => ({ seq: batched[r], tokens: x.chunk })));
    for (const [r, x] of setups.entries()) {
      const alone = await lm().forward(lm().newSequence(), [...x.past, ...x.chunk]);
      expect(out[r].rows).toBe(x.chunk.length);
      expect(maxAbsDiff(out[r].data, alone.data.subarray(x.past.length * alone.vocab))).toBeLessThan(TOL);
      // The cache each row keeps is its own: continuing it matches a never-batched sequence.
      expect(batched[r].tokens).toEqual([...x.past, ...x.chunk]);
      const next = await lm().forward(batched[r], [3]);
      const ref = await lm().forward(lm().newSequence(), [...x.past, ...x.chunk, 3]);
      expect(maxAbsDiff(next.data, ref.data.subarray((ref.rows - 1) * ref.vocab))).toBeLessThan(TOL);
    }
  });

  it("refuses the same sequence twice in one batch", async () => {
    const seq = target.newSequence();
    await expect(
      target.forwardBatch([
        { seq, tokens: [1] },
        { seq, tokens: [2] },
      ]),
    ).rejects.toThrow(/same sequence twice/);
  });
});

describe("runtimes and rewrites agree", () => {
  it("onnxruntime-web and onnxruntime-node give the same logits on the same model", async () => {
    const all = [...prompt, ...drafts];
    const a = await web.forward(web.newSequence(), all);
    const b = await target.forward(target.newSequence(), all);
    expect(maxAbsDiff(a.data, b.data)).toBeLessThan(TOL);
    const c = await webMha.forward(webMha.newSequence(), all);
    const d = await nodeMha.forward(nodeMha.newSequence(), all);
    expect(maxAbsDiff(c.data, d.data)).toBeLessThan(TOL);
    expect(await web.greedy(prompt, 24)).toEqual(await target.greedy(prompt, 24));
  });

  it("rewriting GQA as MHA (the synthetic drafts' base) computes the same function", async () => {
    const mha = expandKvHeads(weights);
    expect(mha.arch.numKvHeads).toBe(GQA.numHeads);
    const lm = await loadTargetModel({ onnx: llamaOnnx(mha), config: configFor(mha) });
    const a = await lm.forward(lm.newSequence(), prompt);
    const b = await target.forward(target.newSequence(), prompt);
    expect(maxAbsDiff(a.data, b.data)).toBeLessThan(TOL);
    await lm.dispose();
  });

  it("greedy() is argmax decoding step by step and stops at a stop id", async () => {
    const out = await target.greedy(prompt, 8);
    const seq = target.newSequence();
    let logits = await target.forward(seq, prompt);
    for (const t of out) {
      expect(t).toBe(argmax(logits.last()));
      logits = await target.forward(seq, [t]);
    }
    const stopped = await target.greedy(prompt, 8, [out[2]]);
    expect(stopped).toEqual(out.slice(0, out.indexOf(out[2]) + 1));
  });
});

describe("input validation", () => {
  it("refuses bad tokens, empty chunks, bad truncation and overlong sequences with clear errors", async () => {
    const seq = target.newSequence();
    await expect(target.forward(seq, [])).rejects.toThrow(/at least one token/);
    await expect(target.forward(seq, [512])).rejects.toThrow(/outside the vocabulary/);
    await expect(target.forward(seq, [-1])).rejects.toThrow(/outside the vocabulary/);
    await expect(target.forward(seq, [1.5])).rejects.toThrow(/outside the vocabulary/);
    expect(() => seq.truncate(1)).toThrow(/truncate\(1\) on a sequence of 0/);
    await expect(target.forward(seq, new Array(129).fill(5))).rejects.toThrow(/exceeds the model's 128 positions/);
    expect(seq.length).toBe(0); // a refused call leaves the cache untouched
  });

  it("refuses an ONNX model that does not match config.json", async () => {
    await expect(loadTargetModel({ onnx, config: { ...config, num_hidden_layers: 3 } })).rejects.toThrow(/config.json says num_hidden_layers=3/);
    const wrongVocab = await loadTargetModel({ onnx, config: { ...config, vocab_size: 600 } });
    await expect(wrongVocab.forward(wrongVocab.newSequence(), [1, 2])).rejects.toThrow(/logits have shape \[1,2,512\] but config.json says vocab_size=600/);
    await wrongVocab.dispose();
  });

  it("refuses a second forward pass on a sequence that is still running one", async () => {
    const seq = target.newSequence();
    const first = target.forward(seq, prompt);
    await expect(target.forward(seq, [5])).rejects.toThrow(/already running a forward pass/);
    expect(() => seq.truncate(0)).toThrow(/during a forward pass/);
    await first;
    expect(seq.tokens).toEqual(prompt);
  });
});

// The verifier's session store (its logic is tested on stand-ins in session-kv-store.test.ts) over real sequences.
describe("SessionKvStore over real KV sequences", () => {
  it("holds real KV sequences: bytes follow prefill and rollback", async () => {
    const w = randomLlamaWeights({ vocabSize: 64, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8, rmsNormEps: 1e-5, ropeTheta: 10000, maxPositions: 64 }, 1);
    const lm = await loadTargetModel({ onnx: llamaOnnx(w), config: configFor(w) });
    const store = new SessionKvStore({ maxBytes: 1 << 20, maxSessions: 4, idleTtlMs: 60_000 });
    const seq = lm.newSequence();
    store.put("s", seq);
    await lm.forward(seq, [1, 2, 3, 4, 5]);
    store.resized("s");
    // 2 layers × (key + value) × 2 KV heads × 5 tokens × 8 dims × 4 bytes
    expect(store.stats().bytes).toBe(2 * 2 * 2 * 5 * 8 * 4);
    seq.truncate(3);
    store.resized("s");
    expect(store.stats().bytes).toBe(2 * 2 * 2 * 3 * 8 * 4);
    await lm.dispose();
  });
});
