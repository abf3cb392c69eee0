// Gathers forward passes of different sessions that arrive within a short window and runs them as one
// padded batch (CausalLM.forwardBatch), which raises tokens/s under load (BENCHMARKS.md measures it).
// Batches run one at a time; the queue is bounded, and beyond it callers get `overloaded` (503 +
// Retry-After) instead of waiting without limit.
import type { ChunkLogits, CausalLM, KvSequence } from "../src/common/models/causal-lm.ts";
import { VerifyError } from "../src/common/protocol.ts";
import { ArrivalForecast, companyWaitMs } from "./company-wait.ts";
import type { PassAccounting } from "./pass-accounting.ts";

export interface MicroBatcherOptions {
  /**
   * How long the first request of a batch waits for company (ms). 0 (the default): no added latency;
   * requests that arrive while a pass runs form the next batch, so batches grow with load by themselves.
   */
  windowMs: number;
  maxBatch: number;
  maxQueue: number;
  /**
   * Benchmarks only: hold every batched pass to the time the accounting's cost model gives that batch's
   * rows, standing in for ALIA-40b's GPU. Passes run one at a time, so the stand-in is one shared GPU, as real.
   */
  holdToModel?: boolean;
  /**
   * With a cost model: a pass that could start may wait for sessions expected back before it would end
   * (their turnaround measured per session) when the GPU time it saves pays for the wait (company-wait.ts).
   */
  waitForCompany?: boolean;
}

interface Pending {
  seq: KvSequence;
  tokens: readonly number[];
  /** A verify round that came back after its answer (otherwise a generation's next token, or a first round). */
  returning: boolean;
  resolve: (l: ChunkLogits) => void;
  reject: (e: unknown) => void;
}

export class MicroBatcher {
  private queue: Pending[] = [];
  private scheduled = false;
  private running = false;
  /** A pass held back for sessions expected soon: the timer that ends the wait, and whom it waits for. */
  private waiting: { timer: NodeJS.Timeout; awaited: Set<KvSequence>; started: number } | undefined;
  private readonly forecast = new ArrivalForecast<KvSequence>();
  private readonly lastChunk = new WeakMap<KvSequence, number>();
  /** Batches run so far by size, and passes that waited for company (how many, ms in all), for metrics. */
  readonly batches = new Map<number, number>();
  readonly companyWaits = { count: 0, ms: 0 };

  constructor(
    private readonly model: CausalLM,
    private readonly o: MicroBatcherOptions,
    private readonly accounting: PassAccounting,
  ) {}

  get queueDepth(): number {
    return this.queue.length;
  }

  forward(seq: KvSequence, tokens: readonly number[]): Promise<ChunkLogits> {
    if (this.queue.length >= this.o.maxQueue) return Promise.reject(new VerifyError("overloaded", `verify queue full (${this.o.maxQueue} waiting)`));
    const returning = this.forecast.arrived(seq, performance.now());
    this.lastChunk.set(seq, tokens.length);
    return new Promise((resolve, reject) => {
      this.queue.push({ seq, tokens, returning, resolve, reject });
      const w = this.waiting;
      if (this.queue.length >= this.o.maxBatch || (w?.awaited.delete(seq) && w.awaited.size === 0)) this.endWait();
      else this.schedule(this.o.windowMs);
    });
  }

  /** The rows expected back soon, if waiting for them beats starting now: how long, and whom. */
  private companyWait(): { ms: number; awaited: Set<KvSequence> } | undefined {
    if (!this.o.waitForCompany || !this.accounting.hasModel || this.queue.length >= this.o.maxBatch) return undefined;
    const queued = new Set(this.queue.map((p) => p.seq));
    const expected = this.forecast
      .expected(performance.now())
      .filter((e) => !queued.has(e.key))
      .sort((a, b) => a.inMs - b.inMs)
      .slice(0, this.o.maxBatch - this.queue.length)
      .map((e) => ({ ...e, row: { chunk: this.lastChunk.get(e.key) ?? 1, past: e.key.length } }));
    if (!expected.length) return undefined;
    const rows = this.queue.map((p) => ({ chunk: p.tokens.length, past: p.seq.length }));
    const ms = companyWaitMs(rows, expected, (r) => this.accounting.modelMs(r), this.queue.filter((p) => !p.returning).length);
    if (ms <= 0) return undefined;
    return { ms, awaited: new Set(expected.filter((e) => e.inMs <= ms).map((e) => e.key)) };
  }

  private endWait(): void {
    if (this.waiting) {
      clearTimeout(this.waiting.timer);
      this.companyWaits.ms += performance.now() - this.waiting.started;
    }
    this.waiting = undefined;
    if (!this.running && this.queue.length) void this.runBatch();
  }

  /** A verify round's answer is going out: the session is expected back (`kind`: what the answer was). */
  answered(seq: KvSequence, kind: string): void {
    this.forecast.answered(seq, performance.now(), kind);
  }

  private schedule(windowMs: number): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setTimeout(0) waits ≥ 1 ms in Node; setImmediate only lets this tick's other requests join.
    if (windowMs > 0) setTimeout(() => this.kick(), windowMs);
    else setImmediate(() => this.kick());
  }

  private kick(): void {
    this.scheduled = false;
    if (this.running || this.waiting || !this.queue.length) return;
    const wait = this.companyWait();
    // The wait ends when the last awaited row arrives, or 1 ms after it was due, whatever came.
    if (!wait) return void this.runBatch();
    this.companyWaits.count++;
    this.waiting = { timer: setTimeout(() => this.endWait(), wait.ms + 1), awaited: wait.awaited, started: performance.now() };
  }

  private async runBatch(): Promise<void> {
    this.running = true;
    const batch = this.queue.splice(0, this.o.maxBatch);
    this.batches.set(batch.length, (this.batches.get(batch.length) ?? 0) + 1);
    try {
      const t0 = performance.now();
      const rows = batch.map((p) => ({ chunk: p.tokens.length, past: p.seq.length, owner: p.seq }));
      const out = await this.model.forwardBatch(batch.map(({ seq, tokens }) => ({ seq, tokens })));
      const modelMs = this.accounting.record(rows, performance.now() - t0);
      if (this.o.holdToModel) {
        const left = modelMs - (performance.now() - t0);
        if (left > 0) await new Promise((r) => setTimeout(r, left));
      }
      this.accounting.occupied(t0, performance.now(), rows);
      batch.forEach((p, i) => p.resolve(out[i]));
    } catch {
      // One bad row must not fail the others: run each alone so that only the culprit gets the error.
      for (const p of batch) await this.model.forward(p.seq, p.tokens).then(p.resolve, p.reject);
    } finally {
      this.running = false;
      // Not at once: the rows this pass answered may come straight back (a generation's next token), and
      // they belong in the next pass, as in a continuous-batching engine, not one pass later.
      if (this.queue.length) this.schedule(0);
    }
  }
}
