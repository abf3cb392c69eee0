// Text ⇄ token ids with @huggingface/tokenizers (pure JS: runs in Node and workerd), and the check that a
// draft and a target speak the same token ids — speculation compares ids, so a mismatched pair would
// silently produce garbage.
//
// Prompts from clients go through `encodeParts`/`encodeAsync`, this file's own pass over the library's
// normalizer, pre-tokenizer, model and post-processor (the library's `encode` for everything else):
// - special tokens are recognised only where the caller says so (the chat template's text), never in user
//   text: `<|im_start|>` or `</s>` typed by a user is encoded as the characters it is made of;
// - long text is cut at points no BPE merge crosses and encoded piece by piece (very long boundary-less
//   words by a BPE that can pause), so `encodeAsync` can give the event loop back every few milliseconds
//   and stop as soon as the prompt is known to be longer than the context. Ids are those of the library's
//   `encode` of the same text (tested id for id).
import { Tokenizer } from "@huggingface/tokenizers";
import type { LoadedBundle } from "./bundle.ts";
import { bundleLabel } from "./bundle.ts";

/** A piece of a prompt: with `special`, special-token strings in it are those tokens (template text);
 * without, they are plain text (user content). */
export interface TextPart {
  text: string;
  special: boolean;
}

export interface Encoded {
  ids: number[];
  /** False when `stopAfter` was passed: `ids` then holds more than `stopAfter` ids and the rest is unencoded. */
  complete: boolean;
}

