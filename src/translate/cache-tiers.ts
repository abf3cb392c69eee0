// Cache tiers of the translation endpoint, each behind one interface: an in-memory LRU with a byte budget
// (Node), the Workers Cache API (per data centre), and an S3/R2 bucket shared by every location. Tiers
// never throw: a failing tier is a miss (and a counted error), so the request degrades to computing.
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";

export interface CacheTier {
  readonly name: string;
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
  /** Errors swallowed so far (tier unavailable), for metrics. */
  readonly errors: number;
}

export class MemoryLruTier implements CacheTier {
  readonly name = "memory";
  errors = 0;
  private readonly map = new Map<string, string>();
  private bytes = 0;
  constructor(private readonly maxBytes: number) {}

  async get(key: string): Promise<string | undefined> {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key); // re-insert: Map order is the LRU order
      this.map.set(key, v);
    }
    return v;
  }

  async put(key: string, value: string): Promise<void> {
    const size = (key.length + value.length) * 2;
    if (size > this.maxBytes) return;
    const old = this.map.get(key);
    if (old !== undefined) {
      this.bytes -= (key.length + old.length) * 2;
      this.map.delete(key);
    }
    this.map.set(key, value);
    this.bytes += size;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= (k.length + v.length) * 2;
    }
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }

  get size(): number {
    return this.map.size;
  }
}

/** The slice of the Workers Cache API used here. */
export interface CacheLike {
  match(request: Request): Promise<Response | undefined>;
  put(request: Request, response: Response): Promise<void>;
}

export class CacheApiTier implements CacheTier {
  readonly name = "cache-api";
  errors = 0;
  constructor(
    private readonly cache: CacheLike,
    private readonly ttlSeconds: number,
    /** Synthetic origin of the GET keys (the Cache API stores GET requests only). */
    private readonly origin = "https://translation-cache.alia-edge.invalid",
  ) {}

  private request(key: string): Request {
    return new Request(`${this.origin}/${key}`);
  }

  async get(key: string): Promise<string | undefined> {
    try {
      const r = await this.cache.match(this.request(key));
      return r ? await r.text() : undefined;
    } catch {
      this.errors++;
      return undefined;
    }
  }

  async put(key: string, value: string): Promise<void> {
    try {
      await this.cache.put(this.request(key), new Response(value, { headers: { "content-type": "text/plain; charset=utf-8", "cache-control": `public, max-age=${this.ttlSeconds}` } }));
    } catch {
      this.errors++;
    }
  }
}

export class S3Tier implements CacheTier {
  readonly name = "s3";
  errors = 0;
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly prefix = "translations/",
  ) {}

  async get(key: string): Promise<string | undefined> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return await r.Body!.transformToString("utf-8");
    } catch (e) {
      if ((e as { name?: string }).name !== "NoSuchKey") this.errors++;
      return undefined;
    }
  }

  async put(key: string, value: string): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Body: value, ContentType: "text/plain; charset=utf-8" }));
    } catch {
      this.errors++;
    }
  }
}

/** The slice of an R2 bucket binding used here (Workers). */
export interface R2Like {
  get(key: string): Promise<{ text(): Promise<string> } | null>;
  put(key: string, value: string): Promise<unknown>;
}

export class R2Tier implements CacheTier {
  readonly name = "r2";
  errors = 0;
  constructor(
    private readonly bucket: R2Like,
    private readonly prefix = "translations/",
  ) {}

  async get(key: string): Promise<string | undefined> {
    try {
      const o = await this.bucket.get(this.prefix + key);
      return o ? await o.text() : undefined;
    } catch {
      this.errors++;
      return undefined;
    }
  }

  async put(key: string, value: string): Promise<void> {
    try {
      await this.bucket.put(this.prefix + key, value);
    } catch {
      this.errors++;
    }
  }
}
