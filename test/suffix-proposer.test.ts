// The suffix proposer and its parts (pure): the index's counts and eviction, the proposer's matches,
// confidences and calibration, the tenant cache's bounds and isolation, and the γ policy priced from a
// proposal's confidences.
import { describe, expect, it } from "vitest";
import { SeededRng } from "../src/common/sampling.ts";
import { SessionGamma } from "../src/speculative/session-gamma.ts";
import { SuffixIndex, contextKeys } from "../src/speculative/suffix-index.ts";
import { SuffixCalibration, SuffixProposer } from "../src/speculative/suffix-proposer.ts";
import { TenantSuffixCache } from "../src/speculative/tenant-suffix-cache.ts";

/** Random tokens from a small vocabulary (repeats happen, as in text). */
function randomTokens(n: number, vocab: number, seed: number): number[] {
  const rng = new SeededRng(seed, 1);
  return Array.from({ length: n }, () => Math.floor(rng.next() * vocab));
}

/** The longest-context continuation by brute force: every earlier occurrence of the last o tokens. */
function bruteLookup(docs: number[][], history: number[], maxOrder: number) {
  for (let o = Math.min(maxOrder, history.length); o >= 1; o--) {
    const ctx = history.slice(-o);
    const counts = new Map<number, number>();
    for (const d of docs) for (let i = o; i < d.length; i++) if (ctx.every((t, k) => d[i - o + k] === t)) counts.set(d[i], (counts.get(d[i]) ?? 0) + 1);
    if (counts.size) {
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      const best = Math.max(...counts.values());
      return { order: o, total, count: best, tokens: [...counts].filter(([, c]) => c === best).map(([t]) => t) };
    }
  }
  return undefined;
}

describe("SuffixIndex", () => {
  it("context keys differ by order and by content, and depend only on the last tokens", () => {
    const a = contextKeys([1, 2, 3, 4], 4, 4);
    expect(a).toHaveLength(4);
    expect(new Set(a).size).toBe(4);
    expect(contextKeys([9, 9, 3, 4], 4, 2)).toEqual(a.slice(0, 2));
    expect(contextKeys([1, 2, 3, 5], 4, 1)).not.toEqual(a.slice(0, 1));
    expect(contextKeys([1, 2], 2, 8)).toHaveLength(2);
  });

  it("finds the longest context and the most frequent follower, as a brute-force search does", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const docs = [randomTokens(300, 6, seed), randomTokens(200, 6, seed + 100)];
      const index = new SuffixIndex(5);
      for (const d of docs) index.add(d);
      for (let q = 0; q < 30; q++) {
        const history = randomTokens(1 + (q % 9), 6, seed * 1000 + q);
        const want = bruteLookup(docs, history, 5);
        const got = index.lookup(history);
        if (!want) expect(got).toBeUndefined();
        else {
          expect(got).toMatchObject({ order: want.order, total: want.total, count: want.count });
          expect(want.tokens).toContain(got!.token);
        }
      }
    }
  });

  it("extends a document incrementally exactly as indexing it whole", () => {
    const doc = randomTokens(400, 5, 7);
    const whole = new SuffixIndex(4);
    whole.add(doc);
    const grown = new SuffixIndex(4);
    const part: number[] = [];
    for (let i = 0; i < doc.length; i += 37) {
      const from = part.length;
      part.push(...doc.slice(i, i + 37));
      grown.add(part, from);
    }
    expect(grown.tokens).toBe(whole.tokens);
    expect(grown.contexts).toBe(whole.contexts);
    expect(grown.bytes).toBe(whole.bytes);
    for (let q = 0; q < 50; q++) {
      const h = randomTokens(4, 5, 900 + q);
      expect(grown.lookup(h)).toEqual(whole.lookup(h));
    }
  });

  it("removing documents restores the index to what the others alone give, down to empty", () => {
    const a = randomTokens(300, 5, 1);
    const b = randomTokens(300, 5, 2);
    const onlyB = new SuffixIndex(4);
    onlyB.add(b);
    const both = new SuffixIndex(4);
    both.add(a);
    both.add(b);
    both.remove(a);
    expect(both.contexts).toBe(onlyB.contexts);
    expect(both.bytes).toBe(onlyB.bytes);
    expect(both.tokens).toBe(onlyB.tokens);
    for (let q = 0; q < 50; q++) {
      const h = randomTokens(1 + (q % 5), 5, 500 + q);
      const [x, y] = [both.lookup(h), onlyB.lookup(h)];
      expect(x && { order: x.order, count: x.count, total: x.total }).toEqual(y && { order: y.order, count: y.count, total: y.total });
    }
    both.remove(b);
    expect([both.contexts, both.bytes, both.tokens]).toEqual([0, 0, 0]);
  });

  it("on a tie the most recent follower wins", () => {
    const index = new SuffixIndex(2);
    index.add([1, 2, 3, 1, 2, 4]);
    expect(index.lookup([1, 2])).toMatchObject({ token: 4, count: 1, total: 2, order: 2 });
    index.add([1, 2, 3]);
    expect(index.lookup([1, 2])).toMatchObject({ token: 3, count: 2, total: 3 });
  });

  it("refuses a non-positive order", () => {
    expect(() => new SuffixIndex(0)).toThrow(RangeError);
  });
});

