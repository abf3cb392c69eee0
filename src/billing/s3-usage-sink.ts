// The usage exporter's sink on an S3-compatible bucket (AWS S3, R2, MinIO, s3rver). PutObject replaces an
// object of the same key, so writing a batch again (after a crash before it was marked) leaves one object
// with the same bytes: that is what makes the exporter's retry idempotent. Content-MD5 makes the store
// refuse a body damaged on the way rather than keep it.
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { type S3Options, createS3Client } from "../common/models/s3-model-store.ts";
import type { UsageSink } from "./usage-exporter.ts";

export interface S3UsageSinkOptions extends Omit<S3Options, "prefix"> {
  /** Key prefix replacing the object name's leading "usage/" (default "usage/"): `<prefix><day>/<first>-<last>.jsonl`. */
  prefix?: string;
  /** Use this client instead of creating one from the options. */
  client?: S3Client;
}

export const DEFAULT_USAGE_PREFIX = "usage/";

export class S3UsageSink implements UsageSink {
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;

  constructor(o: S3UsageSinkOptions) {
    if (!o.bucket) throw new Error("S3UsageSink: bucket is required");
    this.bucket = o.bucket;
    this.prefix = o.prefix ?? DEFAULT_USAGE_PREFIX;
    this.client = o.client ?? createS3Client(o);
  }

  /** The bucket key of an outbox object name (`usage/<day>/…` → `<prefix><day>/…`). */
  key(objectName: string): string {
    return `${this.prefix}${objectName.replace(/^usage\//, "")}`;
  }

  /** For logs: `s3://bucket/prefix`. */
  get label(): string {
    return `s3://${this.bucket}/${this.prefix}`;
  }

  async put(name: string, body: string): Promise<void> {
    const bytes = Buffer.from(body, "utf8");
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.key(name),
        Body: bytes,
        ContentType: "application/x-ndjson",
        ContentMD5: createHash("md5").update(bytes).digest("base64"),
      }),
    );
  }
}
