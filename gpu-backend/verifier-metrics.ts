// Prometheus metrics of the verifier (prom-client, own registry). Counters are read from the verifier
// and its session store at scrape time, so the hot path only increments plain numbers.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { OnnxEngine } from "./onnx-engine.ts";
import { SglangEngine } from "./sglang-engine.ts";
import type { Verifier } from "./verifier.ts";

export interface VerifierMetrics {
  registry: Registry;
  roundSeconds: Histogram;
  /** Verify and generate requests as they arrive (before parsing): when a node gets traffic again. */
  requests: Counter<"route">;
}

export function createVerifierMetrics(verifier: Verifier): VerifierMetrics {
  const registry = new Registry();
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  const c = verifier.counters;
  counter("alia_verifier_rounds_total", "Verify rounds answered (retries excluded)", () => c.rounds);
  counter("alia_verifier_retries_total", "Rounds answered from the stored result", () => c.retries);
  counter("alia_verifier_drafted_tokens_total", "Draft tokens received for verification", () => c.drafted);
  counter("alia_verifier_accepted_tokens_total", "Draft tokens accepted", () => c.accepted);
  counter("alia_verifier_generated_tokens_total", "Tokens produced by /v1/generate and by rounds' resume", () => c.generated);
  counter("alia_verifier_followed_tokens_total", "Window tokens accepted by resumed rounds' follow passes", () => c.followed);
  const stats = () => verifier.sessions.stats();
  counter("alia_verifier_sessions_evicted_lru_total", "Sessions evicted for the KV byte or session budget", () => stats().evictedLru);
  counter("alia_verifier_sessions_evicted_idle_total", "Sessions evicted after the idle TTL", () => stats().evictedIdle);
  counter("alia_verifier_sessions_closed_total", "Sessions closed by clients or replaced by a re-open", () => stats().closed);
  new Gauge({
    name: "alia_verifier_sessions",
    help: "Sessions held",
    registers: [registry],
    collect() {
      this.set(stats().sessions);
    },
  });
  new Gauge({
    name: "alia_verifier_kv_bytes",
    help: "Bytes held by session KV caches",
    registers: [registry],
    collect() {
      this.set(stats().bytes);
    },
  });
  const engine = verifier.engine;
  const passes = engine.accounting.totals;
  counter("alia_verifier_passes_total", "Target passes run (verify and generate)", () => passes.passes);
  counter("alia_verifier_pass_rows_total", "Rows (sessions) over all passes", () => passes.rows);
  counter("alia_verifier_pass_tokens_total", "Tokens over all passes", () => passes.tokens);
  if (engine.accounting.hasModel) counter("alia_verifier_modelled_gpu_seconds_total", "GPU time of all passes by the cost model (VERIFIER_COST_MODEL)", () => passes.modelMs / 1000);
  new Gauge({
    name: "alia_verifier_queue_depth",
    help: "Passes waiting for the engine",
    registers: [registry],
    collect() {
      this.set(engine.queueDepth);
    },
  });
  if (engine instanceof OnnxEngine)
    new Counter({
      name: "alia_verifier_batches_total",
      help: "Batched forward passes by batch size (sessions in the pass)",
      labelNames: ["size"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [size, n] of engine.batcher.batches) this.inc({ size: String(size) }, n);
      },
    });
  if (engine instanceof OnnxEngine) {
    counter("alia_verifier_prefills_total", "Prompt prefills run (sessions opened, generations started)", () => engine.prefills.run);
    counter("alia_verifier_prefills_shared_total", "Sessions opened on a recent identical prefill instead of their own (n choices of one request)", () => engine.prefills.shared);
  }
  if (engine instanceof OnnxEngine && engine.accounting.hasModel) {
    counter("alia_verifier_company_waits_total", "Passes held back for sessions expected back (VERIFIER_WAIT_FOR_COMPANY)", () => engine.batcher.companyWaits.count);
    counter("alia_verifier_company_wait_seconds_total", "Time passes were held back for company", () => engine.batcher.companyWaits.ms / 1000);
  }
  if (engine instanceof SglangEngine) {
    counter("alia_verifier_sglang_prefix_tokens_total", "Tokens before the scored range sent to SGLang", () => engine.cache.prefixTokens);
    counter("alia_verifier_sglang_cached_tokens_total", "Of those, tokens SGLang served from its radix cache (cached_tokens)", () => engine.cache.cachedTokens);
  }
  const roundSeconds = new Histogram({
    name: "alia_verifier_round_seconds",
    help: "Latency of verify rounds",
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
    registers: [registry],
  });
  const requests = new Counter({ name: "alia_verifier_requests_total", help: "Verify and generate requests received, by route (refused ones included)", labelNames: ["route"], registers: [registry] });
  return { registry, roundSeconds, requests };
}
