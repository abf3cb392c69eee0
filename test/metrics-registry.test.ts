// The edge's own metrics registry (src/observability/metrics-registry.ts): the Prometheus text exposition
// format exactly, label handling and escaping, histograms, scrape-time collection, and refused misuse.
import { describe, expect, it } from "vitest";
import { EdgeMetrics } from "../src/observability/edge-metrics.ts";
import { formatValue, Registry } from "../src/observability/metrics-registry.ts";

describe("metrics registry", () => {
  it("renders counters and gauges in the text exposition format", () => {
    const r = new Registry();
    const plain = r.counter({ name: "x_total", help: "Plain counter" });
    const byRoute = r.counter({ name: "y_total", help: "By route and status", labelNames: ["route", "status"] });
    const g = r.gauge({ name: "z", help: "A gauge" });
    expect(r.render()).toBe(
      ["# HELP x_total Plain counter", "# TYPE x_total counter", "x_total 0", "# HELP y_total By route and status", "# TYPE y_total counter", "# HELP z A gauge", "# TYPE z gauge", "z 0", ""].join("\n"),
    );
    plain.inc();
    plain.inc(undefined, 2.5);
    byRoute.inc({ route: "/v1/chat/completions", status: 200 });
    byRoute.inc({ status: "200", route: "/v1/chat/completions" }); // label order does not matter
    byRoute.inc({ route: "/v1/models/:id", status: 404 });
    g.set(undefined, 3);
    g.dec();
    expect(r.render()).toBe(
      [
        "# HELP x_total Plain counter",
        "# TYPE x_total counter",
        "x_total 3.5",
        "# HELP y_total By route and status",
        "# TYPE y_total counter",
        'y_total{route="/v1/chat/completions",status="200"} 2',
        'y_total{route="/v1/models/:id",status="404"} 1',
        "# HELP z A gauge",
        "# TYPE z gauge",
        "z 2",
        "",
      ].join("\n"),
    );
    expect(byRoute.get({ route: "/v1/chat/completions", status: 200 })).toBe(2);
    expect(byRoute.get({ route: "/nowhere", status: 200 })).toBe(0);
  });

  it("escapes help text and label values", () => {
    const r = new Registry();
    r.counter({ name: "e_total", help: "back\\slash and\nnewline", labelNames: ["v"] }).inc({ v: 'a"b\\c\nd' });
    expect(r.render()).toBe(["# HELP e_total back\\\\slash and\\nnewline", "# TYPE e_total counter", 'e_total{v="a\\"b\\\\c\\nd"} 1', ""].join("\n"));
  });

  it("renders histograms with cumulative buckets, +Inf, _sum and _count", () => {
    const r = new Registry();
    const h = r.histogram({ name: "lat_seconds", help: "Latency", labelNames: ["route"], buckets: [0.1, 1, 10] });
    for (const v of [0.05, 0.1, 0.5, 2, 100]) h.observe({ route: "/a" }, v);
    h.observe({ route: "/b" }, 1);
    expect(r.render()).toBe(
      [
        "# HELP lat_seconds Latency",
        "# TYPE lat_seconds histogram",
        'lat_seconds_bucket{route="/a",le="0.1"} 2',
        'lat_seconds_bucket{route="/a",le="1"} 3',
        'lat_seconds_bucket{route="/a",le="10"} 4',
        'lat_seconds_bucket{route="/a",le="+Inf"} 5',
        'lat_seconds_sum{route="/a"} 102.65',
        'lat_seconds_count{route="/a"} 5',
        'lat_seconds_bucket{route="/b",le="0.1"} 0',
        'lat_seconds_bucket{route="/b",le="1"} 1',
        'lat_seconds_bucket{route="/b",le="10"} 1',
        'lat_seconds_bucket{route="/b",le="+Inf"} 1',
        'lat_seconds_sum{route="/b"} 1',
        'lat_seconds_count{route="/b"} 1',
        "",
      ].join("\n"),
    );
    const unlabelled = new Registry();
    unlabelled.histogram({ name: "h", help: "H", buckets: [1] });
    expect(unlabelled.render()).toBe(["# HELP h H", "# TYPE h histogram", 'h_bucket{le="1"} 0', 'h_bucket{le="+Inf"} 0', "h_sum 0", "h_count 0", ""].join("\n"));
  });

  it("reads collected metrics at render time", () => {
    const source = { n: 1, byKind: { a: 2, b: 5 } };
    const r = new Registry();
    r.counter({
      name: "src_total",
      help: "From a source",
      collect: (c) => {
        c.reset();
        c.inc(undefined, source.n);
      },
    });
    r.gauge({
      name: "kinds",
      help: "By kind",
      labelNames: ["kind"],
      collect: (g) => {
        g.reset();
        for (const [kind, v] of Object.entries(source.byKind)) g.set({ kind }, v);
      },
    });
    expect(r.render()).toContain("src_total 1\n");
    source.n = 7;
    source.byKind = { a: 3 } as typeof source.byKind;
    const text = r.render();
    expect(text).toContain("src_total 7\n");
    expect(text).toContain('kinds{kind="a"} 3\n');
    expect(text).not.toContain('kind="b"');
  });

  it("formats special values", () => {
    expect([Infinity, -Infinity, NaN, 0, 1e-7, 123456789012].map(formatValue)).toEqual(["+Inf", "-Inf", "NaN", "0", "1e-7", "123456789012"]);
  });

  it("refuses misuse", () => {
    const r = new Registry();
    const c = r.counter({ name: "c_total", help: "C", labelNames: ["a"] });
    expect(() => r.counter({ name: "c_total", help: "again" })).toThrow(/already registered/);
    expect(() => r.counter({ name: "bad-name", help: "" })).toThrow(/invalid metric name/);
    expect(() => r.counter({ name: "l_total", help: "", labelNames: ["__x"] })).toThrow(/invalid label name/);
    expect(() => r.histogram({ name: "h1", help: "", labelNames: ["le"], buckets: [1] })).toThrow(/invalid label name 'le'/);
    expect(() => r.histogram({ name: "h2", help: "", buckets: [1, 1] })).toThrow(/strictly increasing/);
    expect(() => c.inc({ a: "x" }, -1)).toThrow(/only goes up/);
    expect(() => c.inc({ b: "x" })).toThrow(/labels must be exactly \{a\}/);
    expect(() => c.inc()).toThrow(/labels must be exactly/);
    expect(() => c.inc({ a: "x", b: "y" })).toThrow(/labels must be exactly/);
  });
});

