// Chooses the ModelStore named by the configuration.
import type { Config } from "../../config.ts";
import { LocalModelStore } from "./local-model-store.ts";
import type { ModelStore } from "./model-store.ts";
import { S3ModelStore } from "./s3-model-store.ts";

export function openModelStore(c: Config): ModelStore {
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
