// The ONNX graph computes Llama as transformers defines it: checked against a plain TypeScript forward
// pass written from the definition (RMSNorm, rotate-half RoPE on position ids, GQA with consecutive
// query heads sharing a KV head, causal softmax attention, SwiGLU, untied head).
import { describe, expect, it } from "vitest";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { llamaOnnx, type LlamaArch, type LlamaWeights } from "../fixtures/generate/llama-onnx.ts";
import { randomLlamaWeights } from "../fixtures/generate/random-weights.ts";
import { configFor } from "../fixtures/generate/synthetic-pair.ts";

function matVec(x: Float32Array, w: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c] += x[r] * w[r * cols + c];
  return out;
}
function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float32Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  const inv = 1 / Math.sqrt(ms / x.length + eps);
  return Float32Array.from(x, (v, i) => v * inv * w[i]);
}
function rope(v: Float64Array, pos: number, a: LlamaArch): Float64Array {
  const half = a.headDim / 2;
  const out = new Float64Array(v.length);
  for (let h = 0; h < v.length / a.headDim; h++)
    for (let i = 0; i < half; i++) {
      const f = pos / a.ropeTheta ** ((2 * i) / a.headDim);
      const x1 = v[h * a.headDim + i];
      const x2 = v[h * a.headDim + half + i];
      out[h * a.headDim + i] = x1 * Math.cos(f) - x2 * Math.sin(f);
      out[h * a.headDim + half + i] = x2 * Math.cos(f) + x1 * Math.sin(f);
    }
  return out;
}

/** Logits for every position of `ids` (positions 0..n-1), from the definition. */
function referenceForward(w: LlamaWeights, ids: number[]): Float64Array[] {
  const a = w.arch;
  const hd = a.headDim;
  const rep = a.numHeads / a.numKvHeads;
  let xs = ids.map((id) => Float64Array.from(w.embed.subarray(id * a.hiddenSize, (id + 1) * a.hiddenSize)));
  for (const l of w.layers) {
    const normed = xs.map((x) => rmsNorm(x, l.attnNorm, a.rmsNormEps));
    const q = normed.map((x, p) => rope(matVec(x, l.wq, a.hiddenSize, a.numHeads * hd), p, a));
    const k = normed.map((x, p) => rope(matVec(x, l.wk, a.hiddenSize, a.numKvHeads * hd), p, a));
    const v = normed.map((x) => matVec(x, l.wv, a.hiddenSize, a.numKvHeads * hd));
    xs = xs.map((x, p) => {
      const ctx = new Float32Array(a.numHeads * hd);
      for (let h = 0; h < a.numHeads; h++) {
        const kv = Math.floor(h / rep);
        const scores = [];
        for (let j = 0; j <= p; j++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[p][h * hd + d] * k[j][kv * hd + d];
          scores.push(s / Math.sqrt(hd));
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((s, t) => s + t, 0);
        for (let j = 0; j <= p; j++) for (let d = 0; d < hd; d++) ctx[h * hd + d] += (e[j] / z) * v[j][kv * hd + d];
      }
      const attn = matVec(ctx, l.wo, a.numHeads * hd, a.hiddenSize);
      const x1 = x.map((t, i) => t + attn[i]);
      const n2 = rmsNorm(x1, l.mlpNorm, a.rmsNormEps);
      const g = matVec(n2, l.wGate, a.hiddenSize, a.intermediateSize);
      const u = matVec(n2, l.wUp, a.hiddenSize, a.intermediateSize);
      const act = Float32Array.from(g, (gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
      const down = matVec(act, l.wDown, a.intermediateSize, a.hiddenSize);
      return x1.map((t, i) => t + down[i]);
    });
  }
  return xs.map((x) => matVec(rmsNorm(x, w.finalNorm, a.rmsNormEps), w.lmHead, a.hiddenSize, a.vocabSize));
}

describe("Llama ONNX graph vs a reference implementation", () => {
  it.each([
    ["GQA (4 heads, 2 KV heads)", 2],
    ["MHA (4 heads, 4 KV heads)", 4],
  ])("%s: logits agree within 1e-3", async (_name, kvHeads) => {
    const arch: LlamaArch = {
      vocabSize: 64,
      hiddenSize: 32,
      intermediateSize: 48,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: kvHeads,
      headDim: 8,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      maxPositions: 64,
    };
    const w = randomLlamaWeights(arch, 21);
    // Non-trivial norm weights, so a misplaced norm would show.
    for (const l of w.layers) l.attnNorm.forEach((_, i, arr) => (arr[i] = 0.5 + (i % 7) / 7));
    const ids = [1, 9, 33, 2, 60, 17, 44, 5, 12, 30];
    const ref = referenceForward(w, ids);
    const lm = await loadTargetModel({ onnx: llamaOnnx(w), config: configFor(w) });
    const got = await lm.forward(lm.newSequence(), ids);
    let maxDiff = 0;
    let maxAbs = 0;
    for (let p = 0; p < ids.length; p++)
      for (let t = 0; t < arch.vocabSize; t++) {
        maxDiff = Math.max(maxDiff, Math.abs(got.row(p)[t] - ref[p][t]));
        maxAbs = Math.max(maxAbs, Math.abs(ref[p][t]));
      }
    // float32 graph vs float64 reference: relative error ~1e-6 of logits of magnitude ~10.
    expect(maxAbs).toBeGreaterThan(1);
    expect(maxDiff).toBeLessThan(1e-3);
    await lm.dispose();
  });
});
