// Loads what the edge serves from a target bundle and, unless it drafts without a model, a draft bundle —
// the same code on Node (local folders) and in Workers (R2): manifests, configs and tokenizers of both, the
// check that the two speak the same token ids (a mismatched pair is refused; a trimmed draft's rows map to
// the target's ids through its draft_vocab.json), the draft model, and a
// one-step smoke run. The target's weights are never read here: the edge only needs its facts (id, EOS,
// context, tokenizer, chat template). The draft model's runtime comes in, so that an edge without one
// does not carry onnxruntime.
import { ModelConfigSchema, TokenizerConfigSchema, bundleLabel, externalDataFiles, parseJsonFile, type Manifest, type ModelConfig } from "../common/models/bundle.ts";
import type { CausalLM } from "../common/models/causal-lm.ts";
import { DRAFT_VOCAB_FILE, DraftVocabulary, DraftVocabularyFileSchema } from "../common/models/draft-vocabulary.ts";
import { TextTokenizer, TokenizerMismatchError, assertTokenizerPair } from "../common/models/tokenizer.ts";
import type { BundleReader } from "./bundle-reader.ts";
import { servedModel, type ServedModel } from "./served-model.ts";

const ONNX_FILE = "onnx/model.onnx";
const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"] as const;
/** The only files of the target bundle the edge may read (a store can fetch just these). */
export const TARGET_FACTS: readonly string[] = ["config.json", ...TOKENIZER_FILES];

/** Reads a bundle's config.json and tokenizer files (each checked against its manifest). */
async function readFacts(reader: BundleReader, manifest: Manifest, withTokenizer: boolean) {
  const where = (f: string) => `bundle ${bundleLabel(manifest)} (${reader.location}): ${f}`;
  const [config, tokenizerJson, tokenizerConfig] = await Promise.all([
    reader.read("config.json").then((b) => parseJsonFile(ModelConfigSchema, b, where("config.json"))),
    withTokenizer ? reader.read("tokenizer.json").then((b) => JSON.parse(new TextDecoder().decode(b)) as unknown) : undefined,
    withTokenizer ? reader.read("tokenizer_config.json").then((b) => parseJsonFile(TokenizerConfigSchema, b, where("tokenizer_config.json"))) : undefined,
  ]);
  return { manifest, config, tokenizerJson, tokenizerConfig };
}

/** Both manifests list byte-identical tokenizer files: the ids are the same without comparing vocabularies. */
function sameTokenizerFiles(a: Manifest, b: Manifest): boolean {
  return TOKENIZER_FILES.every((f) => {
    const x = a.files.find((e) => e.path === f);
    const y = b.files.find((e) => e.path === f);
    return !!x && !!y && x.sha256 === y.sha256 && x.size === y.size;
  });
}

export interface ModelPair {
  served: ServedModel;
  /** Absent when the edge drafts without a model. */
  draftModel?: CausalLM;
}

/**
 * A draft bundle's trimmed vocabulary (draft_vocab.json, when its manifest lists one), checked against
 * both models: its ids are the target's, its rows the draft's.
 */
async function readDraftVocabulary(reader: BundleReader, dm: Manifest, draftConfig: ModelConfig, targetConfig: ModelConfig): Promise<DraftVocabulary | undefined> {
  if (!dm.files.some((f) => f.path === DRAFT_VOCAB_FILE)) return undefined;
  const where = `bundle ${bundleLabel(dm)} (${reader.location}): ${DRAFT_VOCAB_FILE}`;
  const file = parseJsonFile(DraftVocabularyFileSchema, await reader.read(DRAFT_VOCAB_FILE), where);
  let v: DraftVocabulary;
  try {
    v = DraftVocabulary.fromFile(file);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  if (v.targetVocabSize !== targetConfig.vocab_size) throw new TokenizerMismatchError(`${where}: made for a target of ${v.targetVocabSize} tokens, the target has ${targetConfig.vocab_size}`);
  if (v.size !== draftConfig.vocab_size) throw new Error(`${where}: ${v.targetIds.length} ids and a fallback row need a model of ${v.size} rows, config.json says vocab_size ${draftConfig.vocab_size}`);
  return v;
}

/** The draft bundle and how to load its model (the caller's runtime: onnxruntime-web, draft-model.ts). */
export interface DraftSource {
  reader: BundleReader;
  load(bundle: { onnx: Uint8Array; config: ModelConfig; externalData: { path: string; data: Uint8Array }[] }): Promise<CausalLM>;
}

/** The target's facts, and the draft model when `draft` is given (suffix drafting needs none). */
export async function loadModelPair(target: BundleReader, draft?: DraftSource): Promise<ModelPair> {
  const tm = await target.manifest();
  if (tm.role === "draft") throw new Error(`${target.location}: ${bundleLabel(tm)} is a draft bundle, not a target`);
  if (!draft) {
    const t = await readFacts(target, tm, true);
    return { served: servedModel({ target: t, tokenizer: new TextTokenizer(t.tokenizerJson, t.tokenizerConfig!) }) };
  }
  const dm = await draft.reader.manifest();
  if (dm.role === "target") throw new Error(`${draft.reader.location}: ${bundleLabel(dm)} is a target bundle, not a draft`);
  // Identical tokenizer files need reading once; a Worker then holds one tokenizer, not two.
  const identical = sameTokenizerFiles(dm, tm);
  const [d, t] = await Promise.all([readFacts(draft.reader, dm, true), readFacts(target, tm, !identical)]);
  const vocabulary = await readDraftVocabulary(draft.reader, dm, d.config, t.config);
  // A trimmed draft still tokenizes with the target's tokenizer: its ids are the target's, only its rows fewer.
  const draftIds = vocabulary ? { ...d, config: { ...d.config, vocab_size: vocabulary.targetVocabSize } } : d;
  let tokenizer: TextTokenizer;
  if (identical) {
    if (draftIds.config.vocab_size !== t.config.vocab_size)
      throw new TokenizerMismatchError(`tokenizer mismatch between draft ${bundleLabel(dm)} and target ${bundleLabel(tm)}: config.json vocab_size ${d.config.vocab_size} != ${t.config.vocab_size}`);
    tokenizer = new TextTokenizer(d.tokenizerJson, d.tokenizerConfig!);
  } else {
    tokenizer = assertTokenizerPair({ ...draftIds, tokenizerConfig: d.tokenizerConfig! }, { ...t, tokenizerConfig: t.tokenizerConfig! });
  }

  // Each reader refuses a file its manifest does not list, naming it.
  const reader = draft.reader;
  const [onnx, externalData] = await Promise.all([reader.read(ONNX_FILE), Promise.all(externalDataFiles(dm, ONNX_FILE).map(async (f) => ({ path: f.path, data: await reader.read(f.file) })))]);
  const draftModel = await draft.load({ onnx, config: d.config, externalData });
  // A model that loads but cannot run should fail here, not on the first request.
  const probe = tokenizer.encode("Hola");
  await draftModel.forward(draftModel.newSequence(), vocabulary ? vocabulary.toDraft(probe) : probe);
  const served = servedModel({ target: t, draft: d, draftModel, draftVocabulary: vocabulary, tokenizer });
  return { served, draftModel };
}
