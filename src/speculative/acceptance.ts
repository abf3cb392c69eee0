// Per-session estimates the γ policy feeds on (pure, no I/O): conditional acceptance per draft position,
// exponentially weighted so that a session's estimates follow its text, and a linear fit of verify time
// against γ. All updates are O(γ).

/** Exponentially weighted mean; `undefined` until the first observation unless a prior is given. */
export class Ewma {
  value: number | undefined;
  constructor(
    private readonly weight: number,
    prior?: number,
  ) {
    if (!(weight > 0 && weight <= 1)) throw new RangeError(`EWMA weight must be in (0, 1], got ${weight}`);
    this.value = prior;
  }
  observe(x: number): void {
    if (!Number.isFinite(x)) return;
    this.value = this.value === undefined ? x : this.value + this.weight * (x - this.value);
  }
  or(fallback: number): number {
    return this.value ?? fallback;
  }
}

/**
 * The smallest of the last `window` observations; `undefined` until the first. A round trip is never
 * shorter than the network's: what lies above the minimum is queueing (the client's own, a stampede of
 * sessions starting at once), which is not the network's cost and not the pool's.
 */
export class RecentMin {
  private readonly recent: number[] = [];
  constructor(private readonly window: number) {
    if (!(Number.isInteger(window) && window >= 1)) throw new RangeError(`window must be a positive integer, got ${window}`);
  }
  observe(x: number): void {
    if (!Number.isFinite(x)) return;
    this.recent.push(x);
    if (this.recent.length > this.window) this.recent.shift();
  }
  get value(): number | undefined {
    return this.recent.length ? Math.min(...this.recent) : undefined;
  }
}

/**
 * αᵢ = P(draft i accepted | drafts 1…i−1 accepted), i = 1…maxGamma. A round with γ drafts of which
 * `accepted` passed observes positions 1…accepted as accepted and position accepted+1 (if ≤ γ) as
 * rejected; positions beyond were not tested and keep their estimate.
 */
export class AcceptanceEstimate {
  readonly alpha: number[];
  /** Observations per position so far. */
  readonly seen: number[];
  /**
   * `weight`: the exponential weight once warmed up; before that each position averages its observations
   * with the prior counted as `priorWeight` observations, so a session's first tokens move it quickly.
   * `prior`: one value for every position, or one per position (positions beyond it take its last).
   */
  constructor(
    maxGamma: number,
    private readonly weight = 0.15,
    prior: number | readonly number[] = 0.6,
    private readonly priorWeight = 4,
  ) {
    this.alpha = Array.from({ length: maxGamma }, (_, i) => (typeof prior === "number" ? prior : (prior[Math.min(i, prior.length - 1)] ?? 0.6)));
    this.seen = new Array(maxGamma).fill(0);
  }

  private update(i: number, x: number, weight: number): void {
    this.seen[i]++;
    this.alpha[i] += Math.max(weight, 1 / (this.seen[i] + this.priorWeight)) * (x - this.alpha[i]);
  }

  observeRound(gamma: number, accepted: number): void {
    if (!(Number.isInteger(accepted) && accepted >= 0 && accepted <= gamma)) throw new RangeError(`accepted ${accepted} of γ = ${gamma}`);
    const tested = Math.min(accepted + 1, gamma, this.alpha.length);
    for (let i = 0; i < tested; i++) this.update(i, i < accepted ? 1 : 0, this.weight);
  }

  /**
   * What each αᵢ is at least, `z` standard errors below its estimate (the Wilson score bound, which stays
   * below 1 after a run of acceptances), counting as many observations as the estimate rests on: the
   * prior's count while few, at most the exponential weight's effective count (2 − w)/w.
   */
  lowerBound(z: number): number[] {
    const most = (2 - this.weight) / this.weight;
    const z2 = z * z;
    return this.alpha.map((a, i) => {
      const n = Math.min(this.seen[i] + this.priorWeight, most);
      return Math.max(0, (a + z2 / (2 * n) - z * Math.sqrt((a * (1 - a)) / n + z2 / (4 * n * n))) / (1 + z2 / n));
    });
  }

  /**
   * A position checked outside a round (while the pool generates: did the draft predict the target's
   * token?). Lacking a chain, it moves every position alike.
   */
  observeToken(agreed: boolean): void {
    for (let i = 0; i < this.alpha.length; i++) this.update(i, agreed ? 1 : 0, this.weight / 2);
  }
}

/**
 * ms ≈ a + b·x by least squares with exponential forgetting (recent rounds count more). Before two
 * distinct x have been seen, the slope is `priorSlope` through the mean.
 */
export class LinearFit {
  private sw = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;
  constructor(
    private readonly forget = 0.95,
    private readonly priorSlope = 0,
  ) {}

  observe(x: number, y: number): void {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    const f = this.forget;
    this.sw = this.sw * f + 1;
    this.sx = this.sx * f + x;
    this.sy = this.sy * f + y;
    this.sxx = this.sxx * f + x * x;
    this.sxy = this.sxy * f + x * y;
  }

  get observed(): boolean {
    return this.sw > 0;
  }

  predict(x: number): number | undefined {
    if (this.sw === 0) return undefined;
    const mx = this.sx / this.sw;
    const my = this.sy / this.sw;
    const varx = this.sxx / this.sw - mx * mx;
    const slope = varx > 1e-9 ? (this.sxy / this.sw - mx * my) / varx : this.priorSlope;
    return Math.max(0, my + Math.max(0, slope) * (x - mx));
  }
}
