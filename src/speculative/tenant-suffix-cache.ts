// Recent outputs per tenant (API key), indexed for the suffix proposer: a tenant's generations often repeat
// one another (the same template filled in, the same document rewritten, the same names translated).
// Bounded twice: each tenant's index stays within a byte budget (oldest outputs evicted first), and at most
// `maxTenants` tenants are held (least recently used dropped). One tenant never sees another's text.
import { SuffixIndex } from "./suffix-index.ts";
import { SuffixCalibration } from "./suffix-proposer.ts";

export interface TenantSuffixCacheOptions {
  /** Byte budget of one tenant's index (SuffixIndex.bytes). */
  bytesPerTenant: number;
  maxTenants: number;
  maxOrder: number;
}

/** One tenant's share: its index of recent outputs and how well suffix proposals have fared for it. */
export class TenantSuffixEntry {
  readonly index: SuffixIndex;
  readonly calibration = new SuffixCalibration();
  private readonly documents: number[][] = [];

  constructor(
    maxOrder: number,
    private readonly budget: number,
  ) {
    this.index = new SuffixIndex(maxOrder);
  }

  /** Outputs held, oldest first. */
  get size(): number {
    return this.documents.length;
  }

  /** Index one finished output; evict the oldest until the budget holds (an output alone above it is not kept). */
  addOutput(tokens: readonly number[]): void {
    if (tokens.length < 2) return;
    const doc = [...tokens];
    this.documents.push(doc);
    this.index.add(doc);
    while (this.index.bytes > this.budget && this.documents.length) this.index.remove(this.documents.shift()!);
  }
}

export class TenantSuffixCache {
  private readonly tenants = new Map<string, TenantSuffixEntry>();

  constructor(readonly o: TenantSuffixCacheOptions) {
    if (!(o.bytesPerTenant >= 0 && Number.isInteger(o.maxTenants) && o.maxTenants >= 1)) throw new RangeError("TenantSuffixCache needs bytesPerTenant ≥ 0 and maxTenants ≥ 1");
  }

  /** The tenant's entry (created on first use; the least recently used tenant is dropped beyond maxTenants). */
  tenant(key: string): TenantSuffixEntry {
    let e = this.tenants.get(key);
    if (e) this.tenants.delete(key);
    else e = new TenantSuffixEntry(this.o.maxOrder, this.o.bytesPerTenant);
    this.tenants.set(key, e);
    while (this.tenants.size > this.o.maxTenants) this.tenants.delete(this.tenants.keys().next().value!);
    return e;
  }

  get tenantCount(): number {
    return this.tenants.size;
  }
}
