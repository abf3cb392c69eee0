import { describe, expect, it } from "vitest";
import { STRUCTURED_END, STRUCTURED_START, type StructuredResult, structuredSection, updateStructuredSection } from "../bench/structured.ts";

const result = (): StructuredResult => ({
  date: "2026-12-01T22:00:00.000Z",
  machine: { node: "v20.0.0", cpus: 2 },
  rtt_ms: 20,
  streams: 12,
  max_tokens: 96,
  cells: [
    { output: "text", mode: "autoregressive", tokens: 900, tokens_per_s: 40, vs_autoregressive: 1, rounds: 0, tokens_per_round: 0, acceptance: 0, pool_generated_share: 1, valid_json: Number.NaN },
    { output: "person", mode: "model-4", tokens: 700, tokens_per_s: 41.2, vs_autoregressive: 1.98, rounds: 300, tokens_per_round: 2.33, acceptance: 0.25, pool_generated_share: 0, valid_json: 0.75 },
  ],
});

describe("the structured-output benchmark's BENCHMARKS.md part", () => {
  it("has a row per cell with its figures, and no figures where none exist", () => {
    const s = structuredSection(result());
    expect(s.startsWith(STRUCTURED_START) && s.endsWith(STRUCTURED_END)).toBe(true);
    expect(s).toContain("| text | autoregressive | 40.0 | 1.00× | 0 | – | – | 100 % | – |");
    expect(s).toContain("| person | draft model, γ = 4 | 41.2 | 1.98× | 300 | 2.33 | 25 % | 0 % | 75 % |");
    expect(s).toContain("Run of 2026-12-01");
  });

  it("replaces its own part and nothing else", () => {
    const doc = `# Benchmarks\n\nbefore\n\n${STRUCTURED_START}\nold\n${STRUCTURED_END}\n\nafter\n`;
    const next = updateStructuredSection(doc, result());
    expect(next).toContain("before");
    expect(next).toContain("after");
    expect(next).not.toContain("\nold\n");
    expect(updateStructuredSection(next, result())).toBe(next);
    expect(updateStructuredSection("# Benchmarks\n", result())).toContain(STRUCTURED_START);
  });
});
