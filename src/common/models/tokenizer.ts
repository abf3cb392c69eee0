// Text ⇄ token ids with @huggingface/tokenizers (pure JS: runs in Node and workerd), and the check that a
// draft and a target speak the same token ids — speculation compares ids, so a mismatched pair would
// silently produce garbage.
import { Tokenizer } from "@huggingface/tokenizers";
import type { LoadedBundle } from "./bundle.ts";
import { bundleLabel } from "./bundle.ts";

export class TextTokenizer {
  private readonly tok: Tokenizer;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;

  constructor(
    readonly tokenizerJson: unknown,
    readonly tokenizerConfig: Record<string, unknown>,
  ) {
    this.tok = new Tokenizer(tokenizerJson as object, tokenizerConfig);
    this.bosId = this.idOf(tokenizerConfig.bos_token);
    this.eosId = this.idOf(tokenizerConfig.eos_token);
  }

  static fromBundle(b: Pick<LoadedBundle, "tokenizerJson" | "tokenizerConfig">): TextTokenizer {
    return new TextTokenizer(b.tokenizerJson, b.tokenizerConfig);
  }

  private idOf(token: unknown): number | undefined {
    return typeof token === "string" ? this.tok.token_to_id(token) : undefined;
  }

  /** Ids of `text`; the tokenizer's post-processor adds BOS unless `addSpecialTokens` is false. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.tok.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  vocab(): Map<string, number> {
    return this.tok.get_vocab(true);
  }
}

/** Texts that exercise normal words, accents, the co-official languages, byte fallback and ChatML. */
export const TOKENIZER_PROBES = [
  "El Gobierno de España presentó ayer la estrategia nacional de inteligencia artificial.",
  "Bon dia! Com estàs? La Generalitat ha aprovat el pressupost.",
  "Egun on, zer moduz zaude? Euskara ikasten ari naiz.",
  "Bos días, como estás? O concello aprobou o orzamento.",
  "¿Qué tal? ¡Año nuevo, vida nueva! Ñandú, pingüino, acción.",
  "Emoji 🤖 y símbolos raros: ∑ ☃ 漢字 — «comillas» 1234567890",
  "<|im_start|>user\nHola, ¿quién eres?<|im_end|>\n<|im_start|>assistant\n",
  "  espacios   múltiples\ty\ttabuladores\n\nnueva línea",
];

export class TokenizerMismatchError extends Error {
  override name = "TokenizerMismatchError";
}

/**
 * Refuses a draft/target pair unless both map text to the same ids: same vocabulary, same special ids,
 * same model vocab size, and identical encodings of the probe texts.
 */
export function assertTokenizerPair(
  draft: Pick<LoadedBundle, "tokenizerJson" | "tokenizerConfig" | "config" | "manifest">,
  target: Pick<LoadedBundle, "tokenizerJson" | "tokenizerConfig" | "config" | "manifest">,
): TextTokenizer {
  const where = `draft bundle ${bundleLabel(draft.manifest)} and target bundle ${bundleLabel(target.manifest)}`;
  const fail = (what: string): never => {
    throw new TokenizerMismatchError(`tokenizer mismatch between ${where}: ${what}; speculative decoding needs identical token ids`);
  };
  if (draft.config.vocab_size !== target.config.vocab_size) fail(`config.json vocab_size ${draft.config.vocab_size} != ${target.config.vocab_size}`);
  const d = TextTokenizer.fromBundle(draft);
  const t = TextTokenizer.fromBundle(target);
  const dv = d.vocab();
  const tv = t.vocab();
  if (dv.size !== tv.size) fail(`vocabulary sizes ${dv.size} != ${tv.size}`);
  for (const [token, id] of dv) {
    const other = tv.get(token);
    if (other !== id) fail(`token ${JSON.stringify(token)} is id ${id} in the draft but ${other ?? "absent"} in the target`);
  }
  if (d.bosId !== t.bosId || d.eosId !== t.eosId) fail(`BOS/EOS ids ${d.bosId}/${d.eosId} != ${t.bosId}/${t.eosId}`);
  for (const text of TOKENIZER_PROBES) {
    const a = d.encode(text);
    const b = t.encode(text);
    const i = a.findIndex((x, k) => x !== b[k]);
    const at = i === -1 && a.length !== b.length ? Math.min(a.length, b.length) : i;
    if (at !== -1) fail(`they encode ${JSON.stringify(text.slice(0, 40))} differently from id #${at} on ([${a.slice(at, at + 6)}] vs [${b.slice(at, at + 6)}])`);
  }
  if (dv.size > draft.config.vocab_size) fail(`tokenizer has ${dv.size} tokens but the models only ${draft.config.vocab_size} logits`);
  return t;
}
