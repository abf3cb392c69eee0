// The model-store settings both the edge and the verifier read (MODEL_STORE, MODEL_DIR, S3_*). Only the
// schema lives here, so that Workers can validate their config without importing Node's stores.
import { z } from "zod";
import { ConfigError, envBool } from "../env.ts";

export const ModelStoreConfigSchema = z.object({
  MODEL_STORE: z.enum(["local", "s3"]).default("local").describe("Where bundles come from"),
  MODEL_DIR: z.string().min(1).default("fixtures/default").describe("Local store: folder holding one sub-folder per bundle"),
  DRAFT_BUNDLE: z.string().min(1).default("draft").describe("Draft bundle ref (local sub-folder, or bundle id in the bucket)"),
  TARGET_BUNDLE: z.string().min(1).default("target").describe("Target bundle ref"),
  MODEL_CACHE_DIR: z.string().min(1).default(".cache/models").describe("S3 store: local cache of downloaded bundles"),
  S3_ENDPOINT: z.string().url().optional().describe("S3-compatible endpoint (R2: https://<account>.r2.cloudflarestorage.com)"),
  S3_REGION: z.string().min(1).default("auto").describe("Region ('auto' for R2)"),
  S3_BUCKET: z.string().min(1).optional().describe("Bucket of model bundles"),
  S3_PREFIX: z.string().default("bundles").describe("Key prefix of bundles in the bucket"),
  S3_FORCE_PATH_STYLE: envBool.default(false).describe("Path-style addressing (MinIO, s3rver)"),
});
export type ModelStoreConfig = z.infer<typeof ModelStoreConfigSchema>;

/** The cross-field rule zod's object shape cannot say. */
export function checkModelStoreConfig(c: ModelStoreConfig): void {
  if (c.MODEL_STORE === "s3" && !c.S3_BUCKET) throw new ConfigError("invalid configuration: S3_BUCKET is required when MODEL_STORE=s3");
}
