// Trains the DEFAULT fixture pair on Spanish text (Debian fortunes-es): a byte-fallback BPE tokenizer
// shared by both models, a small GQA target (kv_heads < heads, like ALIA-40b) and a smaller MHA draft
// (kv_heads = heads, like Salamandra-2b) distilled from the target's soft labels. Writes the bundles to
// fixtures/default/{target,draft}/, checks the exported ONNX against the tfjs model, and reports
// params, losses, sample generations and the greedy agreement α of the pair.
//
// Besides the quotes (plain text and ChatML exchanges) the pair learns copy-heavy tasks: translating the
// corpus's sentences into Catalan and Galician (their Apertium translations, in SalamandraTA's prompt
// format), copying sentences in that format, and rewriting a quote or sentence without the spelling slips
// put into it. Held-out sentences with Apertium's translations go to <out>/translation-heldout.tsv,
// held-out rewriting cases to rewrite-heldout.tsv; chrF against Apertium is reported (and, on the first
// sentences, every 200 steps of the target's training: the skill appears late, after ~800 steps).
//
// Usage: npm run fixtures:train -- [--steps N] [--draft-steps N] [--seed S] [--quick] [--continue DIR] [--lr X] [--out DIR] [--backend wasm|cpu]
//   --quick     tiny models and a few steps, written to .cache/fixtures-quick/ (smoke test, < 1 min)
//   --steps     target training steps (default 1400); the draft gets --draft-steps (default 700)
//   --seed      seeds initialisation, data order and the validation split (default 1234)
//   --continue  start both models from an earlier run's bundles in DIR and train the steps given more
//   --lr        peak learning rate of both models (default 3e-3)
// Same seed and steps → same weights, byte for byte (tfjs wasm runs single-threaded). The committed pair:
// a default run, then --continue with --steps 1000 --draft-steps 500 --lr 2e-3 (the stages are in
// config.json's alia_edge_training; the first stage's mix had no sentence rewrites yet).
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { CHATML_TEMPLATE } from "../src/common/models/bundle.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { measureGreedyAgreement } from "../fixtures/generate/agreement.ts";
import { EOS_ID, IM_END_ID, PAD_ID, trainBpe, toTokenizerJson, tokenizerConfigJson } from "../fixtures/generate/bpe.ts";
import { corpusStats, loadSpanishCorpus } from "../fixtures/generate/corpus.ts";
import { archOfConfig, llamaWeightsFromOnnx, paramCount, type LlamaArch } from "../fixtures/generate/llama-onnx.ts";
import { BatchStream, evalBatches, evaluate, initTfjs, TfLlama, trainLlama, type TrainProgress } from "../fixtures/generate/train-llama-tfjs.ts";
import { writeBundle } from "../fixtures/generate/write-bundle.ts";
import { chrF } from "../fixtures/generate/chrf.ts";
import { CHAT_INSTRUCTIONS, PAIR_MIX, agreementPrompts, pairDocs, rewriteHeldOut, rewritePrompt } from "../fixtures/generate/quote-docs.ts";
import { exportDiff } from "../fixtures/generate/export-check.ts";
import { TRANSLATION_DIRECTIONS, loadParallelCorpus, spanishSentences, type ParallelSentence, type TranslationDirection } from "../fixtures/generate/translation-corpus.ts";
import { translateHeldOut } from "../fixtures/generate/heldout.ts";
import { argmax } from "../src/common/sampling.ts";
import { translationPrompt } from "../src/translate/translator.ts";
import { choiceFlag, cliFail, intFlag, parseCli } from "./cli.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

// ---------------------------------------------------------------------------------------------
// Configuration.

interface RunConfig {
  vocabSize: number;
  target: Omit<LlamaArch, "vocabSize">;
  draft: Omit<LlamaArch, "vocabSize">;
  /** Window length and windows per batch. */
  seqLen: number;
  batchSize: number;
  targetSteps: number;
  draftSteps: number;
  targetLr: number;
  draftLr: number;
  /** Weight of the teacher's soft labels in the draft's loss (the rest is the hard next token). */
  distill: number;
  /** Sentences held out of the translation training (chrF against Apertium). */
  heldOutSentences: number;
  outDir: string;
}

