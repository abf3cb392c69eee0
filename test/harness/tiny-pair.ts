// A tiny synthetic pair (8 tokens, α ≈ 0.6) behind its own verifier process, for the end-to-end sampling
// checks: small enough that target-only sampling of the first two tokens is known exactly (chi-square.ts).
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadTargetModel, ortNode } from "../../gpu-backend/target-model.ts";
import type { CausalLM } from "../../src/common/models/causal-lm.ts";
import { loadBundle } from "../../src/common/models/model-store.ts";
import { PoolClient } from "../../src/pool/pool-client.ts";
import { writeSyntheticPairBundles } from "../../fixtures/generate/synthetic-bundles.ts";
import { startVerifierProcess } from "./processes.ts";

export interface TinyPair {
  /** The pair's bundle directories. */
  targetDir: string;
  draftDir: string;
  /** The target, loaded here (the reference distribution comes from its logits). */
  target: CausalLM;
  /** A pool client on the pair's verifier. */
  pool: PoolClient;
}

/** Runs `fn` with a tiny pair made from `seed` and a verifier serving it (bearer `token`); removes both after. */
export async function withTinyPair<T>(seed: number, token: string, fn: (pair: TinyPair) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "alia-tiny-"));
  try {
    const tiny = await writeSyntheticPairBundles({ outDir: dir, alpha: 0.6, vocabSize: 8, seed, ort: ortNode });
    const verifier = await startVerifierProcess({ VERIFIER_TOKEN: token, MODEL_DIR: dir });
    const target = await loadTargetModel(await loadBundle(tiny.targetDir));
    try {
      return await fn({ targetDir: tiny.targetDir, draftDir: tiny.draftDir, target, pool: new PoolClient({ nodes: [verifier.url], token }) });
    } finally {
      await target.dispose();
      await verifier.stop("SIGKILL");
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
