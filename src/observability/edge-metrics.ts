// The edge's Prometheus metrics (served at GET /metrics). Names follow the verifier's
// (gpu-backend/verifier-metrics.ts): `alia_edge_*`, counters end in `_total`, times in seconds.
// Request metrics are recorded by the request middleware (request-observer.ts), generation metrics by
// `recordGeneration` when a generation ends, and the pool's, the translator's and the in-flight numbers
// are read from their owners at scrape time, so their hot paths only increment plain numbers.
import type { DecodeStats } from "../speculative/decode-stats.ts";
import { PROPOSER_KINDS, type ProposerKind } from "../speculative/proposer.ts";
import { EXPOSITION_CONTENT_TYPE, Registry } from "./metrics-registry.ts";

/** Who proposed the draft tokens: the draft model ("model") or suffix matching ("suffix"). */
export type Proposer = ProposerKind | (string & {});
/** Proposers whose series are exposed (at 0) before their first generation. */
export const PROPOSERS: readonly Proposer[] = PROPOSER_KINDS;

/** What one generation did, as its response's `usage` and `alia_speculation` report it. */
export interface GenerationRecord {
  proposer: Proposer;
  /** Verify rounds, draft tokens sent, draft tokens accepted. */
  rounds: number;
  drafted: number;
  accepted: number;
  /** The same per drafter, when a hybrid drafted with several (rounds are then counted per drafter). */
  byProposer?: Record<string, { rounds: number; drafted: number; accepted: number }>;
  /** Tokens the pool generated itself (γ = 0). */
  poolGeneratedTokens: number;
  targetPasses: number;
  promptTokens: number;
  completionTokens: number;
  /** "stop" / "length"; none when the generation failed or the client went away. */
  finishReason?: string | null;
  /** The client went away before the end. */
  cancelled?: boolean;
}

/** Read at scrape time; all optional so that any app (tests included) can be observed. */
export interface MetricSources {
  /** Generations holding an admission slot now (chat, completions, translation sentences). */
  generationsInFlight?: () => number;
  /** Generations waiting for a slot, and requests refused one (429), since the start. */
  generationsWaiting?: () => number;
  admissionRefused?: () => number;
  /** PoolClient.counters: failovers, re-opens, breaker probes, requests no node could serve. */
  poolCounters?: () => Partial<Record<"reopened" | "failovers" | "probes" | "errors", number>>;
  /** Translator.counters: sentences computed, joined to one in flight, served from a cache tier. */
  translatorCounters?: () => Partial<Record<"computed" | "coalesced" | "hits", number>>;
}

