// Prices and what a request costs (pure; docs/BILLING.md). Amounts are integer micro-euros (µ€): sums and
// comparisons of stored balances must be exact, and 1 µ€ is below anything a request is priced at. Prices
// are configured in euros (€ per million tokens, € per sentence) with at most 6 decimals, so each converts
// exactly to an integer: € per million tokens = µ€ per token, read in µ€ per million tokens.
import { z } from "zod";
import type { DecodeStats } from "../speculative/decode-stats.ts";
import { describeZodIssues } from "../common/zod-issues.ts";

export type MicroEur = number;

const MICRO_PER_EUR = 1_000_000;

/** At most 6 decimals: the nearest double to a whole number of micro-units, and no more than this. */
const sixDecimals = (max: number) =>
  z
    .number()
    .min(0)
    .max(max)
    .refine((x) => Number(x.toFixed(6)) === x, "at most 6 decimals (whole micro-euros)");

const ModelPriceSchema = z.strictObject({
  input_eur_per_mtok: sixDecimals(1_000_000).describe("€ per million prompt tokens"),
  output_eur_per_mtok: sixDecimals(1_000_000).describe("€ per million completion tokens"),
});
export type ModelPrice = z.infer<typeof ModelPriceSchema>;

export const PriceTableSchema = z.strictObject({
  currency: z.literal("EUR"),
  models: z.record(z.string().min(1), ModelPriceSchema).refine((m) => Object.keys(m).length > 0, "at least one model"),
  translation: z.strictObject({
    computed_sentence_eur: sixDecimals(1_000).describe("€ per sentence the model translated for this request"),
    cached_sentence_eur: sixDecimals(1_000).describe("€ per sentence served from the Worker's own cache"),
  }),
});
export type PriceTable = z.infer<typeof PriceTableSchema>;

/**
 * Default prices. PLACEHOLDERS, not a pricing decision: for scale, published list prices of hosted models of
 * comparable size (BENCHMARKS.md, "Published per-token prices") are Cloudflare Workers AI's Llama 3.3 70B
 * fp8 at $0.293 in / $2.253 out and Fireworks' serverless 16.1B–80B models at $0.90 in and out per million
 * tokens; ALIA-40b's GPU time alone, batched 32 ways on one H200 at 3.50 €/GPU-hour, is 0.53–0.79 € per
 * million output tokens (BENCHMARKS.md, regime grid). The fixture model is priced like ALIA-40b so that
 * tests and demos show realistic amounts. `alia-40b` is the bundle id README's upload example uses.
 */
export const DEFAULT_PRICE_TABLE: PriceTable = {
  currency: "EUR",
  models: {
    "alia-40b": { input_eur_per_mtok: 0.3, output_eur_per_mtok: 0.9 },
    "alia-fixture-es-target": { input_eur_per_mtok: 0.3, output_eur_per_mtok: 0.9 },
  },
  translation: { computed_sentence_eur: 0.0001, cached_sentence_eur: 0.00001 },
};

/** The price table in a JSON string (an environment variable's value); `source` names it in errors. */
export function parsePriceTable(json: string, source = "price table"): PriceTable {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new Error(`${source}: not JSON (${(e as Error).message})`);
  }
  const r = PriceTableSchema.safeParse(value);
  if (!r.success) throw new Error(`${source}: ${describeZodIssues(r.error)}`);
  return r.data;
}

/** The prices of `model`; a model without prices is a configuration error, never free. */
export function modelPrice(table: PriceTable, model: string): ModelPrice {
  const p = Object.hasOwn(table.models, model) ? table.models[model] : undefined;
  if (!p) throw new RangeError(`no price for model '${model}' (priced: ${Object.keys(table.models).join(", ")})`);
  return p;
}

/** Euros with at most 6 decimals as integer micro-euros (exact for validated prices). */
export function toMicro(eur: number): MicroEur {
  return Math.round(eur * MICRO_PER_EUR);
}

