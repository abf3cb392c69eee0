// OutputTracker (pure): what the client sees of committed tokens — stop ids, max tokens, stop strings
// across token boundaries, and text held back while it could still change.
import { describe, expect, it } from "vitest";
import { OutputTracker } from "../src/speculative/output-tracker.ts";

// A toy vocabulary: id → text; 99 is an incomplete byte-fallback piece (decodes to U+FFFD alone).
const PIECES: Record<number, string> = { 1: "ho", 2: "la", 3: " mu", 4: "ndo", 5: ".", 6: "\n", 7: "\n-", 8: "-", 9: "é" };
const decode = (ids: readonly number[]) => {
  let s = "";
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === 99 && ids[i + 1] === 98) {
      s += "ñ";
      i++;
    } else if (ids[i] === 99) s += "\uFFFD";
    else s += PIECES[ids[i]] ?? "?";
  }
  return s;
};

function feed(t: OutputTracker, chunks: number[][]): { texts: string[]; doneAt: number } {
  const texts: string[] = [];
  for (const [i, c] of chunks.entries()) {
    const { event, done } = t.commit(c);
    texts.push(event.text);
    if (done) return { texts, doneAt: i };
  }
  return { texts, doneAt: -1 };
}

describe("OutputTracker", () => {
  it("ends at a stop id, which is not part of the output; later tokens of the chunk are ignored", () => {
    const t = new OutputTracker({ maxTokens: 10, stopIds: [0], decode });
    const r = feed(t, [
      [1, 2],
      [3, 0, 4],
    ]);
    expect(r.doneAt).toBe(1);
    expect(t.output).toEqual([1, 2, 3]);
    expect(t.finishReason).toBe("stop");
    expect(r.texts.join("")).toBe("hola mu");
  });

  it("ends at max tokens exactly, mid-chunk, with finish reason length", () => {
    const t = new OutputTracker({ maxTokens: 3, decode });
    const r = feed(t, [
      [1, 2],
      [3, 4, 5],
    ]);
    expect(r.doneAt).toBe(1);
    expect(t.output).toEqual([1, 2, 3]);
    expect(t.finishReason).toBe("length");
    expect(t.remaining).toBe(0);
    expect(r.texts.join("")).toBe("hola mu");
  });

  it("ends before a stop string that spans tokens, keeping the tokens up to the one completing it, never showing any of it", () => {
    const t = new OutputTracker({ maxTokens: 20, stop: ["\n--"], decode });
    const r = feed(t, [[1, 2], [6], [8, 8, 3]]);
    expect(r.doneAt).toBe(2);
    expect(t.finishReason).toBe("stop");
    // "hola" then "\n" is held (it may start "\n--"), then "--" completes it: the output keeps 1,2,6,8,8.
    expect(r.texts).toEqual(["hola", "", ""]);
    expect(t.output).toEqual([1, 2, 6, 8, 8]);
  });

  it("releases held-back text once it can no longer become a stop string", () => {
    const t = new OutputTracker({ maxTokens: 20, stop: ["\n--"], decode });
    const r = feed(t, [[1], [7], [2]]);
    expect(r.texts).toEqual(["ho", "", "\n-la"]);
    expect(r.doneAt).toBe(-1);
  });

  it("holds back an incomplete byte-fallback character until it completes", () => {
    const t = new OutputTracker({ maxTokens: 20, decode });
    expect(t.commit([1, 99]).event.text).toBe("ho");
    expect(t.commit([98]).event.text).toBe("ñ");
  });

  it("without a decoder reports tokens only", () => {
    const t = new OutputTracker({ maxTokens: 5 });
    expect(t.commit([1, 2])).toEqual({ event: { tokens: [1, 2], text: "" }, done: false });
    expect(t.stopIdList).toEqual([]);
  });

  it("refuses a bad budget and stop strings it cannot see", () => {
    expect(() => new OutputTracker({ maxTokens: 0 })).toThrow(/maxTokens/);
    expect(() => new OutputTracker({ maxTokens: 1.5 })).toThrow(/maxTokens/);
    expect(() => new OutputTracker({ maxTokens: 4, stop: ["x"] })).toThrow(/decode/);
  });
});
