// Sentence-level translation with caching: each sentence is looked up tier by tier (a hit fills the tiers
// above it), computed through the speculative decoder on a miss (greedy: deterministic, so cacheable) and
// stored in every tier. Identical misses in flight at the same moment are computed once, for as long as
// anyone still waits for them: a computation whose every waiter left is aborted and nothing of it cached.
import type { ProposerFactory } from "../speculative/proposer-factory.ts";
import type { SpeculationSettings } from "../speculative/settings.ts";
import { SpeculativeDecoder, type DecodeStats, type FinishReason } from "../speculative/speculative-decoder.ts";
import type { TargetVerifier } from "../speculative/target-verifier.ts";
import { continuationDecoder, type ServedModel } from "../model-pair/served-model.ts";
import { sha256Hex } from "../common/hash.ts";
import type { CacheTier } from "./cache-tiers/cache-tier.ts";
import { languageName } from "./languages.ts";
import { normalizeSentence, splitSentences } from "./sentences.ts";

export interface TranslatorOptions {
  model: ServedModel;
  pool: TargetVerifier;
  tiers: CacheTier[];
  /** The same speculation settings as chat and completions. */
  speculation: SpeculationSettings;
  proposers: ProposerFactory;
  /** Called when a sentence has been computed (metrics; the app sets it when it wires its metrics). */
  onGeneration?: GenerationListener;
  /** SalamandraTA's format by default; {source}, {target} are language names, {text} the sentence. */
  promptTemplate?: string;
}

/** A computed sentence: its decoder statistics and token counts. */
export type GenerationListener = (stats: DecodeStats, usage: { promptTokens: number; completionTokens: number; finishReason?: FinishReason; cancelled?: boolean }) => void;

export const SALAMANDRA_TA_PROMPT = "[{source}] {text} \n[{target}]";

/** `template` (SalamandraTA's by default) filled for a sentence between two supported language codes. */
export function translationPrompt(source: string, target: string, text: string, template = SALAMANDRA_TA_PROMPT): string {
  return template.replace("{source}", languageName(source)!).replace("{target}", languageName(target)!).replace("{text}", text);
}
/** Sentences of one request computed at once: a long text must not flood the pool on its own. */
const SENTENCES_AT_ONCE = 8;

export interface TranslationStats {
  sentences: number;
  computed: number;
  /** Sentences served from each tier. */
  hits: Record<string, number>;
}

/** Where a request's sentence computations get their generation slots (the app's RequestAdmission). */
export interface SentenceSlots {
  /** Resolves with the slot's release; rejects when refused or when `signal` aborts first. */
  acquire(signal: AbortSignal): Promise<() => void>;
}

/** What one request brings: its client's signal and its share of the generation slots. */
export interface TranslateRequest {
  /** Aborted when the client goes away: the request's sentences stop (shared ones once nobody waits). */
  signal?: AbortSignal;
  /** None: sentences are computed without admission (tests, benchmarks). */
  slots?: SentenceSlots;
}

/** One sentence being computed, and how many requests still wait for it. */
interface Computation {
  result: Promise<string>;
  waiters: number;
  abort: AbortController;
}

export class Translator {
  /** Computations run and requests that joined one already in flight, for metrics and tests. */
  readonly counters = { computed: 0, coalesced: 0, hits: 0 };
  private readonly inflight = new Map<string, Computation>();

  onGeneration?: GenerationListener;

  constructor(private readonly o: TranslatorOptions) {
    this.onGeneration = o.onGeneration;
  }

  /** Errors each tier swallowed (a failing tier degrades to computing). */
  tierErrors(): Record<string, number> {
    return Object.fromEntries(this.o.tiers.map((t) => [t.name, t.errors]));
  }

  /** The cache key covers the bundle, the pair and the normalised sentence: a new bundle never hits old entries. */
  key(source: string, target: string, sentence: string): Promise<string> {
    return sha256Hex(JSON.stringify([this.o.model.fingerprint, source, target, normalizeSentence(sentence)]));
  }

  /** The texts' tokens under the target's tokenizer (what a key's tokens per minute count). */
  countTokens(texts: readonly string[]): number {
    return texts.reduce((n, t) => n + this.o.model.tokenizer.encode(t, { specialTokens: "text" }).length, 0);
  }

  async translate(text: string, source: string, target: string, stats: TranslationStats, request: TranslateRequest = {}): Promise<string> {
    return (await this.translateAll([text], source, target, stats, request))[0];
  }

