// Proof that real Optimum exports will load: transformers.js (dev-only) loads our bundles from a local
// folder, and its greedy `generate` is token-identical to our runners on the same bundle.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTargetModel, ortNode } from "../gpu-backend/target-model.ts";
import { eosIds } from "../src/common/models/bundle.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { writeSyntheticPairBundles } from "../fixtures/generate/synthetic-bundles.ts";
import { DEFAULT_PAIR_DIR } from "./harness/default-pair.ts";
import { VARIED_PROMPTS as PROMPTS } from "./harness/prompts.ts";

const NEW_TOKENS = 32;

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "alia-tjs-"));
  await writeSyntheticPairBundles({ outDir: path.join(tmp, "synthetic"), alpha: 0.6, seed: 11, ort: ortNode });
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe.each([
  ["default target (trained, GQA) on onnxruntime-node", () => path.join(DEFAULT_PAIR_DIR, "target"), "node"],
  ["default draft (trained, MHA) on onnxruntime-web", () => path.join(DEFAULT_PAIR_DIR, "draft"), "web"],
  ["synthetic target (random, GQA) on onnxruntime-node", () => path.join(tmp, "synthetic", "target"), "node"],
] as const)("%s", (_name, dirOf, runtime) => {
  it("transformers.js greedy generate is token-identical to ours", async () => {
    const dir = dirOf();
    const bundle = await loadBundle(dir);
    const ours: CausalLM = runtime === "node" ? await loadTargetModel(bundle) : await loadDraftModel(bundle);
    const tokenizer = TextTokenizer.fromBundle(bundle);
    env.localModelPath = path.dirname(dir);
    const name = path.basename(dir);
    const tjsTokenizer = await AutoTokenizer.from_pretrained(name);
    const tjsModel = await AutoModelForCausalLM.from_pretrained(name, { dtype: "fp32", device: "cpu" });
    try {
      for (const prompt of PROMPTS) {
        const enc = tjsTokenizer(prompt);
        const ids = (enc.input_ids.tolist()[0] as bigint[]).map(Number);
        expect(ids).toEqual(tokenizer.encode(prompt));
        const out = await tjsModel.generate({ ...enc, max_new_tokens: NEW_TOKENS, do_sample: false });
        const theirs = ((out as { tolist(): bigint[][] }).tolist()[0] as bigint[]).map(Number).slice(ids.length);
        const mine = await ours.greedy(ids, NEW_TOKENS, eosIds(bundle.config));
        expect(mine.length).toBeGreaterThan(0);
        expect(theirs).toEqual(mine);
      }
    } finally {
      await tjsModel.dispose();
      await ours.dispose();
    }
  });
});
