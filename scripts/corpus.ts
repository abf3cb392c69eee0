// Prints statistics of the Spanish training corpus (Debian fortunes-es), fetching it on first use,
// and optionally trains the fixture BPE tokenizer on it to report speed and compression.
// Usage: npx tsx scripts/corpus.ts [--refresh] [--sample N] [--bpe 2048,4096]
import { Tokenizer } from "@huggingface/tokenizers";
import { toTokenizerJson, tokenizerConfigJson, trainBpe } from "../fixtures/generate/bpe.ts";
import { corpusStats, FORTUNES_ES, loadSpanishCorpus } from "../fixtures/generate/corpus.ts";
import { intFlag, parseCli } from "./cli.ts";

const USAGE = `usage: npx tsx scripts/corpus.ts [--refresh] [--sample N] [--bpe 2048,4096]
  --refresh   fetch the corpus again instead of using the cached copy
  --sample    quotes printed as a sample (default 5)
  --bpe       train the fixture BPE tokenizer at these vocabulary sizes and report speed and compression`;
const { values } = parseCli("corpus", USAGE, {
  options: { refresh: { type: "boolean", default: false }, sample: { type: "string", default: "5" }, bpe: { type: "string", default: "" } },
});
const refresh = values.refresh;
const sample = intFlag("corpus", "sample", values.sample, 0) ?? 5;
const bpeSizes = values.bpe.split(",").filter(Boolean).map(Number);

const t0 = performance.now();
const quotes = await loadSpanishCorpus({ refresh, verbose: true });
const ms = performance.now() - t0;
const s = corpusStats(quotes);
console.log(`source: Debian ${FORTUNES_ES.debianPackage} (${FORTUNES_ES.debianSuite}); licence: ${FORTUNES_ES.licence.packagingAndTools} ` + `for packaging and tools, quote texts presumed public domain`);
console.log(`quotes: ${s.quotes}  chars: ${s.chars}  bytes (UTF-8): ${s.bytes}  loaded in ${ms.toFixed(0)} ms`);
const step = Math.max(1, Math.floor(quotes.length / Math.max(1, sample)));
for (let i = 0; i < sample && i * step < quotes.length; i++) {
  console.log(`--- #${i * step}\n${quotes[i * step]}`);
}

for (const vocabSize of bpeSizes) {
  const t1 = performance.now();
  const model = trainBpe(quotes, { vocabSize });
  const trainMs = performance.now() - t1;
  const tok = new Tokenizer(toTokenizerJson(model), tokenizerConfigJson(""));
  let tokens = 0;
  let byteTokens = 0;
  for (const q of quotes) {
    const ids = tok.encode(q, { add_special_tokens: false }).ids;
    tokens += ids.length;
    byteTokens += ids.filter((id) => id >= 6 && id < 262).length;
  }
  console.log(
    `bpe vocab ${vocabSize}: trained in ${trainMs.toFixed(0)} ms; alphabet ${model.alphabet.length} ` +
      `(coverage ${(model.stats.coverage * 100).toFixed(3)}%, ${model.stats.byteFallbackChars} chars left to bytes), ` +
      `${model.merges.length} merges, last merge count ${model.stats.lastMergeCount}; ` +
      `${tokens} tokens = ${(tokens / s.chars).toFixed(4)} tokens/char, ${(s.chars / tokens).toFixed(2)} chars/token, ${byteTokens} byte tokens`,
  );
}
