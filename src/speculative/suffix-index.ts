// A suffix index over token sequences (pure, no I/O): for every context of 1…maxOrder tokens it has seen,
// which tokens followed it and how often — a suffix tree cut at depth maxOrder, stored as one hash table.
// Looking up the longest context that ends a history costs maxOrder hash probes whatever the index holds,
// which keeps a proposal under a microsecond-scale budget at tens of thousands of indexed tokens.
// Documents can be removed again (their counts are subtracted), so a bounded cache can evict the oldest.

/** What followed a context: the most frequent next token, its count, and the context's total count. */
export interface Continuation {
  token: number;
  count: number;
  total: number;
  /** Length of the matched context (1…maxOrder). */
  order: number;
}

/** Followers of one context. One follower needs no map (the common case: a context seen once). */
interface Followers {
  best: number;
  bestCount: number;
  total: number;
  counts?: Map<number, number>;
}

/** Rough bytes of one table entry (Map slot, Followers object); a follower map adds FOLLOWER_BYTES per token. */
export const ENTRY_BYTES = 112;
const FOLLOWER_BYTES = 48;

/**
 * Hash keys of the contexts that end at `end` (exclusive) in `tokens`: keys[o − 1] is the context of the last
 * o tokens, o = 1…min(maxOrder, end). 52-bit keys from two 32-bit lanes; a collision can only make a
 * proposal worse, never an output wrong (every proposal is verified).
 */
export function contextKeys(tokens: readonly number[], end: number, maxOrder: number): number[] {
  const keys: number[] = [];
  let a = 0x9e3779b9 | 0;
  let b = 0x85ebca6b | 0;
  for (let o = 1; o <= maxOrder && end - o >= 0; o++) {
    const t = tokens[end - o] | 0;
    a = Math.imul(a ^ t, 0x01000193) ^ (a >>> 15);
    b = Math.imul(b + t + o, 0x5bd1e995) ^ (b >>> 13);
    a = Math.imul(a ^ (a >>> 16), 0x7feb352d);
    b = Math.imul(b ^ (b >>> 15), 0x846ca68b);
    keys.push((a >>> 0) * 0x100000 + (b >>> 12));
  }
  return keys;
}

export class SuffixIndex {
  private readonly table = new Map<number, Followers>();
  private followerEntries = 0;
  /** Tokens indexed (as followers of their contexts), over all documents. */
  tokens = 0;

  constructor(readonly maxOrder: number) {
    if (!(Number.isInteger(maxOrder) && maxOrder >= 1)) throw new RangeError(`maxOrder must be a positive integer, got ${maxOrder}`);
  }

  /** Approximate memory held by the index (what a byte budget is checked against). */
  get bytes(): number {
    return this.table.size * ENTRY_BYTES + this.followerEntries * FOLLOWER_BYTES;
  }

  /** Contexts held. */
  get contexts(): number {
    return this.table.size;
  }

  /** Index tokens[from…] as followers of the contexts before them (`from` > 0 extends a document already indexed up to it). */
  add(tokens: readonly number[], from = 0): void {
    for (let i = Math.max(1, from); i < tokens.length; i++) for (const key of contextKeys(tokens, i, this.maxOrder)) this.count(key, tokens[i], 1);
    this.tokens += Math.max(0, tokens.length - Math.max(1, from));
  }

  /** Subtract a document added before (the same tokens, whole). */
  remove(tokens: readonly number[]): void {
    for (let i = 1; i < tokens.length; i++) for (const key of contextKeys(tokens, i, this.maxOrder)) this.count(key, tokens[i], -1);
    this.tokens -= Math.max(0, tokens.length - 1);
  }

  /** Followers of a context key (contextKeys), or undefined when never seen. */
  followers(key: number): Readonly<Followers> | undefined {
    return this.table.get(key);
  }

  /** The continuation of the longest context ending `history` that the index has seen. */
  lookup(history: readonly number[]): Continuation | undefined {
    const keys = contextKeys(history, history.length, this.maxOrder);
    for (let o = keys.length; o >= 1; o--) {
      const f = this.table.get(keys[o - 1]);
      if (f) return { token: f.best, count: f.bestCount, total: f.total, order: o };
    }
    return undefined;
  }

  private count(key: number, token: number, delta: 1 | -1): void {
    const f = this.table.get(key);
    if (!f) {
      if (delta < 0) return; // removing what was never added (a hash collision's twin already gone)
      this.table.set(key, { best: token, bestCount: 1, total: 1 });
      return;
    }
    if (delta > 0 && !f.counts && f.best === token) {
      f.bestCount++;
      f.total++;
      return;
    }
    if (!f.counts) {
      if (delta < 0 && f.best !== token) return;
      f.counts = new Map([[f.best, f.bestCount]]);
      this.followerEntries++;
    }
    const n = (f.counts.get(token) ?? 0) + delta;
    if (n < 0) return;
    if (n === 0) {
      f.counts.delete(token);
      this.followerEntries--;
    } else {
      if (!f.counts.has(token)) this.followerEntries++;
      f.counts.set(token, n);
    }
    f.total += delta;
    if (f.total === 0) {
      this.followerEntries -= f.counts.size;
      this.table.delete(key);
      return;
    }
    // Ties go to the token counted last: the most recent continuation is the better guess.
    if (delta > 0 && n >= f.bestCount) {
      f.best = token;
      f.bestCount = n;
    } else if (token === f.best) {
      f.best = -1;
      f.bestCount = 0;
      for (const [t, c] of f.counts) if (c > f.bestCount) [f.best, f.bestCount] = [t, c];
    }
    if (f.counts.size === 1) {
      this.followerEntries--;
      f.counts = undefined;
    }
  }
}
