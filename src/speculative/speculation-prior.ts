// What earlier generations on this edge measured, per proposer, for a new generation to start from (pure,
// no I/O). Without it every adaptive generation starts by letting the pool generate until it has measured
// its drafter's acceptance and step time — at 64 tokens a fifth of a short answer at the slower rate. A
// drafter's acceptance and step time, and what the pool's passes cost, change slowly across requests of
// one edge, so a generation starts from them and its own measurements take over within a few rounds.
import type { PoolLoad } from "../common/protocol.ts";
import { Ewma } from "./acceptance.ts";

/** What a generation measured (SessionGamma.measured), folded into the prior at its end. */
export interface MeasuredFigures {
  /** Conditional acceptance per draft position, and how many times each position was observed. */
  alpha: readonly number[];
  seen: readonly number[];
  draftMsPerToken?: number;
  /** The pool's last load report. */
  load?: PoolLoad;
  /** Server time beyond the predicted pass, and the edge's own time per round. */
  beyondPassMs?: number;
  edgeMs?: number;
  /** Verify time of a round with no drafts and with the most (a pool without a cost model reports no curve). */
  verifyMs?: readonly [number, number];
  /** Pool generation's time per token. */
  generateMs?: number;
  /** The answer opened by copying its prompt (Proposer.openingWindow): its first few tokens follow each other there. */
  copiedOpening?: boolean;
}

/** A prior ready to start from: every figure a first decision needs. */
export interface PriorFigures {
  /** Positions observed so far (a round observes a position only after the ones before it). */
  alpha: readonly number[];
  draftMsPerToken: number;
  /** What a round costs: the pool's pass curve, or else measured verify times. */
  load?: PoolLoad;
  verifyMs?: readonly [number, number];
  generateMs?: number;
  beyondPassMs: number;
  edgeMs: number;
}

/** Observations of the first position (rounds or checked tokens) before a prior is trusted. */
const MIN_OBSERVATIONS = 8;
/** A generation's observations count for this many at most: one odd request does not rewrite the prior. */
const MAX_WEIGHT = 32;
/** Each new generation discounts what came before by this factor: the prior follows the traffic. */
const FORGET = 0.8;

export class SpeculationPrior {
  private alpha: number[] = [];
  private weight: number[] = [];
  private readonly draftMs = new Ewma(0.3);
  private readonly beyondPass = new Ewma(0.3);
  private readonly edge = new Ewma(0.3);
  private load: PoolLoad | undefined;
  private readonly verify0 = new Ewma(0.3);
  private readonly verifyMax = new Ewma(0.3);
  private readonly generate = new Ewma(0.3);
  private readonly opening = new Ewma(0.3);

  learn(m: MeasuredFigures): void {
    m.alpha.forEach((a, i) => {
      const s = Math.min(m.seen[i] ?? 0, MAX_WEIGHT);
      const w = (this.weight[i] ?? 0) * FORGET;
      if (s <= 0 || !Number.isFinite(a)) {
        if (this.weight[i] !== undefined) this.weight[i] = w;
        return;
      }
      this.alpha[i] = ((this.alpha[i] ?? 0) * w + a * s) / (w + s);
      this.weight[i] = w + s;
    });
    if (m.draftMsPerToken !== undefined) this.draftMs.observe(m.draftMsPerToken);
    if (m.beyondPassMs !== undefined) this.beyondPass.observe(m.beyondPassMs);
    if (m.edgeMs !== undefined) this.edge.observe(m.edgeMs);
    if (m.load?.pass_ms_by_chunk?.length) this.load = m.load;
    if (m.verifyMs) {
      this.verify0.observe(m.verifyMs[0]);
      this.verifyMax.observe(m.verifyMs[1]);
    }
    if (m.generateMs !== undefined) this.generate.observe(m.generateMs);
    if (m.copiedOpening !== undefined) this.opening.observe(m.copiedOpening ? 1 : 0);
  }

  /** Share of recent answers that opened by copying their prompt (undefined before the first). */
  get copiedOpening(): number | undefined {
    return this.opening.value;
  }

  /** The figures to start from, once enough has been measured (undefined before). */
  get figures(): PriorFigures | undefined {
    const v0 = this.verify0.value;
    const vMax = this.verifyMax.value;
    const verifyMs = v0 !== undefined && vMax !== undefined ? ([v0, vMax] as const) : undefined;
    if ((this.weight[0] ?? 0) < MIN_OBSERVATIONS || this.draftMs.value === undefined || !(this.load || verifyMs)) return undefined;
    return {
      alpha: [...this.alpha],
      draftMsPerToken: this.draftMs.value,
      ...(this.load ? { load: this.load } : {}),
      ...(verifyMs ? { verifyMs } : {}),
      ...(this.generate.value !== undefined ? { generateMs: this.generate.value } : {}),
      beyondPassMs: this.beyondPass.or(0),
      edgeMs: this.edge.or(0),
    };
  }
}

/** One prior per proposer (its `name`), shared by every generation of an edge. */
export class SpeculationPriors {
  private readonly byProposer = new Map<string, SpeculationPrior>();

  for(proposer: string): SpeculationPrior {
    const p = this.byProposer.get(proposer) ?? new SpeculationPrior();
    this.byProposer.set(proposer, p);
    return p;
  }
}
