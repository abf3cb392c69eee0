// `npm run bundle:verify -- <target-ref> [<draft-ref>]`: checks bundles where the edge and the verifier will
// read them (the model store the environment configures: MODEL_STORE, S3_*), end to end, before a rollout:
// every file downloaded fresh and checked against its manifest (size, sha256), the roles, the target loaded on
// onnxruntime-node and run once; with a draft, the pair loaded exactly as the edge loads it (tokenizer pair
// check, draft vocabulary, the draft on onnxruntime-web and run once). Exit 0 when all hold, 1 with the
// first failure, 2 on bad arguments.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { parseEnv } from "../src/common/env.ts";
import { bundleLabel } from "../src/common/models/bundle.ts";
import { checkModelStoreConfig, ModelStoreConfigSchema } from "../src/common/models/model-store-config.ts";
import { loadBundle, progressReporter } from "../src/common/models/model-store.ts";
import { openModelStore } from "../src/common/models/model-store-from-config.ts";
import { DirectoryBundleReader } from "../src/model-pair/directory-bundle-reader.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { loadModelPair } from "../src/model-pair/load-model-pair.ts";
import { cliFail, parseCli } from "./cli.ts";

const SCRIPT = "verify-bundle";
const USAGE = `usage: npm run bundle:verify -- <target-ref> [<draft-ref>]
Reads the bundles from the model store the environment configures (MODEL_STORE=s3 with S3_BUCKET, S3_PREFIX,
S3_ENDPOINT, S3_FORCE_PATH_STYLE; or MODEL_STORE=local with MODEL_DIR), into a fresh temporary cache.`;

const { positionals } = parseCli(SCRIPT, USAGE, { options: {}, allowPositionals: true });
if (positionals.length < 1 || positionals.length > 2) cliFail(SCRIPT, "give the target bundle ref, and optionally the draft's");
const [targetRef, draftRef] = positionals;
const ok = (s: string) => console.log(`✓ ${s}`);

const cacheDir = await mkdtemp(path.join(os.tmpdir(), "alia-edge-verify-"));
try {
  const config = parseEnv(ModelStoreConfigSchema, { ...process.env, MODEL_CACHE_DIR: cacheDir });
  checkModelStoreConfig(config);
  const store = openModelStore(config);
  const where = config.MODEL_STORE === "s3" ? `s3://${config.S3_BUCKET}/${config.S3_PREFIX}` : config.MODEL_DIR;

  const targetDir = await store.fetchBundle(targetRef, { onProgress: progressReporter(`target ${targetRef}`) });
  const target = await loadBundle(targetDir, { verified: true });
  if (target.manifest.role === "draft") throw new Error(`${targetRef} is a draft bundle (${bundleLabel(target.manifest)}), not a target`);
  ok(`target ${bundleLabel(target.manifest)} from ${where}: ${target.manifest.files.length} files match the manifest (size and sha256)`);
  const lm = await loadTargetModel(target, { threads: 1 });
  try {
    const logits = await lm.forward(lm.newSequence(), [1, 2]);
    if (!Array.from(logits.row(1)).every(Number.isFinite)) throw new Error("the target's logits are not finite");
  } finally {
    await lm.dispose();
  }
  ok(`target loads on onnxruntime-node and runs (vocab ${target.config.vocab_size}, context ${target.config.max_position_embeddings})`);

  if (draftRef) {
    const draftDir = await store.fetchBundle(draftRef, { onProgress: progressReporter(`draft ${draftRef}`) });
    const draft = await loadBundle(draftDir, { verified: true });
    ok(`draft ${bundleLabel(draft.manifest)} from ${where}: ${draft.manifest.files.length} files match the manifest`);
    // The edge's own loader: refuses a target-role draft, a tokenizer that differs, a bad draft vocabulary.
    const pair = await loadModelPair(new DirectoryBundleReader(targetDir), { reader: new DirectoryBundleReader(draftDir), load: (b) => loadDraftModel(b) });
    await pair.draftModel?.dispose();
    ok(
      `pair: the draft tokenizes as the target does${pair.served.draftVocabulary ? ` (trimmed vocabulary of ${pair.served.draftVocabulary.targetIds.length} ids)` : ""}, and loads and runs on onnxruntime-web as the edge runs it`,
    );
  }
  console.log("bundle:verify: all checks passed");
} catch (e) {
  console.error(`bundle:verify: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  await rm(cacheDir, { recursive: true, force: true });
}
