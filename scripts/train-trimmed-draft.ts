// Trains a trimmed-vocabulary draft for the committed fixture pair: the draft keeps only the most frequent
// token ids of the training corpus (and the special tokens) plus one fallback row, is initialised from the
// committed draft's rows for them, and is distilled from the committed target on the same documents and
// split the pair was trained on (quotes, translations, copies, rewrites) — the teacher's probability
// outside the subset goes to the fallback row, which is never proposed. Writes fixtures/default/draft-trimmed/ (a draft bundle with draft_vocab.json) and reports
// coverage, losses, the export check and the greedy agreement α against the full draft's.
//
// Usage: npm run fixtures:train-trimmed -- [--rows N] [--steps N] [--seed S] [--out DIR]
//   --rows   token ids kept (default 1024 of the pair's 2048)
//   --steps  distillation steps (default 300)
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { DRAFT_VOCAB_FILE, DraftVocabulary } from "../src/common/models/draft-vocabulary.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { measureGreedyAgreement } from "../fixtures/generate/agreement.ts";
import { BOS_ID, EOS_ID, IM_END_ID, IM_START_ID, PAD_ID } from "../fixtures/generate/bpe.ts";
import { loadSpanishCorpus } from "../fixtures/generate/corpus.ts";
import { exportDiff } from "../fixtures/generate/export-check.ts";
import { archOfConfig, llamaWeightsFromOnnx, paramCount, trimLlamaVocabulary } from "../fixtures/generate/llama-onnx.ts";
import { PAIR_MIX, agreementPrompts, pairDocs } from "../fixtures/generate/quote-docs.ts";
import { loadParallelCorpus, spanishSentences } from "../fixtures/generate/translation-corpus.ts";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";
import { BatchStream, evalBatches, evaluate, initTfjs, TfLlama, trainLlama, trimmedStudentView } from "../fixtures/generate/train-llama-tfjs.ts";
import { writeBundle } from "../fixtures/generate/write-bundle.ts";
import { intFlag, parseCli } from "./cli.ts";

const SCRIPT = "train-trimmed-draft";
const USAGE = "usage: npm run fixtures:train-trimmed -- [--rows N] [--steps N] [--seed S] [--out DIR]";
const BUNDLE_ID = "alia-fixture-es-draft-trimmed";
const SEQ_LEN = 64;
const BATCH = 32;
const DISTILL = 0.8;
const LR = 2e-3;
const EXPORT_TOLERANCE = 1e-3;

const { values: v } = parseCli(SCRIPT, USAGE, { options: { rows: { type: "string" }, steps: { type: "string" }, seed: { type: "string" }, out: { type: "string" } } });
const rows = intFlag(SCRIPT, "rows", v.rows, 1) ?? 1024;
const steps = intFlag(SCRIPT, "steps", v.steps, 0) ?? 300;
const seed = intFlag(SCRIPT, "seed", v.seed, 0) ?? 1234;
const outDir = path.resolve(v.out ?? path.join(DEFAULT_PAIR_DIR, "draft-trimmed"));
const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(0);

