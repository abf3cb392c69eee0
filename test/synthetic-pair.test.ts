// Synthetic pairs hit the requested greedy agreement and are reproducible.
import { describe, expect, it } from "vitest";
import { ortNode } from "../gpu-backend/target-model.ts";
import { llamaOnnx, paramCount } from "../fixtures/generate/llama-onnx.ts";
import { makeSyntheticPair } from "../fixtures/generate/synthetic-pair.ts";

describe("makeSyntheticPair", () => {
  it.each([0.3, 0.6, 0.9])("lands near α = %s (measured within 0.05) with a smaller MHA draft of a GQA target", async (alpha) => {
    const pair = await makeSyntheticPair({ alpha, vocabSize: 1024, ort: ortNode, seed: 3 });
    expect(Math.abs(pair.alpha - alpha)).toBeLessThanOrEqual(0.05);
    expect(pair.positions).toBe(16 * 32);
    expect(pair.target.arch.numKvHeads).toBeLessThan(pair.target.arch.numHeads);
    expect(pair.draft.arch.numKvHeads).toBe(pair.draft.arch.numHeads);
    expect(pair.draft.arch.numLayers).toBe(pair.target.arch.numLayers - 1);
    expect(paramCount(pair.draft.arch)).toBeLessThan(paramCount(pair.target.arch));
  });

  it("is deterministic for a seed and different across seeds", async () => {
    const a = await makeSyntheticPair({ alpha: 0.6, vocabSize: 512, ort: ortNode, seed: 5 });
    const b = await makeSyntheticPair({ alpha: 0.6, vocabSize: 512, ort: ortNode, seed: 5 });
    const c = await makeSyntheticPair({ alpha: 0.6, vocabSize: 512, ort: ortNode, seed: 6 });
    expect(Buffer.from(llamaOnnx(a.draft)).equals(Buffer.from(llamaOnnx(b.draft)))).toBe(true);
    expect(a.alpha).toBe(b.alpha);
    expect(Buffer.from(llamaOnnx(a.target)).equals(Buffer.from(llamaOnnx(c.target)))).toBe(false);
  });

  it("supports a draft with all the target's layers", async () => {
    const pair = await makeSyntheticPair({ alpha: 0.95, vocabSize: 512, ort: ortNode, draftLayers: 3 });
    expect(pair.draft.arch.numLayers).toBe(3);
    expect(pair.target.arch.numLayers).toBe(3);
    expect(Math.abs(pair.alpha - 0.95)).toBeLessThanOrEqual(0.03);
  });

  it("refuses an α outside (0, 1)", async () => {
    await expect(makeSyntheticPair({ alpha: 1, vocabSize: 512, ort: ortNode })).rejects.toThrow(/strictly between 0 and 1/);
  });
});
