// OnnxEngine: the target on onnxruntime-node (CPU here, CUDA EP where installed), with a KV cache per
// session and verify passes of concurrent sessions micro-batched into one padded forward pass. Sessions
// opened with the same prefix at about the same time (an edge's n > 1 choices) share one prefill.
import { createHash } from "node:crypto";
import type { CausalLM, KvSequence } from "../src/common/models/causal-lm.ts";
import type { ChunkScores, TargetEngine } from "./engine.ts";
import { PassAccounting } from "./pass-accounting.ts";
import { MicroBatcher, type MicroBatcherOptions } from "./micro-batcher.ts";

export const DEFAULT_BATCH: MicroBatcherOptions = { windowMs: 0, maxBatch: 32, maxQueue: 256 };

/**
 * Recent prefills kept for sharing: at most `prefixes`, each for `ttlMs` after it ended. Their KV
 * snapshots count against no budget, so the cache stays small and short-lived: it serves sessions opened
 * together (n choices of one request), not a prompt cache. `prefixes: 0` turns sharing off.
 */
export interface PrefillSharing {
  prefixes: number;
  ttlMs: number;
  /** Clock in ms (tests). */
  now?: () => number;
}
export const DEFAULT_SHARING: PrefillSharing = { prefixes: 4, ttlMs: 5000 };

interface SharedPrefill {
  /** The prefilled sequence, never handed out itself: each opener gets a fork. */
  base: Promise<KvSequence>;
  /** When the prefill ended (undefined while it runs: an entry in flight never expires). */
  doneAt?: number;
}

function prefixKey(prefix: readonly number[]): string {
  return `${prefix.length}:${createHash("sha256").update(Int32Array.from(prefix)).digest("base64url")}`;
}

export class OnnxEngine implements TargetEngine<KvSequence> {
  readonly name = "onnx";
  readonly batcher: MicroBatcher;
  /** Prefills run, and opens served by forking a recent or concurrent identical one instead. */
  readonly prefills = { run: 0, shared: 0 };
  /** Recent prefills by prefix (length + hash), oldest first. */
  private readonly shared = new Map<string, SharedPrefill>();

  constructor(
    readonly model: CausalLM,
    batch: MicroBatcherOptions = DEFAULT_BATCH,
    readonly accounting = new PassAccounting(),
    private readonly sharing: PrefillSharing = DEFAULT_SHARING,
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
    if (!prefix.length) return this.model.newSequence();
    if (this.sharing.prefixes <= 0) return this.prefill(prefix);
    const clock = this.sharing.now ?? (() => performance.now());
    const now = clock();
    for (const [k, e] of this.shared) if (e.doneAt !== undefined && now - e.doneAt > this.sharing.ttlMs) this.shared.delete(k);
    const key = prefixKey(prefix);
    const hit = this.shared.get(key);
    if (hit) {
      this.prefills.shared++;
      return (await hit.base).fork();
    }
    const entry: SharedPrefill = { base: this.prefill(prefix) };
    this.shared.set(key, entry);
    while (this.shared.size > this.sharing.prefixes) this.shared.delete(this.shared.keys().next().value!);
    try {
      const base = await entry.base;
      entry.doneAt = clock();
      return base.fork();
    } catch (e) {
      if (this.shared.get(key) === entry) this.shared.delete(key);
      throw e;
    }
  }

  /**
   * Prefills run alone (batched with verify chunks they would pad every row to their length), outside the
   * pass accounting: the cost model prices verify and generation passes, so a shared prefill saves nothing there.
   */
  private async prefill(prefix: readonly number[]): Promise<KvSequence> {
    const seq = this.model.newSequence();
    this.prefills.run++;
    await this.model.forward(seq, prefix);
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
