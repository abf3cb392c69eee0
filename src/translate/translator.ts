// Sentence-level translation with caching: each sentence is looked up tier by tier (a hit fills the tiers
// above it), computed through the speculative decoder on a miss (greedy: deterministic, so cacheable) and
// stored in every tier. Identical misses in flight at the same moment are computed once.
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
export type GenerationListener = (stats: DecodeStats, usage: { promptTokens: number; completionTokens: number; finishReason?: FinishReason }) => void;

export const SALAMANDRA_TA_PROMPT = "[{source}] {text} \n[{target}]";

/** `template` (SalamandraTA's by default) filled for a sentence between two supported language codes. */
export function translationPrompt(source: string, target: string, text: string, template = SALAMANDRA_TA_PROMPT): string {
  return template.replace("{source}", languageName(source)!).replace("{target}", languageName(target)!).replace("{text}", text);
}
const SENTENCES_AT_ONCE = 8;

export interface TranslationStats {
  sentences: number;
  computed: number;
  /** Sentences served from each tier. */
  hits: Record<string, number>;
}

export class Translator {
  /** Computations run and requests that joined one already in flight, for metrics and tests. */
  readonly counters = { computed: 0, coalesced: 0, hits: 0 };
  private readonly inflight = new Map<string, Promise<string>>();
  private session = 0;

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

  async translate(text: string, source: string, target: string, stats: TranslationStats): Promise<string> {
    const pieces = splitSentences(text, source);
    const out = pieces.map((p) => p.text);
    // A few sentences at a time: a long text must not flood the pool with one generation per sentence.
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < pieces.length; i = next++) if (pieces[i].kind === "sentence") out[i] = await this.sentence(pieces[i].text, source, target, stats);
    };
    await Promise.all(Array.from({ length: SENTENCES_AT_ONCE }, worker));
    return out.join("");
  }

  private async sentence(sentence: string, source: string, target: string, stats: TranslationStats): Promise<string> {
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
    let running = this.inflight.get(key);
    if (running) this.counters.coalesced++;
    else {
      running = this.compute(sentence, source, target).then(async (t) => {
        await Promise.all(tiers.map((tier) => tier.put(key, t)));
        return t;
      });
      this.inflight.set(key, running);
      void running.finally(() => this.inflight.delete(key)).catch(() => undefined);
    }
    stats.computed++;
    return running;
  }

  private async compute(sentence: string, source: string, target: string): Promise<string> {
    this.counters.computed++;
    const { model } = this.o;
    const prompt = translationPrompt(source, target, normalizeSentence(sentence), this.o.promptTemplate);
    const ids = model.tokenizer.encode(prompt);
    const room = model.maxPositions - ids.length;
    if (room < 2) throw new RangeError(`a sentence of ${ids.length} tokens is too long to translate`);
    const decoder = new SpeculativeDecoder({
      // Translations are public (content-addressed, cached for everyone): one suffix tenant for all of them.
      proposer: this.o.proposers.create({ promptLength: ids.length, tenant: "translate" }),
      pool: this.o.pool,
      maxTokens: Math.min(room, 2 * ids.length + 16),
      stopIds: model.stopIds,
      stop: ["\n"], // the target sentence ends at the end of its line
      decode: continuationDecoder(model.tokenizer, ids),
      ...this.o.speculation,
      session: `tr-${Date.now().toString(36)}-${this.session++}`,
    });
    let text = "";
    for await (const ev of decoder.run(ids)) text += ev.text;
    this.onGeneration?.(decoder.stats, { promptTokens: ids.length, completionTokens: decoder.output.length, finishReason: decoder.finishReason });
    return text.trim();
  }
}