/** Request latency buckets (seconds): cached translations and probes take milliseconds, generations seconds. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export class EdgeMetrics {
  readonly registry = new Registry();
  readonly contentType = EXPOSITION_CONTENT_TYPE;
  private readonly requests;
  private readonly latency;
  private readonly requestsInFlight;
  private readonly promptTokens;
  private readonly completionTokens;
  private readonly generations;
  private readonly rounds;
  private readonly drafted;
  private readonly accepted;
  private readonly poolGenerated;
  private readonly targetPasses;

  constructor(sources: MetricSources = {}) {
    const r = this.registry;
    this.requests = r.counter({ name: "alia_edge_requests_total", help: "HTTP requests answered, by route pattern, method and status", labelNames: ["route", "method", "status"] });
    this.latency = r.histogram({
      name: "alia_edge_request_duration_seconds",
      help: "Request latency by route pattern, until the last byte of the body (streams: until the stream ends)",
      labelNames: ["route"],
      buckets: LATENCY_BUCKETS,
    });
    this.requestsInFlight = r.gauge({ name: "alia_edge_requests_in_flight", help: "Requests being answered (streams until they end)" });
    r.gauge({
      name: "alia_edge_generations_in_flight",
      help: "Generations holding one of the MAX_CONCURRENT slots now (completions, chat completions, translation sentences)",
      collect: (g) => g.set(undefined, sources.generationsInFlight?.() ?? 0),
    });
    r.gauge({
      name: "alia_edge_generations_waiting",
      help: "Generations waiting for a slot (all MAX_CONCURRENT busy)",
      collect: (g) => g.set(undefined, sources.generationsWaiting?.() ?? 0),
    });
    r.counter({
      name: "alia_edge_admission_refused_total",
      help: "Requests refused a generation slot (429: the wait queue full or MAX_QUEUE_WAIT_MS passed)",
      collect: (c) => {
        c.reset();
        c.inc(undefined, sources.admissionRefused?.() ?? 0);
      },
    });
    this.promptTokens = r.counter({ name: "alia_edge_prompt_tokens_total", help: "Prompt tokens of generations" });
    this.completionTokens = r.counter({ name: "alia_edge_completion_tokens_total", help: "Completion tokens generated (as usage.completion_tokens)" });
    this.generations = r.counter({
      name: "alia_edge_generations_total",
      help: "Generations ended, by proposer and finish reason (stop, length; cancelled: the client went away; error)",
      labelNames: ["proposer", "finish_reason"],
    });
    const perProposer = (name: string, help: string) => r.counter({ name, help, labelNames: ["proposer"] });
    this.rounds = perProposer("alia_edge_rounds_total", "Speculative verify rounds, by draft proposer");
    this.drafted = perProposer("alia_edge_drafted_tokens_total", "Draft tokens sent for verification, by proposer");
    this.accepted = perProposer("alia_edge_accepted_tokens_total", "Draft tokens the target accepted, by proposer");
    this.poolGenerated = perProposer("alia_edge_pool_generated_tokens_total", "Tokens the pool generated itself (γ = 0), by proposer of the generation");
    this.targetPasses = perProposer("alia_edge_target_passes_total", "Target model passes (one per round, one per pool-generated token), by proposer");
    // Every proposer's series exists from the start, so that rate() sees the first increment.
    for (const proposer of PROPOSERS) for (const c of [this.rounds, this.drafted, this.accepted, this.poolGenerated, this.targetPasses]) c.inc({ proposer }, 0);

    const pool = (name: string, key: "reopened" | "failovers" | "probes" | "errors", help: string) =>
      r.counter({
        name,
        help,
        collect: (c) => {
          c.reset();
          c.inc(undefined, sources.poolCounters?.()[key] ?? 0);
        },
      });
    pool("alia_edge_pool_failovers_total", "failovers", "Pool calls re-sent to another node after a node failed");
    pool("alia_edge_pool_reopens_total", "reopened", "Sessions re-opened from their history on another node");
    pool("alia_edge_pool_probes_total", "probes", "Readiness probes of nodes whose circuit was open");
    pool("alia_edge_pool_errors_total", "errors", "Pool calls that failed for good: no healthy node could serve them (503 pool_unavailable)");
    r.counter({
      name: "alia_edge_translation_sentences_total",
      help: "Sentences of /v1/translate: computed, joined to an identical computation in flight, or served from a cache tier",
      labelNames: ["source"],
      collect: (c) => {
        c.reset();
        const t = sources.translatorCounters?.();
        if (!t) return;
        c.inc({ source: "computed" }, t.computed ?? 0);
        c.inc({ source: "coalesced" }, t.coalesced ?? 0);
        c.inc({ source: "cache" }, t.hits ?? 0);
      },
    });
  }

  requestStarted(): void {
    this.requestsInFlight.inc();
  }

  requestFinished(route: string, method: string, status: number, seconds: number): void {
    this.requestsInFlight.dec();
    this.requests.inc({ route, method, status: String(status) });
    this.latency.observe({ route }, seconds);
  }

  recordGeneration(g: GenerationRecord): void {
    const proposer = { proposer: g.proposer };
    this.promptTokens.inc(undefined, g.promptTokens);
    this.completionTokens.inc(undefined, g.completionTokens);
    this.generations.inc({ ...proposer, finish_reason: g.finishReason ?? (g.cancelled ? "cancelled" : "error") });
    for (const [name, d] of Object.entries(g.byProposer ?? { [g.proposer]: g })) {
      this.rounds.inc({ proposer: name }, d.rounds);
      this.drafted.inc({ proposer: name }, d.drafted);
      this.accepted.inc({ proposer: name }, d.accepted);
    }
    this.poolGenerated.inc(proposer, g.poolGeneratedTokens);
    this.targetPasses.inc(proposer, g.targetPasses);
  }

  render(): string {
    return this.registry.render();
  }
}

/** A generation's record from the decoder's statistics (src/speculative/decode-stats.ts) and its usage. */
export function generationFromStats(
  s: Pick<DecodeStats, "proposer" | "rounds" | "drafted" | "accepted" | "generatedTokens" | "targetPasses"> & Partial<Pick<DecodeStats, "byProposer">>,
  u: Pick<GenerationRecord, "promptTokens" | "completionTokens" | "finishReason" | "cancelled">,
): GenerationRecord {
  return {
    proposer: s.proposer,
    rounds: s.rounds,
    drafted: s.drafted,
    accepted: s.accepted,
    ...(s.byProposer ? { byProposer: s.byProposer } : {}),
    poolGeneratedTokens: s.generatedTokens,
    targetPasses: s.targetPasses,
    ...u,
  };
}
