// Speculative decoding at the edge (DESIGN §3–4): prompt → stream of committed tokens. Each round the
// drafter proposes γ tokens, the pool verifies them in one target pass, and the accepted prefix plus the
// target's own token are committed. γ comes from the policy (src/spec/gamma-policy.ts) or is fixed; γ = 0
// hands the session to the pool's own generation for a chunk of tokens, after which the policy decides
// again. Runtime-agnostic (Node and workerd): the models and the pool come in.
import type { CausalLM } from "../shared/models/causal-lm.ts";
import { argmax } from "../shared/models/causal-lm.ts";
import type { Sampling, VerifyRequest } from "../shared/protocol.ts";
import { AcceptanceEstimate, Ewma, LinearFit } from "./acceptance.ts";
import { Drafter } from "./model-proposer.ts";
import { chooseGamma, type GammaObjective } from "./gamma-policy.ts";
import type { PoolClient } from "../pool/pool-client.ts";
import { scanStops } from "./stop-strings.ts";

/** The pool operations the decoder needs (PoolClient provides them). */
export type VerifierPool = Pick<PoolClient, "round" | "generate" | "close">;

/** Timings the policy assumes when it must not depend on the clock (seeded sampling). */
export interface NominalTimings {
  draftMs: number;
  rttMs: number;
  verifyMs: number;
  generateMs: number;
}

export interface SpecDecoderOptions {
  draft: CausalLM;
  pool: VerifierPool;
  maxTokens: number;
  /** Token ids that end the generation (EOS); not part of the output. */
  stopIds?: readonly number[];
  /** Stop strings (need `decode`); the output ends before the first one. */
  stop?: readonly string[];
  decode?: (tokens: readonly number[]) => string;
  /** Omitted or temperature 0: greedy. */
  sampling?: Sampling;
  /** True when the caller chose the seed: the γ policy then ignores measured timings so the text repeats. */
  seeded?: boolean;
  gamma: number | "adaptive";
  maxGamma?: number;
  /** Adaptive only: may γ drop to 0 (pool generation)? Default true. */
  allowGenerate?: boolean;
  objective?: GammaObjective;
  proactive?: boolean;
  /** Support K of the sparse q̃ sent with sampled drafts. */
  support?: number;
  /** Tokens the pool generates before the policy is asked again (γ = 0 mode). */
  generateChunk?: number;
  nominal?: NominalTimings;
  session: string;
  signal?: AbortSignal;
}

export interface DecodeStats {
  rounds: number;
  drafted: number;
  accepted: number;
  /** Tokens committed by verify rounds, and by pool generation. */
  roundTokens: number;
  generatedTokens: number;
  /** Target passes: one per round, one per pool-generated token. */
  targetPasses: number;
  draftMs: number;
  /** Verifier time of the rounds (server side), and network + queueing on top of it. */
  verifyMs: number;
  networkMs: number;
  generateMs: number;
  modeChanges: number;
  /** Edge time of the rounds outside draft passes and the pool call (bookkeeping, JSON, text). */
  edgeMs: number;
  /** Proactive drafting: rounds whose next block had been drafted ahead, and ahead work discarded. */
  aheadUsed: number;
  aheadDiscarded: number;
  /** γ chosen per round (0 for a pool-generated chunk). */
  gammas: number[];
  /** Each verify round: drafts sent and accepted. */
  roundLog: { gamma: number; accepted: number }[];
}

export interface DecodeEvent {
  /** Newly committed tokens. */
  tokens: number[];
  /** Newly visible text (with `decode`; held back while it could be part of a stop string). */
  text: string;
}

export type FinishReason = "stop" | "length";

export const DEFAULT_NOMINAL: NominalTimings = { draftMs: 1, rttMs: 20, verifyMs: 20, generateMs: 20 };
/** Queue depth at which the pool counts as saturated for the policy. */
const SATURATED_QUEUE = 32;

export class SpecDecoder {
  readonly stats: DecodeStats = {
    rounds: 0,
    drafted: 0,
    accepted: 0,
    roundTokens: 0,
    generatedTokens: 0,
    targetPasses: 0,
    draftMs: 0,
    verifyMs: 0,
    networkMs: 0,
    generateMs: 0,
    modeChanges: 0,
    edgeMs: 0,
    aheadUsed: 0,
    aheadDiscarded: 0,
    gammas: [],
    roundLog: [],
  };
  finishReason: FinishReason | undefined;
  /** Committed output tokens (EOS excluded). */
  readonly output: number[] = [];

  private readonly drafter: Drafter;
  private readonly maxGamma: number;
  private readonly acceptance: AcceptanceEstimate;
  private readonly draftPerToken = new Ewma(0.2);
  private readonly rtt = new Ewma(0.2);
  private readonly verifyFit = new LinearFit(0.95);
  private readonly genPerToken = new Ewma(0.3);
  private load = 0;