function count(name: string, n: number): bigint {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer, got ${n}`);
  return BigInt(n);
}

function safe(micro: bigint, what: string): MicroEur {
  if (micro > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${what} of ${micro} µ€ is beyond exact integer arithmetic`);
  return Number(micro);
}

/**
 * µ€ of `tokens` at `eurPerMtok`, rounded up to the micro-euro: in BigInt because tokens × µ€ per million
 * tokens can pass 2^53 before the division; up, because each line of a bill is charged whole (≤ 1 µ€ over).
 */
function tokensCost(tokens: bigint, eurPerMtok: number, what: string): MicroEur {
  const perMtok = BigInt(toMicro(eurPerMtok));
  return safe((tokens * perMtok + 999_999n) / 1_000_000n, what);
}

export interface TokenUsage {
  model: string;
  promptTokens: number;
  completionTokens: number;
}

export interface RequestCost {
  input: MicroEur;
  output: MicroEur;
  /** input + output: the two lines are rounded separately so that they add up to what is charged. */
  total: MicroEur;
}

/** What a finished request costs. */
export function requestCost(table: PriceTable, u: TokenUsage): RequestCost {
  const p = modelPrice(table, u.model);
  const input = tokensCost(count("promptTokens", u.promptTokens), p.input_eur_per_mtok, "input cost");
  const output = tokensCost(count("completionTokens", u.completionTokens), p.output_eur_per_mtok, "output cost");
  return { input, output, total: safe(BigInt(input) + BigInt(output), "cost") };
}

/**
 * The reservation when a request starts: its cost if it generates all of `maxTokens`. Each line rounds up
 * from a count that is at least the final one, so no completion of ≤ maxTokens tokens costs more.
 */
export function maximumCost(table: PriceTable, r: { model: string; promptTokens: number; maxTokens: number }): MicroEur {
  return requestCost(table, { model: r.model, promptTokens: r.promptTokens, completionTokens: r.maxTokens }).total;
}

/** µ€ of a translation: sentences the model computed and sentences from the Worker's cache (a CDN hit never reaches us: free). */
export function translationCost(table: PriceTable, t: { computed: number; cached: number }): MicroEur {
  const computed = count("computed", t.computed) * BigInt(toMicro(table.translation.computed_sentence_eur));
  const cached = count("cached", t.cached) * BigInt(toMicro(table.translation.cached_sentence_eur));
  return safe(computed + cached, "translation cost");
}

/** The target passes a generation ran: one per verify round (chunk = drafts + 1), one per pool-generated token. */
export interface TargetWork {
  /** Tokens each verify round put through the target: its drafts + the bonus/correction position. */
  verifyChunks: readonly number[];
  /** Passes of pool generation (γ = 0), one token each. */
  generatePasses: number;
}

/** The target work recorded in a generation's statistics. */
export function targetWorkOf(stats: Pick<DecodeStats, "roundLog" | "targetPasses" | "rounds">): TargetWork {
  return { verifyChunks: stats.roundLog.map((r) => r.gamma + 1), generatePasses: Math.max(0, stats.targetPasses - stats.rounds) };
}

/** A pass cost model (`PassCostModel.passMsClampingPast` fits): ms of a pass of `batch` rows of `chunk` tokens after `past`. */
export interface PassTimer {
  passMs(batch: number, chunk: number, past: number): number;
}

export interface GpuCosting {
  timer: PassTimer;
  /** Rows the target's passes carry (other sessions' included): the load the GPU time is shared at. */
  rowsPerPass: number;
}

/**
 * Target GPU time of the generation as run and as plain decoding (one chunk-1 pass per completion token),
 * or pass counts when no cost model is given. Every pass is costed at the generation's mean past (prompt +
 * half the completion): both sides pass through the same pasts, and the cost model is close to linear in
 * the past, so the ratio barely moves while the arithmetic needs no per-round pasts the statistics lack.
 * Plain decoding is counted as `completionTokens` passes (not + 1 for a stop token): it understates, never
 * overstates, what speculation saved.
 */
