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
//   smallest measured one costs what that one costs (an upper bound); a past beyond the largest measured
//   one is refused (`passMsClampingPast` costs it at that past instead: a lower bound). More rows or a
//   longer chunk than measured continue the envelope along that axis on the secant through its last two
//   grid points: the exact continuation of the last measured slope. Once passes are compute-bound that
//   slope is the per-token cost, and a memory-bound pass, which reads the weights once whatever its size,
//   grows by no more than it (scaling the largest measured pass by tokens would charge that read again:
//   128 rows of one token at 512 past would cost 49.3 ms, not 27.1). Both beyond: rows, then chunk (the
//   two commute). The last slopes differ across the other axes (2 rows' last chunk step is steeper than
//   4 rows'; at 8,192 and 32,768 past chunk 12 was not measured, so the envelope's last chunk step there
//   is flat), so the continued grid takes the envelope's running maximum too: the model stays monotone
//   (a chunk beyond 16 at 8,192 past costs at least what it costs at 2,048), and nothing changes where
//   the secants already are. An axis with a single measured value (1) scales by tokens.

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

/** Times on a grid, indexed [past][batch][chunk]. */
interface Grid {
  batches: number[];
  chunks: number[];
  pasts: number[];
  ms: number[][][];
}

export class PassCostModel {
  /** The envelope. */
  private readonly grid: Grid;

  constructor(
    readonly name: string,
    measured: readonly MeasuredPass[],
  ) {
    if (measured.length === 0) throw new RangeError(`${name}: no measured passes`);
    for (const m of measured) if (!(m.batch >= 1 && m.chunk >= 1 && m.past >= 0 && m.ms > 0)) throw new RangeError(`${name}: bad measurement ${JSON.stringify(m)}`);
    const axis = (f: (m: MeasuredPass) => number) => [...new Set(measured.map(f))].sort((a, b) => a - b);
    const batches = axis((m) => m.batch);
    const chunks = axis((m) => m.chunk);
    const pasts = axis((m) => m.past);
    if (batches[0] !== 1 || chunks[0] !== 1) throw new RangeError(`${name}: the grid must start at batch 1 and chunk 1`);

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
    const ms = pasts.map((p) =>
      batches.map((b) =>
        chunks.map((c) => {
          const atLeast = covered(b, c, p);
          const v = Number.isFinite(atLeast) ? atLeast : grown(b, c, p);
          if (!Number.isFinite(v)) throw new RangeError(`${name}: no measurement bounds batch ${b}, chunk ${c}, past ${p}`);
          return v;
        }),
      ),
    );
    raiseToRunningMax(ms);
    this.grid = { batches, chunks, pasts, ms };
  }

  /** Largest past the measurements reach. */
  get maxPast(): number {
    return this.grid.pasts[this.grid.pasts.length - 1];
  }

  /** Milliseconds of one pass of `batch` rows, each with `chunk` new tokens after `past` cached ones. */
  passMs(batch: number, chunk: number, past: number): number {
    if (!(batch >= 1 && chunk >= 1 && past >= 0)) throw new RangeError(`${this.name}: no pass of batch ${batch}, chunk ${chunk}, past ${past}`);
    if (past > this.maxPast) throw new RangeError(`${this.name}: past ${past} is beyond the measured ${this.maxPast}`);
    return interpolate(this.continuedTo(batch, chunk), batch, chunk, Math.max(past, this.grid.pasts[0]));
  }

  /**
   * `passMs` with a past beyond the measured ones costed at the longest measured past: a lower bound there
   * (attention over a longer past only costs more), for models measured at short pasts only.
   */
  passMsClampingPast(batch: number, chunk: number, past: number): number {
    return this.passMs(batch, chunk, Math.min(past, this.maxPast));
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

  /** The envelope, with grid points added on the secants at `batch` and `chunk` where they lie beyond it. */
  private continuedTo(batch: number, chunk: number): Grid {
    const { batches, chunks, pasts, ms } = this.grid;
    const beyondBatch = batch > batches[batches.length - 1];
    const beyondChunk = chunk > chunks[chunks.length - 1];
    if (!beyondBatch && !beyondChunk) return this.grid;
    const continued = ms.map((plane) => {
      const rows = plane.map((row) => (beyondChunk ? [...row, onSecant(chunks, row, chunk)] : [...row]));
      if (beyondBatch)
        rows.push(
          rows[0].map((_, ci) =>
            onSecant(
              batches,
              rows.map((row) => row[ci]),
              batch,
            ),
          ),
        );
      return rows;
    });
    raiseToRunningMax(continued);
    return { batches: beyondBatch ? [...batches, batch] : batches, chunks: beyondChunk ? [...chunks, chunk] : chunks, pasts, ms: continued };
  }
}

/** Raises every time of `ms` ([past][batch][chunk]) to the largest one at or below it on every axis. */
function raiseToRunningMax(ms: number[][][]): void {
  for (const [pi, plane] of ms.entries())
    for (const [bi, row] of plane.entries()) for (const [ci, v] of row.entries()) row[ci] = Math.max(v, ci ? row[ci - 1] : 0, bi ? plane[bi - 1][ci] : 0, pi ? ms[pi - 1][bi][ci] : 0);
}

/**
 * The value at `x`, beyond the last point of `axis`, on the secant through the `values` at its last two
 * points (scaled by `x` where the axis holds only 1).
 */
function onSecant(axis: readonly number[], values: readonly number[], x: number): number {
  const n = axis.length - 1;
  if (n === 0) return values[0] * x;
  return values[n] + ((values[n] - values[n - 1]) * (x - axis[n])) / (axis[n] - axis[n - 1]);
}

/** Multilinear interpolation of `g` at a point of its range (a past below it costs the shortest). */
function interpolate(g: Grid, b: number, c: number, p: number): number {
  const [b0, b1, tb] = bracket(g.batches, b);
  const [c0, c1, tc] = bracket(g.chunks, c);
  const [p0, p1, tp] = bracket(g.pasts, p);
  const lerp = (x: number, y: number, t: number) => x + (y - x) * t;
  const at = (pi: number) => lerp(lerp(g.ms[pi][b0][c0], g.ms[pi][b0][c1], tc), lerp(g.ms[pi][b1][c0], g.ms[pi][b1][c1], tc), tb);
  return lerp(at(p0), at(p1), tp);
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