  constructor(private readonly o: SpecDecoderOptions) {
    if (!(Number.isInteger(o.maxTokens) && o.maxTokens >= 1)) throw new RangeError(`maxTokens must be a positive integer, got ${o.maxTokens}`);
    if (o.stop?.length && !o.decode) throw new RangeError("stop strings need a decode function");
    this.maxGamma = o.maxGamma ?? 8;
    if (o.gamma !== "adaptive" && !(Number.isInteger(o.gamma) && o.gamma >= 0 && o.gamma <= this.maxGamma))
      throw new RangeError(`γ must be "adaptive" or an integer 0…${this.maxGamma}, got ${o.gamma}`);
    const sampling = o.sampling && o.sampling.temperature > 0 ? o.sampling : undefined;
    this.drafter = new Drafter(o.draft, {
      sampling: sampling && { temperature: sampling.temperature, topP: sampling.top_p, topK: sampling.top_k, seed: sampling.seed },
      support: o.support,
    });
    this.acceptance = new AcceptanceEstimate(this.maxGamma);
  }

  private choose(current: number): number {
    if (this.o.gamma !== "adaptive") return this.o.gamma;
    const n = this.o.seeded && this.o.sampling?.temperature ? (this.o.nominal ?? DEFAULT_NOMINAL) : undefined;
    // Nothing measured yet: start as plain remote generation (never slower than not speculating) and let
    // the drafter, following the stream, measure α and its own step time first.
    if (!n && this.o.allowGenerate !== false && !this.verifyFit.observed && this.genPerToken.value === undefined) return 0;
    const v0 = n?.verifyMs ?? this.verifyFit.predict(0) ?? this.genPerToken.value ?? DEFAULT_NOMINAL.verifyMs;
    return chooseGamma({
      alpha: this.acceptance.alpha,
      draftMs: n?.draftMs ?? this.draftPerToken.or(DEFAULT_NOMINAL.draftMs),
      rttMs: n?.rttMs ?? this.rtt.or(0),
      verifyMs: (g) => (n ? n.verifyMs : (this.verifyFit.predict(g) ?? v0)),
      generateMs: n?.generateMs ?? this.genPerToken.or(v0),
      load: n ? 0 : this.load,
      maxGamma: this.maxGamma,
      minGamma: this.o.allowGenerate === false ? 1 : 0,
      objective: this.o.objective,
      proactive: this.o.proactive,
      current,
    }).gamma;
  }

