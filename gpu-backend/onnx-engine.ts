// OnnxEngine: the target on onnxruntime-node (CPU here, CUDA EP where installed), with a KV cache per
// session and verify passes of concurrent sessions micro-batched into one padded forward pass.
import type { CausalLM, KvSequence } from "../src/common/models/causal-lm.ts";
import type { ChunkScores, TargetEngine } from "./engine.ts";
import { PassAccounting } from "./pass-accounting.ts";
import { MicroBatcher, type MicroBatcherOptions } from "./micro-batcher.ts";

export const DEFAULT_BATCH: MicroBatcherOptions = { windowMs: 0, maxBatch: 32, maxQueue: 256 };

export class OnnxEngine implements TargetEngine<KvSequence> {
  readonly name = "onnx";
  readonly batcher: MicroBatcher;

  constructor(
    readonly model: CausalLM,
    batch: MicroBatcherOptions = DEFAULT_BATCH,
    readonly accounting = new PassAccounting(),
  ) {
    this.batcher = new MicroBatcher(model, batch, accounting);
  }

  get vocab(): number {
    return this.model.vocab;
  }
  get maxPositions(): number {
    return this.model.maxPositions;
  }
  get exactTop(): number {
    return this.model.vocab;
  }
  get queueDepth(): number {
    return this.batcher.queueDepth;
  }

  async open(prefix: readonly number[]): Promise<KvSequence> {
    const seq = this.model.newSequence();
    // Prefills run alone: batched with verify chunks they would pad every row to their length.
    if (prefix.length) await this.model.forward(seq, prefix);
    return seq;
  }

  roundAnswered(seq: KvSequence, allAccepted: boolean): void {
    this.batcher.answered(seq, allAccepted ? "all" : "some");
  }

  async score(seq: KvSequence, tokens: readonly number[]): Promise<ChunkScores> {
    const logits = await this.batcher.forward(seq, tokens);
    return { rows: Array.from({ length: logits.rows }, (_, i) => logits.row(i)) };
  }
}
