// Prices and costs (pure): the schema and its messages, integer micro-euro arithmetic and its rounding, the
// reservation bound, the cost without speculation and the display formats.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { h200Alia40b } from "../src/common/h200-alia-40b.ts";
import {
  DEFAULT_PRICE_TABLE,
  type PriceTable,
  PriceTableSchema,
  costHeader,
  costWithoutSpeculation,
  eur,
  formatEur,
  maximumCost,
  modelPrice,
  parsePriceTable,
  requestCost,
  targetTime,
  targetWorkOf,
  toMicro,
  translationCost,
  usageCost,
} from "../src/billing/prices.ts";

const table = (input: number, output: number): PriceTable => ({
  currency: "EUR",
  models: { m: { input_eur_per_mtok: input, output_eur_per_mtok: output } },
  translation: { computed_sentence_eur: 0.0001, cached_sentence_eur: 0.00001 },
});
const json = (v: unknown) => JSON.stringify(v);

describe("price table schema", () => {
  it("parses the default table and prices the fixture model and ALIA-40b", () => {
    expect(parsePriceTable(json(DEFAULT_PRICE_TABLE))).toEqual(DEFAULT_PRICE_TABLE);
    expect(PriceTableSchema.parse(DEFAULT_PRICE_TABLE)).toEqual(DEFAULT_PRICE_TABLE);
    expect(modelPrice(DEFAULT_PRICE_TABLE, "alia-fixture-es-target").output_eur_per_mtok).toBeGreaterThan(0);
    expect(modelPrice(DEFAULT_PRICE_TABLE, "alia-40b").input_eur_per_mtok).toBeGreaterThan(0);
  });

  it("names the source and says when the value is not JSON", () => {
    expect(() => parsePriceTable("{models:", "PRICES")).toThrow(/^PRICES: not JSON \(/);
    expect(() => parsePriceTable("")).toThrow(/^price table: not JSON/);
  });

  const broken: [string, (t: PriceTable) => unknown, RegExp][] = [
    ["another currency", (t) => ({ ...t, currency: "USD" }), /^PRICES: currency: /],
    ["no currency", ({ currency: _, ...t }) => t, /^PRICES: currency: /],
    ["no models", (t) => ({ ...t, models: {} }), /^PRICES: models: at least one model/],
    ["a negative price", (t) => ({ ...t, models: { m: { input_eur_per_mtok: -1, output_eur_per_mtok: 1 } } }), /^PRICES: models\.m\.input_eur_per_mtok: /],
    ["7 decimals", (t) => ({ ...t, models: { m: { input_eur_per_mtok: 0.1, output_eur_per_mtok: 0.0000001 } } }), /^PRICES: models\.m\.output_eur_per_mtok: at most 6 decimals/],
    ["a price as a string", (t) => ({ ...t, models: { m: { input_eur_per_mtok: "0.3", output_eur_per_mtok: 1 } } }), /^PRICES: models\.m\.input_eur_per_mtok: /],
    ["a misspelt key", (t) => ({ ...t, models: { m: { input_eur_per_mtok: 0.3, ouput_eur_per_mtok: 1 } } }), /models\.m\.output_eur_per_mtok: .*; models\.m: .*ouput_eur_per_mtok/],
    ["an unknown top-level key", (t) => ({ ...t, discount: 0.1 }), /^PRICES: \(root\): .*discount/],
    ["no translation prices", ({ translation: _, ...t }) => t, /^PRICES: translation: /],
    ["a sentence price above 1,000 €", (t) => ({ ...t, translation: { computed_sentence_eur: 1001, cached_sentence_eur: 0 } }), /^PRICES: translation\.computed_sentence_eur: /],
    ["an array", () => [], /^PRICES: \(root\): /],
  ];
  for (const [what, edit, message] of broken)
    it(`refuses ${what}, naming the field`, () => {
      expect(() => parsePriceTable(json(edit(DEFAULT_PRICE_TABLE)), "PRICES")).toThrow(message);
    });

  it("accepts free models (0) and exactly 6 decimals", () => {
    expect(parsePriceTable(json(table(0, 0.000001))).models.m.output_eur_per_mtok).toBe(0.000001);
    expect(parsePriceTable(json(table(999999.999999, 1))).models.m.input_eur_per_mtok).toBe(999999.999999);
  });

  it("refuses a model without a price, own keys only", () => {
    expect(() => modelPrice(DEFAULT_PRICE_TABLE, "gpt-4")).toThrow(/no price for model 'gpt-4' \(priced: alia-40b, alia-fixture-es-target\)/);
    for (const inherited of ["constructor", "__proto__", "toString"]) expect(() => modelPrice(DEFAULT_PRICE_TABLE, inherited)).toThrow(RangeError);
  });
});

describe("integer micro-euros", () => {
  it("converts every 6-decimal amount exactly", () => {
    for (let micro = 0; micro <= 1_000_000; micro++) if (toMicro(Number((micro / 1e6).toFixed(6))) !== micro) throw new Error(`${micro}`);
    for (const micro of [999_999_999_999, 123_456_789_012, 1_000_000_000_001]) expect(toMicro(Number((micro / 1e6).toFixed(6)))).toBe(micro);
  });

  it("charges tokens × € per million tokens, each line rounded up to the micro-euro", () => {
    expect(requestCost(table(0.3, 0.9), { model: "m", promptTokens: 1000, completionTokens: 1000 })).toEqual({ input: 300, output: 900, total: 1200 });
    expect(requestCost(table(0.3, 0.9), { model: "m", promptTokens: 1, completionTokens: 1 })).toEqual({ input: 1, output: 1, total: 2 }); // 0.3 and 0.9 µ€
    expect(requestCost(table(0.3, 0.9), { model: "m", promptTokens: 10, completionTokens: 10 })).toEqual({ input: 3, output: 9, total: 12 }); // exact: no extra µ€
    expect(requestCost(table(0.3, 0.9), { model: "m", promptTokens: 11, completionTokens: 11 })).toEqual({ input: 4, output: 10, total: 14 }); // 3.3 → 4, 9.9 → 10
    expect(requestCost(table(0.3, 0.9), { model: "m", promptTokens: 0, completionTokens: 0 })).toEqual({ input: 0, output: 0, total: 0 });
    expect(requestCost(table(0, 0), { model: "m", promptTokens: 5000, completionTokens: 5000 }).total).toBe(0);
    expect(requestCost(table(2.5, 10), { model: "m", promptTokens: 1_000_000, completionTokens: 2_000_000 })).toEqual({ input: 2_500_000, output: 20_000_000, total: 22_500_000 });
  });

  it("overcharges less than 1 µ€ per line: ceil of the exact amount", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 0, max: 1_000_000_000 }), (tokens, microPerMtok) => {
        const c = requestCost(table(0, microPerMtok / 1e6), { model: "m", promptTokens: 0, completionTokens: tokens });
        const exactTimesMillion = BigInt(tokens) * BigInt(microPerMtok);
        expect(BigInt(c.output) * 1_000_000n >= exactTimesMillion).toBe(true);
        expect(BigInt(c.output - 1) * 1_000_000n < exactTimesMillion).toBe(true);
        expect(Number.isSafeInteger(c.output)).toBe(true);
      }),
    );
  });

  it("multiplies in BigInt where tokens × price passes 2^53 and refuses totals beyond it", () => {
    // 5·10^12 tokens × 10^9 µ€ per million tokens = 5·10^21 before the division.
    expect(requestCost(table(0, 1000), { model: "m", promptTokens: 0, completionTokens: 5_000_000_000_000 }).output).toBe(5_000_000_000_000_000);
    expect(requestCost(table(0.000001, 0), { model: "m", promptTokens: Number.MAX_SAFE_INTEGER, completionTokens: 0 }).input).toBe(9_007_199_255);
    expect(() => requestCost(table(0, 1_000_000), { model: "m", promptTokens: 0, completionTokens: Number.MAX_SAFE_INTEGER })).toThrow(/beyond exact integer arithmetic/);
    // Each line fits but their sum would not.
    expect(() => requestCost(table(1000, 1000), { model: "m", promptTokens: 5_000_000_000_000, completionTokens: 5_000_000_000_000 })).toThrow(/cost of .* beyond/);
  });

  it("refuses counts that are not non-negative integers", () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])
      expect(() => requestCost(table(1, 1), { model: "m", promptTokens: bad, completionTokens: 1 })).toThrow(/promptTokens must be a non-negative integer/);
    expect(() => maximumCost(table(1, 1), { model: "m", promptTokens: 1, maxTokens: -5 })).toThrow(/completionTokens must be/);
  });
});

