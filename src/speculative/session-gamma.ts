// One generation's γ decisions (pure, no I/O, no clock): what it has measured so far — acceptance per
// draft position, draft time per token, round trip, verify time against γ, pool-generation time per token —
// and what the pool reports a pass costs now, and the γ the policy chooses from it. Times come in from the
// decoder.
import type { PoolLoad } from "../common/protocol.ts";
import { AcceptanceEstimate, Ewma, LinearFit, RecentMin } from "./acceptance.ts";
import { chooseGamma, type GammaPolicyInput } from "./gamma-policy.ts";
import { DEFAULT_NOMINAL, type NominalTimings, type SpeculationSettings } from "./settings.ts";
import type { MeasuredFigures, PriorFigures } from "./speculation-prior.ts";

/** Standard errors of measured acceptance a switch from generation to fresh drafts allows for. */
const SWITCH_CONFIDENCE_Z = 1;

export class SessionGamma {
  readonly maxGamma: number;
  private readonly acceptance: AcceptanceEstimate;
  private readonly draftPerToken: Ewma;
  /** Started from what earlier generations measured (speculation-prior.ts): the first step may speculate. */
  private readonly primed: boolean;
  /** Network time of this session's rounds (what its rounds really wait, edge queueing included). */
  private readonly roundNetwork = new Ewma(0.2);
  /** Before any round: the smallest start-up seen (a stampede of sessions starting at once is not network time). */
  private readonly rtt = new RecentMin(16);
  private readonly verifyFit = new LinearFit(0.95);
  private readonly genPerToken = new Ewma(0.3);
  /** The same from the second measurement on (the first is taken while every session starts at once). */
  private readonly genSteady = new Ewma(0.3);
  /** The pool's latest cost report: the next pass's ms with every row at chunk 1, 2, …, and how many rows share it. */
  private passMsByChunk: readonly number[] | undefined;
  private passRows = 1;
  /** Sessions the pool holds (each a row of every pass, were they all generating). */
  private poolSessions = 1;
  private lastLoad: PoolLoad | undefined;
  /** Server time beyond the predicted pass (waiting for the pass in flight, HTTP, verification). */
  private readonly beyondPass: Ewma;
  /** The edge's own time per round beyond drafting and the verify call (committing, event-loop lag). */
  private readonly edgeOverhead: Ewma;

  /**
   * `nominalOnly`: ignore measured timings (a seeded sampled request must choose the same γs every time).
   * `poolRoundTripMs`: the pool client's round trip now over all sessions, if it knows one.
   * `remainingTokens`: how many tokens the generation may still emit (a switch pays back over them only).
   * `prior`: what earlier generations with this proposer measured, to start from (ignored with `nominalOnly`).
   */
  constructor(
    private readonly s: SpeculationSettings,
    private readonly nominalOnly = false,
    private readonly poolRoundTripMs: () => number | undefined = () => undefined,
    private readonly remainingTokens: () => number = () => Infinity,
    prior?: PriorFigures,
  ) {
    this.maxGamma = s.maxGamma ?? 8;
    if (s.gamma !== "adaptive" && !(Number.isInteger(s.gamma) && s.gamma >= 0 && s.gamma <= this.maxGamma)) throw new RangeError(`γ must be "adaptive" or an integer 0…${this.maxGamma}, got ${s.gamma}`);
    const p = nominalOnly ? undefined : prior;
    this.primed = p !== undefined && p.alpha.length > 0;
    this.acceptance = new AcceptanceEstimate(this.maxGamma, undefined, this.primed ? p!.alpha : undefined);
    this.draftPerToken = new Ewma(0.2, p?.draftMsPerToken);
    this.beyondPass = new Ewma(0.2, p?.beyondPassMs);
    this.edgeOverhead = new Ewma(0.2, p?.edgeMs);
    if (p?.load) this.observeLoad(p.load);
    if (p?.verifyMs) {
      // Two points of the earlier fit, as observations the session's own rounds soon outweigh.
      this.verifyFit.observe(0, p.verifyMs[0]);
      this.verifyFit.observe(this.maxGamma, p.verifyMs[1]);
    }
    if (p?.generateMs !== undefined) this.genPerToken.observe(p.generateMs);
  }

  /** What this generation measured, for the edge's prior (speculation-prior.ts). */
  measured(): MeasuredFigures {
    return {
      alpha: this.acceptance.alpha,
      seen: this.acceptance.seen,
      draftMsPerToken: this.draftPerToken.value,
      load: this.lastLoad,
      beyondPassMs: this.beyondPass.value,
      edgeMs: this.edgeOverhead.value,
      verifyMs: this.verifyFit.observed ? [this.verifyFit.predict(0)!, this.verifyFit.predict(this.maxGamma)!] : undefined,
      generateMs: this.genSteady.value ?? this.genPerToken.value,
    };
  }

