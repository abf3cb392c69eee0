// The target's log-probs (TokenLogprob, by token id) in OpenAI's shapes: chat's `logprobs.content[]` with
// each token's text and UTF-8 bytes, and the legacy completions' parallel arrays. A token may hold part of a
// character (byte fallback, byte-level BPE): its bytes say exactly what it adds, its text is their lossy
// decoding.
import type { TextTokenizer } from "../common/models/tokenizer.ts";
import type { TokenLogprob } from "../common/protocol.ts";
import type { ChatLogprobs, CompletionLogprobs } from "./schemas.ts";

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/** GPT-2's byte-level alphabet: each byte as a printable character (the inverse maps pieces back to bytes). */
function byteLevelAlphabet(): Map<string, number> {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const map = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) map.set(String.fromCodePoint(printable(b) ? b : 256 + extra++), b);
  return map;
}

/** Each token id's bytes, from the tokenizer's vocabulary (built once per tokenizer). */
export class TokenBytes {
  private readonly pieces: string[] = [];
  private readonly byteLevel: Map<string, number> | undefined;
  private readonly utf8 = new TextEncoder();
  private readonly text = new TextDecoder();

  constructor(tokenizer: TextTokenizer) {
    for (const [piece, id] of tokenizer.vocab()) this.pieces[id] = piece;
    const json = JSON.stringify([(tokenizer.tokenizerJson as { decoder?: unknown }).decoder ?? null]);
    this.byteLevel = json.includes('"ByteLevel"') ? byteLevelAlphabet() : undefined;
  }

  bytes(id: number): number[] {
    const piece = this.pieces[id] ?? "";
    const b = BYTE_TOKEN.exec(piece);
    if (b) return [Number.parseInt(b[1], 16)];
    if (this.byteLevel) {
      const out: number[] = [];
      for (const ch of piece) {
        const x = this.byteLevel.get(ch);
        if (x === undefined) return Array.from(this.utf8.encode(piece)); // an added token, spelled as is
        out.push(x);
      }
      return out;
    }
    return Array.from(this.utf8.encode(piece.replaceAll("▁", " ")));
  }

  textOf(bytes: readonly number[]): string {
    return this.text.decode(Uint8Array.from(bytes));
  }
}

/** Chat's `logprobs.content` for `tokens` (one TokenLogprob each). */
export function chatLogprobContent(t: TokenBytes, tokens: readonly number[], lps: readonly TokenLogprob[]): NonNullable<ChatLogprobs["content"]> {
  const entry = (id: number, logprob: number) => {
    const bytes = t.bytes(id);
    return { token: t.textOf(bytes), logprob, bytes };
  };
  return tokens.map((id, i) => ({ ...entry(id, lps[i]?.logprob ?? -9999), top_logprobs: (lps[i]?.top ?? []).map(([alt, lp]) => entry(alt, lp)) }));
}

/** The legacy completions shape for `tokens`, whose text starts at `offset` characters into the answer. */
export function completionLogprobs(t: TokenBytes, tokens: readonly number[], lps: readonly TokenLogprob[], offset = 0): CompletionLogprobs {
  const texts = tokens.map((id) => t.textOf(t.bytes(id)));
  const text_offset: number[] = [];
  for (const s of texts) {
    text_offset.push(offset);
    offset += s.length;
  }
  return {
    tokens: texts,
    token_logprobs: tokens.map((_, i) => lps[i]?.logprob ?? null),
    top_logprobs: tokens.map((_, i) => Object.fromEntries((lps[i]?.top ?? []).map(([alt, lp]) => [t.textOf(t.bytes(alt)), lp]))),
    text_offset,
  };
}
