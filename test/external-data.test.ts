// Real exports over 2 GB (and q4 exports) keep their weights in `onnx/model.onnx_data`: such a bundle
// loads through the store into both runners and computes what the single-file graph computes.
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { writeManifest } from "../src/common/models/manifest.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { llamaConfigJson, llamaOnnx, llamaOnnxExternal, type LlamaArch } from "../fixtures/generate/llama-onnx.ts";
import { randomLlamaWeights } from "../fixtures/generate/random-weights.ts";
import { readTokenizerFiles } from "../fixtures/generate/synthetic-bundles.ts";
import { DEFAULT_PAIR_DIR } from "./harness/default-pair.ts";

const ARCH: LlamaArch = { vocabSize: 2048, hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, rmsNormEps: 1e-5, ropeTheta: 10000, maxPositions: 256 };
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("bundles with external data", () => {
  it("load into onnxruntime-node and onnxruntime-web and match the single-file graph", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "alia-extdata-"));
    dirs.push(dir);
    const weights = randomLlamaWeights(ARCH, 4);
    const { model, data } = llamaOnnxExternal(weights);
    await mkdir(path.join(dir, "onnx"));
    await writeFile(path.join(dir, "onnx", "model.onnx"), model);
    await writeFile(path.join(dir, "onnx", "model.onnx_data"), data);
    const tok = await readTokenizerFiles(path.join(DEFAULT_PAIR_DIR, "target"));
    await writeFile(path.join(dir, "config.json"), JSON.stringify(llamaConfigJson(ARCH)));
    await writeFile(path.join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }));
    await writeFile(path.join(dir, "tokenizer.json"), JSON.stringify(tok.tokenizerJson));
    await writeFile(path.join(dir, "tokenizer_config.json"), JSON.stringify(tok.tokenizerConfigJson));
    await writeManifest(dir, { id: "extdata", version: "1" });
    // The graph file itself holds no weights.
    expect((await stat(path.join(dir, "onnx", "model.onnx"))).size).toBeLessThan(data.length / 10);

    const bundle = await loadBundle(dir);
    expect(bundle.externalData?.map((e) => [e.path, e.data.length])).toEqual([["model.onnx_data", data.length]]);
    const node = await loadTargetModel(bundle);
    const web = await loadDraftModel(bundle);
    const inline = await loadTargetModel({ onnx: llamaOnnx(weights), config: bundle.config });
    const ids = [1, 300, 1200, 45, 77];
    const want = (await inline.forward(inline.newSequence(), ids)).data;
    for (const lm of [node, web]) {
      const got = (await lm.forward(lm.newSequence(), ids)).data;
      let maxDiff = 0;
      for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
      expect(maxDiff).toBeLessThan(1e-4);
    }
    await Promise.all([node.dispose(), web.dispose(), inline.dispose()]);
  });
});
