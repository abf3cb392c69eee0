// The translation endpoint's sentence cache is a list of tiers behind one interface, one file per tier:
// memory-lru-tier.ts (Node), cache-api-tier.ts (Workers, per data centre), s3-tier.ts and r2-tier.ts (shared
// by every location). Tiers never throw: a failing tier is a miss and a counted error, so the request
// degrades to computing.

export interface CacheTier {
  readonly name: string;
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
  /** Errors swallowed so far (tier unavailable), for metrics. */
  readonly errors: number;
}

/** A tier over a store that can fail: failures are counted and read as misses. */
export abstract class GuardedTier implements CacheTier {
  abstract readonly name: string;
  errors = 0;
  protected abstract read(key: string): Promise<string | undefined>;
  protected abstract write(key: string, value: string): Promise<void>;
  /** A failure that only means "not there" (S3's NoSuchKey): a miss, not an error. */
  protected isMiss(_e: unknown): boolean {
    return false;
  }

  async get(key: string): Promise<string | undefined> {
    try {
      return await this.read(key);
    } catch (e) {
      if (!this.isMiss(e)) this.errors++;
      return undefined;
    }
  }

  async put(key: string, value: string): Promise<void> {
    try {
      await this.write(key, value);
    } catch {
      this.errors++;
    }
  }
}