describe("EdgeMetrics", () => {
  it("counts generations per proposer and reads the pool's and the translator's counters at scrape time", () => {
    const pool = { counters: { reopened: 1, failovers: 2, probes: 3, errors: 4 } };
    let running = 2;
    const m = new EdgeMetrics({ generationsInFlight: () => running, poolCounters: () => pool.counters, translatorCounters: () => ({ computed: 5, coalesced: 6, hits: 7 }) });
    let text = m.render();
    // The draft model's series exist before its first generation.
    expect(text).toContain('alia_edge_rounds_total{proposer="model"} 0\n');
    expect(text).toContain("alia_edge_generations_in_flight 2\n");
    m.recordGeneration({ proposer: "model", rounds: 3, drafted: 12, accepted: 9, poolGeneratedTokens: 2, targetPasses: 5, promptTokens: 7, completionTokens: 14, finishReason: "length" });
    m.recordGeneration({ proposer: "suffix", rounds: 1, drafted: 4, accepted: 4, poolGeneratedTokens: 0, targetPasses: 1, promptTokens: 3, completionTokens: 5, cancelled: true });
    // A hybrid generation: its rounds count under the drafter of each, the generation under "hybrid".
    m.recordGeneration({
      proposer: "hybrid",
      rounds: 3,
      drafted: 14,
      accepted: 11,
      byProposer: { suffix: { rounds: 2, drafted: 12, accepted: 10 }, model: { rounds: 1, drafted: 2, accepted: 1 } },
      poolGeneratedTokens: 1,
      targetPasses: 4,
      promptTokens: 0,
      completionTokens: 0,
      finishReason: "stop",
    });
    m.requestStarted();
    m.requestFinished("/v1/completions", "POST", 200, 0.3);
    running = 0;
    pool.counters.failovers = 9;
    text = m.render();
    for (const line of [
      'alia_edge_rounds_total{proposer="model"} 4',
      'alia_edge_rounds_total{proposer="suffix"} 3',
      'alia_edge_rounds_total{proposer="hybrid"} 0',
      'alia_edge_drafted_tokens_total{proposer="model"} 14',
      'alia_edge_drafted_tokens_total{proposer="suffix"} 16',
      'alia_edge_accepted_tokens_total{proposer="model"} 10',
      'alia_edge_accepted_tokens_total{proposer="suffix"} 14',
      'alia_edge_pool_generated_tokens_total{proposer="hybrid"} 1',
      'alia_edge_generations_total{proposer="hybrid",finish_reason="stop"} 1',
      'alia_edge_pool_generated_tokens_total{proposer="model"} 2',
      'alia_edge_target_passes_total{proposer="model"} 5',
      "alia_edge_prompt_tokens_total 10",
      "alia_edge_completion_tokens_total 19",
      'alia_edge_generations_total{proposer="model",finish_reason="length"} 1',
      'alia_edge_generations_total{proposer="suffix",finish_reason="cancelled"} 1',
      'alia_edge_requests_total{route="/v1/completions",method="POST",status="200"} 1',
      'alia_edge_request_duration_seconds_bucket{route="/v1/completions",le="0.25"} 0',
      'alia_edge_request_duration_seconds_bucket{route="/v1/completions",le="0.5"} 1',
      'alia_edge_request_duration_seconds_count{route="/v1/completions"} 1',
      "alia_edge_requests_in_flight 0",
      "alia_edge_generations_in_flight 0",
      "alia_edge_pool_failovers_total 9",
      "alia_edge_pool_reopens_total 1",
      "alia_edge_pool_probes_total 3",
      "alia_edge_pool_errors_total 4",
      'alia_edge_translation_sentences_total{source="computed"} 5',
      'alia_edge_translation_sentences_total{source="coalesced"} 6',
      'alia_edge_translation_sentences_total{source="cache"} 7',
    ])
      expect(text).toContain(`${line}\n`);
  });
});