const COMMON = { rmsNormEps: 1e-5, ropeTheta: 10000, maxPositions: 1024 } as const;

// Sized after measuring on 2 shared cores (tfjs wasm, one thread): the target trains at ~1.3 s per
// 32×64-token batch, the distilled draft (its own pass plus the teacher's forward) at ~0.9 s, so a
// default run takes ~40 minutes and the committed pair's second stage ~27.
const DEFAULT_CONFIG: RunConfig = {
  vocabSize: 2048,
  target: { hiddenSize: 128, intermediateSize: 384, numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 32, ...COMMON },
  draft: { hiddenSize: 96, intermediateSize: 192, numLayers: 2, numHeads: 3, numKvHeads: 3, headDim: 32, ...COMMON },
  seqLen: 64,
  batchSize: 32,
  targetSteps: 1400,
  draftSteps: 700,
  targetLr: 3e-3,
  draftLr: 3e-3,
  distill: 0.8,
  heldOutSentences: PAIR_MIX.heldOutSentences,
  outDir: path.join(REPO_ROOT, "fixtures", "default"),
};

const QUICK_CONFIG: RunConfig = {
  ...DEFAULT_CONFIG,
  vocabSize: 512,
  // The default pair's layout (GQA target, MHA draft), much narrower and shallower.
  target: { ...DEFAULT_CONFIG.target, hiddenSize: 32, intermediateSize: 64, numLayers: 2, headDim: 8 },
  draft: { ...DEFAULT_CONFIG.draft, hiddenSize: 16, intermediateSize: 32, numLayers: 1, numHeads: 2, numKvHeads: 2, headDim: 8 },
  batchSize: 8,
  targetSteps: 20,
  draftSteps: 20,
  heldOutSentences: 10,
  outDir: path.join(REPO_ROOT, ".cache", "fixtures-quick"),
};

const BUNDLE_IDS = { target: "alia-fixture-es-target", draft: "alia-fixture-es-draft" } as const;
const BUNDLE_VERSION = "1";
const FIXTURE_NOTE = "trained on fortunes-es (Debian)";
/** Largest tolerated |logit| difference between the tfjs model and its ONNX export. */
const EXPORT_TOLERANCE = 1e-3;

/** Prompts for the sample generations printed at the end. */
const SAMPLE_PROMPTS = ["La amistad es", "El hombre que", "No hay nada más", "La vida", "Quien bien te quiere"];

const USAGE = "usage: npm run fixtures:train -- [--steps N] [--draft-steps N] [--seed S] [--quick] [--continue DIR] [--lr X] [--out DIR] [--backend wasm|cpu]";

