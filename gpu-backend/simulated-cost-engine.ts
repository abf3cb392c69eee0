// Benchmarks only: makes every target pass of an engine take at least `passMs` + `tokenMs` per token of
// the chunk, to stand in for a large target on a small fixture (ALIA-40b bf16 on one H200 is memory-bound
// at ≥ 16.9 ms per pass, DESIGN §5; the per-token part is the compute a longer verify chunk adds).
import type { ChunkScores, EngineSequence, TargetEngine } from "./engine.ts";

export class SimulatedCostEngine<S extends EngineSequence> implements TargetEngine<S> {
  constructor(
    readonly inner: TargetEngine<S>,
    readonly passMs: number,
    readonly tokenMs = 0,
  ) {}

  get name(): string {
    return `${this.inner.name}+${this.passMs}ms+${this.tokenMs}ms/token`;
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
    const left = this.passMs + this.tokenMs * tokens.length - (performance.now() - t0);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
    return out;
  }
}