  get adaptive(): boolean {
    return this.s.gamma === "adaptive";
  }

  /** Choices depend on the tokens alone, never on timings (a seeded sampled request). */
  get timingFree(): boolean {
    return this.nominalOnly;
  }

  /**
   * γ for the next step (0: pool generation); `current` is the mode in use (−1 before the first).
   * `confidence`: the next proposal is already made and knows its odds (P(accepted | the ones before),
   * per token): they replace the measured acceptance, and γ goes no further than the proposal. `run`:
   * the tokens its match is expected to commit while it lasts (PeekedProposal.run).
   */
  choose(current: number, confidence?: readonly number[], run?: number): number {
    return this.chooseRound(current, confidence, confidence === undefined, run).gamma;
  }

  /**
   * γ for the next step and where its drafts come from: `peeked`, the proposal already made (priced from its
   * `confidence`, its drafting already paid), or fresh drafts (`canDraft`) priced from the acceptance
   * measured for them and their step time. The better rate wins; neither beating pool generation gives 0.
   */
  chooseRound(current: number, confidence: readonly number[] | undefined, canDraft: boolean, run?: number): { gamma: number; peeked: boolean } {
    const s = this.s;
    if (s.gamma !== "adaptive") return { gamma: s.gamma, peeked: false };
    const n = this.nominalOnly ? (s.nominal ?? DEFAULT_NOMINAL) : undefined;
    // Nothing measured yet: stay with plain remote generation (never slower than not speculating). Fresh
    // drafts also wait until the proposer, following the stream, has measured what a drafted token costs —
    // a slow drafter's first step may outlast the first chunk.
    const measuring = !n && s.allowGenerate !== false;
    if (measuring && !this.primed && !this.verifyFit.observed && this.genPerToken.value === undefined) return { gamma: 0, peeked: false };
    const draftKnown = !measuring || current > 0 || this.draftPerToken.value !== undefined;
    const base = this.policyInput(current, n);
    let best: { gamma: number; peeked: boolean; rate: number; input: GammaPolicyInput } = { gamma: 0, peeked: false, rate: -Infinity, input: base };
    const consider = (input: GammaPolicyInput, peeked: boolean) => {
      const c = chooseGamma(input);
      if (c.gamma > 0 && c.rates[c.gamma] > best.rate) best = { gamma: c.gamma, peeked, rate: c.rates[c.gamma], input };
      else if (c.gamma === 0 && best.rate === -Infinity) best = { ...best, input };
    };
    if (confidence) {
      const maxGamma = Math.max(1, Math.min(this.maxGamma, confidence.length));
      const alpha = Array.from({ length: maxGamma }, (_, k) => confidence[k] ?? 0);
      // Leaving generation for a proposal already in hand: the switch must pay back within the tokens its
      // match is expected to commit (`run`: this round and the ones after it while the match lasts; without
      // it, this round's alone — the next may well go back to generation, at a stream's start-up).
      const horizonTokens = current === 0 ? Math.min(base.horizonTokens ?? Infinity, Math.max(run ?? 0, expectedTokens(alpha))) : base.horizonTokens;
      consider({ ...base, alpha, draftMs: 0, maxGamma, horizonTokens }, true);
    }
    // Leaving generation for fresh drafts is priced at the acceptance measured so far less one standard
    // error: a few lucky tokens must not start a speculation that then costs a switch back.
    if (canDraft && draftKnown) consider(current === 0 && !n ? { ...base, alpha: this.acceptance.lowerBound(SWITCH_CONFIDENCE_Z) } : base, false);
    return { gamma: best.gamma, peeked: best.peeked };
  }

