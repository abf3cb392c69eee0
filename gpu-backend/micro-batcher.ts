// Gathers forward passes of different sessions that arrive within a short window and runs them as one
// padded batch (CausalLM.forwardBatch), which raises tokens/s under load (BENCHMARKS.md measures it).
// Batches run one at a time; the queue is bounded, and beyond it callers get `overloaded` (503 +
// Retry-After) instead of waiting without limit.
import type { ChunkLogits, CausalLM, KvSequence } from "../src/common/models/causal-lm.ts";
import { VerifyError } from "../src/common/protocol.ts";

export interface MicroBatcherOptions {
  /**
   * How long the first request of a batch waits for company (ms). 0 (the default): no added latency;
   * requests that arrive while a pass runs form the next batch, so batches grow with load by themselves.
   */
  windowMs: number;
  maxBatch: number;
  maxQueue: number;
  /**
   * Benchmarks only: hold every batched pass to at least passMs + tokenMs × (tokens in the batch), standing
   * in for a large target's GPU. Passes run one at a time, so the stand-in is one shared GPU, as real.
   */
  simulatedCost?: { passMs: number; tokenMs: number };
}

interface Pending {
  seq: KvSequence;
  tokens: readonly number[];
  resolve: (l: ChunkLogits) => void;
  reject: (e: unknown) => void;
}

export class MicroBatcher {
  private queue: Pending[] = [];
  private scheduled = false;
  private running = false;
  /** Batches run so far by size, for metrics. */
  readonly batches = new Map<number, number>();

  constructor(
    private readonly model: CausalLM,
    private readonly o: MicroBatcherOptions,
  ) {}

  get queueDepth(): number {
    return this.queue.length;
  }

  forward(seq: KvSequence, tokens: readonly number[]): Promise<ChunkLogits> {
    if (this.queue.length >= this.o.maxQueue) return Promise.reject(new VerifyError("overloaded", `verify queue full (${this.o.maxQueue} waiting)`));
    return new Promise((resolve, reject) => {
      this.queue.push({ seq, tokens, resolve, reject });
      if (this.queue.length >= this.o.maxBatch) this.kick();
      else if (!this.scheduled) {
        this.scheduled = true;
        // setTimeout(0) waits ≥ 1 ms in Node; setImmediate only lets this tick's other requests join.
        if (this.o.windowMs > 0) setTimeout(() => this.kick(), this.o.windowMs);
        else setImmediate(() => this.kick());
      }
    });
  }

  private kick(): void {
    this.scheduled = false;
    if (!this.running && this.queue.length) void this.runBatch();
  }

  private async runBatch(): Promise<void> {
    this.running = true;
    const batch = this.queue.splice(0, this.o.maxBatch);
    this.batches.set(batch.length, (this.batches.get(batch.length) ?? 0) + 1);
    try {
      const t0 = performance.now();
      const out = await this.model.forwardBatch(batch.map(({ seq, tokens }) => ({ seq, tokens })));
      const cost = this.o.simulatedCost;
      if (cost) {
        const left = cost.passMs + cost.tokenMs * batch.reduce((n, p) => n + p.tokens.length, 0) - (performance.now() - t0);
        if (left > 0) await new Promise((r) => setTimeout(r, left));
      }
      batch.forEach((p, i) => p.resolve(out[i]));
    } catch {
      // One bad row must not fail the others: run each alone so that only the culprit gets the error.
      for (const p of batch) await this.model.forward(p.seq, p.tokens).then(p.resolve, p.reject);
    } finally {
      this.running = false;
      if (this.queue.length) this.kick();
    }
  }
}
