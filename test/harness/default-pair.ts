// The committed default fixture pair (fixtures/default/{draft,target}, made by `npm run fixtures:train`),
// loaded once per test file: bundles and tokenizer, and the two models on the runtimes that run them in
// production (target on onnxruntime-node as the verifier runs it, draft on onnxruntime-web as the edge
// does), with the edge's served-model view. Cached: every caller shares the same objects, so none may
// dispose the models.
import path from "node:path";
import { loadTargetModel } from "../../gpu-backend/target-model.ts";
import { DEFAULT_PAIR_DIR } from "../../fixtures/generate/synthetic-bundles.ts";
import { loadDraftModel } from "../../src/model-pair/draft-model.ts";
import { servedModel, type ServedModel } from "../../src/model-pair/served-model.ts";
import { eosIds, type LoadedBundle } from "../../src/common/models/bundle.ts";
import type { CausalLM } from "../../src/common/models/causal-lm.ts";
import { loadBundle } from "../../src/common/models/model-store.ts";
import { TextTokenizer } from "../../src/common/models/tokenizer.ts";

export { DEFAULT_PAIR_DIR };

export interface DefaultBundles {
  /** fixtures/default */
  dir: string;
  targetDir: string;
  draftDir: string;
  targetBundle: LoadedBundle;
  draftBundle: LoadedBundle;
  /** The tokenizer both bundles share. */
  tok: TextTokenizer;
  /** The target bundle's id: the `model` clients send. */
  modelId: string;
  /** EOS ids from the target's config. */
  eos: number[];
}

export interface DefaultPair extends DefaultBundles {
  /** The target on onnxruntime-node (the verifier's runner). */
  target: CausalLM;
  /** The draft on onnxruntime-web (the edge's runner). */
  draft: CausalLM;
  /** What the API serves for this pair (src/model-pair/served-model.ts). */
  served: ServedModel;
}

/** Caches a promise; a failed load is not cached, so a later call tries again. */
function cached<T>(load: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () =>
    (p ??= load().catch((e: unknown) => {
      p = undefined;
      throw e;
    }));
}

/** Bundles and tokenizer only (no model is loaded). */
export const loadDefaultBundles = cached(async (): Promise<DefaultBundles> => {
  const targetDir = path.join(DEFAULT_PAIR_DIR, "target");
  const draftDir = path.join(DEFAULT_PAIR_DIR, "draft");
  const [targetBundle, draftBundle] = await Promise.all([loadBundle(targetDir), loadBundle(draftDir)]);
  return {
    dir: DEFAULT_PAIR_DIR,
    targetDir,
    draftDir,
    targetBundle,
    draftBundle,
    tok: TextTokenizer.fromBundle(targetBundle),
    modelId: targetBundle.manifest.id,
    eos: eosIds(targetBundle.config),
  };
});

/** Bundles, tokenizer, both models and the served-model view. */
export const loadDefaultPair = cached(async (): Promise<DefaultPair> => {
  const b = await loadDefaultBundles();
  const [target, draft] = await Promise.all([loadTargetModel(b.targetBundle), loadDraftModel(b.draftBundle)]);
  return { ...b, target, draft, served: servedModel({ target: b.targetBundle, draft: b.draftBundle, draftModel: draft, tokenizer: b.tok }) };
});