  /**
   * The texts of one request, translated; whitespace and layout kept. Its sentences are worked off by
   * SENTENCES_AT_ONCE workers for the whole request (not per text: a batch of 128 texts is one request's
   * work). Rejects with the signal's reason when the client leaves, and stops every worker at the first failure.
   */
  async translateAll(texts: readonly string[], source: string, target: string, stats: TranslationStats, request: TranslateRequest = {}): Promise<string[]> {
    const pieces = texts.map((t) => splitSentences(t, source));
    const out = pieces.map((ps) => ps.map((p) => p.text));
    const todo: [number, number][] = [];
    for (const [i, ps] of pieces.entries()) for (const [j, p] of ps.entries()) if (p.kind === "sentence") todo.push([i, j]);
    // The request's own signal: the client leaving or a first failure ends every worker's loop.
    const stop = new AbortController();
    const onGone = () => stop.abort(request.signal!.reason);
    if (request.signal?.aborted) onGone();
    request.signal?.addEventListener("abort", onGone, { once: true });
    let next = 0;
    const worker = async () => {
      while (!stop.signal.aborted && next < todo.length) {
        const [i, j] = todo[next++];
        out[i][j] = await this.sentence(out[i][j], source, target, stats, stop.signal, request.slots);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(SENTENCES_AT_ONCE, todo.length) }, worker));
      if (stop.signal.aborted) throw stop.signal.reason;
    } catch (e) {
      stop.abort(e);
      throw e;
    } finally {
      request.signal?.removeEventListener("abort", onGone);
    }
    return out.map((ps) => ps.join(""));
  }

  private async sentence(sentence: string, source: string, target: string, stats: TranslationStats, signal: AbortSignal, slots: SentenceSlots | undefined): Promise<string> {
    stats.sentences++;
    const key = await this.key(source, target, sentence);
    const tiers = this.o.tiers;
    for (const [i, tier] of tiers.entries()) {
      const hit = await tier.get(key);
      if (hit !== undefined) {
        stats.hits[tier.name] = (stats.hits[tier.name] ?? 0) + 1;
        this.counters.hits++;
        await Promise.all(tiers.slice(0, i).map((t) => t.put(key, hit)));
        return hit;
      }
    }
    signal.throwIfAborted(); // gone while looking up: start nothing
    let running = this.inflight.get(key);
    if (running) this.counters.coalesced++;
    else running = this.start(key, sentence, source, target, slots);
    stats.computed++;
    return this.wait(key, running, signal);
  }

  /** Computes a sentence once for every request that joins it; cached only when it ran to its end. */
  private start(key: string, sentence: string, source: string, target: string, slots: SentenceSlots | undefined): Computation {
    const abort = new AbortController();
    // The slot is taken through the request that started the computation: the tenant whose miss it was.
    const result = this.compute(sentence, source, target, abort.signal, slots).then(async (t) => {
      await Promise.all(this.o.tiers.map((tier) => tier.put(key, t)));
      return t;
    });
    const c: Computation = { result, waiters: 0, abort };
    this.inflight.set(key, c);
    void result.finally(() => this.forget(key, c)).catch(() => undefined);
    return c;
  }

  private forget(key: string, c: Computation): void {
    if (this.inflight.get(key) === c) this.inflight.delete(key);
  }

  /** One request's wait for a computation: leaving it aborts the computation when nobody else waits. */
  private wait(key: string, c: Computation, signal: AbortSignal): Promise<string> {
    c.waiters++;
    return new Promise<string>((resolve, reject) => {
      const leave = () => {
        reject(signal.reason);
        if (--c.waiters > 0) return;
        // Nobody waits any more: a later request for this sentence starts afresh rather than joining this.
        this.forget(key, c);
        c.abort.abort(signal.reason);
      };
      signal.addEventListener("abort", leave, { once: true });
      c.result.then(
        (t) => {
          signal.removeEventListener("abort", leave);
          resolve(t);
        },
        (e) => {
          signal.removeEventListener("abort", leave);
          reject(e);
        },
      );
    });
  }

  private async compute(sentence: string, source: string, target: string, signal: AbortSignal, slots: SentenceSlots | undefined): Promise<string> {
    const { model } = this.o;
    const prompt = translationPrompt(source, target, normalizeSentence(sentence), this.o.promptTemplate);
    // The sentence is a client's text: special-token strings in it stay characters (the template has none).
    const ids = model.tokenizer.encode(prompt, { specialTokens: "text" });
    const room = model.maxPositions - ids.length;
    if (room < 2) throw new RangeError(`a sentence of ${ids.length} tokens is too long to translate`);
    // A slot per sentence while it generates: translation shares MAX_CONCURRENT with chat.
    const release = await slots?.acquire(signal);
    try {
      signal.throwIfAborted();
      this.counters.computed++;
      const decoder = new SpeculativeDecoder({
        // Translations are public (content-addressed, cached for everyone): one suffix tenant for all of them.
        proposer: this.o.proposers.create({ promptLength: ids.length, tenant: "translate" }),
        pool: this.o.pool,
        maxTokens: Math.min(room, 2 * ids.length + 16),
        stopIds: model.stopIds,
        stop: ["\n"], // the target sentence ends at the end of its line
        decode: continuationDecoder(model.tokenizer, ids),
        ...this.o.speculation,
        // Unguessable, like every session id: a verifier session must not be reachable by guessing its name.
        session: randomSessionId("tr-"),
        signal,
      });
      let text = "";
      for await (const ev of decoder.run(ids)) text += ev.text;
      const cancelled = signal.aborted;
      this.onGeneration?.(decoder.stats, { promptTokens: ids.length, completionTokens: decoder.output.length, finishReason: cancelled ? undefined : decoder.finishReason, cancelled });
      // The decoder ends quietly on abort: a cut-off translation must never reach a cache.
      signal.throwIfAborted();
      return text.trim();
    } finally {
      release?.();
    }
  }
}

/** `prefix` and 96 random bits in hex (crypto.getRandomValues: Node and Workers alike). */
function randomSessionId(prefix: string): string {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return prefix + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
