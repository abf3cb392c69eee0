// The verifier's session KV store: byte budget, LRU, idle TTL, explicit close, busy sessions kept (pure, on
// stand-in values; with real KV sequences in causal-lm.test.ts).
import { describe, expect, it } from "vitest";
import { SessionKvStore, SessionTooLargeError, type EvictionReason } from "../gpu-backend/session-kv-store.ts";

class Fake {
  busy = false;
  constructor(public kvBytes: number) {}
}

function setup(opts: { maxBytes?: number; maxSessions?: number; idleTtlMs?: number } = {}) {
  let t = 0;
  const evicted: [string, EvictionReason][] = [];
  const store = new SessionKvStore<Fake>({
    maxBytes: opts.maxBytes ?? 100,
    maxSessions: opts.maxSessions ?? 10,
    idleTtlMs: opts.idleTtlMs ?? 1000,
    now: () => t,
    onEvict: (id, _v, reason) => evicted.push([id, reason]),
  });
  return { store, evicted, advance: (ms: number) => (t += ms) };
}

describe("SessionKvStore", () => {
  it("evicts least-recently-used sessions to stay within the byte budget", () => {
    const { store, evicted } = setup({ maxBytes: 100 });
    store.put("a", new Fake(40));
    store.put("b", new Fake(40));
    store.get("a"); // a is now more recent than b
    store.put("c", new Fake(40));
    expect(evicted).toEqual([["b", "lru"]]);
    expect(store.has("a") && store.has("c")).toBe(true);
    expect(store.stats()).toMatchObject({ sessions: 2, bytes: 80, evictedLru: 1 });
  });

  it("bounds the number of sessions", () => {
    const { store, evicted } = setup({ maxSessions: 2 });
    for (const id of ["a", "b", "c"]) store.put(id, new Fake(1));
    expect(evicted).toEqual([["a", "lru"]]);
  });

  it("tracks growth and truncation after rounds", () => {
    const { store, evicted } = setup({ maxBytes: 100 });
    const a = new Fake(10);
    const b = new Fake(10);
    store.put("a", a);
    store.put("b", b);
    a.kvBytes = 60;
    store.resized("a");
    expect(store.stats().bytes).toBe(70);
    b.kvBytes = 50; // b grows past the budget: a, the LRU, goes
    store.resized("b");
    expect(evicted).toEqual([["a", "lru"]]);
    b.kvBytes = 5; // truncated to the committed length
    store.resized("b");
    expect(store.stats().bytes).toBe(5);
  });

  it("never evicts a session in the middle of a forward pass", () => {
    const { store, evicted } = setup({ maxBytes: 100 });
    const busy = new Fake(60);
    busy.busy = true;
    store.put("busy", busy);
    store.put("idle", new Fake(30));
    store.put("new", new Fake(30));
    expect(evicted).toEqual([["idle", "lru"]]);
    expect(store.has("busy")).toBe(true);
  });

  it("refuses a single session larger than the whole budget", () => {
    const { store } = setup({ maxBytes: 100 });
    store.put("a", new Fake(10));
    expect(() => store.put("huge", new Fake(101))).toThrow(SessionTooLargeError);
    expect(store.has("huge")).toBe(false);
    expect(store.has("a")).toBe(true);
  });

  it("expires idle sessions on access and on sweep", () => {
    const { store, evicted, advance } = setup({ idleTtlMs: 1000 });
    store.put("a", new Fake(1));
    store.put("b", new Fake(1));
    advance(600);
    store.get("b");
    advance(600);
    expect(store.get("a")).toBeUndefined();
    expect(store.sweep()).toEqual([]);
    advance(500);
    expect(store.sweep()).toEqual(["b"]);
    expect(evicted).toEqual([
      ["a", "idle"],
      ["b", "idle"],
    ]);
    expect(store.stats()).toMatchObject({ sessions: 0, bytes: 0, evictedIdle: 2 });
  });

  it("peeks at a session without marking it used or expiring it", () => {
    const { store, evicted, advance } = setup({ maxSessions: 2, idleTtlMs: 1000 });
    const a = new Fake(1);
    store.put("a", a);
    store.put("b", new Fake(1));
    expect(store.peek("a")).toBe(a); // not made more recent than b by looking
    store.put("c", new Fake(1));
    expect(evicted).toEqual([["a", "lru"]]);
    advance(5000);
    expect(store.peek("b")).toBeDefined(); // idle past the TTL, but only get() and sweep() expire
    expect(store.peek("a")).toBeUndefined();
  });

  it("closes explicitly, and replacing a session frees the old value", () => {
    const { store, evicted } = setup();
    store.put("a", new Fake(5));
    store.put("a", new Fake(7));
    expect(evicted).toEqual([["a", "closed"]]);
    expect(store.close("a")).toBe(true);
    expect(store.close("a")).toBe(false);
    expect(store.stats()).toMatchObject({ sessions: 0, bytes: 0, closed: 2 });
  });
});
