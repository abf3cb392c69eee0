// Per-generation statistics of the speculative decoder (the `alia_speculation` field, headers, metrics).

export interface DecodeStats {
  /** Which proposer drafted ("model", …). */
  proposer: string;
  rounds: number;
  drafted: number;
  accepted: number;
  /** Tokens committed by verify rounds (stop ids included: each was a verified position). */
  roundTokens: number;
  /** Output tokens the pool generated alone (γ = 0); a stop id ends the output and is not counted. */
  generatedTokens: number;
  /** Of those, the ones generated within a round after a broken copy, until it could resume (VerifyRequest.resume). */
  resumedTokens: number;
  /** Target passes: one per round, one per pool-generated token (a stop id included). */
  targetPasses: number;
  draftMs: number;
  /** Verifier time of the rounds (server side), and network + queueing on top of it. */
  verifyMs: number;
  networkMs: number;
  generateMs: number;
  /** Switches between speculation and pool generation. */
  modeChanges: number;
  /** Edge time of the rounds outside proposing and the pool call (bookkeeping, JSON, text). */
  edgeMs: number;
  /** Proactive drafting: rounds whose next block had been drafted ahead, and ahead work discarded. */
  aheadUsed: number;
  aheadDiscarded: number;
  /** Rounds sent while the round before them was in flight (pipelining) whose bet came true. */
  pipelinedRounds: number;
  /** Of `rounds`, follow passes: a resumed round's own verification of the copy's next tokens (no round trip). */
  followPasses: number;
  /** γ chosen per step (0 for a pool-generated chunk). */
  gammas: number[];
  /** Each verify round: drafts sent and accepted. */
  roundLog: { gamma: number; accepted: number }[];
  /** Rows of the target's passes as the pool reported them (its last pass, at each report): sum and reports. */
  passRows: { sum: number; reports: number };
  /** Rounds, drafts and accepted drafts per drafter (one entry, unless a hybrid drafted with several). */
  byProposer: Record<string, DrafterStats>;
}

export interface DrafterStats {
  rounds: number;
  drafted: number;
  accepted: number;
}

function emptyDecodeStats(proposer: string): DecodeStats {
  return {
    proposer,
    rounds: 0,
    drafted: 0,
    accepted: 0,
    roundTokens: 0,
    generatedTokens: 0,
    resumedTokens: 0,
    targetPasses: 0,
    draftMs: 0,
    verifyMs: 0,
    networkMs: 0,
    generateMs: 0,
    modeChanges: 0,
    edgeMs: 0,
    aheadUsed: 0,
    aheadDiscarded: 0,
    pipelinedRounds: 0,
    followPasses: 0,
    gammas: [],
    roundLog: [],
    passRows: { sum: 0, reports: 0 },
    byProposer: {},
  };
}

/** Updates of DecodeStats as the decoder's events happen, so the loop reads as decoding, not counting. */
export class DecodeStatsRecorder {
  readonly stats: DecodeStats;

  constructor(proposer: string) {
    this.stats = emptyDecodeStats(proposer);
  }

  /** γ chosen for the next step; switching between speculating and generating counts as a mode change. */
  chose(gamma: number, previous: number): void {
    if (previous !== -1 && (gamma === 0) !== (previous === 0)) this.stats.modeChanges++;
    this.stats.gammas.push(gamma);
  }

  drafting(ms: number): void {
    this.stats.draftMs += ms;
  }

  /** A token the pool generated: one target pass; an output token unless it ended the generation. */
  generated(intoOutput: boolean): void {
    this.stats.targetPasses++;
    if (intoOutput) this.stats.generatedTokens++;
  }

  /** A token the target generated within a round (resume): as generated(), and counted as resumed. */
  resumed(intoOutput: boolean): void {
    this.generated(intoOutput);
    if (intoOutput) this.stats.resumedTokens++;
  }

  /** The pool's load report (present with a verifier that models its GPU): how many rows its passes carry. */
  load(rows: number | undefined): void {
    if (rows === undefined || rows < 1) return;
    this.stats.passRows.sum += rows;
    this.stats.passRows.reports++;
  }

  generation(ms: number): void {
    this.stats.generateMs += ms;
  }

  /** A verify round whose `gamma` drafts came from `by`. */
  round(by: string, gamma: number, accepted: number, committed: number, serverMs: number, networkMs: number, edgeMs: number): void {
    const s = this.stats;
    s.byProposer[by] ??= { rounds: 0, drafted: 0, accepted: 0 };
    const d = s.byProposer[by];
    d.rounds++;
    d.drafted += gamma;
    d.accepted += accepted;
    s.rounds++;
    s.targetPasses++;
    s.drafted += gamma;
    s.accepted += accepted;
    s.roundTokens += committed;
    s.roundLog.push({ gamma, accepted });
    s.verifyMs += serverMs;
    s.networkMs += networkMs;
    s.edgeMs += edgeMs;
  }

  /** A follow pass within a resumed round (VerifyResponse.followed): a round of `by`'s drafts without a round trip. */
  followPass(by: string, drafted: number, accepted: number): void {
    this.round(by, drafted, accepted, accepted + 1, 0, 0, 0);
    this.stats.followPasses++;
  }

  /** The round about to be recorded was sent ahead (pipelining). */
  pipelined(): void {
    this.stats.pipelinedRounds++;
  }

  ahead(used: number, discarded: number): void {
    this.stats.aheadUsed = used;
    this.stats.aheadDiscarded = discarded;
  }
}

/** The statistics of several generations of one request (n choices) as one: counts and times summed. */
export function mergeDecodeStats(all: readonly DecodeStats[]): DecodeStats {
  if (all.length === 1) return all[0];
  const m = emptyDecodeStats(all[0]?.proposer ?? "");
  for (const s of all) {
    // Every count and time is summed (the numeric fields: a new one cannot be left out).
    for (const [k, v] of Object.entries(s)) if (typeof v === "number") (m as unknown as Record<string, number>)[k] += v;
    m.gammas.push(...s.gammas);
    m.roundLog.push(...s.roundLog);
    m.passRows.sum += s.passRows.sum;
    m.passRows.reports += s.passRows.reports;
    for (const [by, d] of Object.entries(s.byProposer)) {
      m.byProposer[by] ??= { rounds: 0, drafted: 0, accepted: 0 };
      const t = m.byProposer[by];
      t.rounds += d.rounds;
      t.drafted += d.drafted;
      t.accepted += d.accepted;
    }
  }
  return m;
}
