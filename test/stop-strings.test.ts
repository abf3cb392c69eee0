// scanStops: where the first stop string starts, and how much text may be shown while generation runs
// (never a prefix of a stop string, never an incomplete byte-fallback character).
import { describe, expect, it } from "vitest";
import { scanStops } from "../src/speculative/stop-strings.ts";

describe("scanStops", () => {
  it("finds the earliest complete stop string", () => {
    expect(scanStops("hola mundo. adiós", ["adiós", "."])).toEqual({ stopAt: 10, safeLength: 10 });
    expect(scanStops("abc", [])).toEqual({ stopAt: -1, safeLength: 3 });
    expect(scanStops("abc", [""])).toEqual({ stopAt: -1, safeLength: 3 }); // empty stops are ignored
  });

  it("holds back the longest tail that could still become a stop string", () => {
    expect(scanStops("hola mun", ["mundo"])).toEqual({ stopAt: -1, safeLength: 5 }); // "mun" may grow into it
    expect(scanStops("hola m", ["mundo", "xyz"])).toEqual({ stopAt: -1, safeLength: 5 });
    expect(scanStops("hola", ["mundo"])).toEqual({ stopAt: -1, safeLength: 4 });
    // Overlapping candidates: the longest held-back tail wins.
    expect(scanStops("aab", ["ab", "aabc"])).toEqual({ stopAt: 1, safeLength: 1 });
    expect(scanStops("xaab", ["aabc", "b!"])).toEqual({ stopAt: -1, safeLength: 1 });
  });

  it("holds back a trailing replacement character (a byte-fallback character not yet complete)", () => {
    expect(scanStops("año \uFFFD", [])).toEqual({ stopAt: -1, safeLength: 4 });
    expect(scanStops("\uFFFD\uFFFD", [])).toEqual({ stopAt: -1, safeLength: 0 });
    expect(scanStops("a\uFFFDb", [])).toEqual({ stopAt: -1, safeLength: 3 }); // only at the end
  });
});