const tf = await initTfjs("wasm");
console.log(`tfjs backend: ${tf.backend}`);
const targetDir = path.join(DEFAULT_PAIR_DIR, "target");
const draftDir = path.join(DEFAULT_PAIR_DIR, "draft");
const [targetBundle, draftBundle] = await Promise.all([loadBundle(targetDir), loadBundle(draftDir)]);
// The tokenizer files are copied byte for byte: identical files let the edge skip the vocabulary comparison.
const tokenizerJson = JSON.parse(await readFile(path.join(targetDir, "tokenizer.json"), "utf8")) as unknown;
const tokenizerConfig = JSON.parse(await readFile(path.join(targetDir, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
const tok = new Tokenizer(tokenizerJson as object, tokenizerConfig);
const encode = (text: string, bos = true): number[] => tok.encode(text, { add_special_tokens: bos }).ids;

// 1. The pair's training documents and split; token frequencies choose the subset.
const quotes = await loadSpanishCorpus({ verbose: true });
const parallel = await loadParallelCorpus(spanishSentences(quotes), { log: (s) => console.log(`[corpus] ${s}`) });
const { trainDocs, valQuotes, valDocs } = pairDocs(quotes, parallel, encode, { seed, seqLen: SEQ_LEN, ...PAIR_MIX });
const counts = new Float64Array(targetBundle.config.vocab_size);
for (const d of trainDocs) for (const id of d) counts[id]++;
const vocab = DraftVocabulary.byFrequency(counts, rows, [BOS_ID, EOS_ID, IM_START_ID, IM_END_ID]);
const coverage = { train: vocab.coverage(trainDocs.flat()), validation: vocab.coverage(valDocs.flat()) };
console.log(
  `[${secs()}s] vocabulary: ${rows} of ${vocab.targetVocabSize} ids + 1 fallback row; they cover ${(100 * coverage.train).toFixed(1)} % of training tokens, ${(100 * coverage.validation).toFixed(1)} % of validation tokens`,
);

// 2. Teacher (the committed target) and student (the committed draft, cut to the subset).
const teacher = TfLlama.fromWeights(llamaWeightsFromOnnx(targetBundle.onnx, archOfConfig(targetBundle.config)), "target");
const student = TfLlama.fromWeights(trimLlamaVocabulary(llamaWeightsFromOnnx(draftBundle.onnx, archOfConfig(draftBundle.config)), vocab.targetIds), "draft-trimmed");
const full = paramCount(archOfConfig(draftBundle.config));
console.log(`[${secs()}s] draft: ${full.toLocaleString("en-US")} params → trimmed ${student.paramCount().toLocaleString("en-US")} (${((100 * student.paramCount()) / full).toFixed(0)} %)`);
const view = trimmedStudentView(vocab);
const valBatches = evalBatches(valDocs, BATCH, SEQ_LEN, PAD_ID).map((b) => view.batch(b));
const before = evaluate(student, valBatches);

// 3. Distillation.
const run = await trainLlama(student, new BatchStream(trainDocs, BATCH, SEQ_LEN, PAD_ID, seed + 5), {
  steps,
  lr: LR,
  teacher,
  distill: DISTILL,
  studentView: view,
  logEvery: 20,
  onLog: (p) => console.log(`[${secs()}s] step ${p.step}/${p.steps} loss ${p.loss.toFixed(3)} lr ${p.lr.toExponential(2)} ETA ${p.etaSec.toFixed(0)}s`),
});
const after = evaluate(student, valBatches);
console.log(`[${secs()}s] validation loss over the trimmed rows: ${before.toFixed(3)} cut from the full draft → ${after.toFixed(3)} after ${steps} steps`);

// 4. Bundle, export check, agreement.
await rm(outDir, { recursive: true, force: true });
const manifest = await writeBundle({
  dir: outDir,
  id: BUNDLE_ID,
  version: "1",
  role: "draft",
  weights: student.toWeights(),
  tokenizerJson,
  tokenizerConfigJson: tokenizerConfig,
  configExtra: {
    alia_edge_fixture: "trimmed-vocabulary draft of the fixture pair",
    alia_edge_training: {
      corpus: "the pair's training split: Debian fortunes-es, its sentences translated by Apertium, quotes rewritten",
      initialised_from: draftBundle.manifest.id,
      distilled_from: targetBundle.manifest.id,
      distill_weight: DISTILL,
      seed,
      steps,
      batch: `${BATCH}x${SEQ_LEN}`,
      peak_lr: LR,
      final_train_loss: Number(run.finalLoss.toFixed(4)),
      validation_loss: Number(after.toFixed(4)),
    },
  },
  jsonFiles: { [DRAFT_VOCAB_FILE]: vocab.toFile({ source: `the ${rows} most frequent ids of the fixture pair's training tokens, special tokens first`, coverage: Number(coverage.train.toFixed(4)) }) },
});
const bytes = manifest.files.reduce((s, f) => s + f.size, 0);
const written = await loadBundle(outDir);
const onnxNode = await loadTargetModel(written, { threads: 2 });
const diff = await exportDiff(
  student,
  onnxNode,
  valDocs.slice(0, 4).map((d) => vocab.toDraft(d.slice(0, SEQ_LEN))),
);
await onnxNode.dispose();
if (!(diff <= EXPORT_TOLERANCE)) throw new Error(`ONNX export does not reproduce the tfjs model: max |Δlogit| ${diff} > ${EXPORT_TOLERANCE}`);

const target = await loadTargetModel(targetBundle, { threads: 2 });
const fullDraft = await loadDraftModel(draftBundle);
const trimmed = await loadDraftModel(written);
const prompts = agreementPrompts(valQuotes, encode);
const alphaFull = await measureGreedyAgreement(target, fullDraft, prompts, 32, [EOS_ID]);
const alphaTrimmed = await measureGreedyAgreement(target, trimmed, prompts, 32, [EOS_ID], vocab);
await Promise.all([target.dispose(), fullDraft.dispose(), trimmed.dispose()]);
teacher.dispose();
student.dispose();

console.log(`
summary
  vocabulary    ${rows} of ${vocab.targetVocabSize} ids + fallback; coverage ${(100 * coverage.train).toFixed(1)} % (train), ${(100 * coverage.validation).toFixed(1)} % (validation)
  params        ${full.toLocaleString("en-US")} → ${paramCount(archOfConfig(written.config)).toLocaleString("en-US")}; bundle ${(bytes / 1e6).toFixed(2)} MB
  loss          validation ${before.toFixed(3)} → ${after.toFixed(3)} (${steps} steps, distill ${DISTILL})
  export check  max |Δlogit| ${diff.toExponential(2)}
  greedy α      trimmed ${alphaTrimmed.alpha.toFixed(3)}, full draft ${alphaFull.alpha.toFixed(3)} (${prompts.length} prompts × ≤32 tokens, ${alphaTrimmed.positions} positions)
  wrote         ${path.relative(process.cwd(), outDir)} in ${secs()} s`);
