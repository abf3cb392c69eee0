// In-memory LRU sentence cache with a byte budget (Node edge; a Worker isolate is too short-lived for it).
import type { CacheTier } from "./cache-tier.ts";

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