describe("the reservation", () => {
  it("covers every completion length up to max_tokens (exhaustive on awkward prices)", () => {
    for (const [input, output] of [
      [0.3, 0.9],
      [0.333333, 7.000001],
      [0.000001, 0.000003],
      [123.456789, 0],
    ])
      for (const promptTokens of [0, 1, 7, 4096])
        for (let maxTokens = 0; maxTokens <= 200; maxTokens++) {
          const reserved = maximumCost(table(input, output), { model: "m", promptTokens, maxTokens });
          for (let completionTokens = 0; completionTokens <= maxTokens; completionTokens++)
            if (requestCost(table(input, output), { model: "m", promptTokens, completionTokens }).total > reserved) throw new Error(`${input} ${output} ${promptTokens} ${maxTokens} ${completionTokens}`);
          if (requestCost(table(input, output), { model: "m", promptTokens, completionTokens: maxTokens }).total !== reserved) throw new Error("the reservation is the full-length cost");
        }
  });

  it("covers every completion length, for any prices and lengths", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1_000_000_000 }),
        fc.integer({ min: 0, max: 1_000_000_000 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (inMicro, outMicro, promptTokens, maxTokens, share) => {
          const t = table(inMicro / 1e6, outMicro / 1e6);
          const completionTokens = Math.floor(maxTokens * share);
          expect(requestCost(t, { model: "m", promptTokens, completionTokens }).total).toBeLessThanOrEqual(maximumCost(t, { model: "m", promptTokens, maxTokens }));
        },
      ),
    );
  });
});

