// GenerationAdmission on its own (no I/O): a freed slot goes to the API key with the fewest generations
// running, then to that key's request with the fewest; a bounded wait ends in a refusal (429); a waiter
// whose client leaves gives up its place; a full queue makes room for a key with less than the flooder.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AdmissionRefused, GenerationAdmission, type ReleaseSlot } from "../src/api/admission.ts";

/** Settles pending promise callbacks (grants resolve through them). */
const flush = () => new Promise((r) => setImmediate(r));

/** A waiting acquire and what happened to it so far. */
function track(p: Promise<ReleaseSlot>) {
  const t: { release?: ReleaseSlot; error?: unknown } = {};
  p.then(
    (r) => (t.release = r),
    (e) => (t.error = e),
  );
  return t;
}

describe("GenerationAdmission", () => {
  it("admits up to its slots at once and hands a freed slot to the key with the fewest running", async () => {
    const a = new GenerationAdmission({ slots: 2, maxWaitMs: 10_000, maxWaiting: 8 });
    const held = [await a.acquire("A"), await a.acquire("A")];
    expect(a.running).toBe(2);
    // Key A floods first; key B's single request comes last.
    const aWaiting = [track(a.acquire("A")), track(a.acquire("A")), track(a.acquire("A"))];
    const b = track(a.acquire("B"));
    await flush();
    expect(a.waiting).toBe(4);
    held[0]();
    await flush();
    expect(b.release, "B holds none: the freed slot is B's, not A's oldest waiter's").toBeDefined();
    expect(aWaiting.every((w) => !w.release)).toBe(true);
    held[1]();
    await flush();
    expect(aWaiting.map((w) => !!w.release)).toEqual([true, false, false]); // then A's waiters in order
    expect(a.runningFor("A")).toBe(1);
    expect(a.runningFor("B")).toBe(1);
    b.release!();
    b.release!(); // a second release does nothing
    await flush();
    expect(a.running).toBe(2);
    expect(aWaiting.map((w) => !!w.release)).toEqual([true, true, false]);
  });

  it("within one key, a freed slot goes to the request with the fewest running (a chat before a translation's next sentence)", async () => {
    const a = new GenerationAdmission({ slots: 3, maxWaitMs: 10_000 });
    const translation = a.request("");
    const sentences = [await translation.acquire(), await translation.acquire(), await translation.acquire()];
    const nextSentence = track(translation.acquire());
    const chat = track(a.acquire(""));
    await flush();
    sentences[0]();
    await flush();
    expect(chat.release).toBeDefined();
    expect(nextSentence.release).toBeUndefined();
    sentences[1]();
    await flush();
    expect(nextSentence.release).toBeDefined();
  });

  describe("bounded waiting", () => {
    beforeEach(() => vi.useFakeTimers());
    afterEach(() => vi.useRealTimers());

    it("refuses a request that waited maxWaitMs (429), and at once when maxWaitMs is 0", async () => {
      const a = new GenerationAdmission({ slots: 1, maxWaitMs: 500 });
      const release = await a.acquire("A");
      const late = track(a.acquire("B"));
      await vi.advanceTimersByTimeAsync(499);
      expect(late.error).toBeUndefined();
      await vi.advanceTimersByTimeAsync(2);
      expect(late.error).toBeInstanceOf(AdmissionRefused);
      expect((late.error as AdmissionRefused).retryAfterS).toBe(1);
      expect(a.waiting).toBe(0);
      expect(a.refused).toBe(1);
      release();
      expect(a.running).toBe(0);

      const now = new GenerationAdmission({ slots: 1, maxWaitMs: 0 });
      const r = await now.acquire("A");
      await expect(now.acquire("A")).rejects.toBeInstanceOf(AdmissionRefused);
      r();
    });

    it("lets a request that already generates wait past the limit (a translation between sentences)", async () => {
      const a = new GenerationAdmission({ slots: 1, maxWaitMs: 100 });
      const translation = a.request("A");
      const first = await translation.acquire();
      const second = track(translation.acquire());
      await vi.advanceTimersByTimeAsync(1000);
      expect(second.error).toBeUndefined();
      first();
      await vi.advanceTimersByTimeAsync(0);
      expect(second.release).toBeDefined();
      second.release!();
    });

    it("bounds the queue; a full queue makes room for a key holding less than the flooding one", async () => {
      const a = new GenerationAdmission({ slots: 1, maxWaitMs: 10_000, maxWaiting: 3 });
      const held = await a.acquire("A");
      const flood = [track(a.acquire("A")), track(a.acquire("A")), track(a.acquire("A"))];
      await expect(a.acquire("A")).rejects.toBeInstanceOf(AdmissionRefused); // the flooder's own fourth: no room
      const b = track(a.acquire("B"));
      await vi.advanceTimersByTimeAsync(0);
      expect(b.error).toBeUndefined();
      expect(flood[2].error, "A's newest waiter made room for B").toBeInstanceOf(AdmissionRefused);
      expect(a.waiting).toBe(3);
      held(); // nobody runs now: B, never served, before A, served last
      await vi.advanceTimersByTimeAsync(0);
      expect(b.release).toBeDefined();
      expect(flood[0].release).toBeUndefined();
    });
  });

  it("a waiter whose client leaves gives up its place; the slot goes to the next", async () => {
    const a = new GenerationAdmission({ slots: 1, maxWaitMs: 10_000, maxWaiting: 2 });
    const held = await a.acquire("A");
    const gone = new AbortController();
    const leaving = track(a.acquire("B", gone.signal));
    const staying = track(a.acquire("C"));
    await flush();
    gone.abort(new Error("client gone"));
    await flush();
    expect((leaving.error as Error).message).toBe("client gone");
    expect(a.waiting).toBe(1);
    held();
    await flush();
    expect(staying.release).toBeDefined();
    expect(leaving.release).toBeUndefined();
    staying.release!();
    expect(a.running).toBe(0);
    await expect(a.acquire("D", AbortSignal.abort())).rejects.toBeDefined(); // already gone: not admitted
    expect(a.running).toBe(0);
  });
});