  /** The policy's input for fresh drafts priced from measured acceptance (nominal timings when `n`). */
  private policyInput(current: number, n: NominalTimings | undefined): GammaPolicyInput {
    const s = this.s;
    const curve = n ? undefined : this.passMsByChunk;
    const pass = (g: number) => curve![Math.min(g, curve!.length - 1)];
    // Until this session's own rounds have measured it, a round waits at least for the others' pass in
    // flight, as the pool reports it: a session generating among others has never waited for one.
    const beyond = this.roundNetwork.value !== undefined ? this.beyondPass.or(0) : Math.max(this.beyondPass.or(0), this.lastLoad?.pass_wait_ms ?? 0);
    const v0 = n?.verifyMs ?? (curve ? pass(0) + beyond : (this.verifyFit.predict(0) ?? this.genPerToken.value ?? DEFAULT_NOMINAL.verifyMs));
    const verifyMs = (g: number) => (n ? n.verifyMs : curve ? pass(g) + beyond : (this.verifyFit.predict(g) ?? v0));
    // Each part of a round is measured once: a slow round moves one estimate, not a part and a scale.
    const rttMs = n?.rttMs ?? this.roundTripMs() + this.edgeOverhead.or(0);
    // The pass a round runs in, every row at its chunk; its share follows from how many sessions send rounds.
    const gpuMs = curve ? pass : verifyMs;
    // Generating, a session shares every pass with all the others (continuous batching): with more
    // sessions than its last pass's rows (speculators out of step), generation costs the smaller share.
    const generateGpuMs = curve ? pass(0) / Math.max(this.passRows, this.poolSessions) : undefined;
    return {
      alpha: this.acceptance.alpha,
      draftMs: n?.draftMs ?? this.draftPerToken.or(DEFAULT_NOMINAL.draftMs),
      rttMs,
      verifyMs,
      gpuMs,
      sessions: curve ? this.poolSessions : 1,
      // A switch costs a round trip and a pass: a stream's start-up, or the re-opening round.
      switchCostMs: s.objective === "gpu" ? (generateGpuMs ?? gpuMs(0)) : rttMs + verifyMs(0),
      horizonTokens: Math.min(s.generateChunk ?? 16, this.remainingTokens()),
      // A generating session's passes are back to back (its next pass is queued as its token leaves), so a
      // token costs about a pass: the model's figure bounds the first measurement, taken amid a start-up
      // stampede. Later ones stand as measured: under load a token also waits for the pass's own overhead
      // (sending 32 streams' tokens), which the model leaves out and a round's price includes.
      generateMs: n?.generateMs ?? (curve ? (this.genSteady.value ?? Math.min(this.genPerToken.or(Infinity), pass(0))) : this.genPerToken.or(v0)),
      generateGpuMs,
      maxGamma: this.maxGamma,
      minGamma: s.allowGenerate === false ? 1 : 0,
      objective: s.objective,
      proactive: s.proactive,
      current,
    };
  }

  /** A round's time at the edge beyond drafting and the verify call (re-opening rounds left out). */
  observeEdgeTime(ms: number): void {
    this.edgeOverhead.observe(Math.max(0, ms));
  }

  /**
   * The round trip: what this session's rounds have measured; before any, what the pool client measures
   * now over all sessions; without one, the smallest of this session's generation start-ups (0 before any).
   */
  private roundTripMs(): number {
    return this.roundNetwork.value ?? this.poolRoundTripMs() ?? this.rtt.value ?? 0;
  }

  /**
   * A verify round: γ drafts, `accepted` of them, server time, network time (undefined for a re-opening
   * round, whose request carries the whole history and may open a connection: its times are left out), the
   * pool's load report, and whether the drafts were a peeked proposal.
   */
  observeRound(gamma: number, accepted: number, serverMs: number, networkMs: number | undefined, load: PoolLoad, peeked = false): void {
    // A re-opening round's times are a switch's: its network time may include a new connection, its server
    // time the prefill of the whole history. Neither is what the next round will cost.
    if (networkMs !== undefined) {
      this.roundNetwork.observe(networkMs);
      this.verifyFit.observe(gamma, serverMs);
      const predicted = this.passMsByChunk?.[Math.min(gamma, this.passMsByChunk.length - 1)];
      if (predicted !== undefined) this.beyondPass.observe(Math.max(0, serverMs - predicted));
    }
    this.observeLoad(load);
    // The measured acceptance prices fresh drafts; a peeked proposal carried its own odds.
    if (gamma > 0 && !peeked) this.acceptance.observeRound(gamma, accepted);
  }

  /** The pool's load report (every verify answer; every few generated tokens). */
  observeLoad(load: PoolLoad): void {
    this.lastLoad = load;
    if (load.pass_ms_by_chunk?.length) this.passMsByChunk = load.pass_ms_by_chunk;
    if (load.rows !== undefined) this.passRows = Math.max(1, load.rows);
    this.poolSessions = load.sessions;
  }

  /** Proposing cost per drafted token. */
  observeDraftStep(msPerToken: number): void {
    this.draftPerToken.observe(msPerToken);
  }

  /** The pool generated a token: would the proposer have proposed it? */
  observeProposalHit(hit: boolean): void {
    this.acceptance.observeToken(hit);
  }

  /** Pool generation's cost per token, and the round trip seen at its start (start-up beyond the pool's own time). */
  observeGeneration(msPerToken: number, networkMs?: number): void {
    if (this.genPerToken.value !== undefined) this.genSteady.observe(msPerToken);
    this.genPerToken.observe(msPerToken);
    if (networkMs !== undefined) this.rtt.observe(Math.max(0, networkMs));
  }
}

/** Tokens a round is expected to commit when its drafts are accepted with these chances: 1 + Σₖ Πᵢ≤ₖ αᵢ. */
function expectedTokens(alpha: readonly number[]): number {
  let [all, sum] = [1, 1];
  for (const a of alpha) sum += all *= a;
  return sum;
}