describe("cost without speculation", () => {
  const t = table(0.3, 0.9);
  const usage = { model: "m", promptTokens: 1000, completionTokens: 100 };

  it("is the cost when nothing was saved: every token pool-generated", () => {
    const c = costWithoutSpeculation(t, usage, { verifyChunks: [], generatePasses: 100 });
    expect(c).toEqual({ input: 300, output: 90, total: 390, withoutSpeculation: 390, saving: 0 });
  });

  it("scales the output line by passes plain decoding needs over passes run, without a cost model", () => {
    // 25 rounds of γ = 4, all accepted: 100 tokens in 25 passes instead of 100.
    const c = costWithoutSpeculation(t, usage, { verifyChunks: Array(25).fill(5), generatePasses: 0 });
    expect(c).toEqual({ input: 300, output: 90, total: 390, withoutSpeculation: 300 + 360, saving: 270 });
    // A mixed run: 20 rounds and 10 pool-generated tokens, 30 passes for 100 tokens; ⌊90 × 100 / 30⌋.
    expect(costWithoutSpeculation(t, usage, { verifyChunks: Array(20).fill(5), generatePasses: 10 }).saving).toBe(300 - 90);
    // Rounded down: ⌊90 × 100 / 33⌋ = 272.
    expect(costWithoutSpeculation(t, usage, { verifyChunks: Array(33).fill(4), generatePasses: 0 }).withoutSpeculation).toBe(300 + 272);
  });

  it("saves nothing when speculation ran more passes than tokens, nor for an empty completion", () => {
    // Every draft rejected: one token per round, plus the pass that produced the stop token.
    expect(costWithoutSpeculation(t, usage, { verifyChunks: Array(101).fill(5), generatePasses: 0 }).saving).toBe(0);
    expect(costWithoutSpeculation(t, { ...usage, completionTokens: 0 }, { verifyChunks: [5], generatePasses: 0 })).toMatchObject({ output: 0, saving: 0, withoutSpeculation: 300 });
    expect(costWithoutSpeculation(t, { ...usage, completionTokens: 0 }, { verifyChunks: [], generatePasses: 0 }).saving).toBe(0);
  });

  it("prices GPU time with a cost model: longer verify chunks cost more than one-token passes", () => {
    const timer = { passMs: (_batch: number, chunk: number) => 10 + 2 * chunk };
    const work = { verifyChunks: Array(25).fill(5), generatePasses: 0 };
    expect(targetTime(usage, work, { timer, rowsPerPass: 1 })).toEqual({ plain: 100 * 12, actual: 25 * 20 });
    // 90 × 1200 / 500 = 216.
    expect(costWithoutSpeculation(t, usage, work, { timer, rowsPerPass: 1 }).withoutSpeculation).toBe(300 + 216);
    // Compute-bound passes (time ∝ tokens): verifying 5 tokens to commit 4 costs more than 4 plain passes.
    const computeBound = { passMs: (_b: number, chunk: number) => chunk };
    expect(costWithoutSpeculation(t, usage, work, { timer: computeBound, rowsPerPass: 1 }).saving).toBe(0);
  });

  it("on ALIA-40b's measured H200 passes, saves less at 32 rows per pass than alone, and less than pass counts claim", () => {
    const timer = { passMs: (b: number, c: number, p: number) => h200Alia40b().passMsClampingPast(b, c, p) };
    const work = { verifyChunks: Array(25).fill(5), generatePasses: 0 };
    const big = { model: "m", promptTokens: 2000, completionTokens: 100_000 };
    const bigWork = { verifyChunks: Array(25_000).fill(5), generatePasses: 0 };
    const alone = costWithoutSpeculation(t, big, bigWork, { timer, rowsPerPass: 1 }).saving;
    const shared = costWithoutSpeculation(t, big, bigWork, { timer, rowsPerPass: 32 }).saving;
    const counted = costWithoutSpeculation(t, big, bigWork).saving;
    expect(shared).toBeGreaterThan(0);
    expect(shared).toBeLessThan(alone);
    expect(alone).toBeLessThan(counted);
    expect(costWithoutSpeculation(t, usage, work, { timer, rowsPerPass: 8 }).saving).toBeGreaterThan(0);
  });

  it("never saves a negative amount and never costs less than the bill, for any work", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5000 }),
        fc.array(fc.integer({ min: 1, max: 17 }), { maxLength: 300 }),
        fc.integer({ min: 0, max: 300 }),
        fc.boolean(),
        (completionTokens, verifyChunks, generatePasses, withModel) => {
          const gpu = withModel ? { timer: { passMs: (_b: number, c: number, p: number) => 17 + c * 0.3 + p * 0.001 }, rowsPerPass: 4 } : undefined;
          const c = costWithoutSpeculation(t, { model: "m", promptTokens: 700, completionTokens }, { verifyChunks, generatePasses }, gpu);
          expect(c.saving).toBeGreaterThanOrEqual(0);
          expect(c.withoutSpeculation).toBe(c.total + c.saving);
          expect(Number.isSafeInteger(c.withoutSpeculation)).toBe(true);
        },
      ),
    );
  });

  it("reads the target work from a generation's statistics", () => {
    const stats = {
      rounds: 3,
      targetPasses: 5,
      roundLog: [
        { gamma: 4, accepted: 4 },
        { gamma: 2, accepted: 0 },
        { gamma: 8, accepted: 3 },
      ],
    };
    expect(targetWorkOf(stats)).toEqual({ verifyChunks: [5, 3, 9], generatePasses: 2 });
  });
});

