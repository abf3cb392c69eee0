// The Node edge's sentence cache tiers from the configuration: memory first, then the shared S3/R2 tier.
import type { Config } from "../../config.ts";
import { createS3Client } from "../../common/models/s3-model-store.ts";
import type { CacheTier } from "./cache-tier.ts";
import { MemoryLruTier } from "./memory-lru-tier.ts";
import { S3Tier } from "./s3-tier.ts";

export function nodeCacheTiers(c: Config): CacheTier[] {
  const tiers: CacheTier[] = [];
  if (c.TRANSLATE_MEMORY_BYTES > 0) tiers.push(new MemoryLruTier(c.TRANSLATE_MEMORY_BYTES));
  if (c.TRANSLATE_S3_BUCKET) {
    // One attempt: a failing shared tier must cost a request little before it degrades to computing.
    const client = createS3Client({ bucket: c.TRANSLATE_S3_BUCKET, endpoint: c.S3_ENDPOINT, region: c.S3_REGION, forcePathStyle: c.S3_FORCE_PATH_STYLE, maxAttempts: 1 });
    tiers.push(new S3Tier(client, c.TRANSLATE_S3_BUCKET, c.TRANSLATE_S3_PREFIX));
  }
  return tiers;
}
