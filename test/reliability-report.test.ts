// docs/RELIABILITY.md's figures (pure): each target marked met or missed from the probe's numbers, spliced
// between its own markers only; and the committed file holds what the committed results JSON generates.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import type { LoadFigures, ReliabilityResult } from "../bench/reliability.ts";
import { RELIABILITY_END, RELIABILITY_START, reliabilitySection, updateReliabilitySection } from "../bench/reliability-report.ts";

const load = (streams: number, failed = 0, changed = 0): LoadFigures => ({ streams, requests: 100, failed, changed, greedy: 75, seeded: 25, p50_ms: 120.5, p99_ms: 900.1 });

const result: ReliabilityResult = {
  date: "2026-12-01T00:00:00.000Z",
  machine: "2 cores",
  load: [load(16), load(64)],
  faults: {
    kill: { ...load(64), back_in_rotation_ms: 850, edge_healthz_p50_ms: 3.1, edge_healthz_p99_ms: 40.2 },
    sigstop: { ...load(64, 0, 0), stopped_ms: 4000 },
    both_down: { requests: 40, status_503: 40, other_errors: 0, first_200_after_restart_ms: 210 },
  },
  hostile: { cases: 27, fuzzed: 300, status_5xx: 0, by_status: { 400: 320, 401: 3, 413: 1, 404: 3 }, failures: [], keep_alive_after_413: true },
  healthz_under_large_prompts: { prompts: 40, prompt_bytes: 1_044_480, probes: 300, p50_ms: 2.1, p99_ms: 12.5, max_ms: 30.2, prompt_statuses: ["400 ×40"] },
  disconnect_storm: { clients: 300, sessions_after_5s: 0 },
  soak: { requests: 2000, failed: 0, rss_mb: [200, 210, 212, 211], rss_change: 0.0048 },
};

describe("reliability report", () => {
  it("marks every target met when the figures meet it", () => {
    const s = reliabilitySection(result);
    expect(s.startsWith(RELIABILITY_START) && s.endsWith(RELIABILITY_END)).toBe(true);
    expect(s).not.toContain("missed");
    expect(s.match(/\| met \|/g)).toHaveLength(7);
    expect(s).toContain("850 ms");
    expect(s).toContain("p99 12.5 ms");
  });

  it("marks each target missed by its own figure", () => {
    const bad: ReliabilityResult = {
      ...result,
      faults: { ...result.faults, kill: { ...result.faults.kill, failed: 3, back_in_rotation_ms: 2500 } },
      healthz_under_large_prompts: { ...result.healthz_under_large_prompts, p99_ms: 50 },
      hostile: { ...result.hostile, status_5xx: 1, failures: ["fuzz 12: 500"] },
      disconnect_storm: { clients: 300, sessions_after_5s: 2 },
      soak: { ...result.soak, rss_mb: [200, 200, 240], rss_change: 0.2 },
    };
    const s = reliabilitySection(bad);
    expect(s.match(/\*\*missed\*\*/g)).toHaveLength(6);
    expect(s).toContain("fuzz 12: 500");
  });

  it("replaces only its own part of the document", () => {
    const doc = `# R\n\nhand-written\n\n${RELIABILITY_START}\nold\n${RELIABILITY_END}\n\ntail\n`;
    const out = updateReliabilitySection(doc, result);
    expect(out.startsWith("# R\n\nhand-written\n\n")).toBe(true);
    expect(out.endsWith("\n\ntail\n")).toBe(true);
    expect(out).not.toContain("\nold\n");
  });

  it.runIf(existsSync("bench/results/reliability.json"))("docs/RELIABILITY.md holds the committed results' figures", async () => {
    const r = JSON.parse(await readFile("bench/results/reliability.json", "utf8")) as ReliabilityResult;
    expect(await readFile("docs/RELIABILITY.md", "utf8")).toContain(reliabilitySection(r));
  });
});
