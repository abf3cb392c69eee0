// Trains the COPY fixture target: the committed default target fine-tuned to rewrite whole passages (two to
// five quotes, up to 110 tokens) without the spelling slips put into them — document editing, where the answer
// is the prompt's text with small edits, the workload a suffix proposer is made for. The default target
// copies loosely (it drops and changes words), so suffix matches break within a few tokens; this one is
// trained on long windows until it copies. A quarter of each batch is the default pair's own mix, so the
// target keeps its other skills. Same tokenizer as the default pair (its files copied byte for byte), so
// the default draft and the suffix proposer drive it unchanged.
// Writes fixtures/copy/target/ and fixtures/copy/rewrite-heldout.tsv (held-out passages of
// validation quotes, slipped and original) and reports, before and after, how many held-out passages the
// target rewrites exactly and how long its answers run in agreement with the original text.
//
// Usage: npm run fixtures:train-copy -- [--steps N] [--seed S] [--lr X] [--from DIR] [--out DIR] [--quick]
//   --steps  fine-tuning steps (default 700; ~1.5 s each on one core)
//   --from   the target bundle to fine-tune (default: the default pair's target); fixtures/copy/target
//            continues the committed copy fixture's training
//   --quick  20 steps written to .cache/fixtures-copy-quick/ (smoke test)
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { loadTargetModel, type TargetModel } from "../gpu-backend/target-model.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { EOS_ID, IM_END_ID, PAD_ID } from "../fixtures/generate/bpe.ts";
import { loadSpanishCorpus } from "../fixtures/generate/corpus.ts";
import { exportDiff } from "../fixtures/generate/export-check.ts";
import { archOfConfig, llamaWeightsFromOnnx } from "../fixtures/generate/llama-onnx.ts";
import { PAIR_MIX, pairDocs, rewritePrompt } from "../fixtures/generate/quote-docs.ts";
import { passageCases, type PassageCase } from "../fixtures/generate/passages.ts";
import { seededRandom } from "../fixtures/generate/random-weights.ts";
import { DEFAULT_PAIR_DIR, readTokenizerFiles } from "../fixtures/generate/synthetic-bundles.ts";
import { loadParallelCorpus, spanishSentences } from "../fixtures/generate/translation-corpus.ts";
import { BatchStream, evalBatches, evaluate, initTfjs, TfLlama, trainLlama } from "../fixtures/generate/train-llama-tfjs.ts";
import { writeBundle } from "../fixtures/generate/write-bundle.ts";
import { intFlag, parseCli } from "./cli.ts";

const SCRIPT = "train-copy-target";
const USAGE = "usage: npm run fixtures:train-copy -- [--steps N] [--seed S] [--lr X] [--from DIR] [--out DIR] [--quick]";
const BUNDLE_ID = "alia-fixture-es-copy-target";
/** Windows long enough for a 110-token passage asked and answered. */
const SEQ_LEN = 256;
const BATCH = 8;
/** Share of the default pair's own documents among the training documents. */
const PAIR_SHARE = 0.25;
const EXPORT_TOLERANCE = 1e-3;
const HELD_OUT = 24;

const { values: v } = parseCli(SCRIPT, USAGE, {
  options: { steps: { type: "string" }, seed: { type: "string" }, lr: { type: "string" }, from: { type: "string" }, out: { type: "string" }, quick: { type: "boolean", default: false } },
});
const steps = intFlag(SCRIPT, "steps", v.steps, 0) ?? (v.quick ? 20 : 700);
const seed = intFlag(SCRIPT, "seed", v.seed, 0) ?? 1234;
const lr = v.lr === undefined ? 1e-3 : Number(v.lr);
if (!(lr > 0 && lr < 1)) throw new Error(`${SCRIPT}: --lr must be in (0, 1), got ${v.lr}`);
const repoRoot = path.resolve(DEFAULT_PAIR_DIR, "../..");
const outDir = path.resolve(v.out ?? (v.quick ? path.join(repoRoot, ".cache", "fixtures-copy-quick") : path.join(repoRoot, "fixtures", "copy")));
const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(0);

const tf = await initTfjs("wasm");
console.log(`tfjs backend: ${tf.backend}`);
const targetDir = path.join(DEFAULT_PAIR_DIR, "target");
const fromDir = v.from ? path.resolve(v.from) : targetDir;
// Loaded before the output folder is replaced: --from may be the bundle being rewritten.
const targetBundle = await loadBundle(fromDir);
// The tokenizer files are copied as they are: the copy target shares the default pair's tokenizer.
const { tokenizerJson, tokenizerConfigJson: tokenizerConfig } = await readTokenizerFiles(targetDir);
const tok = new Tokenizer(tokenizerJson, tokenizerConfig);
const encode = (text: string, bos = true): number[] => tok.encode(text, { add_special_tokens: bos }).ids;
const decode = (ids: number[]) => tok.decode(ids, { skip_special_tokens: true });
const countTokens = (text: string) => encode(text, false).length;

