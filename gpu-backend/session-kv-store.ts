// Per-session KV caches of the verifier, under a byte budget: least-recently-used sessions are evicted
// when the budget or the session count is exceeded, idle ones after a TTL, and clients may close theirs.
// A session in the middle of a forward pass is never evicted by the budget or the TTL; an explicit close or
// a replacement removes it at once, and `onEvict` must then defer freeing what the pass still uses. The
// clock is injected so that tests (and the metrics) need no real waiting.

export interface KvHolder {
  /** Bytes held by this session's KV cache now. */
  readonly kvBytes: number;
  /** True while a forward pass uses the cache. */
  readonly busy?: boolean;
}

export type EvictionReason = "lru" | "idle" | "closed";

export interface SessionKvStoreOptions<T> {
  maxBytes: number;
  maxSessions: number;
  idleTtlMs: number;
  now?: () => number;
  /** Called once for every session that leaves the store (free its tensors here). */
  onEvict?: (id: string, value: T, reason: EvictionReason) => void;
}

export interface SessionKvStats {
  sessions: number;
  bytes: number;
  evictedLru: number;
  evictedIdle: number;
  closed: number;
}

export class SessionTooLargeError extends Error {
  override name = "SessionTooLargeError";
}

interface Entry<T> {
  value: T;
  bytes: number;
  lastUsed: number;
}

export class SessionKvStore<T extends KvHolder> {
  // A Map iterates in insertion order; re-inserting on every use keeps it in LRU order.
  private readonly entries = new Map<string, Entry<T>>();
  private bytes = 0;
  private readonly counters = { evictedLru: 0, evictedIdle: 0, closed: 0 };
  private readonly now: () => number;

  constructor(private readonly o: SessionKvStoreOptions<T>) {
    if (!(o.maxBytes > 0 && o.maxSessions >= 1 && o.idleTtlMs > 0)) throw new RangeError("SessionKvStore: maxBytes, maxSessions and idleTtlMs must be positive");
    this.now = o.now ?? Date.now;
  }

  /** The session's value, marked as just used; undefined if unknown, evicted or idle past the TTL. */
  get(id: string): T | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (this.now() - e.lastUsed > this.o.idleTtlMs && !e.value.busy) {
      this.remove(id, e, "idle");
      return undefined;
    }
    this.entries.delete(id);
    e.lastUsed = this.now();
    this.entries.set(id, e);
    return e.value;
  }

  /** The session's value as held now, without marking it used or expiring it (identity checks). */
  peek(id: string): T | undefined {
    return this.entries.get(id)?.value;
  }

  /** Add or replace a session, then evict others as the budget requires. */
  put(id: string, value: T): void {
    const old = this.entries.get(id);
    if (old && old.value !== value) this.remove(id, old, "closed");
    else if (old) {
      this.bytes -= old.bytes;
      this.entries.delete(id);
    }
    const entry = { value, bytes: value.kvBytes, lastUsed: this.now() };
    this.entries.set(id, entry);
    this.bytes += entry.bytes;
    this.enforce(id);
  }

  /** Re-read a session's size after a round grew or truncated its cache, then enforce the budget. */
  resized(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.bytes += e.value.kvBytes - e.bytes;
    e.bytes = e.value.kvBytes;
    this.enforce(id);
  }

  /** Explicit close (DELETE); false if the session was not there. */
  close(id: string): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    this.remove(id, e, "closed");
    return true;
  }

  /** Evict every session idle for longer than the TTL; returns their ids. */
  sweep(): string[] {
    const cutoff = this.now() - this.o.idleTtlMs;
    const gone: string[] = [];
    for (const [id, e] of this.entries)
      if (e.lastUsed < cutoff && !e.value.busy) {
        this.remove(id, e, "idle");
        gone.push(id);
      }
    return gone;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  stats(): SessionKvStats {
    return { sessions: this.entries.size, bytes: this.bytes, ...this.counters };
  }

  private enforce(keep: string): void {
    const own = this.entries.get(keep);
    if (own && own.bytes > this.o.maxBytes) {
      this.remove(keep, own, "lru");
      throw new SessionTooLargeError(`session ${keep} needs ${own.bytes} KV bytes, more than the store's budget of ${this.o.maxBytes}`);
    }
    for (const [id, e] of this.entries) {
      if (this.bytes <= this.o.maxBytes && this.entries.size <= this.o.maxSessions) return;
      if (id === keep || e.value.busy) continue;
      this.remove(id, e, "lru");
    }
  }

  private remove(id: string, e: Entry<T>, reason: EvictionReason): void {
    this.entries.delete(id);
    this.bytes -= e.bytes;
    if (reason === "lru") this.counters.evictedLru++;
    else if (reason === "idle") this.counters.evictedIdle++;
    else this.counters.closed++;
    this.o.onEvict?.(id, e.value, reason);
  }
}