function readArgs(): { cfg: RunConfig; seed: number; backend: "wasm" | "cpu"; continueFrom?: string } {
  const script = "train-default-pair";
  const { values: v } = parseCli(script, USAGE, {
    options: {
      steps: { type: "string" },
      "draft-steps": { type: "string" },
      seed: { type: "string" },
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      backend: { type: "string" },
      continue: { type: "string" },
      lr: { type: "string" },
    },
  });
  const cfg = { ...(v.quick ? QUICK_CONFIG : DEFAULT_CONFIG) };
  cfg.targetSteps = intFlag(script, "steps", v.steps, 0) ?? cfg.targetSteps;
  cfg.draftSteps = intFlag(script, "draft-steps", v["draft-steps"], 0) ?? cfg.draftSteps;
  if (v.out) cfg.outDir = path.resolve(v.out);
  if (v.lr !== undefined) {
    const lr = Number(v.lr);
    if (!(lr > 0 && lr < 1)) cliFail(script, `--lr must be a learning rate in (0, 1), got ${JSON.stringify(v.lr)}`);
    cfg.targetLr = cfg.draftLr = lr;
  }
  const backend = choiceFlag(script, "backend", v.backend, ["wasm", "cpu"]) ?? "wasm";
  return { cfg, seed: intFlag(script, "seed", v.seed, 0) ?? 1234, backend, continueFrom: v.continue && path.resolve(v.continue) };
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const fmtTime = (s: number): string => {
  const m = Math.floor(s / 60);
  return m ? `${m}m${String(Math.round(s - 60 * m)).padStart(2, "0")}s` : `${s.toFixed(1)}s`;
};
const fmtMB = (n: number): string => `${(n / 1e6).toFixed(2)} MB`;

function progressLogger(label: string): (p: TrainProgress) => void {
  return (p) =>
    console.log(
      `[${label}] step ${String(p.step).padStart(4)}/${p.steps}  loss ${p.loss.toFixed(3)}  lr ${p.lr.toExponential(2)}  ` +
        `|g| ${p.gradNorm.toFixed(2)}  ${p.tokensPerSec.toFixed(0)} tok/s  epoch ${p.epoch}  ${fmtTime(p.elapsedSec)} elapsed  ETA ${fmtTime(p.etaSec)}`,
    );
}

// ---------------------------------------------------------------------------------------------
// Main.

async function main(): Promise<void> {
  const { cfg, seed, backend, continueFrom } = readArgs();
  const tStart = performance.now();
  const tfInfo = await initTfjs(backend);
  console.log(`tfjs backend: ${tfInfo.backend}${tfInfo.fallbackReason ? ` (${tfInfo.fallbackReason})` : ""}`);

  // 1. Corpus and tokenizer.
  const quotes = await loadSpanishCorpus({ verbose: true });
  const cs = corpusStats(quotes);
  console.log(`corpus: ${cs.quotes} quotes, ${cs.chars} chars (Debian fortunes-es)`);
  const sentences = spanishSentences(quotes);
  const parallel = await loadParallelCorpus(sentences, { log: (s) => console.log(`[corpus] ${s}`) });
  console.log(`parallel: ${sentences.length} sentences × ${TRANSLATION_DIRECTIONS.map((d) => `${d.source}→${d.target}`).join(", ")} (Apertium)`);
  let t = performance.now();
  // The tokenizer learns the target languages too, so that their words are not spelled out byte by byte.
  const bpe = trainBpe([...quotes, ...[...parallel.values()].flatMap((ps) => ps.map((p) => p.target))], { vocabSize: cfg.vocabSize });
  const tokenizerJson = toTokenizerJson(bpe);
  const tokenizerConfig = tokenizerConfigJson(CHATML_TEMPLATE);
  // Training ids come from the same library and tokenizer.json the runtime loads.
  const tok = new Tokenizer(tokenizerJson, tokenizerConfig);
  const encode = (text: string, bos = true): number[] => tok.encode(text, { add_special_tokens: bos }).ids;
  const decode = (ids: number[]) => tok.decode(ids, { skip_special_tokens: true });
  console.log(`tokenizer: BPE vocab ${cfg.vocabSize}, alphabet ${bpe.alphabet.length} chars, byte fallback for ${bpe.stats.byteFallbackChars} rare chars, trained in ${fmtTime((performance.now() - t) / 1000)}`);

  // 2. Split and encode: quotes (plain and ChatML), translations, rewrites.
  t = performance.now();
  const docs = pairDocs(quotes, parallel, encode, { seed, seqLen: cfg.seqLen, ...PAIR_MIX, heldOutSentences: cfg.heldOutSentences });
  const { trainDocs, valQuotes, valDocs, plainTokens, plainChars, heldOut, counts } = docs;
  console.log(`tasks: ${counts.quotes} quotes, ${counts.translations} translations, ${counts.copies} copies, ${counts.rewrites} rewrites (${counts.tooLong} longer than a window left out)`);
  const trainTokens = trainDocs.reduce((s, d) => s + Math.min(d.length, cfg.seqLen), 0);
  const truncated = trainDocs.filter((d) => d.length > cfg.seqLen).length;
  console.log(
    `data: ${trainDocs.length} train docs (${trainTokens} tokens in ${cfg.seqLen}-token windows; ${truncated} docs cut to the window), ` +
      `${valDocs.length} validation; ${(plainTokens / plainChars).toFixed(3)} tokens/char; encoded in ${fmtTime((performance.now() - t) / 1000)}`,
  );

  const targetArch: LlamaArch = { vocabSize: cfg.vocabSize, ...cfg.target };
  const draftArch: LlamaArch = { vocabSize: cfg.vocabSize, ...cfg.draft };
  console.log(`target: ${describeArch(targetArch)}`);
  console.log(`draft:  ${describeArch(draftArch)}`);
  const valBatches = evalBatches(valDocs, cfg.batchSize, cfg.seqLen, PAD_ID);

  // 3. Target.
  // Continuing: both models start from an earlier run's bundles (same seed and corpus, so the same
  // tokenizer — checked) and train --steps / --draft-steps more.
  const earlier = continueFrom ? await earlierRun(continueFrom, tokenizerJson) : undefined;
  const target = earlier ? TfLlama.fromWeights(earlier.target.weights, "target") : TfLlama.init(targetArch, seed, "target");
  const targetData = new BatchStream(trainDocs, cfg.batchSize, cfg.seqLen, PAD_ID, seed + 1 + (earlier?.target.training.steps ?? 0)); // a continued run sees another order
  const fill = trainTokens / (targetData.windowsPerEpoch * cfg.seqLen);
  console.log(
    `packing: ${targetData.windowsPerEpoch} windows/epoch (${(100 * fill).toFixed(1)}% of slots hold tokens), ` + `${Math.floor(targetData.windowsPerEpoch / cfg.batchSize)} steps/epoch of ${cfg.batchSize}×${cfg.seqLen}`,
  );
  const targetRun = await trainLlama(target, targetData, {
    steps: cfg.targetSteps,
    lr: cfg.targetLr,
    logEvery: 10,
    onLog: (p) => {
      progressLogger("target")(p);
      if (p.step % 200 === 0 || p.step === p.steps) console.log(`[target] step ${p.step}: chrF ${probeChrF(target, heldOut, encode, decode).toFixed(1)} on the first held-out sentences (es→ca)`);
    },
  });
  const targetVal = evaluate(target, valBatches);
  console.log(`target: final train loss ${targetRun.finalLoss.toFixed(3)}, validation loss ${targetVal.toFixed(3)} (${fmtTime(targetRun.seconds)})`);

  // 4. Draft, distilled from the target.
  const draft = earlier ? TfLlama.fromWeights(earlier.draft.weights, "draft") : TfLlama.init(draftArch, seed + 2, "draft");
  const draftData = new BatchStream(trainDocs, cfg.batchSize, cfg.seqLen, PAD_ID, seed + 3 + (earlier?.draft.training.steps ?? 0));
  const draftRun = await trainLlama(draft, draftData, {
    steps: cfg.draftSteps,
    lr: cfg.draftLr,
    teacher: target,
    distill: cfg.distill,
    logEvery: 10,
    onLog: progressLogger("draft"),
  });
  const draftVal = evaluate(draft, valBatches);
  console.log(`draft: final train loss ${draftRun.finalLoss.toFixed(3)} (mixed: ${cfg.distill} soft + ${(1 - cfg.distill).toFixed(1)} hard), validation loss ${draftVal.toFixed(3)} (${fmtTime(draftRun.seconds)})`);

  // 5. Bundles.
  const training = (run: typeof targetRun, val: number, steps: number, lr: number, extra: Record<string, unknown> = {}) => ({
    corpus: "Debian fortunes-es; its sentences translated es→ca and es→gl by Apertium; quotes with spelling slips put right",
    tokenizer: `byte-fallback BPE, ${cfg.vocabSize} tokens`,
    seed,
    steps,
    batch: `${cfg.batchSize}x${cfg.seqLen}`,
    peak_lr: lr,
    final_train_loss: Number(run.finalLoss.toFixed(4)),
    validation_loss: Number(val.toFixed(4)),
    ...extra,
  });
  const dirs = { target: path.join(cfg.outDir, "target"), draft: path.join(cfg.outDir, "draft") };
  const targetWeights = target.toWeights();
  const draftWeights = draft.toWeights();
  for (const d of Object.values(dirs)) await rm(d, { recursive: true, force: true });
  const manifests = {
    target: await writeBundle({
      dir: dirs.target,
      id: BUNDLE_IDS.target,
      version: BUNDLE_VERSION,
      role: "target",
      weights: targetWeights,
      tokenizerJson,
      tokenizerConfigJson: tokenizerConfig,
      configExtra: { alia_edge_fixture: FIXTURE_NOTE, alia_edge_training: training(targetRun, targetVal, cfg.targetSteps, cfg.targetLr, stagesOf(earlier?.target.training, cfg.targetSteps, cfg.targetLr)) },
    }),
    draft: await writeBundle({
      dir: dirs.draft,
      id: BUNDLE_IDS.draft,
      version: BUNDLE_VERSION,
      role: "draft",
      weights: draftWeights,
      tokenizerJson,
      tokenizerConfigJson: tokenizerConfig,
      configExtra: {
        alia_edge_fixture: FIXTURE_NOTE,
        alia_edge_training: training(draftRun, draftVal, cfg.draftSteps, cfg.draftLr, {
          ...stagesOf(earlier?.draft.training, cfg.draftSteps, cfg.draftLr),
          distilled_from: BUNDLE_IDS.target,
          distill_weight: cfg.distill,
        }),
      },
    }),
  };
  const sizes = {
    target: manifests.target.files.reduce((s, f) => s + f.size, 0),
    draft: manifests.draft.files.reduce((s, f) => s + f.size, 0),
  };
  console.log(`wrote ${path.relative(REPO_ROOT, dirs.target)} (${fmtMB(sizes.target)}) and ${path.relative(REPO_ROOT, dirs.draft)} (${fmtMB(sizes.draft)})`);

  // 6. Export check: the ONNX graphs, loaded like the runtime does, reproduce the tfjs logits.
  const targetBundle = await loadBundle(dirs.target);
  const draftBundle = await loadBundle(dirs.draft);
  const targetOnnx = await loadTargetModel(targetBundle, { threads: 2 });
  const draftOnnxNode = await loadTargetModel(draftBundle, { threads: 2 });
  const checkDocs = valDocs.slice(0, 4).map((d) => d.slice(0, Math.min(d.length, cfg.seqLen)));
  const maxDiff = {
    target: await exportDiff(target, targetOnnx, checkDocs),
    draft: await exportDiff(draft, draftOnnxNode, checkDocs),
  };
  console.log(`export check (tfjs vs ONNX via loadTargetModel, ${checkDocs.length} windows, prefill + KV-cached steps): max |Δlogit| target ${maxDiff.target.toExponential(2)}, draft ${maxDiff.draft.toExponential(2)}`);
  if (!(maxDiff.target <= EXPORT_TOLERANCE && maxDiff.draft <= EXPORT_TOLERANCE))
    throw new Error(`ONNX export does not reproduce the tfjs model: max |Δlogit| target ${maxDiff.target}, draft ${maxDiff.draft} > ${EXPORT_TOLERANCE}`);
  await draftOnnxNode.dispose();

  // 7. Samples and α, with the draft on onnxruntime-web (as the edge runs it) and the target on -node.
  const draftOnnx = await loadDraftModel(draftBundle);
  console.log("\nsample greedy continuations (target | draft):");
  for (const p of SAMPLE_PROMPTS) {
    const ids = encode(p);
    const tOut = await targetOnnx.greedy(ids, 40, [EOS_ID]);
    const dOut = await draftOnnx.greedy(ids, 40, [EOS_ID]);
    console.log(`  target: ${JSON.stringify(decode([...ids, ...tOut]))}`);
    console.log(`  draft:  ${JSON.stringify(decode([...ids, ...dOut]))}`);
  }
  // Translation of the held-out sentences, against Apertium's (and copying the Spanish unchanged, the
  // floor a translator must clear); written beside the bundles for tests and benchmarks.
  const heldOutRows: string[] = [];
  const chrf: Record<string, { model: number; copy: number }> = {};
  for (const [d, held] of heldOut) {
    const cases = held.map((p) => ({ source: d.source, target: d.target, text: p.source, reference: p.target }));
    const score = await translateHeldOut(targetOnnx, encode, decode, cases);
    heldOutRows.push(...cases.map((c) => `${c.source}\t${c.target}\t${c.text}\t${c.reference}`));
    chrf[`${d.source}-${d.target}`] = { model: score.chrf, copy: score.chrfCopying };
    for (let i = 0; i < 3; i++) console.log(`  ${d.source}→${d.target} (target): ${JSON.stringify(cases[i].text)} → ${JSON.stringify(score.translations[i])} (Apertium: ${JSON.stringify(cases[i].reference)})`);
  }
  await writeFile(path.join(cfg.outDir, "translation-heldout.tsv"), `${heldOutRows.join("\n")}\n`);
  // Rewriting: short validation quotes with slips put in; how many come back exactly as written.
  const rewrites = rewriteHeldOut(valQuotes, seed);
  let rewritesExact = 0;
  for (const [i, r] of rewrites.entries()) {
    const out = decode(await targetOnnx.greedy(encode(rewritePrompt(r.slipped)), 48, [EOS_ID, IM_END_ID])).trim();
    if (i === 0) console.log(`  rewrite (target): ${JSON.stringify(r.slipped)} → ${JSON.stringify(out)}`);
    if (out === r.original) rewritesExact++;
  }
  await writeFile(path.join(cfg.outDir, "rewrite-heldout.tsv"), rewrites.map((r) => `${r.slipped}\t${r.original}\n`).join(""));
  const chatPrompt = encode(`<|im_start|>user\n${CHAT_INSTRUCTIONS[0]}<|im_end|>\n<|im_start|>assistant\n`);
  const chatOut = await targetOnnx.greedy(chatPrompt, 48, [EOS_ID, IM_END_ID]);
  console.log(`  chat (target): ${JSON.stringify(decode(chatOut))}`);

  const alphaPrompts = agreementPrompts(valQuotes, encode);
  const alphaEos = await measureGreedyAgreement(targetOnnx, draftOnnx, alphaPrompts, 32, [EOS_ID]);
  const alphaRaw = await measureGreedyAgreement(targetOnnx, draftOnnx, alphaPrompts, 32);
  await targetOnnx.dispose();
  await draftOnnx.dispose();

  const totalSec = (performance.now() - tStart) / 1000;
  console.log(`
summary
  tokenizer      byte-fallback BPE, vocab ${cfg.vocabSize}, ${(plainTokens / plainChars).toFixed(3)} tokens/char on the corpus
  target         ${describeArch(targetArch)}
  draft          ${describeArch(draftArch)}
  bundle sizes   target ${fmtMB(sizes.target)}, draft ${fmtMB(sizes.draft)}, total ${fmtMB(sizes.target + sizes.draft)}
  target loss    train ${targetRun.finalLoss.toFixed(3)}, validation ${targetVal.toFixed(3)}  (${cfg.targetSteps} steps, ${fmtTime(targetRun.seconds)})
  draft loss     train ${draftRun.finalLoss.toFixed(3)} (distill ${cfg.distill}), validation ${draftVal.toFixed(3)}  (${cfg.draftSteps} steps, ${fmtTime(draftRun.seconds)})
  export check   max |Δlogit| target ${maxDiff.target.toExponential(2)}, draft ${maxDiff.draft.toExponential(2)} (tolerance ${EXPORT_TOLERANCE})
  chrF (target)  ${Object.entries(chrf)
    .map(([k, v]) => `${k} ${v.model.toFixed(1)} (copying the source: ${v.copy.toFixed(1)})`)
    .join(", ")} against Apertium on ${cfg.heldOutSentences} held-out sentences (translation-heldout.tsv)
  rewriting      ${rewritesExact} of ${rewrites.length} held-out quotes put right exactly (rewrite-heldout.tsv)
  greedy α       ${alphaEos.alpha.toFixed(3)} over ${alphaPrompts.length} prompts × ≤32 tokens, stopping at EOS (${alphaEos.positions} positions)
                 ${alphaRaw.alpha.toFixed(3)} over ${alphaPrompts.length} prompts × 32 tokens without stopping (${alphaRaw.positions} positions)
  backend        tfjs ${tfInfo.backend}${tfInfo.fallbackReason ? " (fallback)" : ""}, seed ${seed}
  total time     ${fmtTime(totalSec)}`);
  target.dispose();
  draft.dispose();
}

/** chrF of the tfjs model's greedy es→ca translations of the first held-out sentences (a progress probe, synchronous like the training loop's log; no KV cache, so few and short). */
function probeChrF(model: TfLlama, heldOut: ReadonlyMap<TranslationDirection, readonly ParallelSentence[]>, encode: (t: string) => number[], decode: (ids: number[]) => string, n = 12): number {
  const [d, held] = [...heldOut][0];
  const hyps = held.slice(0, n).map((p) => {
    const ids = encode(translationPrompt(d.source, d.target, p.source));
    const start = ids.length;
    while (ids.length < 64) {
      const logits = model.logitsOf(ids);
      const best = argmax(logits.subarray(logits.length - model.arch.vocabSize));
      if (best === EOS_ID) break;
      ids.push(best);
      if (decode(ids.slice(start)).includes("\n")) break;
    }
    return decode(ids.slice(start)).split("\n")[0].trim();
  });
  return chrF(
    hyps,
    held.slice(0, n).map((p) => p.target),
  );
}

interface EarlierModel {
  weights: ReturnType<typeof llamaWeightsFromOnnx>;
  training: { steps: number; peak_lr: number; stages?: { steps: number; peak_lr: number }[] };
}

/** The target and draft of an earlier run, refused when its tokenizer is not the one this run trained. */
async function earlierRun(dir: string, tokenizerJson: unknown): Promise<{ target: EarlierModel; draft: EarlierModel }> {
  const load = async (role: "target" | "draft"): Promise<EarlierModel> => {
    const b = await loadBundle(path.join(dir, role));
    if (sortedJson(b.tokenizerJson) !== sortedJson(tokenizerJson)) throw new Error(`--continue ${dir}: its ${role}'s tokenizer is not this run's (another corpus or seed?)`);
    return { weights: llamaWeightsFromOnnx(b.onnx, archOfConfig(b.config)), training: b.config.alia_edge_training as EarlierModel["training"] };
  };
  return { target: await load("target"), draft: await load("draft") };
}

/** JSON with every object's keys in order (the written files order them differently from the objects they came from). */
function sortedJson(x: unknown): string {
  return JSON.stringify(x, (_, v) => (v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v));
}

/** Training stages (steps and peak lr of each run) when this run continued an earlier one; the total steps with them. */
function stagesOf(earlier: EarlierModel["training"] | undefined, steps: number, lr: number): Record<string, unknown> {
  if (!earlier) return {};
  const stages = [...(earlier.stages ?? [{ steps: earlier.steps, peak_lr: earlier.peak_lr }]), { steps, peak_lr: lr }];
  return { stages, steps: stages.reduce((n, st) => n + st.steps, 0) };
}

function describeArch(a: LlamaArch): string {
  return `${paramCount(a).toLocaleString("en-US")} params: vocab ${a.vocabSize}, hidden ${a.hiddenSize}, ${a.numLayers} layers, ${a.numHeads} heads / ${a.numKvHeads} KV heads × ${a.headDim}, FFN ${a.intermediateSize}`;
}

await main();
