// Which tokens a grammar allows at one position, as a bitmask (bit i of word i >> 5: xgrammar's layout),
// how a target row is masked with it, and its wire form. Pure: the edge computes masks (it runs the grammar
// matcher), the verifier applies them to the target's rows before verification, so the verifier needs
// neither a grammar engine nor the tokenizer.
//
// Wire form: whichever is shortest of the allowed ids ("a"), the refused ids ("r") — both as gaps between
// ascending ids in LEB128 varints — or the raw bitmask ("b"), base64url after the one-letter tag. Structure
// positions allow a handful of tokens and string contents refuse a handful, so a list is mostly tiny.

export type TokenMask = Uint32Array;

export function maskWords(vocab: number): number {
  return Math.ceil(vocab / 32);
}

export function allows(mask: TokenMask, id: number): boolean {
  return ((mask[id >>> 5] >>> (id & 31)) & 1) === 1;
}

/** A mask allowing exactly `ids`. */
export function maskOf(ids: Iterable<number>, vocab: number): TokenMask {
  const m = new Uint32Array(maskWords(vocab));
  for (const id of ids) m[id >>> 5] |= 1 << (id & 31);
  return m;
}

/** Allowed ids, ascending. */
export function allowedIds(mask: TokenMask, vocab: number): number[] {
  const out: number[] = [];
  for (let id = 0; id < vocab; id++) if (allows(mask, id)) out.push(id);
  return out;
}

/** `row` with every refused entry at −∞ (a copy): softmax over it is the masked, renormalised distribution. */
export function maskRow(row: ArrayLike<number>, mask: TokenMask): Float32Array {
  const out = Float32Array.from(row as ArrayLike<number>);
  for (let id = 0; id < out.length; id++) if (!allows(mask, id)) out[id] = -Infinity;
  return out;
}

export function encodeMask(mask: TokenMask, vocab: number): string {
  const allowed = allowedIds(mask, vocab);
  const refused: number[] = [];
  for (let id = 0, k = 0; id < vocab; id++) {
    if (allowed[k] === id) k++;
    else refused.push(id);
  }
  const bits = new Uint8Array(mask.buffer, mask.byteOffset, Math.ceil(vocab / 8)).slice();
  if (vocab % 8) bits[bits.length - 1] &= (1 << (vocab % 8)) - 1; // stray bits past the vocabulary are not sent
  const forms: [string, Uint8Array][] = [
    ["a", gapVarints(allowed)],
    ["r", gapVarints(refused)],
    ["b", bits],
  ];
  const [tag, bytes] = forms.reduce((best, f) => (f[1].length < best[1].length ? f : best));
  return tag + base64url(bytes);
}

/** The mask a wire string stands for; throws RangeError on a malformed one or an id outside the vocabulary. */
export function decodeMask(s: string, vocab: number): TokenMask {
  const tag = s[0];
  const bytes = fromBase64url(s.slice(1));
  if (tag === "b") {
    if (bytes.length !== Math.ceil(vocab / 8)) throw new RangeError(`a bitmask of ${vocab} tokens has ${Math.ceil(vocab / 8)} bytes, got ${bytes.length}`);
    // Bits past the vocabulary in the last byte would name ids outside it, as a list's would.
    if (vocab % 8 && bytes[bytes.length - 1] >>> (vocab % 8)) throw new RangeError(`bitmask sets ids at or above ${vocab}, outside the vocabulary`);
    const m = new Uint32Array(maskWords(vocab));
    new Uint8Array(m.buffer).set(bytes);
    return m;
  }
  if (tag !== "a" && tag !== "r") throw new RangeError(`unknown mask form '${tag ?? ""}' (a, r or b)`);
  const ids = fromGapVarints(bytes, vocab);
  if (tag === "a") return maskOf(ids, vocab);
  // Everything allowed (no bit past the vocabulary), then the refused ids cleared.
  const m = new Uint32Array(maskWords(vocab)).fill(0xffffffff);
  if (vocab % 32) m[m.length - 1] = 2 ** (vocab % 32) - 1;
  for (const id of ids) m[id >>> 5] &= ~(1 << (id & 31));
  return m;
}

function gapVarints(ids: readonly number[]): Uint8Array {
  const out: number[] = [];
  let prev = -1;
  for (const id of ids) {
    let gap = id - prev - 1;
    prev = id;
    while (gap >= 0x80) {
      out.push((gap & 0x7f) | 0x80);
      gap >>>= 7;
    }
    out.push(gap);
  }
  return Uint8Array.from(out);
}

function fromGapVarints(bytes: Uint8Array, vocab: number): number[] {
  const ids: number[] = [];
  let prev = -1;
  for (let i = 0; i < bytes.length; ) {
    let gap = 0;
    for (let shift = 0; ; shift += 7) {
      if (i >= bytes.length || shift > 28) throw new RangeError("truncated mask");
      const b = bytes[i++];
      gap += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
    prev += gap + 1;
    if (prev >= vocab) throw new RangeError(`mask names token ${prev}, outside the vocabulary (0..${vocab - 1})`);
    ids.push(prev);
  }
  return ids;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = i + 2 < bytes.length ? 4 : i + 1 < bytes.length ? 3 : 2;
    for (let k = 0; k < chars; k++) s += B64[(n >>> (18 - 6 * k)) & 63];
  }
  return s;
}

function fromBase64url(s: string): Uint8Array {
  if (s.length % 4 === 1) throw new RangeError("malformed base64url mask");
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    let n = 0;
    const chunk = s.slice(i, i + 4);
    for (let k = 0; k < 4; k++) {
      const v = k < chunk.length ? B64.indexOf(chunk[k]) : 0;
      if (v < 0) throw new RangeError("malformed base64url mask");
      n = (n << 6) | v;
    }
    for (let k = 0; k < chunk.length - 1; k++) out[o++] = (n >>> (16 - 8 * k)) & 255;
  }
  return out;
}