interface AddedInfo {
  content: string;
  id: number;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

type Section = { added: AddedInfo } | { text: string; plain: boolean };

/** `encodeAsync` gives the event loop a turn after this long… */
const SLICE_MS = 4;
/** …or this many work units (about microseconds of work on Node), for runtimes whose clock stands still
 * while code runs (workerd). */
const SLICE_UNITS = 5000;
/** Words at least this long go to the pausable BPE (the library caches only shorter ones). */
const LONG_WORD = 256;
/** Characters handed to the library's model per call. */
const BATCH_CHARS = 1024;
/** Sections longer than this are normalized a chunk of about this size at a time (where the normalizer allows). */
const STREAM_CHARS = 4096;

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** Longest match first at each position, as the library's DictionarySplitter. */
const alternation = (words: string[]) =>
  words.length
    ? new RegExp(
        [...words]
          .sort((a, b) => b.length - a.length)
          .map(escapeRe)
          .join("|"),
        "g",
      )
    : undefined;
const BYTE_TOKEN = /^<0x[0-9A-F]{2}>$/;

/** Gives the event loop a turn (timers, I/O, other requests); setTimeout where setImmediate is missing. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => (typeof setImmediate === "function" ? setImmediate(resolve) : setTimeout(resolve, 0)));

/** Normalizers that never shorten text (so a token still covers at most its own length of the input). */
function neverShortens(n: unknown): boolean {
  if (n == null) return true;
  const c = n as { type?: string; normalizers?: unknown[]; pattern?: { String?: unknown }; content?: unknown };
  switch (c.type) {
    case "Sequence":
      return (c.normalizers ?? []).every(neverShortens);
    case "Prepend":
    case "Lowercase":
    case "NFD":
    case "NFKD":
      return true;
    case "Replace":
      return typeof c.pattern?.String === "string" && c.pattern.String.length > 0 && typeof c.content === "string" && c.content.length >= c.pattern.String.length;
    default:
      return false; // NFC/NFKC compose, Strip and regex replacements can shorten text
  }
}

/**
 * The normalizer as a function of one chunk of a text (cut before a space) and whether it is the first
 * chunk, when it works character by character (Prepend, single-character Replace, Lowercase, NFD/NFKD):
 * the chunks' results joined are the whole text's. Undefined for any other normalizer.
 */
function chunkwise(n: unknown): ((s: string, first: boolean) => string) | undefined {
  type C = { type?: string; normalizers?: unknown[]; prepend?: string; pattern?: { String?: unknown }; content?: string };
  const c = n as C | null | undefined;
  const steps = (c == null ? [] : c.type === "Sequence" ? (c.normalizers ?? []) : [c]) as C[];
  const fns: ((s: string, first: boolean) => string)[] = [];
  for (const x of steps) {
    const from = x.pattern?.String;
    if (x.type === "Prepend" && typeof x.prepend === "string") fns.push((s, first) => (first ? x.prepend + s : s));
    else if (x.type === "Replace" && typeof from === "string" && from.length === 1) fns.push((s) => s.replaceAll(from, x.content ?? ""));
    else if (x.type === "Lowercase") fns.push((s) => s.toLowerCase());
    else if (x.type === "NFD" || x.type === "NFKD") fns.push((s) => s.normalize(x.type));
    else return undefined;
  }
  return (s, first) => fns.reduce((t, f) => f(t, first), s);
}

/** Pre-tokenizers that drop no characters (WhitespaceSplit and friends drop whitespace). */
function dropsNothing(p: unknown): boolean {
  if (p == null) return true;
  const c = p as { type?: string; pretokenizers?: unknown[]; behavior?: string; invert?: boolean };
  switch (c.type) {
    case "Sequence":
      return (c.pretokenizers ?? []).every(dropsNothing);
    case "ByteLevel":
    case "Metaspace":
    case "Digits":
    case "FixedLength":
      return true;
    case "Split":
    case "Punctuation":
      return c.behavior !== "Removed" && !c.invert;
    default:
      return false;
  }
}

/** A binary min-heap of BPE nodes by score (rank + position tie-break), as the library's PriorityQueue. */
interface BpeNode {
  token: string;
  bias: number;
  prev: BpeNode | null;
  next: BpeNode | null;
  score: number;
  deleted: boolean;
}
class NodeHeap {
  private readonly a: BpeNode[] = [];
  get size(): number {
    return this.a.length;
  }
  push(n: BpeNode): void {
    const a = this.a;
    let i = a.push(n) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p].score <= n.score) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = n;
  }
  pop(): BpeNode {
    const a = this.a;
    const top = a[0];
    const last = a.pop()!;
    if (a.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const c = l + 1 < a.length && a[l + 1].score < a[l].score ? l + 1 : l;
        if (a[c].score >= last.score) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

export class TextTokenizer {
  private readonly tok: Tokenizer;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** The special tokens' strings (BOS, EOS, ChatML's markers…): what user text may never produce. */
  readonly specialTokens: readonly string[];
  /**
   * The most characters of input one token can stand for, for a bound before any tokenisation (a text of
   * n characters has at least ceil(n / longestTokenChars) tokens); Infinity where this tokenizer's
   * normalizer, pre-tokenizer or model can shorten text (no such bound holds).
   */
  readonly longestTokenChars: number;
  private readonly added = new Map<string, AddedInfo>();
  private readonly splitAll: RegExp | undefined;
  private readonly splitPlain: RegExp | undefined;
  private readonly splitNormalizedAll: RegExp | undefined;
  private readonly splitNormalizedPlain: RegExp | undefined;
  /** Characters a long word may be cut before (resp. after) when its neighbour differs: no merge joins them to another character. */
  private readonly cutBefore: ReadonlySet<string> | undefined;
  private readonly cutAfter: ReadonlySet<string> | undefined;
  /** The library's BPE merge ranks (JSON.stringify([a, b]) → rank), for the pausable BPE; absent for other models. */
  private readonly ranks: Map<string, number> | undefined;
  private readonly byteFallback: boolean;
  private readonly unkId: number | undefined;
  /** The normalizer a chunk at a time, where long sections may be streamed (see `chunkwise`). */
  private readonly streamNormalize: ((s: string, first: boolean) => string) | undefined;

  constructor(
    readonly tokenizerJson: unknown,
    readonly tokenizerConfig: Record<string, unknown>,
  ) {
    this.tok = new Tokenizer(tokenizerJson as object, tokenizerConfig);
    this.bosId = this.idOf(tokenizerConfig.bos_token);
    this.eosId = this.idOf(tokenizerConfig.eos_token);
    const json = tokenizerJson as {
      added_tokens?: Partial<AddedInfo>[];
      normalizer?: unknown;
      pre_tokenizer?: unknown;
      model: {
        type?: string;
        merges?: (string | [string, string])[];
        byte_fallback?: boolean;
        fuse_unk?: boolean;
        ignore_merges?: boolean;
        dropout?: number | null;
        end_of_word_suffix?: string | null;
        continuing_subword_suffix?: string | null;
      };
    };
    const m = json.model;
    const model = this.tok.model!;
    for (const t of json.added_tokens ?? []) {
      const info: AddedInfo = { content: t.content!, id: t.id!, special: !!t.special, lstrip: !!t.lstrip, rstrip: !!t.rstrip, normalized: !!t.normalized };
      this.added.set(info.content, info);
      if (info.normalized && this.tok.normalizer) this.added.set(this.tok.normalizer(info.content), info);
    }
    const all = [...(json.added_tokens ?? [])] as AddedInfo[];
    const raw = all.filter((t) => !(t.normalized && this.tok.normalizer));
    const normalized = all.filter((t) => t.normalized && this.tok.normalizer).map((t) => ({ ...t, content: this.tok.normalizer!(t.content) }));
    this.specialTokens = all.filter((t) => t.special).map((t) => t.content);
    this.splitAll = alternation(raw.map((t) => t.content));
    this.splitPlain = alternation(raw.filter((t) => !t.special).map((t) => t.content));
    this.splitNormalizedAll = alternation(normalized.map((t) => t.content));
    this.splitNormalizedPlain = alternation(normalized.filter((t) => !t.special).map((t) => t.content));
    this.unkId = model.unk_token_id;
    this.byteFallback = !!m.byte_fallback;

    const bpe = m.type === "BPE";
    const merged = bpe ? (m.merges ?? []).map((x) => (Array.isArray(x) ? x : x.split(" ", 2)).join("")) : [];
    const byteToken = (t: string) => this.byteFallback && BYTE_TOKEN.test(t);
    // Where BPE can be cut: merges act inside a word, so a point no merge result spans splits nothing.
    if (bpe && !m.dropout && !m.end_of_word_suffix && !m.continuing_subword_suffix) {
      const before = new Set<string>();
      const after = new Set<string>();
      const scan = (t: string) => {
        for (let k = 1; k < t.length; k++)
          if (t[k] !== t[k - 1]) {
            before.add(t[k]);
            after.add(t[k - 1]);
          }
      };
      for (const t of merged) scan(t);
      // With ignore_merges a word found in the vocabulary is one token: vocabulary entries span too.
      if (m.ignore_merges) for (const t of model.vocab) if (t && !byteToken(t) && !this.added.has(t)) scan(t);
      const chars = new Set<string>();
      for (const t of model.vocab) if (t) for (const ch of t) chars.add(ch);
      const cutBefore = new Set<string>();
      const cutAfter = new Set<string>();
      for (const ch of [...chars, " ", "\n", "\t", "▁"]) {
        if (ch.length !== 1) continue; // one code unit: a cut never falls inside a surrogate pair
        if (!before.has(ch)) cutBefore.add(ch);
        if (!after.has(ch)) cutAfter.add(ch);
      }
      this.cutBefore = cutBefore;
      this.cutAfter = cutAfter;
      this.ranks = (model as unknown as { bpe_ranks?: Map<string, number> }).bpe_ranks;
    }

    // Streaming needs the whole pipeline to be chunkable: no pre-tokenizer, no added token matched after
    // normalization, cut points, and no whole-text options.
    const streamable = !json.pre_tokenizer && !this.splitNormalizedAll && this.cutBefore && !tokenizerConfig.remove_space && !tokenizerConfig.do_lowercase_and_remove_accent;
    this.streamNormalize = streamable ? (this.tok.normalizer ? chunkwise(json.normalizer) : (s) => s) : undefined;
    const fullByteFallback = this.byteFallback && Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`).every((t) => model.tokens_to_ids.has(t));
    const bounded =
      bpe &&
      (!m.fuse_unk || fullByteFallback) && // fused unknowns: one token for any number of characters
      neverShortens(json.normalizer) &&
      dropsNothing(json.pre_tokenizer) &&
      !tokenizerConfig.remove_space &&
      !tokenizerConfig.do_lowercase_and_remove_accent;
    let longest = 2; // one character outside the vocabulary: up to 2 UTF-16 units
    for (const t of model.vocab) if (t && !byteToken(t)) longest = Math.max(longest, t.length);
    for (const t of merged) longest = Math.max(longest, t.length);
    for (const t of all) longest = Math.max(longest, t.content.length);
    this.longestTokenChars = bounded ? longest : Number.POSITIVE_INFINITY;
  }

  static fromBundle(b: Pick<LoadedBundle, "tokenizerJson" | "tokenizerConfig">): TextTokenizer {
    return new TextTokenizer(b.tokenizerJson, b.tokenizerConfig);
  }

  private idOf(token: unknown): number | undefined {
    return typeof token === "string" ? this.tok.token_to_id(token) : undefined;
  }

  /** The fewest tokens a text of `chars` characters can encode to (0 when no bound holds). */
  minTokens(chars: number): number {
    return Number.isFinite(this.longestTokenChars) ? Math.ceil(chars / this.longestTokenChars) : 0;
  }

  /**
   * Ids of `text`; the tokenizer's post-processor adds BOS unless `addSpecialTokens` is false. Special-token
   * strings in `text` are special tokens unless `specialTokens` is "text" (user text). Synchronous: for
   * short or trusted text; a client's prompt goes through `encodeAsync`.
   */
  encode(text: string, opts: { addSpecialTokens?: boolean; specialTokens?: "parse" | "text" } = {}): number[] {
    const add = opts.addSpecialTokens ?? true;
    if ((opts.specialTokens ?? "parse") === "parse") return this.tok.encode(text, { add_special_tokens: add }).ids;
    return this.encodeParts([{ text, special: false }], { addSpecialTokens: add });
  }

  /** Ids of the parts, in one go (see `TextPart`). */
  encodeParts(parts: readonly TextPart[], opts: { addSpecialTokens?: boolean } = {}): number[] {
    const it = this.steps(parts, opts.addSpecialTokens ?? true, Number.POSITIVE_INFINITY);
    for (;;) {
      const r = it.next();
      if (r.done) return r.value.ids;
    }
  }

  /**
   * Ids of a text (special-token strings as plain text) or of parts, giving the event loop a turn every few
   * milliseconds of work; with `stopAfter`, stops once more than that many ids are known (the prompt does
   * not fit), before the post-processor's additions.
   */
  async encodeAsync(input: string | readonly TextPart[], opts: { addSpecialTokens?: boolean; stopAfter?: number } = {}): Promise<Encoded> {
    const parts = typeof input === "string" ? [{ text: input, special: false }] : input;
    const it = this.steps(parts, opts.addSpecialTokens ?? true, opts.stopAfter ?? Number.POSITIVE_INFINITY);
    let units = 0;
    let since = performance.now();
    for (;;) {
      const r = it.next();
      if (r.done) return r.value;
      units += r.value;
      if (units >= SLICE_UNITS || performance.now() - since >= SLICE_MS) {
        await yieldToEventLoop();
        units = 0;
        since = performance.now();
      }
    }
  }

  /** The encoding as a generator: it yields the work done since its last yield (units of about a
   * microsecond), every millisecond or so, and returns the ids. */
  private *steps(parts: readonly TextPart[], addSpecialTokens: boolean, stopAfter: number): Generator<number, Encoded> {
    // 1. Sections, as the library splits text at added tokens: a special token counts only in special parts.
    const sections: Section[] = [];
    for (const part of parts) {
      const pushText = (s: string) => {
        if (!s) return;
        const last = sections.at(-1);
        if (last && "text" in last) {
          last.text += s;
          last.plain ||= !part.special;
        } else sections.push({ text: s, plain: !part.special });
      };
      const re = part.special ? this.splitAll : this.splitPlain;
      let at = 0;
      if (re)
        for (const m of part.text.matchAll(re)) {
          pushText(part.text.slice(at, m.index));
          sections.push({ added: this.added.get(m[0])! });
          at = m.index + m[0].length;
        }
      pushText(part.text.slice(at));
      yield part.text.length >> 6;
    }
    stripAround(sections);

    // 2. Each section: normalizer, normalized added tokens, pre-tokenizer, model.
    const tokens: string[] = [];
    for (let i = 0; i < sections.length; i++) {
      const s = sections[i];
      if ("added" in s) {
        tokens.push(s.added.content);
        continue;
      }
      let text = s.text;
      if (!text) continue;
      const whole = this.added.get(text);
      if (whole && (!whole.special || !s.plain)) {
        tokens.push(text);
        continue;
      }
      if (this.streamNormalize && text.length > STREAM_CHARS) {
        // A long text and a normalizer that works character by character: normalized and encoded a chunk at a time.
        if (yield* this.modelRun(this.streamedPieces(text, this.streamNormalize), tokens, stopAfter)) return { ids: this.ids(tokens), complete: false };
        continue;
      }
      if (this.tokenizerConfig.remove_space === true) text = text.trim().split(/\s+/).join(" ");
      if (this.tokenizerConfig.do_lowercase_and_remove_accent) text = text.toLowerCase().replace(/\p{M}/gu, "");
      if (this.tok.normalizer) text = this.tok.normalizer(text);
      yield text.length >> 5;
      if (!text) continue;
      const subs: Section[] = [];
      const re = s.plain ? this.splitNormalizedPlain : this.splitNormalizedAll;
      let at = 0;
      if (re)
        for (const m of text.matchAll(re)) {
          if (m.index > at) subs.push({ text: text.slice(at, m.index), plain: s.plain });
          subs.push({ added: this.added.get(m[0])! });
          at = m.index + m[0].length;
        }
      if (at < text.length) subs.push({ text: text.slice(at), plain: s.plain });
      stripAround(subs);
      for (const sub of subs) {
        if ("added" in sub) {
          tokens.push(sub.added.content);
          continue;
        }
        if (!sub.text) continue;
        const w = this.added.get(sub.text);
        if (w && (!w.special || !sub.plain)) {
          tokens.push(sub.text);
          continue;
        }
        const words = this.tok.pre_tokenizer ? this.tok.pre_tokenizer(sub.text, { section_index: i }) : [sub.text];
        if (yield* this.modelRun(this.piecesOfWords(words), tokens, stopAfter)) return { ids: this.ids(tokens), complete: false };
      }
    }
    // 3. The post-processor (BOS and the like).
    const post = this.tok.post_processor ? this.tok.post_processor(tokens, null, addSpecialTokens).tokens : tokens;
    yield post.length >> 4;
    const ids: number[] = [];
    for (let k = 0; k < post.length; k += 65536) {
      ids.push(...this.ids(post.slice(k, k + 65536)));
      yield 2000;
    }
    return { ids, complete: true };
  }

  /** Token strings to ids, as the library maps them. */
  private ids(tokens: readonly string[]): number[] {
    const vocab = this.tok.model!.tokens_to_ids;
    return tokens.map((t) => this.added.get(t)?.id ?? vocab.get(t) ?? this.unkId!);
  }

  /**
   * One model call's worth of pieces through the model (the library's for short pieces, in batches; the
   * pausable BPE for long ones), appended to `tokens`; true once there are more than `stopAfter`.
   */
  private *modelRun(pieces: Iterable<string>, tokens: string[], stopAfter: number): Generator<number, boolean> {
    const model = this.tok.model!;
    const start = tokens.length;
    const isUnk = (t: string | undefined) => t !== undefined && this.unkId !== undefined && (model.tokens_to_ids.get(t) ?? this.unkId) === this.unkId;
    /** Fused unknowns (fuse_unk) stay fused across two batches, as in the library's one call. */
    const append = (out: string[]) => {
      let k = model.fuse_unk && tokens.length > start && isUnk(tokens.at(-1)) && isUnk(out[0]) ? 1 : 0;
      for (; k < out.length; k++) tokens.push(out[k]);
    };
    let batch: string[] = [];
    let chars = 0;
    for (const piece of pieces) {
      if (piece.length >= LONG_WORD && this.ranks) {
        if (batch.length) append(model(batch));
        batch = [];
        chars = 0;
        append(yield* this.longBpe(piece));
      } else {
        batch.push(piece);
        chars += piece.length;
        if (chars < BATCH_CHARS) continue;
        append(model(batch));
        batch = [];
        yield 2 * chars;
        chars = 0;
      }
      if (tokens.length > stopAfter) return true;
    }
    if (batch.length) append(model(batch));
    yield 2 * chars;
    return tokens.length > stopAfter;
  }

  /** Where a text may be cut without changing its BPE: no merge spans the point (a word-start marker
   * after another character, a newline…). */
  private *cutPoints(s: string, from = 1): Generator<number> {
    const before = this.cutBefore!;
    const after = this.cutAfter!;
    for (let p = Math.max(1, from); p < s.length; p++) {
      const a = s[p - 1];
      const b = s[p];
      if (a !== b && (before.has(b) || after.has(a))) yield p;
    }
  }

  /** The pre-tokenizer's words, long ones cut at cut points. */
  private *piecesOfWords(words: readonly string[]): Generator<string> {
    for (const word of words) {
      if (word.length < 2 * LONG_WORD || !this.cutBefore) {
        yield word;
        continue;
      }
      let from = 0;
      for (const p of this.cutPoints(word)) {
        yield word.slice(from, p);
        from = p;
      }
      yield word.slice(from);
    }
  }

  /** A long section normalized a chunk at a time (cut before a space) and cut into pieces; a piece that may
   * go on into the next chunk waits for it. */
  private *streamedPieces(text: string, normalize: (s: string, first: boolean) => string): Generator<string> {
    let rest = "";
    for (let from = 0; from < text.length; ) {
      let to = Math.min(text.length, from + STREAM_CHARS);
      if (to < text.length) {
        const space = text.indexOf(" ", to);
        to = space === -1 ? text.length : space;
      }
      rest += normalize(text.slice(from, to), from === 0);
      from = to;
      let last = 0;
      for (const p of this.cutPoints(rest)) {
        yield rest.slice(last, p);
        last = p;
      }
      rest = rest.slice(last);
    }
    if (rest) yield rest;
  }

  /**
   * The library's BPE (same heap order: merge rank, then position) for one long word, pausing every
   * 128 merges; then vocabulary, byte fallback or unknown token, as the library's BPE model does.
   */
  private *longBpe(word: string): Generator<number, string[]> {
    const model = this.tok.model!;
    const vocab = model.tokens_to_ids;
    if ((model.config as { ignore_merges?: boolean }).ignore_merges && vocab.has(word)) return [word];
    const ranks = this.ranks!;
    const chars = Array.from(word);
    const heap = new NodeHeap();
    const add = (node: BpeNode) => {
      const rank = ranks.get(JSON.stringify([node.token, node.next!.token]));
      if (rank !== undefined) {
        node.score = rank + node.bias;
        heap.push(node);
      }
    };
    let first: BpeNode = { token: chars[0], bias: 0, prev: null, next: null, score: 0, deleted: false };
    let previous = first;
    for (let i = 1; i < chars.length; i++) {
      const current: BpeNode = { token: chars[i], bias: i / chars.length, prev: previous, next: null, score: 0, deleted: false };
      previous.next = current;
      add(previous);
      previous = current;
      if (i % 512 === 0) yield 1000;
    }
    let pops = 0;
    while (heap.size) {
      if (++pops % 128 === 0) yield 800;
      const node = heap.pop();
      if (node.deleted || !node.next || node.next.deleted) continue;
      node.deleted = true;
      node.next.deleted = true;
      if (node.prev) {
        const copy = { ...node.prev };
        node.prev.deleted = true;
        node.prev = copy;
        if (copy.prev) copy.prev.next = copy;
        else first = copy;
      }
      const merged: BpeNode = { token: node.token + node.next.token, bias: node.bias, prev: node.prev, next: node.next.next, score: 0, deleted: false };
      if (merged.prev) {
        merged.prev.next = merged;
        add(merged.prev);
      } else first = merged;
      if (merged.next) {
        merged.next.prev = merged;
        add(merged);
      }
    }
    const out: string[] = [];
    const bytes = new TextEncoder();
    let k = 0;
    for (let n: BpeNode | null = first; n; n = n.next) {
      if (++k % 4096 === 0) yield 1000;
      if (vocab.has(n.token)) out.push(n.token);
      else if (this.byteFallback) {
        const b = Array.from(bytes.encode(n.token), (x) => `<0x${x.toString(16).toUpperCase().padStart(2, "0")}>`);
        if (b.every((x) => vocab.has(x))) out.push(...b);
        else if (model.unk_token != null) out.push(model.unk_token);
      } else if (model.unk_token != null) out.push(model.unk_token);
    }
    return out;
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

/** An added token with lstrip/rstrip eats the whitespace of the text next to it, as in the library. */
function stripAround(sections: Section[]): void {
  for (let i = 0; i < sections.length; i++) {
    const s = sections[i];
    if (!("added" in s)) continue;
    const before = sections[i - 1];
    const after = sections[i + 1];
    if (s.added.lstrip && before && "text" in before) before.text = before.text.trimEnd();
    if (s.added.rstrip && after && "text" in after) after.text = after.text.trimStart();
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