describe("translations", () => {
  it("charges computed and cached sentences at their prices; a CDN hit is never billed", () => {
    expect(translationCost(DEFAULT_PRICE_TABLE, { computed: 3, cached: 5 })).toBe(3 * 100 + 5 * 10);
    expect(translationCost(DEFAULT_PRICE_TABLE, { computed: 0, cached: 0 })).toBe(0);
    expect(translationCost({ ...DEFAULT_PRICE_TABLE, translation: { computed_sentence_eur: 1000, cached_sentence_eur: 0.000001 } }, { computed: 9_000_000, cached: 7 })).toBe(9_000_000_000_000_007);
    expect(() => translationCost({ ...DEFAULT_PRICE_TABLE, translation: { computed_sentence_eur: 1000, cached_sentence_eur: 0 } }, { computed: 10_000_000, cached: 0 })).toThrow(/beyond exact/);
    expect(() => translationCost(DEFAULT_PRICE_TABLE, { computed: -1, cached: 0 })).toThrow(/computed must be a non-negative integer/);
  });
});

describe("display", () => {
  it("formats micro-euros as euros with 6 decimals, by integer arithmetic", () => {
    expect(formatEur(0)).toBe("0.000000");
    expect(formatEur(123)).toBe("0.000123");
    expect(formatEur(1_500_000)).toBe("1.500000");
    expect(formatEur(1_234_000_001)).toBe("1234.000001");
    expect(formatEur(Number.MAX_SAFE_INTEGER)).toBe("9007199254.740991");
    for (const bad of [-1, 0.5, Number.NaN]) expect(() => formatEur(bad)).toThrow(RangeError);
    expect(eur(123)).toBe(0.000123);
    expect(eur(1_500_000)).toBe(1.5);
    expect(costHeader(123)).toBe("0.000123 EUR");
  });

  it("gives usage.cost in euros, its lines adding up to the total", () => {
    const c = costWithoutSpeculation(table(0.3, 0.9), { model: "m", promptTokens: 1000, completionTokens: 100 }, { verifyChunks: Array(25).fill(5), generatePasses: 0 });
    expect(usageCost(c)).toEqual({ currency: "EUR", total: 0.00039, input: 0.0003, output: 0.00009, without_speculation: 0.00066, saving: 0.00027 });
    expect(JSON.stringify(usageCost(c))).toBe('{"currency":"EUR","total":0.00039,"input":0.0003,"output":0.00009,"without_speculation":0.00066,"saving":0.00027}');
  });
});
