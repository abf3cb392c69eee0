// What the engine's passes cost, kept as the engine runs them: totals for /metrics and benchmarks, the last
// pass's composition, and — with a GPU cost model — the load report the edge's γ policy reads (what the
// next pass would cost with a session's row at 1, 2, … tokens). Pure bookkeeping: the engine calls
// `record` per pass.
import type { PassCostModel, PassRow } from "../src/common/pass-cost-model.ts";
import type { PoolLoad } from "../src/common/protocol.ts";

/** One row of a pass, and whose it is (the sequence object), so that a session's report leaves it out. */
export interface AccountedRow extends PassRow {
  owner?: object;
}

export interface PassAccountingOptions {
  /** Predicts pass times; without one, reports carry the measured times and no per-chunk prediction. */
  model?: PassCostModel;
  /** Benchmarks only: past added to every row (long-context sessions on a short-context fixture model). */
  pastOffset?: number;
}

/** The recent past over which a pass's wait is averaged (ms). */
const WAIT_WINDOW_MS = 1000;

export class PassAccounting {
  /** Passes, rows and tokens run, and the GPU milliseconds the model gives them (0 without a model). */
  readonly totals = { passes: 0, rows: 0, tokens: 0, modelMs: 0 };
  private last: AccountedRow[] = [];
  private lastMs = 0;
  /** Wall-clock spans of the recent passes, and their owner when one session had every row. */
  private spans: { start: number; end: number; soleOwner: object | undefined }[] = [];

  constructor(private readonly o: PassAccountingOptions = {}) {}

  get hasModel(): boolean {
    return this.o.model !== undefined;
  }

  /** Modelled ms of a pass over these rows (0 without a model). Pasts beyond the model's reach cost its longest. */
  modelMs(rows: readonly PassRow[]): number {
    const m = this.o.model;
    if (!m || rows.length === 0) return 0;
    const off = this.o.pastOffset ?? 0;
    return m.batchMs(rows.map((r) => ({ chunk: r.chunk, past: Math.min(r.past + off, m.maxPast) })));
  }

  /**
   * A pass ran (or is about to): its rows, and its measured ms. Returns the modelled ms (0 without a model).
   * `sharedWith`: rows of other callers known to share the engine's pass (an engine that batches out of
   * sight, as SGLang does): part of the next report's composition, not of these totals.
   */
  record(rows: readonly AccountedRow[], measuredMs = 0, sharedWith: readonly AccountedRow[] = []): number {
    const ms = this.modelMs(rows);
    this.totals.passes++;
    this.totals.rows += rows.length;
    this.totals.tokens += rows.reduce((n, r) => n + r.chunk, 0);
    this.totals.modelMs += ms;
    this.last = [...rows, ...sharedWith];
    this.lastMs = this.hasModel ? this.modelMs(this.last) : measuredMs;
    return ms;
  }

  /** A pass occupied the GPU from `start` to `end` (ms, the engine's clock, in order) over these rows. */
  occupied(start: number, end: number, rows: readonly AccountedRow[]): void {
    const owner = rows[0]?.owner;
    this.spans.push({ start, end, soleOwner: owner && rows.every((r) => r.owner === owner) ? owner : undefined });
    while (this.spans.length && this.spans[0].end < end - WAIT_WINDOW_MS) this.spans.shift();
  }

  /**
   * How long a row arriving at a random moment of the last second waited for a pass of other sessions in
   * flight (ms): the time-average of the time left of such passes. Passes of `owner` alone are left out —
   * they stop when it leaves generation for verify rounds; passes of others go on.
   */
  passWaitMs(owner: object | undefined, now: number): number {
    const from = now - WAIT_WINDOW_MS;
    let area = 0;
    for (const p of this.spans) {
      if (p.soleOwner !== undefined && p.soleOwner === owner) continue;
      // ∫ (end − t) dt over the part of the pass inside the window
      const a = Math.max(p.start, from);
      const b = Math.min(p.end, now);
      if (b > a) area += ((p.end - a) ** 2 - (p.end - b) ** 2) / 2;
    }
    return area / WAIT_WINDOW_MS;
  }

  /**
   * The pass figures of a load report for `owner`'s row at `past`, chunks 1…maxChunk: the next pass's time
   * if every row of it carried that chunk — the last pass's rows at their pasts, the owner's row replaced
   * (a newcomer's added). Every row alike, because the sessions sharing a pass decide alike: priced with the
   * others' chunks held fixed, each would find its own drafts nearly free and all would draft until the
   * pass turned compute-bound, slower for everyone than not speculating.
   */
  report(owner: object | undefined, past: number, maxChunk: number, now: number): Omit<PoolLoad, "queue_depth" | "sessions"> {
    // An engine that batches out of sight (SGLang) reports no spans, and so no wait.
    const figures = { rows: this.last.length, tokens: this.last.reduce((n, r) => n + r.chunk, 0), pass_ms: this.lastMs, ...(this.spans.length ? { pass_wait_ms: this.passWaitMs(owner, now) } : {}) };
    if (!this.hasModel) return figures;
    const rows = [...(owner ? this.last.filter((r) => r.owner !== owner) : this.last), { chunk: 1, past }];
    const pass_ms_by_chunk = Array.from({ length: maxChunk }, (_, i) => this.modelMs(rows.map((r) => ({ chunk: i + 1, past: r.past }))));
    return { ...figures, pass_ms_by_chunk };
  }
}
