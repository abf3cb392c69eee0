// The regime grid's report: each target computed from hand-made cells (met, missed, not run), the section
// deterministic and spliced into its own markers only, the plots well-formed; and that the committed
// BENCHMARKS.md and plots are what the committed results JSON generates.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { PUBLISHED_PRICES, REGIMES_END, REGIMES_START, type RegimeCell, type RegimeMode, type RegimesResult, regimeTargets, regimesPlots, regimesSection, updateRegimesSection } from "../bench/regimes-report.ts";

interface Speculative {
  tps: number; // × the autoregressive cell's tokens/s
  gpu: number; // GPU-ms per token
  colocated?: number; // GPU-ms per token with the drafter beside the target
  pool?: number; // pool-generated share
}

// Per drafter step, what each mode does against autoregressive (40 tokens/s per session, 20 GPU-ms per token):
// the 2 ms drafter wins 3.5× and saves GPU time; with the 25 ms one adaptive falls back to the pool.
const MODES: Record<number, Record<Exclude<RegimeMode, "autoregressive">, Speculative>> = {
  2: {
    "gamma-2": { tps: 2.5, gpu: 8, colocated: 12 },
    "gamma-4": { tps: 3, gpu: 6, colocated: 9 },
    adaptive: { tps: 3.5, gpu: 7, pool: 0 },
    "adaptive-gpu": { tps: 3, gpu: 6, pool: 0 },
  },
  25: {
    "gamma-2": { tps: 0.6, gpu: 8, colocated: 12 },
    "gamma-4": { tps: 0.5, gpu: 6, colocated: 9 },
    adaptive: { tps: 1, gpu: 20, pool: 0.95 },
    "adaptive-gpu": { tps: 0.7, gpu: 6, pool: 0.1 },
  },
};

function cell(c: Pick<RegimeCell, "pair" | "drafter_ms" | "sessions" | "past" | "rtt_ms" | "mode" | "tokens_per_s" | "gpu_ms_per_token"> & Partial<RegimeCell>): RegimeCell {
  return {
    alpha: c.mode === "autoregressive" ? 0 : 0.9,
    tau: c.mode === "autoregressive" ? 0 : 3,
    tokens: 256 * c.sessions,
    itl_p50_ms: 1000 / (c.tokens_per_s / c.sessions),
    itl_p99_ms: 2000 / (c.tokens_per_s / c.sessions),
    eur_per_m_tokens: (c.gpu_ms_per_token / 3.6e6) * 1e6 * 3.5,
    mean_rows: c.sessions,
    tokens_per_pass: c.sessions,
    mean_gamma: 0,
    gpu_busy_share: 1,
    pool_generated_share: c.mode === "autoregressive" ? 1 : 0,
    colocated_gpu_ms_per_token: null,
    ...c,
  };
}

function grid({ sessions = [1, 8, 128], pasts = [2048], rtts = [5, 20] } = {}): RegimesResult {
  const cells = sessions.flatMap((s) =>
    pasts.flatMap((past) =>
      rtts.flatMap((rtt_ms) => {
        const at = { pair: "high", sessions: s, past, rtt_ms };
        const base = 40 * s;
        return [
          cell({ ...at, drafter_ms: null, mode: "autoregressive", tokens_per_s: base, gpu_ms_per_token: 20 }),
          ...[2, 25].flatMap((drafter_ms) =>
            Object.entries(MODES[drafter_ms]).map(([mode, m]) =>
              cell({
                ...at,
                drafter_ms,
                mode: mode as RegimeMode,
                tokens_per_s: m.tps * base,
                gpu_ms_per_token: m.gpu,
                colocated_gpu_ms_per_token: m.colocated ?? null,
                pool_generated_share: m.pool ?? 0,
              }),
            ),
          ),
        ];
      }),
    ),
  );
  return {
    date: "2026-01-01T00:00:00.000Z",
    quick: true,
    machine: { node: "v20", cpus: 2 },
    cost_model: "ALIA-40b on one H200 (measured passes)",
    eur_per_gpu_hour: 3.5,
    tokens_per_session: 256,
    pairs: [{ name: "high", alpha: 0.9, what: "synthetic, high agreement" }],
    cells,
  };
}

/** The grid with the cells matching every field of `match` changed by `change`. */
function patched(r: RegimesResult, match: Partial<RegimeCell>, change: Partial<RegimeCell>): RegimesResult {
  const hit = (c: RegimeCell) => Object.entries(match).every(([k, v]) => c[k as keyof RegimeCell] === v);
  expect(r.cells.some(hit)).toBe(true); // a patch that matches nothing would test nothing
  return { ...r, cells: r.cells.map((c) => (hit(c) ? { ...c, ...change } : c)) };
}

