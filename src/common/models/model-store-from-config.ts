// Opens the ModelStore the configuration names (Node only: local folders or an S3-compatible bucket).
import { LocalModelStore } from "./local-model-store.ts";
import type { ModelStoreConfig } from "./model-store-config.ts";
import type { ModelStore } from "./model-store.ts";
import { S3ModelStore } from "./s3-model-store.ts";

export function openModelStore(c: ModelStoreConfig): ModelStore {
  if (c.MODEL_STORE === "local") return new LocalModelStore(c.MODEL_DIR);
  return new S3ModelStore({
    bucket: c.S3_BUCKET!,
    prefix: c.S3_PREFIX,
    endpoint: c.S3_ENDPOINT,
    region: c.S3_REGION,
    forcePathStyle: c.S3_FORCE_PATH_STYLE,
    cacheDir: c.MODEL_CACHE_DIR,
  });
}