// 1. Documents: passages of training quotes rewritten, plus a share of the pair's own mix (same split).
const quotes = await loadSpanishCorpus({ verbose: true });
const parallel = await loadParallelCorpus(spanishSentences(quotes), { log: (s) => console.log(`[corpus] ${s}`) });
const pair = pairDocs(quotes, parallel, encode, { seed, seqLen: 64, ...PAIR_MIX });
const rand = seededRandom(seed ^ 0xc0);
const docOf = (c: PassageCase) => [...encode(rewritePrompt(c.slipped)), ...encode(c.original, false), IM_END_ID, EOS_ID];
const passages = passageCases(pair.trainQuotes, countTokens, rand, Number.POSITIVE_INFINITY).map(docOf);
const ownMix = pair.trainDocs.filter(() => rand() < (PAIR_SHARE * passages.length) / ((1 - PAIR_SHARE) * pair.trainDocs.length));
const trainDocs = [...passages, ...ownMix];
const heldOut = passageCases(pair.valQuotes, countTokens, seededRandom(seed ^ 0x11), HELD_OUT);
const valDocs = heldOut.map(docOf);
const heldTokens = heldOut.map((c) => countTokens(c.original));
console.log(
  `[${secs()}s] documents: ${passages.length} passage rewrites, ${ownMix.length} of the pair's own; ${heldOut.length} held-out passages of validation quotes (${Math.min(...heldTokens)}–${Math.max(...heldTokens)} tokens)`,
);

// 2. Fine-tuning.
const model = TfLlama.fromWeights(llamaWeightsFromOnnx(targetBundle.onnx, archOfConfig(targetBundle.config)), "copy-target");
const valBatches = evalBatches(valDocs, BATCH, SEQ_LEN, PAD_ID);
const before = { loss: evaluate(model, valBatches), ...(await rewriteScore(await loadTargetModel(targetBundle, { threads: 2 }), heldOut)) };
console.log(`[${secs()}s] before: validation loss ${before.loss.toFixed(3)}; ${describeScore(before)}`);
const run = await trainLlama(model, new BatchStream(trainDocs, BATCH, SEQ_LEN, PAD_ID, seed + 7), {
  steps,
  lr,
  logEvery: 10,
  onLog: (p) => console.log(`[${secs()}s] step ${p.step}/${p.steps} loss ${p.loss.toFixed(3)} lr ${p.lr.toExponential(2)} epoch ${p.epoch} ETA ${p.etaSec.toFixed(0)}s`),
});
const afterLoss = evaluate(model, valBatches);

// 3. Bundle, export check, held-out rewrites.
await rm(outDir, { recursive: true, force: true });
await writeBundle({
  dir: path.join(outDir, "target"),
  id: BUNDLE_ID,
  version: "1",
  role: "target",
  weights: model.toWeights(),
  tokenizerJson,
  tokenizerConfigJson: tokenizerConfig,
  configExtra: {
    alia_edge_fixture: "the default fixture target fine-tuned to rewrite passages (copy-heavy benchmarks)",
    alia_edge_training: {
      corpus: `passages of 2–5 Debian fortunes-es quotes with spelling slips, put right; ${PAIR_SHARE * 100} % the default pair's own documents`,
      initialised_from: targetBundle.manifest.id,
      // Continued training: the steps the bundle it started from had already had.
      ...(typeof targetBundle.config.alia_edge_training === "object" ? { earlier_steps: (targetBundle.config.alia_edge_training as { steps?: number }).steps } : {}),
      seed,
      steps,
      batch: `${BATCH}x${SEQ_LEN}`,
      peak_lr: lr,
      final_train_loss: Number(run.finalLoss.toFixed(4)),
      validation_loss: Number(afterLoss.toFixed(4)),
    },
  },
});
const written = await loadBundle(path.join(outDir, "target"));
const onnx = await loadTargetModel(written, { threads: 2 });
const diff = await exportDiff(model, onnx, valDocs.slice(0, 4));
if (!(diff <= EXPORT_TOLERANCE)) throw new Error(`ONNX export does not reproduce the tfjs model: max |Δlogit| ${diff} > ${EXPORT_TOLERANCE}`);
const after = { loss: afterLoss, ...(await rewriteScore(onnx, heldOut)) };
await writeFile(path.join(outDir, "rewrite-heldout.tsv"), heldOut.map((c) => `${c.slipped}\t${c.original}\n`).join(""));
model.dispose();

console.log(`
summary
  fine-tuning   ${steps} steps of ${BATCH}×${SEQ_LEN}, peak lr ${lr}, final train loss ${run.finalLoss.toFixed(3)} (${run.seconds.toFixed(0)} s)
  validation    loss ${before.loss.toFixed(3)} → ${after.loss.toFixed(3)} on the held-out passages
  before        ${describeScore(before)}
  after         ${describeScore(after)}
  export check  max |Δlogit| ${diff.toExponential(2)}
  example       ${JSON.stringify(heldOut[0].slipped)} → ${JSON.stringify(after.first)}
  wrote         ${path.relative(process.cwd(), outDir)} in ${secs()} s`);

/** Greedy rewrites of the held-out passages: exact answers, and the tokens each answer shares with the original before the first difference. */
async function rewriteScore(target: TargetModel, cases: readonly PassageCase[]): Promise<{ exact: number; agreeing: number; tokens: number; first: string }> {
  let exact = 0;
  let agreeing = 0;
  let tokens = 0;
  let first = "";
  for (const [i, c] of cases.entries()) {
    const want = encode(c.original, false);
    const got = await target.greedy(encode(rewritePrompt(c.slipped)), want.length + 8, [EOS_ID, IM_END_ID]);
    const text = decode(got).trim();
    if (i === 0) first = text;
    if (text === c.original) exact++;
    let k = 0;
    while (k < want.length && got[k] === want[k]) k++;
    agreeing += k;
    tokens += want.length;
  }
  await target.dispose();
  return { exact, agreeing, tokens, first };
}

function describeScore(s: { exact: number; agreeing: number; tokens: number }): string {
  return `${s.exact} of ${HELD_OUT} held-out passages rewritten exactly; answers agree with the original for ${((100 * s.agreeing) / s.tokens).toFixed(1)} % of its tokens before the first difference`;
}
