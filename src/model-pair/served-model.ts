// What the API serves: the draft model (none when drafting needs no model), the shared tokenizer, the chat
// template and the limits, built from the target bundle's facts and the draft bundle, if any.
import { Template } from "@huggingface/jinja";
import { eosIds, type Manifest, type ModelConfig, type TokenizerConfig } from "../common/models/bundle.ts";
import type { CausalLM } from "../common/models/causal-lm.ts";
import type { DraftVocabulary } from "../common/models/draft-vocabulary.ts";
import type { TextPart, TextTokenizer } from "../common/models/tokenizer.ts";

export interface ServedModel {
  /** The id clients send as `model` (the target bundle's id). */
  id: string;
  /** The target bundle, id@version. */
  bundle: string;
  /** `system_fingerprint`: target and draft bundles. */
  fingerprint: string;
  created: number;
  /** The draft model and its bundle; absent when the edge drafts without a model (suffix matching). */
  draft?: CausalLM;
  draftBundle?: string;
  draftManifest?: { id: string; version: string };
  /** The draft's trimmed vocabulary, when its rows are a subset of the target's ids. */
  draftVocabulary?: DraftVocabulary;
  tokenizer: TextTokenizer;
  /** Ends generation (EOS); chat adds the end-of-turn token. */
  stopIds: number[];
  chatStopIds: number[];
  /** Context: prompt + completion tokens. */
  maxPositions: number;
  renderChat(messages: { role: string; content: string }[]): string;
  /**
   * The rendered chat prompt as parts to encode: the template's text, whose special tokens are special
   * tokens, and the special-token strings found in the messages' contents, which are plain text — special
   * tokens come from the template only, never from a client.
   */
  chatParts(messages: { role: string; content: string }[]): TextPart[];
}

/** Random hex, to make placeholders no client can guess. */
function nonce(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export function servedModel(o: {
  /** tokenizer_config.json (chat template, special tokens): the target's, else the draft's (identical files). */
  target: { manifest: Manifest; config: ModelConfig; tokenizerConfig?: TokenizerConfig };
  draft?: { manifest: Manifest; config: ModelConfig; tokenizerConfig?: TokenizerConfig };
  draftModel?: CausalLM;
  draftVocabulary?: DraftVocabulary;
  tokenizer: TextTokenizer;
}): ServedModel {
  const label = (m: Manifest) => `${m.id}@${m.version}`;
  const tc = o.target.tokenizerConfig ?? o.draft?.tokenizerConfig;
  if (!tc) throw new Error("servedModel needs the target's or the draft's tokenizer_config.json");
  const template = new Template(tc.chat_template);
  const stopIds = eosIds(o.target.config);
  const imEnd = o.tokenizer.tokenToId("<|im_end|>");
  const str = (v: unknown) => (typeof v === "string" ? v : "");
  const render = (messages: { role: string; content: string }[]) => template.render({ messages, add_generation_prompt: true, bos_token: str(tc.bos_token), eos_token: str(tc.eos_token) });
  const specials = [...o.tokenizer.specialTokens].sort((a, b) => b.length - a.length);
  const specialRe = specials.length ? new RegExp(specials.map(escapeRe).join("|"), "g") : undefined;
  /**
   * Each special-token string in a content is swapped for a placeholder (private-use characters and a
   * random nonce: whatever the template does to a content — trim, case — leaves it whole) before
   * rendering; the rendered text is then cut at the placeholders, which become plain-text parts.
   */
  const chatParts = (messages: { role: string; content: string }[]): TextPart[] => {
    if (!specialRe || !messages.some((m) => m.content.search(specialRe) !== -1)) return [{ text: render(messages), special: true }];
    const tag = nonce();
    const literals: string[] = [];
    const escaped = messages.map((m) => ({ ...m, content: m.content.replace(specialRe, (x) => `\uE000${tag}${literals.push(x) - 1}\uE001`) }));
    const rendered = render(escaped);
    const parts: TextPart[] = [];
    let at = 0;
    for (const m of rendered.matchAll(new RegExp(`\uE000${tag}(\\d+)\uE001`, "g"))) {
      parts.push({ text: rendered.slice(at, m.index), special: true }, { text: literals[Number(m[1])], special: false });
      at = m.index + m[0].length;
    }
    parts.push({ text: rendered.slice(at), special: true });
    return parts;
  };
  return {
    id: o.target.manifest.id,
    bundle: label(o.target.manifest),
    fingerprint: o.draft ? `${label(o.target.manifest)}+${label(o.draft.manifest)}` : label(o.target.manifest),
    created: Math.floor(Date.parse(o.target.manifest.created ?? "1970-01-01") / 1000),
    ...(o.draft && o.draftModel ? { draft: o.draftModel, draftBundle: label(o.draft.manifest), draftManifest: { id: o.draft.manifest.id, version: o.draft.manifest.version } } : {}),
    ...(o.draftModel && o.draftVocabulary ? { draftVocabulary: o.draftVocabulary } : {}),
    tokenizer: o.tokenizer,
    stopIds,
    chatStopIds: imEnd === undefined ? stopIds : [...stopIds, imEnd],
    maxPositions: Math.min(o.target.config.max_position_embeddings, o.draft?.config.max_position_embeddings ?? Infinity),
    renderChat: render,
    chatParts,
  };
}

/**
 * Decodes a chat reply as a text of its own, as transformers does: the word-start space SentencePiece puts
 * on the reply's first word (after the assistant header) is not part of the reply.
 */
export function replyDecoder(tokenizer: TextTokenizer): (ids: readonly number[]) => string {
  return (ids) => tokenizer.decode(ids, { skipSpecialTokens: true });
}

/**
 * Decodes output tokens as the continuation of `prompt`: decoding them alone would drop the leading space
 * a SentencePiece token carries, so the last prompt tokens are decoded with them and then cut off.
 */
export function continuationDecoder(tokenizer: TextTokenizer, prompt: readonly number[]): (ids: readonly number[]) => string {
  const tail = prompt.slice(-4);
  const head = tokenizer.decode(tail, { skipSpecialTokens: true });
  return (ids) => {
    const full = tokenizer.decode([...tail, ...ids], { skipSpecialTokens: true });
    return full.startsWith(head) ? full.slice(head.length) : tokenizer.decode(ids, { skipSpecialTokens: true });
  };
}