describe("SuffixProposer", () => {
  // A prompt with a passage; the output starts copying it.
  const passage = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21];
  const prompt = [1, 2, 3, ...passage, 4, 5];

  it("copies what followed the matched context in the prompt, with falling cumulative confidence", async () => {
    const p = new SuffixProposer({ promptLength: prompt.length });
    const out = await p.propose([...prompt, 10, 11, 12], 6);
    expect(out.tokens).toEqual([13, 14, 15, 16, 17, 18].slice(0, out.tokens.length));
    expect(out.tokens.length).toBeGreaterThan(0);
    expect(out.confidence).toHaveLength(out.tokens.length);
    for (const c of out.confidence) expect(c).toBeGreaterThan(0);
    expect(out.q).toBeUndefined();
    expect(p.proposeMs).toBeGreaterThanOrEqual(0);
  });

  it("peek also says how far the match runs: the expected tokens along the matched passage, past the proposal", () => {
    const p = new SuffixProposer({ promptLength: prompt.length });
    const peeked = p.peek([...prompt, 10, 11, 12], 3);
    expect(peeked.tokens).toEqual([13, 14, 15]);
    let [all, own] = [1, 1];
    for (const c of peeked.confidence) own += all *= c;
    // The passage goes on for 9 tokens after "12" (then 4, 5): the run counts them all, so it exceeds
    // what the 3-token proposal alone is expected to commit.
    expect(peeked.run).toBeGreaterThan(own);
    expect(peeked.run).toBeLessThanOrEqual(1 + 11); // at most every token up to the prompt's end, plus one
    // No match: a run of the one token the target gives anyway.
    expect(p.peek([7, 8, 9], 3).run).toBe(1);
  });

  it("proposes nothing without a match of at least minOrder tokens", async () => {
    const p = new SuffixProposer({ minOrder: 2 });
    expect((await p.propose([...prompt, 99, 10], 4)).tokens).toEqual([]); // only "10" matches: order 1
    expect((await p.propose([7, 8, 9], 4)).tokens).toEqual([]);
  });

  it("sampling: a one-hot q̃ per token", async () => {
    const p = new SuffixProposer({ sampling: true });
    const out = await p.propose([...prompt, 10, 11], 3);
    expect(out.q).toEqual(out.tokens.map((t) => ({ ids: [t], probs: [1] })));
  });

  it("learns from the committed text: a confirmed proposal raises its kind's confidence, a refuted one lowers it", async () => {
    const cache = new TenantSuffixCache({ bytesPerTenant: 1 << 20, maxTenants: 4, maxOrder: 8 });
    const [a, b] = [cache.tenant("a"), cache.tenant("b")];
    const start = [...prompt, 10, 11, 12]; // "10 11 12" (order 3) was followed by 13 once: dominance 1
    const before = a.calibration.rate(3, 1);
    const pa = new SuffixProposer({ tenant: a });
    expect((await pa.propose(start, 1)).confidence).toEqual([before]);
    await pa.propose([...start, 13, 99], 1); // 13 was committed
    const pb = new SuffixProposer({ tenant: b });
    await pb.propose(start, 1);
    await pb.propose([...start, 77, 99], 1); // something else was
    expect(a.calibration.rate(3, 1)).toBeGreaterThan(before);
    expect(b.calibration.rate(3, 1)).toBeLessThan(before);
  });

  it("calibration: the prior by context length and dominance, then the measured rate", () => {
    const c = new SuffixCalibration();
    expect(c.rate(8, 1)).toBeGreaterThan(c.rate(2, 1));
    expect(c.rate(4, 1)).toBeGreaterThan(c.rate(4, 0.7));
    expect(c.rate(4, 0.7)).toBeGreaterThan(c.rate(4, 0.3));
    for (let i = 0; i < 1000; i++) c.observe(2, 1, i % 10 !== 0);
    expect(c.rate(2, 1)).toBeCloseTo(0.9, 1);
    expect(c.rate(2, 0.7)).toBe(new SuffixCalibration().rate(2, 0.7)); // other kinds untouched
  });

  it("observe says whether the next token is the one it would have proposed", async () => {
    const p = new SuffixProposer();
    expect(await p.observe([...prompt, 10, 11], 12)).toBe(true);
    expect(await p.observe([...prompt, 10, 11, 12], 99)).toBe(false);
  });

  it("proposes past γ only while the whole proposal stays very likely", async () => {
    const cal = new SuffixCalibration();
    for (let i = 0; i < 200; i++) cal.observe(8, 1, true);
    const cache = new TenantSuffixCache({ bytesPerTenant: 1 << 20, maxTenants: 2, maxOrder: 8 });
    const tenant = cache.tenant("k");
    for (let i = 0; i < 200; i++) tenant.calibration.observe(8, 1, true);
    const long = Array.from({ length: 40 }, (_, i) => 100 + i);
    const p = new SuffixProposer({ tenant });
    const out = await p.propose([...long, ...long.slice(0, 10)], 4);
    expect(out.tokens.length).toBeGreaterThan(4);
    expect(out.tokens).toEqual(long.slice(10, 10 + out.tokens.length));
    // Weak matches: no extension.
    const weak = await new SuffixProposer().propose([...long, ...long.slice(0, 10)], 4);
    expect(weak.tokens.length).toBeLessThanOrEqual(4);
  });

  it("a new history that does not continue the old one starts the index over", async () => {
    const p = new SuffixProposer();
    await p.propose([...prompt, 10, 11], 2);
    expect((await p.propose([40, 41, 42, 40, 41], 2)).tokens).toEqual([42, 40].slice(0, 2));
    expect((await p.propose([40, 41, 42, 40, 41, 10, 11], 2)).tokens).toEqual([]); // the old prompt is gone
  });

  it("gives its output to the tenant at the end, and later generations of that tenant copy from it", async () => {
    const cache = new TenantSuffixCache({ bytesPerTenant: 1 << 20, maxTenants: 4, maxOrder: 8 });
    const first = new SuffixProposer({ promptLength: 3, tenant: cache.tenant("a") });
    const answer = [30, 31, 32, 33, 34, 35, 36, 37];
    await first.observe([7, 8, 9, ...answer], 38);
    await first.reset();
    expect(cache.tenant("a").size).toBe(1);
    const again = await new SuffixProposer({ promptLength: 2, tenant: cache.tenant("a") }).propose([5, 6, 30, 31, 32], 3);
    expect(again.tokens).toEqual([33, 34, 35].slice(0, again.tokens.length));
    expect(again.tokens.length).toBeGreaterThan(0);
    // Another tenant never sees it.
    expect((await new SuffixProposer({ tenant: cache.tenant("b") }).propose([5, 6, 30, 31, 32], 3)).tokens).toEqual([]);
  });
});

