// Benchmarks only: makes every target pass of an engine take at least `passMs`, to stand in for a large
// target on a small fixture (ALIA-40b bf16 on one H200 is memory-bound at ≥ 16.9 ms per pass, DESIGN §5).
// A pass of any length costs the same here — the memory-bound regime where speculation pays.
import type { ChunkScores, EngineSequence, TargetEngine } from "./engine.ts";

export class SimulatedCostEngine<S extends EngineSequence> implements TargetEngine<S> {
  constructor(
    readonly inner: TargetEngine<S>,
    readonly passMs: number,
  ) {}

  get name(): string {
    return `${this.inner.name}+${this.passMs}ms`;
  }
  get vocab(): number {
    return this.inner.vocab;
  }
  get maxPositions(): number {
    return this.inner.maxPositions;
  }
  get exactTop(): number {
    return this.inner.exactTop;
  }
  get queueDepth(): number {
    return this.inner.queueDepth;
  }

  open(prefix: readonly number[]): Promise<S> {
    return this.inner.open(prefix);
  }

  async score(seq: S, tokens: readonly number[]): Promise<ChunkScores> {
    const t0 = performance.now();
    const out = await this.inner.score(seq, tokens);
    const left = this.passMs - (performance.now() - t0);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
    return out;
  }
}
