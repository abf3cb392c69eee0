// Time of one target forward pass (a verify or generate pass), predicted from measured pass times (pure, no
// I/O): a batch of `batch` rows, each adding `chunk` new tokens after `past` cached ones. The measured grid
// (measurements/h200-pass-times.json: ALIA-40b's shapes on one H200) is irregular and slightly noisy, so
// the model works on a monotone envelope of it and interpolates inside the grid:
//
// * Envelope. The time of a configuration is the cheapest measured configuration at least as large in
//   batch, chunk and past: an engine can always pad to it (more rows, a longer chunk, a longer masked past).
//   It equals the measurement wherever no larger configuration ran faster; where one did (at 2,048 past
//   and 4 rows, chunk 3 took 26.5 ms and chunk 4 24.9 ms: another kernel), it takes the cheaper time.
//   Cells of the grid that no measurement covers (32,768 past beyond 8 rows) grow from the largest
//   measured configuration below them in proportion to the tokens of the pass; then a running maximum
//   along each axis makes the envelope monotone everywhere.
// * Inside the grid: multilinear interpolation between the envelope's grid points (monotone, exact at
//   every grid point).
// * Outside: fewer rows or a shorter chunk than measured cannot occur (1 is measured); a past below the
//   smallest measured one costs what that one costs (an upper bound); more rows or a longer chunk than
//   measured cost the largest measured configuration scaled by the tokens of the pass (exact once passes
//   are compute-bound, an upper bound before); a past beyond the largest measured one is refused.

export interface MeasuredPass {
  batch: number;
  chunk: number;
  past: number;
  ms: number;
}

/** One row of a batched pass. */
export interface PassRow {
  chunk: number;
  past: number;
}

export class PassCostModel {
  private readonly batches: number[];
  private readonly chunks: number[];
  private readonly pasts: number[];
  /** Envelope on the grid, indexed [past][batch][chunk]. */
  private readonly grid: number[][][];

  constructor(
    readonly name: string,
    measured: readonly MeasuredPass[],
  ) {
    if (measured.length === 0) throw new RangeError(`${name}: no measured passes`);
    for (const m of measured) if (!(m.batch >= 1 && m.chunk >= 1 && m.past >= 0 && m.ms > 0)) throw new RangeError(`${name}: bad measurement ${JSON.stringify(m)}`);
    const axis = (f: (m: MeasuredPass) => number) => [...new Set(measured.map(f))].sort((a, b) => a - b);
    this.batches = axis((m) => m.batch);
    this.chunks = axis((m) => m.chunk);
    this.pasts = axis((m) => m.past);
    if (this.batches[0] !== 1 || this.chunks[0] !== 1) throw new RangeError(`${name}: the grid must start at batch 1 and chunk 1`);

    const covered = (b: number, c: number, p: number) => {
      let best = Infinity;
      for (const m of measured) if (m.batch >= b && m.chunk >= c && m.past >= p && m.ms < best) best = m.ms;
      return best;
    };
    const grown = (b: number, c: number, p: number) => {
      let best = Infinity;
      for (const m of measured) if (m.batch <= b && m.chunk <= c && m.past >= p) best = Math.min(best, (m.ms * b * c) / (m.batch * m.chunk));
      return best;
    };
    this.grid = this.pasts.map((p) =>
      this.batches.map((b) =>
        this.chunks.map((c) => {
          const v = covered(b, c, p);
          return Number.isFinite(v) ? v : grown(b, c, p);
        }),
      ),
    );
    for (const [pi, plane] of this.grid.entries())
      for (const [bi, row] of plane.entries())
        for (const [ci, v] of row.entries()) {
          if (!Number.isFinite(v)) throw new RangeError(`${name}: no measurement bounds batch ${this.batches[bi]}, chunk ${this.chunks[ci]}, past ${this.pasts[pi]}`);
          const before = Math.max(ci ? row[ci - 1] : 0, bi ? plane[bi - 1][ci] : 0, pi ? this.grid[pi - 1][bi][ci] : 0);
          row[ci] = Math.max(v, before);
        }
  }

  /** Largest past the measurements reach. */
  get maxPast(): number {
    return this.pasts[this.pasts.length - 1];
  }

  /** Milliseconds of one pass of `batch` rows, each with `chunk` new tokens after `past` cached ones. */
  passMs(batch: number, chunk: number, past: number): number {
    if (!(batch >= 1 && chunk >= 1 && past >= 0)) throw new RangeError(`${this.name}: no pass of batch ${batch}, chunk ${chunk}, past ${past}`);
    if (past > this.maxPast) throw new RangeError(`${this.name}: past ${past} is beyond the measured ${this.maxPast}`);
    const bMax = this.batches[this.batches.length - 1];
    const cMax = this.chunks[this.chunks.length - 1];
    const scale = (Math.max(batch, bMax) / bMax) * (Math.max(chunk, cMax) / cMax);
    return scale * this.interpolate(Math.min(batch, bMax), Math.min(chunk, cMax), Math.max(past, this.pasts[0]));
  }

  /**
   * A pass over rows of different chunks and pasts: as many rows, their mean chunk, and their past weighted
   * by each row's chunk (attention reads a row's past once per new token).
   */
  batchMs(rows: readonly PassRow[]): number {
    if (rows.length === 0) return 0;
    const tokens = rows.reduce((n, r) => n + r.chunk, 0);
    const past = rows.reduce((n, r) => n + r.chunk * r.past, 0) / tokens;
    return this.passMs(rows.length, tokens / rows.length, past);
  }

  private interpolate(b: number, c: number, p: number): number {
    const [b0, b1, tb] = bracket(this.batches, b);
    const [c0, c1, tc] = bracket(this.chunks, c);
    const [p0, p1, tp] = bracket(this.pasts, p);
    const g = this.grid;
    const lerp = (x: number, y: number, t: number) => x + (y - x) * t;
    const at = (pi: number) => lerp(lerp(g[pi][b0][c0], g[pi][b0][c1], tc), lerp(g[pi][b1][c0], g[pi][b1][c1], tc), tb);
    return lerp(at(p0), at(p1), tp);
  }
}

/** Indices of the grid values around `x` (inside the axis) and where `x` lies between them. */
function bracket(axis: readonly number[], x: number): [number, number, number] {
  let i = 0;
  while (i < axis.length - 1 && axis[i + 1] <= x) i++;
  if (i === axis.length - 1) return [i, i, 0];
  return [i, i + 1, (x - axis[i]) / (axis[i + 1] - axis[i])];
}

/** GPU milliseconds per token of a pass that commits `tokens` tokens. */
export function gpuMsPerToken(passMs: number, tokens: number): number {
  if (!(tokens > 0)) throw new RangeError(`a pass must commit tokens to have a cost per token, got ${tokens}`);
  return passMs / tokens;
}

/** Euros per million tokens at `gpuMsPerToken` of a GPU that costs `eurPerGpuHour`. */
export function eurPerMillionTokens(gpuMsPerToken: number, eurPerGpuHour: number): number {
  return (gpuMsPerToken * 1e6 * eurPerGpuHour) / 3_600_000;
}
