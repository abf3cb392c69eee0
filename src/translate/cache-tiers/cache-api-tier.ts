// The Workers Cache API as a sentence cache tier: per data centre, GET requests only, so each sentence is
// stored under a synthetic GET URL named by its key.
import { GuardedTier } from "./cache-tier.ts";

/** The slice of the Workers Cache API used here. */
export interface CacheLike {
  match(request: Request): Promise<Response | undefined>;
  put(request: Request, response: Response): Promise<void>;
}

export class CacheApiTier extends GuardedTier {
  readonly name = "cache-api";
  constructor(
    private readonly cache: CacheLike,
    private readonly ttlSeconds: number,
    /** Synthetic origin of the GET keys (the Cache API stores GET requests only). */
    private readonly origin = "https://translation-cache.alia-edge.invalid",
  ) {
    super();
  }

  private request(key: string): Request {
    return new Request(`${this.origin}/${key}`);
  }

  protected async read(key: string): Promise<string | undefined> {
    const r = await this.cache.match(this.request(key));
    return r ? await r.text() : undefined;
  }

  protected async write(key: string, value: string): Promise<void> {
    await this.cache.put(this.request(key), new Response(value, { headers: { "content-type": "text/plain; charset=utf-8", "cache-control": `public, max-age=${this.ttlSeconds}` } }));
  }
}