  /** Committed tokens, as events; ends at EOS, a stop string, maxTokens, or when the signal aborts. */
  async *run(prompt: readonly number[]): AsyncGenerator<DecodeEvent> {
    if (prompt.length === 0) throw new RangeError("the prompt must have at least one token");
    const o = this.o;
    const history = [...prompt];
    const stopIds = new Set(o.stopIds ?? []);
    let shownText = 0;
    let opened = false;
    let seq = 0;
    let lastCommitted: number[] = [];
    let mode = -1;
    const sampling = o.sampling && o.sampling.temperature > 0 ? o.sampling : undefined;

    /** Appends committed tokens; returns the event to emit and whether the generation is over. */
    const commit = (tokens: readonly number[]): { event: DecodeEvent; done: boolean } => {
      const fresh: number[] = [];
      let done = false;
      for (const t of tokens) {
        history.push(t);
        if (stopIds.has(t)) {
          this.finishReason = "stop";
          done = true;
          break;
        }
        this.output.push(t);
        fresh.push(t);
        if (this.output.length >= o.maxTokens) {
          this.finishReason = "length";
          done = true;
          break;
        }
      }
      let text = "";
      if (o.decode) {
        const dec = (t: readonly number[]) => (t.length ? o.decode!(t) : "");
        const full = dec(this.output);
        const scan = scanStops(full, o.stop ?? []);
        if (scan.stopAt !== -1) {
          // Keep the tokens up to the one that completes the stop string.
          let k = this.output.length - fresh.length;
          while (k < this.output.length && !o.stop!.some((s) => dec(this.output.slice(0, k)).includes(s))) k++;
          const cut = this.output.length - k;
          this.output.length = k;
          fresh.length = Math.max(0, fresh.length - cut);
          this.finishReason = "stop";
          done = true;
        }
        const visible = done ? (scan.stopAt !== -1 ? scan.stopAt : full.length) : scan.safeLength;
        if (visible > shownText) {
          text = full.slice(shownText, visible);
          shownText = visible;
        }
      }
      return { event: { tokens: fresh, text }, done };
    };

    try {
      while (true) {
        if (o.signal?.aborted) return;
        const remaining = o.maxTokens - this.output.length;
        const gamma = this.choose(mode);
        if (gamma !== mode && mode !== -1 && (gamma === 0) !== (mode === 0)) this.stats.modeChanges++;
        mode = gamma;
        this.stats.gammas.push(gamma);

        if (gamma === 0) {
          // Pool generation: one stream to the end; adaptive asks the policy again every chunk and, if
          // speculation now pays, leaves the loop, which closes the stream (the pool stops generating).
          // The verifier's session, if any, no longer matches: the next round re-opens it by history.
          opened = false;
          const chunk = o.generateChunk ?? 16;
          const t0 = performance.now();
          let tFirst = 0;
          let got = 0;
          let switching = false;
          // The drafter follows the stream without holding it up: it checks whether it would have
          // predicted a token when it is free, and skips tokens that arrive while it is busy.
          let observing: Promise<void> | undefined;
          const observe = (context: number[], token: number) => {
            const d0 = this.drafter.draftMs;
            observing = this.drafter.sync(context).then((row) => {
              this.acceptance.observeToken(argmax(row) === token);
              this.draftPerToken.observe(this.drafter.draftMs - d0); // one forward: about one draft step
              this.stats.draftMs += this.drafter.draftMs - d0;
              observing = undefined;
            });
          };
          try {
            for await (const token of o.pool.generate({ history: [...history], max_tokens: remaining, stop_ids: [...stopIds], sampling }, o.signal)) {
              got++;
              if (got === 1) tFirst = performance.now();
              this.stats.generatedTokens++;
              this.stats.targetPasses++;
              if (o.gamma === "adaptive" && !observing) observe([...history], token);
              const { event, done } = commit([token]);
              if (event.tokens.length || event.text) yield event;
              if (done) return;
              if (o.gamma === "adaptive" && got % chunk === 0) {
                // Streaming cost per token, and the stream's start-up beyond one step as the round trip.
                const perToken = (performance.now() - tFirst) / (got - 1);
                this.genPerToken.observe(perToken);
                if (got === chunk) this.rtt.observe(Math.max(0, tFirst - t0 - perToken));
                if (this.choose(0) !== 0) {
                  switching = true;
                  break;
                }
              }
            }
          } finally {
            await observing;
          }
          this.stats.generateMs += performance.now() - t0;
          if (!switching) {
            this.finishReason ??= "stop"; // the pool ended on a stop id before our own checks did
            return;
          }
          continue;
        }

        const g = Math.min(gamma, remaining - 1);
        const tRound = performance.now();
        const d0 = this.drafter.draftMs;
        const block = g > 0 ? await this.drafter.draft(history, g) : { tokens: [] as number[] };
        const draftMs = this.drafter.draftMs - d0;
        if (g > 0) this.draftPerToken.observe(draftMs / g);
        this.stats.draftMs += draftMs;
        if (o.proactive && g > 0) this.drafter.startAhead(history, block, g);
        const thisSeq = seq;
        const committedBefore = lastCommitted;
        const build = (reopen: boolean): VerifyRequest => ({
          session: o.session,
          seq: thisSeq,
          drafts: block.tokens,
          ...(block.q ? { q: block.q } : {}),
          ...(reopen || !opened ? { history: [...history], ...(sampling ? { sampling } : {}) } : { committed: committedBefore }),
        });
        // Drafting ahead (if on) keeps running through the round; the next draft() settles it.
        const r = await o.pool.round(o.session, build, o.signal);
        const d1 = this.drafter.draftMs;
        opened = true;
        seq++;
        this.stats.rounds++;
        this.stats.targetPasses++;
        this.stats.drafted += g;
        this.stats.accepted += r.accepted;
        this.stats.roundLog.push({ gamma: g, accepted: r.accepted });
        this.stats.verifyMs += r.server_ms;
        this.stats.networkMs += Math.max(0, r.elapsedMs - r.server_ms);
        this.rtt.observe(Math.max(0, r.elapsedMs - r.server_ms));
        this.verifyFit.observe(g, r.server_ms);
        this.load = Math.min(1, r.load.queue_depth / SATURATED_QUEUE);
        if (g > 0) this.acceptance.observeRound(g, r.accepted);
        lastCommitted = [...block.tokens.slice(0, r.accepted), r.token];
        this.stats.roundTokens += lastCommitted.length;
        const { event, done } = commit(lastCommitted);
        // Draft time spent ahead while the round was in flight counts as drafting.
        this.stats.draftMs += this.drafter.draftMs - d1;
        this.stats.edgeMs += Math.max(0, performance.now() - tRound - draftMs - r.elapsedMs);
        if (event.tokens.length || event.text) yield event;
        if (done) return;
      }
    } catch (e) {
      if (o.signal?.aborted) return; // cancelled: the caller went away; nothing to report
      throw e;
    } finally {
      await this.drafter.reset();
      this.stats.aheadUsed = this.drafter.aheadUsed;
      this.stats.aheadDiscarded = this.drafter.aheadDiscarded;
      // Close the verifier's session whether the generation ended or the client went away.
      await o.pool.close(o.session);
    }
  }
}