describe("TenantSuffixCache", () => {
  it("keeps each tenant within its byte budget, evicting the oldest outputs first", () => {
    const budget = 256 * 1024;
    const cache = new TenantSuffixCache({ bytesPerTenant: budget, maxTenants: 4, maxOrder: 8 });
    const t = cache.tenant("k");
    const outputs = Array.from({ length: 200 }, (_, i) => randomTokens(60, 1000, i + 1));
    for (const o of outputs) {
      t.addOutput(o);
      expect(t.index.bytes).toBeLessThanOrEqual(budget);
    }
    expect(t.size).toBeGreaterThan(1);
    expect(t.size).toBeLessThan(outputs.length);
    // The newest output is matched, the oldest is gone.
    const newest = outputs.at(-1)!;
    expect(t.index.lookup(newest.slice(0, 8))?.token).toBe(newest[8]);
    expect(t.index.lookup(outputs[0].slice(0, 8))?.order ?? 0).toBeLessThan(8);
    // One output above the budget on its own is not kept.
    t.addOutput(randomTokens(5000, 100_000, 9));
    expect(t.index.bytes).toBeLessThanOrEqual(budget);
  });

  it("holds at most maxTenants tenants, dropping the least recently used", () => {
    const cache = new TenantSuffixCache({ bytesPerTenant: 1 << 16, maxTenants: 2, maxOrder: 4 });
    cache.tenant("a").addOutput([1, 2, 3, 4]);
    cache.tenant("b").addOutput([1, 2, 3, 5]);
    cache.tenant("a"); // a is now the most recent
    cache.tenant("c");
    expect(cache.tenantCount).toBe(2);
    expect(cache.tenant("a").size).toBe(1);
    expect(cache.tenant("b").size).toBe(0); // b was dropped and comes back empty
  });

  it("refuses a nonsensical bound", () => {
    expect(() => new TenantSuffixCache({ bytesPerTenant: 1, maxTenants: 0, maxOrder: 4 })).toThrow(RangeError);
  });
});

