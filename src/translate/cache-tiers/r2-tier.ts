// An R2 bucket binding (Workers) as the sentence cache every location shares.
import { GuardedTier } from "./cache-tier.ts";

/** The slice of an R2 bucket binding used here. */
export interface R2Like {
  get(key: string): Promise<{ text(): Promise<string> } | null>;
  put(key: string, value: string): Promise<unknown>;
}

export class R2Tier extends GuardedTier {
  readonly name = "r2";
  constructor(
    private readonly bucket: R2Like,
    private readonly prefix = "translations/",
  ) {
    super();
  }

  protected async read(key: string): Promise<string | undefined> {
    const o = await this.bucket.get(this.prefix + key);
    return o ? await o.text() : undefined;
  }

  protected async write(key: string, value: string): Promise<void> {
    await this.bucket.put(this.prefix + key, value);
  }
}
