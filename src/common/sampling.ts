// Sampling math shared by the drafter (edge) and the verifier (GPU pool): turning logits into the
// distribution that OpenAI's temperature / top_p (and top_k) describe, sparse truncation of the drafter's
// distribution q̃, and seeded randomness. Pure functions, no I/O: the same code runs in Node and workerd.

export interface SamplingParams {
  /** 0 means greedy (argmax). OpenAI range 0..2. */
  temperature: number;
  /** Nucleus: keep the smallest set of most likely tokens whose mass reaches top_p. 1 = off. */
  topP?: number;
  /** Keep the k most likely tokens. 0 or undefined = off. */
  topK?: number;
}

/** A distribution over a few token ids (probabilities sum to 1). */
export interface SparseDist {
  ids: number[];
  probs: number[];
}

export function isGreedy(p: SamplingParams): boolean {
  return p.temperature === 0;
}

function checkParams(p: SamplingParams): void {
  if (!(p.temperature >= 0) || !Number.isFinite(p.temperature)) throw new RangeError(`temperature must be ≥ 0, got ${p.temperature}`);
  if (p.topP !== undefined && !(p.topP > 0 && p.topP <= 1)) throw new RangeError(`top_p must be in (0, 1], got ${p.topP}`);
  if (p.topK !== undefined && !(Number.isInteger(p.topK) && p.topK >= 0)) throw new RangeError(`top_k must be a non-negative integer, got ${p.topK}`);
}

/** Index of the largest value (the first one on ties): greedy decoding's choice. */
export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

/**
 * The distribution to sample the next token from, dense over the vocabulary: softmax(logits / T), then
 * top-k, then top-p (the order transformers and vLLM use), renormalised. T = 0 gives a one-hot argmax.
 */
export function targetDistribution(logits: ArrayLike<number>, params: SamplingParams): Float64Array {
  checkParams(params);
  const n = logits.length;
  const p = new Float64Array(n);
  if (isGreedy(params)) {
    p[argmax(logits)] = 1;
    return p;
  }
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i]);
  let z = 0;
  for (let i = 0; i < n; i++) z += p[i] = Math.exp((logits[i] - max) / params.temperature);
  for (let i = 0; i < n; i++) p[i] /= z;
  const k = params.topK && params.topK < n ? params.topK : n;
  const topP = params.topP ?? 1;
  if (k === n && topP >= 1) return p;
  // Sort ids by probability, ties by id so the kept set is deterministic.
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
  let keep = k;
  if (topP < 1) {
    // top-p measures mass within what top-k kept (renormalised), as transformers' warpers chain.
    let topKMass = 0;
    for (let r = 0; r < k; r++) topKMass += p[order[r]];
    let mass = 0;
    for (let r = 0; r < k; r++) {
      mass += p[order[r]];
      if (mass >= topP * topKMass) {
        keep = r + 1;
        break;
      }
    }
  }
  const out = new Float64Array(n);
  let kept = 0;
  for (let r = 0; r < keep; r++) kept += p[order[r]];
  for (let r = 0; r < keep; r++) out[order[r]] = p[order[r]] / kept;
  return out;
}

/** The K most likely tokens of `p`, renormalised: the sparse q̃ a drafter samples from and transmits. */
export function truncateTopK(p: ArrayLike<number>, k: number): SparseDist {
  if (!(Number.isInteger(k) && k >= 1)) throw new RangeError(`support size must be a positive integer, got ${k}`);
  const ids = Array.from({ length: p.length }, (_, i) => i)
    .filter((i) => p[i] > 0)
    .sort((a, b) => p[b] - p[a] || a - b)
    .slice(0, k);
  const z = ids.reduce((s, i) => s + p[i], 0);
  return { ids, probs: ids.map((i) => p[i] / z) };
}

export function sparseProb(q: SparseDist, id: number): number {
  const i = q.ids.indexOf(id);
  return i === -1 ? 0 : q.probs[i];
}

/** Inverse-CDF draw from weights (need not be normalised); u in [0, 1). */
export function sampleIndex(weights: ArrayLike<number>, u: number): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i];
  if (!(total > 0)) throw new RangeError("cannot sample from an all-zero distribution");
  let acc = 0;
  const target = u * total;
  let last = -1;
  for (let i = 0; i < weights.length; i++) {
    if (weights[i] <= 0) continue;
    acc += weights[i];
    last = i;
    if (target < acc) return i;
  }
  return last; // u·total rounded up to the total
}

export function sampleSparse(q: SparseDist, u: number): number {
  return q.ids[sampleIndex(q.probs, u)];
}

/**
 * Seeded uniform randomness (xoshiro128** seeded through splitmix32): a seeded request draws the same
 * numbers on every run and runtime. `stream` separates independent uses of one seed (e.g. drafter vs
 * verifier, or rounds), so that they never share draws.
 */
export class SeededRng {
  private s = new Uint32Array(4);

  constructor(seed: number, stream = 0) {
    let x = (seed >>> 0) ^ Math.imul(stream >>> 0, 0x9e3779b9) ^ Math.floor(seed / 2 ** 32);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result / 4294967296;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