describe("SessionGamma priced from a proposal's confidences", () => {
  const measured = () => {
    const g = new SessionGamma({ gamma: "adaptive", maxGamma: 8 });
    g.observeGeneration(22, 20);
    g.observeDraftStep(0.01);
    return g;
  };

  it("speculates on a confident proposal, no further than its length", () => {
    expect(measured().choose(-1, [0.95, 0.95, 0.95])).toBe(3);
    expect(measured().choose(-1, [0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95])).toBe(8);
  });

  it("generates when the proposal is empty or unlikely, and leaves speculation for it", () => {
    expect(measured().choose(0, [])).toBe(0);
    expect(measured().choose(0, [0.05])).toBe(0);
    expect(measured().choose(4, [])).toBe(0);
  });

  it("leaves generation for a short proposal when the match behind it runs long enough to repay the switch", () => {
    // Two likely tokens save ~12 ms in one round, less than the ~42 ms start-up of generating again…
    expect(measured().choose(0, [0.9, 0.6])).toBe(0);
    // …but when the match goes on for ~10 tokens (a passage being copied), its rounds repay it.
    expect(measured().choose(0, [0.9, 0.6], 10)).toBe(2);
  });

  it("the measured acceptance does not matter when a proposal's confidence is given", () => {
    const g = measured();
    for (let i = 0; i < 50; i++) g.observeProposalHit(false);
    expect(g.choose(0)).toBe(0);
    expect(g.choose(0, [0.95, 0.95, 0.95, 0.95])).toBe(4);
  });
});
