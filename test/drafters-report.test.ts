// The drafter benchmark's part of BENCHMARKS.md (pure): every cell in the table, spliced between its own
// markers only; and the committed BENCHMARKS.md holds what the committed results JSON generates.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { suffixOnReference, type DraftersResult } from "../bench/drafters.ts";
import { DRAFTERS_END, DRAFTERS_START, draftersSection, updateDraftersSection } from "../bench/drafters-report.ts";

const cell = (workload: string, mode: DraftersResult["cells"][number]["mode"], tps: number) => ({
  workload,
  mode,
  tokens: 640,
  tokens_per_s: tps,
  vs_autoregressive: tps / 40,
  rounds: 100,
  accepted_per_round: 3.25,
  tokens_per_round: 4.25,
  drafted: 500,
  accepted: 325,
  pool_generated_share: 0.1,
  draft_ms_per_round: 0.012,
  gpu_ms_per_token: 6.5,
});

const result: DraftersResult = {
  date: "2026-12-01T00:00:00.000Z",
  machine: { node: "v20", cpus: 2 },
  rtt_ms: 20,
  past: 2048,
  tokens_per_stream: 64,
  max_gamma: 16,
  workloads: [
    { name: "copying", what: "a passage and its opening", streams: 10, tokens: 64 },
    { name: "passage rewriting", what: "passages put right", streams: 12, tokens: 160 },
  ],
  cells: [cell("copying", "autoregressive", 40), cell("copying", "suffix", 122)],
  translation: [
    {
      source: "es",
      target: "ca",
      sentences: 100,
      chrf: 61.25,
      chrf_copying_source: 38.5,
      example: { text: "La vida es sueño.", model: "La vida és somni.", apertium: "La vida és somni." },
      suffix_on_apertium: { tokens: 2000, proposals: 190, accepted: 161, accepted_per_proposal: 161 / 190, accepted_share: 161 / 2000 },
    },
  ],
  suffix_cost: { tenant_tokens: 32_768, session_tokens: 2048, rounds: 2000, us_per_round_p50: 12.3, us_per_round_p99: 45.6, tenant_index_mib: 21.5 },
};

describe("drafters report", () => {
  it("lists every cell with its ratio and the suffix proposer's cost", () => {
    const s = draftersSection(result);
    expect(s.startsWith(DRAFTERS_START) && s.endsWith(DRAFTERS_END)).toBe(true);
    expect(s).toContain("| copying | suffix matching, adaptive γ | 122.0 | 3.05× | 100 | 3.25 | 4.25 | 10 % | 0.012 | 6.50 |");
    expect(s).toContain("| copying | autoregressive (pool generation) | 40.0 | 1.00× |");
    expect(s).toContain("γ at most 16");
    expect(s).toContain("- **copying** (10 streams): a passage and its opening.");
    expect(s).toContain("- **passage rewriting** (12 streams, at most 160 tokens each): passages put right.");
    expect(s).toContain("12.3 µs per round at the median, 45.6 µs at p99, with a tenant index of 32768 tokens (21.5 MiB)");
    expect(s).toContain(
      'Translation es→ca by the fixture target (greedy, what every drafter outputs): chrF 61.3 against Apertium on 100 held-out sentences; copying the source unchanged scores 38.5. For example "La vida es sueño." → "La vida és somni."',
    );
    expect(s).toContain("Were the target to write Apertium's translation itself, suffix matching would propose at 190 of its 2000 tokens and have 0.85 drafts accepted per proposal (8.1 % of the tokens).");
    expect(draftersSection(result)).toBe(s);
  });

  it("replaces its own part only, or appends it", () => {
    const doc = `# Benchmarks\n\nbefore\n\n${DRAFTERS_START}\nold\n${DRAFTERS_END}\n\nafter\n`;
    const next = updateDraftersSection(doc, result);
    expect(next.startsWith("# Benchmarks\n\nbefore\n\n")).toBe(true);
    expect(next.endsWith("\n\nafter\n")).toBe(true);
    expect(next).not.toContain("\nold\n");
    expect(updateDraftersSection(next, result)).toBe(next);
    expect(updateDraftersSection("# Benchmarks\n", result)).toBe(`# Benchmarks\n\n${draftersSection(result)}\n`);
  });

  it.runIf(existsSync("bench/results/drafters.json"))("the committed BENCHMARKS.md holds what the committed results JSON generates", async () => {
    const r = JSON.parse(await readFile("bench/results/drafters.json", "utf8")) as DraftersResult;
    expect(await readFile("BENCHMARKS.md", "utf8")).toContain(draftersSection(r));
  });
});

describe("suffix matching replayed over reference answers", () => {
  it("accepts what an answer copies from its prompt or itself, and nothing where it shares no text", async () => {
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    // The answer copies 4..9 once its first two tokens (3, 4) match the prompt, then repeats itself.
    const copying = await suffixOnReference([{ prompt, answer: [3, 4, 5, 6, 7, 8, 9, 3, 4, 5] }]);
    expect(copying.tokens).toBe(10);
    expect(copying.accepted).toBeGreaterThanOrEqual(5);
    expect(copying.accepted_share).toBe(copying.accepted / 10);
    expect(copying.accepted_per_proposal).toBe(copying.accepted / copying.proposals);
    const unrelated = await suffixOnReference([{ prompt, answer: [20, 21, 22, 23, 24] }]);
    expect(unrelated).toMatchObject({ tokens: 5, accepted: 0, accepted_share: 0 });
  });
});
