// A verifier with a GPU cost model, as a real process on loopback: every verify answer and the generate
// stream carry what the next pass would cost (pass_ms_by_chunk, from the measured ALIA-40b/H200 model at
// the session's past), and with VERIFIER_SIMULATE_GPU each pass takes the model's time for its rows.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { h200Alia40b } from "../src/common/h200-alia-40b.ts";
import { VerifyResponseSchema } from "../src/common/protocol.ts";
import { loadVerifierConfig } from "../gpu-backend/config.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import { SpeculativeDecoder } from "../src/speculative/speculative-decoder.ts";
import { SpeculationPriors } from "../src/speculative/speculation-prior.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { startDelayProxy } from "./harness/delay-proxy.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";

const PAST = 2048;
let verifier: ListeningProcess;
let prompt: number[];

beforeAll(async () => {
  const { tok } = await loadDefaultPair();
  prompt = tok.encode("La música tradicional de");
  verifier = await startVerifierProcess({ VERIFIER_COST_MODEL: "h200-alia-40b", VERIFIER_SIMULATE_GPU: "true", VERIFIER_SIMULATED_PAST: String(PAST), VERIFIER_MAX_GAMMA: "8" });
});
afterAll(async () => {
  await verifier?.stop("SIGKILL");
});

const post = async (path: string, body: unknown) => fetch(`${verifier.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

describe("verifier with a GPU cost model", () => {
  it("reports the next pass's cost per chunk at the session's past, and holds each pass to the model", async () => {
    const model = h200Alia40b();
    const open = VerifyResponseSchema.parse(await (await post("/v1/verify", { session: "c1", seq: 0, history: prompt, drafts: [] })).json());
    const drafts = [prompt[1], prompt[2], prompt[3], prompt[4]];
    const t0 = performance.now();
    const r = VerifyResponseSchema.parse(await (await post("/v1/verify", { session: "c1", seq: 1, committed: [open.token], drafts })).json());
    const elapsed = performance.now() - t0;
    // The round's pass: one row of 5 tokens after the session's past plus the simulated context.
    expect(r.server_ms).toBeGreaterThanOrEqual(model.passMs(1, 5, PAST + prompt.length) - 1);
    expect(elapsed).toBeGreaterThanOrEqual(r.server_ms - 1);
    expect(r.load.rows).toBe(1);
    expect(r.load.tokens).toBe(5);
    const curve = r.load.pass_ms_by_chunk!;
    expect(curve).toHaveLength(9); // chunks 1 … max γ + 1
    const past = PAST + prompt.length + 1 + r.accepted; // the session's length after this round
    curve.forEach((ms, i) => expect(ms).toBeCloseTo(model.passMs(1, i + 1, past), 6));
    for (let i = 1; i < curve.length; i++) expect(curve[i]).toBeGreaterThanOrEqual(curve[i - 1]);
  });

  it("concurrent sessions share passes, and each one's report prices its row beside the others", async () => {
    const opens = await Promise.all([0, 1, 2, 3].map(async (i) => VerifyResponseSchema.parse(await (await post("/v1/verify", { session: `m${i}`, seq: 0, history: prompt, drafts: [] })).json())));
    const rounds = await Promise.all(opens.map(async (o, i) => VerifyResponseSchema.parse(await (await post("/v1/verify", { session: `m${i}`, seq: 1, committed: [o.token], drafts: [prompt[1]] })).json())));
    const shared = rounds.filter((r) => (r.load.rows ?? 0) > 1);
    expect(shared.length).toBeGreaterThan(0); // the four rounds did not all run alone
    for (const r of shared) expect(r.load.pass_ms_by_chunk![0]).toBeGreaterThanOrEqual(h200Alia40b().passMs(1, 1, PAST));
  });

  it("a pass waits for a session expected back soon, so two sessions out of step come to share passes", async () => {
    const waits = async () => Number((await (await fetch(`${verifier.url}/metrics`)).text()).match(/^alia_verifier_company_waits_total (\S+)$/m)?.[1]);
    const before = await waits();
    // Two sessions that each send their next round a fixed time after their answer (2 ms and 12 ms, as
    // two edges at different distances would), starting 12 ms apart. A pass costs ~22 ms: without waiting,
    // each would keep running alone, in turn.
    const rowsSeen: number[][] = [[], []];
    const loop = async (i: number, delayMs: number) => {
      await new Promise((r) => setTimeout(r, i * 12));
      let r = VerifyResponseSchema.parse(await (await post("/v1/verify", { session: `w${i}`, seq: 0, history: prompt, drafts: [] })).json());
      for (let seq = 1; seq <= 10; seq++) {
        await new Promise((res) => setTimeout(res, delayMs));
        r = VerifyResponseSchema.parse(await (await post("/v1/verify", { session: `w${i}`, seq, committed: [r.token], drafts: [prompt[1], prompt[2]] })).json());
        rowsSeen[i].push(r.load.rows ?? 0);
      }
    };
    await Promise.all([loop(0, 2), loop(1, 12)]);
    expect(await waits()).toBeGreaterThan(before);
    // Once each turnaround is known, the early session's pass waits for the other: shared passes.
    const shared = rowsSeen[0].slice(4).filter((n) => n >= 2).length;
    expect(shared).toBeGreaterThanOrEqual(3);
  });

  it("a round's report says how long it waits for other sessions' passes in flight: about half a pass beside a generation, nothing alone", async () => {
    await new Promise((r) => setTimeout(r, 1100)); // the earlier tests' passes leave the last second
    const open = VerifyResponseSchema.parse(await (await post("/v1/verify", { session: "alone", seq: 0, history: prompt, drafts: [] })).json());
    expect(open.load.pass_wait_ms).toBe(0); // its own pass does not count
    // Another session generates 40 tokens: ~22 ms passes back to back for ~0.9 s.
    const stream = post("/v1/generate", { history: prompt, max_tokens: 40 }).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 600));
    const beside = VerifyResponseSchema.parse(await (await post("/v1/verify", { session: "alone", seq: 1, committed: [open.token], drafts: [] })).json());
    await stream;
    const pass = h200Alia40b().passMs(1, 1, PAST);
    // Half a pass while the GPU was busy with the stream's passes, over the ≥ 0.6 s of the second they filled.
    expect(beside.load.pass_wait_ms).toBeGreaterThan(0.25 * pass);
    expect(beside.load.pass_wait_ms).toBeLessThanOrEqual(pass);
  });

  it("the pool client's round trip is the average network time of continuing rounds, not their minimum", async () => {
    const proxy = await startDelayProxy({ target: verifier.url, delayMs: 2, jitterMs: 20, seed: 7 });
    try {
      const pool = new PoolClient({ nodes: [proxy.url] });
      const history = [...prompt];
      const build = (seq: number) => (reopen: boolean) => (seq === 0 || reopen ? { session: "rtt", seq, history, drafts: [] } : { session: "rtt", seq, committed: [history[history.length - 1]], drafts: [] });
      const network: number[] = [];
      for (let seq = 0; seq < 8; seq++) {
        const r = await pool.round("rtt", build(seq));
        history.push(r.token);
        if (seq > 0) network.push(r.elapsedMs - r.server_ms);
      }
      const rtt = pool.roundTripMs!;
      // An exponential average of the continuing rounds (the opening one, with the whole history, left out).
      expect(rtt).toBeGreaterThan(Math.min(...network));
      expect(rtt).toBeLessThan(Math.max(...network));
      expect(rtt).toBeGreaterThanOrEqual(4); // 2 ms each way at least
      await pool.close("rtt");
    } finally {
      await proxy.close();
    }
  });

  it("streams the load report with the first generated token and every 16th", async () => {
    const res = await post("/v1/generate", { history: prompt, max_tokens: 20 });
    const events = (await res.text())
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => JSON.parse(l.slice(6)) as { token?: number; load?: { pass_ms_by_chunk?: number[] } });
    const tokens = events.filter((e) => e.token !== undefined);
    expect(tokens).toHaveLength(20);
    expect(tokens.map((e, i) => (e.load ? i : -1)).filter((i) => i >= 0)).toEqual([0, 16]);
    expect(tokens[0].load?.pass_ms_by_chunk?.length).toBe(9);
  });

  it("counts passes, rows, tokens and modelled GPU seconds in /metrics", async () => {
    const text = await (await fetch(`${verifier.url}/metrics`)).text();
    const read = (name: string) => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1]);
    expect(read("alia_verifier_passes_total")).toBeGreaterThan(0);
    expect(read("alia_verifier_pass_tokens_total")).toBeGreaterThanOrEqual(read("alia_verifier_pass_rows_total"));
    expect(read("alia_verifier_modelled_gpu_seconds_total")).toBeGreaterThan(0.021 * read("alia_verifier_passes_total"));
  });

  it("refuses a simulated GPU without a cost model, or on SGLang", () => {
    expect(() => loadVerifierConfig({ VERIFIER_SIMULATE_GPU: "true" })).toThrow(/needs a VERIFIER_COST_MODEL/);
    expect(() => loadVerifierConfig({ VERIFIER_SIMULATE_GPU: "true", VERIFIER_COST_MODEL: "engine", VERIFIER_ENGINE: "sglang", VERIFIER_SGLANG_URL: "http://127.0.0.1:1" })).toThrow(/onnx engine only/);
    expect(() => loadVerifierConfig({ VERIFIER_COST_MODEL: "a100" })).toThrow();
  });
});

describe("an edge that keeps what earlier generations measured (SpeculationPriors)", () => {
  it("starts later adaptive generations with a round instead of pool generation, and their output is still the target's", async () => {
    const { draft, target, tok } = await loadDefaultPair();
    const pool = new PoolClient({ nodes: [verifier.url] });
    const priors = new SpeculationPriors();
    const run = async (text: string, i: number, withPriors: boolean) => {
      const d = new SpeculativeDecoder({ draft, pool, gamma: "adaptive", proactive: true, maxTokens: 32, session: `prior-${i}-${withPriors}`, ...(withPriors ? { priors } : {}) });
      const out: number[] = [];
      for await (const ev of d.run(tok.encode(text))) out.push(...ev.tokens);
      expect(out).toEqual(await target.greedy(tok.encode(text), 32));
      return d.stats;
    };
    // A fresh edge measures first: its first generation starts with the pool generating.
    expect((await run(SPANISH_PROMPTS[0], 0, true)).gammas[0]).toBe(0);
    // Once the prior holds enough (a few generations at most), generations start by drafting. (On a machine
    // loaded by other work the draft's measured step is slower and the prior takes longer to say so.)
    let first = 0;
    for (let i = 1; i <= 12 && first === 0; i++) first = (await run(SPANISH_PROMPTS[i], i, true)).gammas[0];
    expect(first).toBeGreaterThan(0);
    // Without the prior, the same edge still starts each generation by measuring.
    expect((await run(SPANISH_PROMPTS[13], 13, false)).gammas[0]).toBe(0);
  });
});
