// The benchmark's statistics and report generator (not timings): acceptance and τ from round logs,
// BENCHMARKS.md's generated part and plots from a results JSON, and that the committed BENCHMARKS.md is
// exactly what the committed results JSON generates.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { acceptanceOf, median, tauMeasured, tauTheory, tauTheoryOf } from "../bench/statistics.ts";
import { GENERATED_END, GENERATED_START, generatedSection, lineChart, plots, targetsTable, updateBenchmarksMd, type BenchResult } from "../bench/report.ts";

describe("acceptance and τ from round logs", () => {
  it("counts tests per position: accepted ones and the first rejection", () => {
    // γ=3 accepted 3 (3 tests, all pass); γ=3 accepted 1 (2 tests: pass, fail); γ=2 accepted 0 (1 failing test).
    const log = [
      { gamma: 3, accepted: 3 },
      { gamma: 3, accepted: 1 },
      { gamma: 2, accepted: 0 },
    ];
    const a = acceptanceOf(log);
    expect(a.alpha).toBeCloseTo(4 / 6, 12);
    expect(a.perPosition).toEqual([2 / 3, 1 / 2, 1]); // position 1: 2 of 3; position 2: 1 of 2; position 3: 1 of 1
    expect(tauMeasured(log)).toBeCloseTo((4 + 2 + 1) / 3, 12);
  });

  it("predicts τ by the per-position product, equal to the geometric form for constant α", () => {
    expect(tauTheory([0.5, 0.5, 0.5], 3)).toBeCloseTo((1 - 0.5 ** 4) / (1 - 0.5), 12);
    expect(tauTheory([0.9, 0.5], 2)).toBeCloseTo(1 + 0.9 + 0.45, 12);
    expect(tauTheory([], 0)).toBe(1);
  });

  it("τ predicted from a fixed-γ log equals the measured τ (no accepted token lost)", () => {
    const log = [3, 0, 2, 3, 1, 3, 3, 0].map((accepted) => ({ gamma: 3, accepted }));
    expect(tauTheoryOf(log)).toBeCloseTo(tauMeasured(log), 12);
  });

  it("median of odd and even lengths", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});

function sample(over: Partial<BenchResult> = {}): BenchResult {
  const row = (gamma: number | "adaptive", proactive: boolean, rtt: number, tps: number) => ({
    pair: "synthetic-high (α 0.90)",
    timing: "deployment" as const,
    gamma,
    proactive,
    rtt_ms: rtt,
    alpha: 0.9,
    tau: 3,
    tau_theory: 3,
    target_passes_per_token: 1 / 3,
    ms_per_token: 1000 / tps,
    tokens_per_s: tps,
    pool_generated_share: 0,
    mean_gamma: typeof gamma === "number" ? gamma : 4,
  });
  return {
    date: "2026-01-01T00:00:00.000Z",
    quick: true,
    machine: { node: "v20", cpus: 2 },
    costs: { draft_step_ms: 25, cost_model: "h200-alia-40b", past: 2048 },
    lossless: { greedy: { prompts: 10, identical: 10 }, sampling: { samples: 100, p_value: 0.5, tv: 0.05, chi2: 3, dof: 4 } },
    rounds: [row(4, false, 80, 20), row(4, true, 80, 25), row("adaptive", false, 80, 24), row("adaptive", true, 80, 23)],
    baselines: [{ pair: "synthetic-high (α 0.90)", timing: "deployment", mode: "remote autoregressive", rtt_ms: 80, ms_per_token: 50, tokens_per_s: 20 }],
    draft: { ort_web_ms_per_token: 0.3, ort_node_ms_per_token: 0.25, transformersjs_ms_per_token: 0.35 },
    edge_overhead_ms_per_round: 0.2,
    ...over,
  };
}

describe("report", () => {
  it("marks each target met or missed from the numbers", () => {
    const t = targetsTable(sample());
    expect(t).toMatch(/identical on 100 % of prompts \| 10\/10 \| met/);
    expect(t).toMatch(/Proactive ≥ 1.15 × .* \| 1.25× \| met/); // 25 vs 20 tokens/s
    expect(t).toMatch(/Adaptive ≥ 0.95 × best fixed γ, every cell \| worst 0.96× \| met/); // 24 vs 25
    const missed = targetsTable(sample({ lossless: { greedy: { prompts: 10, identical: 9 }, sampling: { samples: 100, p_value: 0.001, tv: 0.2, chi2: 30, dof: 4 } } }));
    expect(missed).toMatch(/9\/10 \| \*\*missed\*\*/);
    expect(missed).toMatch(/p = 0.001 .* \| \*\*missed\*\*/);
  });

  it("replaces only the generated part of BENCHMARKS.md, and appends it when absent", () => {
    const doc = `# B\n\nintro\n\n${GENERATED_START}\nold\n${GENERATED_END}\n\ntail\n`;
    const next = updateBenchmarksMd(doc, sample());
    expect(next.startsWith("# B\n\nintro\n\n")).toBe(true);
    expect(next.endsWith("\n\ntail\n")).toBe(true);
    expect(next).not.toContain("\nold\n");
    expect(updateBenchmarksMd(next, sample())).toBe(next); // idempotent
    expect(updateBenchmarksMd("# B\n", sample())).toContain(GENERATED_START);
  });

  it("draws well-formed SVG line charts", () => {
    const svg = lineChart(
      "t",
      "x",
      "y",
      [
        {
          name: "a<b",
          points: [
            [0, 1],
            [1, NaN],
            [2, 3],
          ],
        },
      ],
      [0, 1, 2],
    );
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.trim().endsWith("</svg>")).toBe(true);
    expect(svg).toContain("a&lt;b");
    expect((svg.match(/<circle /g) ?? []).length).toBe(2); // the NaN point is skipped
    expect(Object.keys(plots(sample()))).toEqual(["tau-vs-gamma.svg", "ms-vs-rtt.svg"]);
  });

  it.runIf(existsSync("bench/results/bench.json"))("the committed BENCHMARKS.md and plots are what the committed results JSON generates", async () => {
    const r = JSON.parse(await readFile("bench/results/bench.json", "utf8")) as BenchResult;
    const doc = await readFile("BENCHMARKS.md", "utf8");
    expect(doc).toContain(generatedSection(r));
    for (const [name, svg] of Object.entries(plots(r))) expect(await readFile(`bench/plots/${name}`, "utf8")).toBe(svg);
  });
});
