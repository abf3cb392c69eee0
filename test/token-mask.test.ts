// token-mask.ts: the three wire forms round-trip, the shortest is chosen, malformed strings and ids
// outside the vocabulary are refused, and maskRow leaves exactly the allowed entries.
import { describe, expect, it } from "vitest";
import { allowedIds, allows, decodeMask, encodeMask, maskOf, maskRow, maskWords } from "../src/common/token-mask.ts";
import { SeededRng } from "../src/common/sampling.ts";

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

describe("token masks", () => {
  it("round-trips allowed lists, refused lists and bitmasks, each chosen where it is shortest", () => {
    const vocab = 1000;
    const few = [0, 3, 4, 127, 128, 999];
    const most = range(0, vocab).filter((id) => ![5, 700, 999].includes(id));
    const rng = new SeededRng(7, 0);
    const half = range(0, vocab).filter(() => rng.next() < 0.5);
    for (const [ids, tag] of [
      [few, "a"],
      [most, "r"],
      [half, "b"],
    ] as const) {
      const wire = encodeMask(maskOf(ids, vocab), vocab);
      expect(wire[0]).toBe(tag);
      expect(wire).toMatch(/^[arb][A-Za-z0-9_-]*$/);
      expect(allowedIds(decodeMask(wire, vocab), vocab)).toEqual(ids);
    }
    // Each form decodes to the same mask whichever was sent.
    expect(allowedIds(decodeMask(encodeMask(maskOf(range(0, vocab), vocab), vocab), vocab), vocab)).toEqual(range(0, vocab));
    expect(encodeMask(maskOf(range(0, vocab), vocab), vocab)).toBe("r"); // everything allowed: nothing refused
    // A refused list sets no bit past the vocabulary (1000 = 31 words + 8 bits).
    const all = decodeMask("r", vocab);
    expect(all[31]).toBe(0xff);
    expect(allowedIds(all, 1024)).toEqual(range(0, vocab));
  });

  it("the chosen form is never longer than the other two", () => {
    const vocab = 300;
    const rng = new SeededRng(3, 0);
    for (let t = 0; t < 200; t++) {
      const density = rng.next();
      const ids = range(0, vocab).filter(() => rng.next() < density);
      const wire = encodeMask(maskOf(ids, vocab), vocab);
      expect(allowedIds(decodeMask(wire, vocab), vocab)).toEqual(ids);
      // The other forms, made by hand: varint gaps of allowed and refused ids, raw bits.
      const gaps = (xs: number[]) => xs.reduce((n, id, i) => n + (id - (i ? xs[i - 1] : -1) - 1 >= 128 ? 2 : 1), 0);
      const refused = range(0, vocab).filter((id) => !ids.includes(id));
      const b64 = (bytes: number) => Math.ceil((bytes * 4) / 3);
      expect(wire.length - 1).toBeLessThanOrEqual(Math.min(b64(gaps(ids)), b64(gaps(refused)), b64(Math.ceil(vocab / 8))));
    }
  });

  it("large gaps take multi-byte varints", () => {
    const vocab = 300_000;
    const ids = [0, 200, 20_000, 299_999];
    expect(allowedIds(decodeMask(encodeMask(maskOf(ids, vocab), vocab), vocab), vocab)).toEqual(ids);
  });

  it("refuses malformed strings and ids outside the vocabulary", () => {
    const vocab = 100;
    expect(() => decodeMask("", vocab)).toThrow(RangeError);
    expect(() => decodeMask("xAA", vocab)).toThrow(/unknown mask form/);
    expect(() => decodeMask("a!!", vocab)).toThrow(/malformed/);
    expect(() => decodeMask("aA", vocab)).toThrow(/malformed/); // one base64 char: not a whole byte
    expect(() => decodeMask("agA", vocab)).toThrow(/truncated/); // 0x80: a varint with its continuation bit and nothing after
    expect(() => decodeMask(`a${encodeMask(maskOf([150], 200), 200).slice(1)}`, vocab)).toThrow(/outside the vocabulary/);
    expect(() => decodeMask(`r${encodeMask(maskOf([100], 101), 101).slice(1)}`, vocab)).toThrow(/outside the vocabulary/);
    expect(() => decodeMask(`b${"A".repeat(4)}`, vocab)).toThrow(/bytes/); // wrong length for 100 tokens
    // A bitmask with a bit past the vocabulary (id 100 of 104 bits) is an id outside it.
    const wide = maskOf([1, 100], 104);
    const bits = encodeMask(wide, 104);
    expect(bits[0]).not.toBe("b"); // too sparse to be sent as bits; build the bit form by hand below
    const bytes = new Uint8Array(wide.buffer, 0, 13);
    const raw = Buffer.from(bytes).toString("base64url");
    expect(() => decodeMask(`b${raw}`, vocab)).toThrow(/outside the vocabulary/);
    expect(allowedIds(decodeMask(`b${raw}`, 104), 104)).toEqual([1, 100]);
  });

  it("maskRow sets exactly the refused entries to −∞ and copies the row", () => {
    const vocab = 70;
    const row = Float32Array.from(range(0, vocab), (i) => i / 10);
    const mask = maskOf([0, 33, 69], vocab);
    expect(mask.length).toBe(maskWords(vocab));
    const out = maskRow(row, mask);
    for (let id = 0; id < vocab; id++) expect(out[id]).toBe(allows(mask, id) ? row[id] : -Infinity);
    expect(row[1]).toBeCloseTo(0.1); // the input is untouched
  });
});