const without = (r: RegimesResult, match: Partial<RegimeCell>): RegimesResult => ({
  ...r,
  cells: r.cells.filter((c) => !Object.entries(match).every(([k, v]) => c[k as keyof RegimeCell] === v)),
});

const target = (r: RegimesResult, i: number) => regimeTargets(r)[i];

describe("regime grid targets", () => {
  it("are all met on a grid where speculation works as intended", () => {
    const t = regimeTargets(grid());
    expect(t.map((x) => x.status)).toEqual(["met", "met", "met", "met", "met", "met"]);
    expect(t[0].measured).toBe("worst 1.00× (high, 25 ms drafter, 1 session, past 2048, RTT 5)"); // adaptive = autoregressive there
    expect(t[1].measured).toMatch(/^worst 1.00× \(high, 25 ms drafter, 128 sessions/);
    expect(t[2].measured).toMatch(/^worst 95 % /);
    expect(t[3].measured).toBe("RTT 20: 1 s 3.50×, 8 s 3.50×; RTT 5: 1 s 3.50×, 8 s 3.50×");
    expect(t[4].measured).toBe("2 ms: 1 s 0.30×, 8 s 0.30×; 25 ms: 1 s 0.30×, 8 s 0.30× (past 2048, RTT 20 unless noted)");
    expect(t[5].measured).toMatch(/^worst 1.50× /);
  });

  it("1: adaptive below 0.95 × the best of autoregressive and fixed γ is missed, in the cell it happens", () => {
    // 2 ms, 8 sessions, RTT 20: best rival is γ=4 at 3 × 320 = 960 tokens/s; adaptive at 864 is 0.90×.
    const r = patched(grid(), { drafter_ms: 2, sessions: 8, rtt_ms: 20, mode: "adaptive" }, { tokens_per_s: 864 });
    expect(target(r, 0)).toMatchObject({ status: "missed", measured: "worst 0.90× (high, 2 ms drafter, 8 sessions, past 2048, RTT 20)" });
    const slightly = patched(grid(), { drafter_ms: 2, sessions: 8, rtt_ms: 20, mode: "adaptive" }, { tokens_per_s: 0.96 * 960 });
    expect(target(slightly, 0)).toMatchObject({ status: "met", measured: expect.stringMatching(/^worst 0.96× /) });
  });

  it("2: adaptive below 0.98 × autoregressive at 128 sessions is missed; other session counts do not count", () => {
    const r = patched(grid(), { drafter_ms: 25, sessions: 128, rtt_ms: 5, mode: "adaptive" }, { tokens_per_s: 0.97 * 40 * 128 });
    expect(target(r, 1)).toMatchObject({ status: "missed", measured: expect.stringMatching(/^worst 0.97× \(high, 25 ms drafter, 128 sessions, past 2048, RTT 5\)/) });
    const at8 = patched(grid(), { drafter_ms: 25, sessions: 8, rtt_ms: 5, mode: "adaptive" }, { tokens_per_s: 0.97 * 40 * 8 });
    expect(target(at8, 1).status).toBe("met");
  });

  it("3: the 25 ms drafter speculating on more than 10 % of tokens is missed", () => {
    const r = patched(grid(), { drafter_ms: 25, sessions: 1, rtt_ms: 20, mode: "adaptive" }, { pool_generated_share: 0.85 });
    expect(target(r, 2)).toMatchObject({ status: "missed", measured: "worst 85 % (high, 25 ms drafter, 1 session, past 2048, RTT 20)" });
  });

  it("4: each of the four speedups must clear its own bar; a missing one reads not run", () => {
    // 2.5× clears the RTT 20 bar (2×) but not the RTT 5 one (3×).
    const atRtt20 = patched(grid(), { drafter_ms: 2, sessions: 1, rtt_ms: 20, mode: "adaptive" }, { tokens_per_s: 2.5 * 40 });
    expect(target(atRtt20, 3).status).toBe("met");
    const atRtt5 = patched(grid(), { drafter_ms: 2, sessions: 1, rtt_ms: 5, mode: "adaptive" }, { tokens_per_s: 2.5 * 40 });
    expect(target(atRtt5, 3)).toMatchObject({ status: "missed", measured: "RTT 20: 1 s 3.50×, 8 s 3.50×; RTT 5: 1 s 2.50×, 8 s 3.50×" });
    const partial = without(grid(), { drafter_ms: 2, sessions: 8, rtt_ms: 5, mode: "adaptive" });
    expect(target(partial, 3)).toMatchObject({ status: "not run", measured: "RTT 20: 1 s 3.50×, 8 s 3.50×; RTT 5: 1 s 3.50×, 8 s —" });
  });

  it("5: GPU-ms per token above the bar is missed; another slice is used, and named, when past 2048 / RTT 20 is absent", () => {
    // 0.4 × 20 GPU-ms clears the 8-session bar (0.5) but not the 1-session one (0.35).
    const at8 = patched(grid(), { drafter_ms: 25, sessions: 8, rtt_ms: 20, mode: "adaptive-gpu" }, { gpu_ms_per_token: 8 });
    expect(target(at8, 4).status).toBe("met");
    const at1 = patched(grid(), { drafter_ms: 25, sessions: 1, rtt_ms: 20, mode: "adaptive-gpu" }, { gpu_ms_per_token: 8 });
    expect(target(at1, 4)).toMatchObject({ status: "missed", measured: expect.stringContaining("25 ms: 1 s 0.40×, 8 s 0.30×") });
    const elsewhere = grid({ pasts: [8192], rtts: [80] });
    expect(target(elsewhere, 4)).toMatchObject({
      status: "met",
      measured: "2 ms: 1 s 0.30× (past 8192, RTT 80), 8 s 0.30× (past 8192, RTT 80); 25 ms: 1 s 0.30× (past 8192, RTT 80), 8 s 0.30× (past 8192, RTT 80) (past 2048, RTT 20 unless noted)",
    });
    expect(target(elsewhere, 3).status).toBe("not run"); // target 4 has no other slice to fall back on
  });

  it("6: edge drafting that saves less than 1.3 × the co-located GPU time is missed", () => {
    const r = patched(grid(), { drafter_ms: 2, sessions: 8, rtt_ms: 5, mode: "gamma-4" }, { colocated_gpu_ms_per_token: 7.2 });
    expect(target(r, 5)).toMatchObject({ status: "missed", measured: "worst 1.20× (high, 2 ms drafter, 8 sessions, past 2048, RTT 5)" });
  });

  it("every target reads not run when its cells are missing", () => {
    const empty = { ...grid(), cells: [] };
    expect(regimeTargets(empty).map((x) => x.status)).toEqual(Array(6).fill("not run"));
    const noSlowDrafter = without(grid(), { drafter_ms: 25 });
    expect(target(noSlowDrafter, 2)).toEqual({ target: expect.any(String), measured: "—", status: "not run" });
    expect(target(noSlowDrafter, 4).status).toBe("not run"); // the 25 ms half of it
  });
});

describe("regime grid section", () => {
  it("renders the targets, the tables with their prices and links, and is the same text for the same JSON", () => {
    const r = grid();
    const s = regimesSection(r);
    expect(s.startsWith(REGIMES_START)).toBe(true);
    expect(s.endsWith(REGIMES_END)).toBe(true);
    expect(regimesSection(JSON.parse(JSON.stringify(r)))).toBe(s);
    expect(s).not.toMatch(/undefined|NaN/);
    expect(s).toMatch(/\| Adaptive never worse: .* \| worst 1.00× .* \| met \|/);
    expect(s).toContain("| sessions | autoregressive | γ=2 @2 ms | γ=4 @2 ms | adaptive @2 ms | adaptive-gpu @2 ms | γ=2 @25 ms |");
    expect(s).toContain("| 8 | 320 | 800 | 960 | 1120 | 960 | 192 | 160 | 320 | 224 |"); // tokens/s at RTT 20, 8 sessions
    expect(s).toContain("| adaptive-gpu | 2 | 6.00 | 5.83 | — | — |"); // no 32-session cells in this grid
    for (const p of PUBLISHED_PRICES) expect(s).toContain(`](${p.url})`);
    expect(s).toContain("![where speculation wins](bench/plots/regimes-map.svg)");
    const missed = regimesSection(patched(r, { drafter_ms: 25, sessions: 1, rtt_ms: 20, mode: "adaptive" }, { pool_generated_share: 0.5 }));
    expect(missed).toMatch(/\| worst 50 % .* \| \*\*missed\*\* \|/);
  });

  it("shows — for missing numbers and not run for a pair or table without cells", () => {
    const s = regimesSection({ ...grid(), cells: [] });
    expect((s.match(/\| — \| not run \|/g) ?? []).length).toBe(4); // the four worst-case targets
    expect(s).toContain("**high** (α 0.90: synthetic, high agreement): not run");
    expect(s).not.toMatch(/undefined|NaN/);
    const partial = regimesSection(without(grid(), { drafter_ms: 2, sessions: 8, rtt_ms: 20, mode: "adaptive" }));
    expect(partial).toContain("| 8 | 320 | 800 | 960 | — | 960 |");
  });

  it("replaces only its own part of the document, and appends it when absent", () => {
    const doc = `# B\n\nintro\n\n${REGIMES_START}\nold\n${REGIMES_END}\n\ntail\n`;
    const next = updateRegimesSection(doc, grid());
    expect(next.startsWith("# B\n\nintro\n\n")).toBe(true);
    expect(next.endsWith("\n\ntail\n")).toBe(true);
    expect(next).not.toContain("\nold\n");
    expect(updateRegimesSection(next, grid())).toBe(next); // idempotent
    const appended = updateRegimesSection("# B\n", grid());
    expect(appended).toBe(`# B\n\n${regimesSection(grid())}\n`);
  });
});

describe("regime grid plots", () => {
  const wellFormed = (svg: string) => {
    expect(svg.startsWith("<svg xmlns=")).toBe(true);
    expect(svg.endsWith("</svg>\n")).toBe(true);
    expect((svg.match(/<svg/g) ?? []).length).toBe(1);
    expect((svg.match(/<text/g) ?? []).length).toBe((svg.match(/<\/text>/g) ?? []).length);
    expect(svg).not.toMatch(/NaN|undefined|&(?!amp;|lt;)/);
  };

  it("draws throughput and GPU time per mode, and the map of where speculation wins", () => {
    const plots = regimesPlots(grid({ sessions: [1, 8, 32, 128], rtts: [5, 20, 80] }));
    expect(Object.keys(plots)).toEqual(["regimes-throughput.svg", "regimes-gpu-ms.svg", "regimes-map.svg"]);
    for (const svg of Object.values(plots)) wellFormed(svg);
    for (const name of ["autoregressive", "γ=2", "γ=4", "adaptive", "adaptive-gpu"]) expect(plots["regimes-throughput.svg"]).toContain(`>${name}</text>`);
    expect(plots["regimes-throughput.svg"]).toContain("sessions (log₂ axis: 0 = 1, 3 = 8, 5 = 32, 7 = 128)");
    expect(plots["regimes-gpu-ms.svg"]).toContain("GPU-ms per token");
    const map = plots["regimes-map.svg"];
    for (const label of ["RTT 5 ms", "RTT 20 ms", "RTT 80 ms", ">2 ms</text>", ">25 ms</text>", ">128</text>", "concurrent sessions"]) expect(map).toContain(label);
    expect((map.match(/>3\.50×</g) ?? []).length).toBe(12); // 2 ms drafter: 4 session counts × 3 RTTs, green
    expect((map.match(/>1\.00×</g) ?? []).length).toBe(12); // 25 ms drafter: grey
    expect(map).toContain('fill="#2ca02c" fill-opacity="0.55" stroke="white"/>\n<text x="106" y="107" text-anchor="middle">3.50×');
    expect(map).not.toContain('fill="#d62728" fill-opacity="0.55" stroke'); // no losing square yet
    const losing = regimesPlots(patched(grid(), { drafter_ms: 25, sessions: 8, rtt_ms: 20, mode: "adaptive" }, { tokens_per_s: 0.5 * 320 }))["regimes-map.svg"];
    expect(losing).toContain('fill="#d62728" fill-opacity="0.55" stroke="white"/>\n<text');
    expect(losing).toContain(">0.50×</text>");
  });

  it("stays well-formed with no cells at all", () => {
    const plots = regimesPlots({ ...grid(), cells: [] });
    for (const svg of Object.values(plots)) wellFormed(svg);
  });

  it.runIf(existsSync("bench/results/regimes.json"))("the committed BENCHMARKS.md and regime plots are what the committed results JSON generates", async () => {
    const r = JSON.parse(await readFile("bench/results/regimes.json", "utf8")) as RegimesResult;
    expect(await readFile("BENCHMARKS.md", "utf8")).toContain(regimesSection(r));
    for (const [name, svg] of Object.entries(regimesPlots(r))) expect(await readFile(`bench/plots/${name}`, "utf8")).toBe(svg);
  });
});