export function targetTime(u: { promptTokens: number; completionTokens: number }, work: TargetWork, gpu?: GpuCosting): { plain: number; actual: number } {
  if (!gpu) return { plain: u.completionTokens, actual: work.verifyChunks.length + work.generatePasses };
  const past = u.promptTokens + Math.floor(u.completionTokens / 2);
  const ms = (chunk: number) => gpu.timer.passMs(gpu.rowsPerPass, chunk, past);
  const single = ms(1);
  const actual = work.verifyChunks.reduce((t, c) => t + ms(c), 0) + work.generatePasses * single;
  return { plain: u.completionTokens * single, actual };
}

export interface CostWithSaving extends RequestCost {
  /** What the request would have cost without speculation (≥ total). */
  withoutSpeculation: MicroEur;
  /** withoutSpeculation − total (≥ 0). */
  saving: MicroEur;
}

/**
 * The cost, and the cost without speculation: the output line scaled by the target GPU time plain decoding
 * would have needed over the time actually spent (`targetTime`), i.e. the same price per GPU-second. The
 * input line is unchanged (the prompt's prefill is the same either way). With the cost model, longer
 * verify chunks and shared passes are costed as the GPU pays them; without one, every pass costs the same
 * (true while passes are memory-bound, an overstatement of the saving under heavy batching). The scaled
 * line is rounded down and the saving is never negative: when speculation cost more target time than plain
 * decoding would have, the saving shown is 0 (the price is the list price either way).
 */
export function costWithoutSpeculation(table: PriceTable, u: TokenUsage, work: TargetWork, gpu?: GpuCosting): CostWithSaving {
  const cost = requestCost(table, u);
  const { plain, actual } = targetTime(u, work, gpu);
  const output = actual > 0 && plain > actual ? Math.max(cost.output, scaleDown(cost.output, plain, actual)) : cost.output;
  const withoutSpeculation = safe(BigInt(cost.input) + BigInt(output), "cost without speculation");
  return { ...cost, withoutSpeculation, saving: withoutSpeculation - cost.total };
}

/** ⌊micro × num / den⌋: exact for pass counts (integers), to the double's precision for GPU-ms. */
function scaleDown(micro: MicroEur, num: number, den: number): MicroEur {
  if (Number.isSafeInteger(num) && Number.isSafeInteger(den)) return safe((BigInt(micro) * BigInt(num)) / BigInt(den), "cost without speculation");
  const v = Math.floor((micro * num) / den);
  if (!Number.isSafeInteger(v)) throw new RangeError(`cost without speculation of ${v} µ€ is beyond exact integer arithmetic`);
  return v;
}

/** µ€ as a decimal string of euros with 6 decimals, by integer arithmetic ("0.000123"). */
export function formatEur(micro: MicroEur): string {
  if (!Number.isSafeInteger(micro) || micro < 0) throw new RangeError(`not an amount of µ€: ${micro}`);
  return `${Math.floor(micro / MICRO_PER_EUR)}.${String(micro % MICRO_PER_EUR).padStart(6, "0")}`;
}

/** µ€ as a JSON number of euros: the nearest double to the 6-decimal amount. */
export function eur(micro: MicroEur): number {
  return Number(formatEur(micro));
}

/** The `usage.cost` extension of a response (euros, 6 decimals). */
export interface UsageCost {
  currency: "EUR";
  total: number;
  input: number;
  output: number;
  without_speculation: number;
  saving: number;
}

export function usageCost(c: CostWithSaving): UsageCost {
  return { currency: "EUR", total: eur(c.total), input: eur(c.input), output: eur(c.output), without_speculation: eur(c.withoutSpeculation), saving: eur(c.saving) };
}

/** The `x-alia-cost` header: the total charged, e.g. "0.000123 EUR". */
export function costHeader(micro: MicroEur): string {
  return `${formatEur(micro)} EUR`;
}
