// An S3-compatible bucket (S3, R2 through its S3 API, MinIO) as the sentence cache every edge shares.
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { GuardedTier } from "./cache-tier.ts";

export class S3Tier extends GuardedTier {
  readonly name = "s3";
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix = "translations/",
  ) {
    super();
  }

  protected override isMiss(e: unknown): boolean {
    return (e as { name?: string }).name === "NoSuchKey";
  }

  protected async read(key: string): Promise<string | undefined> {
    const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    return await r.Body!.transformToString("utf-8");
  }

  protected async write(key: string, value: string): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Body: value, ContentType: "text/plain; charset=utf-8" }));
  }
}
