// The verifier as a real process on loopback: auth, greedy rounds over HTTP reproducing target-only
// output, 4xx codes for bad input, session close, graceful SIGTERM.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { VerifyResponseSchema, type Sampling } from "../src/common/protocol.ts";
import { SeededRng, sampleSparse, targetDistribution, truncateTopK } from "../src/common/sampling.ts";
import { chiSquareTest } from "./harness/chi-square.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";

const TOKEN = "test-token-0123456789abcdef";
/** The token being rotated out: still accepted beside TOKEN. */
const PREVIOUS = "previous-token-0123456789abcdef";
let verifier: ListeningProcess;
let url: string;
let target: CausalLM;
let draft: CausalLM;
let tok: TextTokenizer;

const startVerifier = () => startVerifierProcess({ VERIFIER_TOKEN: TOKEN, VERIFIER_TOKEN_PREVIOUS: PREVIOUS });

beforeAll(async () => {
  ({ target, draft, tok } = await loadDefaultPair());
  verifier = await startVerifier();
  url = verifier.url;
});
afterAll(async () => {
  await verifier?.stop("SIGKILL");
});

const post = (body: unknown, token = TOKEN) => fetch(`${url}/v1/verify`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify(body) });

describe("verifier over HTTP", () => {
  it("needs the bearer token for /v1/*, not for probes", async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const r = await post({ session: "a", seq: 0, history: [1], drafts: [] }, "wrong-token-0123456789abcdef");
    expect(r.status).toBe(401);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    expect((await fetch(`${url}/v1/info`)).status).toBe(401);
    // Rotation: the token being retired still works beside the new one.
    for (const token of [TOKEN, PREVIOUS]) expect((await fetch(`${url}/v1/info`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });

  it("greedy rounds reproduce target-only output on 50 prompts × 24 tokens", async () => {
    for (const [i, text] of SPANISH_PROMPTS.entries()) {
      const prompt = tok.encode(text);
      const out: number[] = [];
      let committed: number[] = [];
      for (let seq = 0; out.length < 24; seq++) {
        const drafts = await draft.greedy([...prompt, ...out], 4);
        const res = await post({ session: `h${i}`, seq, drafts, ...(seq === 0 ? { history: prompt } : { committed }) });
        expect(res.status).toBe(200);
        const r = VerifyResponseSchema.parse(await res.json());
        committed = [...drafts.slice(0, r.accepted), r.token];
        out.push(...committed);
      }
      expect(out.slice(0, 24)).toEqual(await target.greedy(prompt, 24));
      expect((await fetch(`${url}/v1/sessions/h${i}`, { method: "DELETE", headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(204);
    }
  });

  it("answers malformed, oversized and out-of-order requests with 4xx codes", async () => {
    const code = async (r: Response) => [r.status, ((await r.json()) as { error: { code: string } }).error.code];
    expect(await code(await post({ session: "bad id!", seq: 0, drafts: [] }))).toEqual([400, "invalid_request"]);
    expect(await code(await post({ session: "m", seq: 0, history: [1], drafts: new Array(17).fill(5) }))).toEqual([400, "invalid_request"]);
    expect(await code(await post({ session: "m", seq: 3, committed: [1], drafts: [] }))).toEqual([404, "session_not_found"]);
    expect(await code(await post({ session: "m", seq: 0, history: new Array(300_000).fill(5), drafts: [] }))).toEqual([413, "context_too_long"]);
    const open = (await (await post({ session: "m", seq: 0, history: [1, 5], drafts: [] })).json()) as { token: number };
    expect(await code(await post({ session: "m", seq: 5, committed: [open.token], drafts: [] }))).toEqual([409, "seq_out_of_order"]);
    const bad = await fetch(`${url}/v1/verify`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: "{not json" });
    expect(await code(bad)).toEqual([400, "invalid_request"]);
  });

  it("streams autoregressive generation (γ = 0) identical to target-only greedy, and seeded sampling reproducibly", async () => {
    const gen = async (body: unknown) => {
      const r = await fetch(`${url}/v1/generate`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body) });
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toMatch(/text\/event-stream/);
      const events = (await r.text())
        .split("\n")
        .filter((l) => l.startsWith("data: "))
        .map((l) => JSON.parse(l.slice(6)));
      return { tokens: events.filter((e) => "token" in e).map((e) => e.token as number), last: events.at(-1) };
    };
    const prompt = tok.encode("La música");
    const g = await gen({ history: prompt, max_tokens: 24 });
    expect(g.tokens).toEqual(await target.greedy(prompt, 24));
    expect(g.last).toEqual({ done: true, finish_reason: "length", tokens: 24 });
    const stop = await gen({ history: prompt, max_tokens: 24, stop_ids: [g.tokens[3]] });
    expect(stop.last).toMatchObject({ finish_reason: "stop" });
    const sampling = { temperature: 0.9, top_p: 0.95, seed: 7 };
    expect((await gen({ history: prompt, max_tokens: 16, sampling })).tokens).toEqual((await gen({ history: prompt, max_tokens: 16, sampling })).tokens);
    const bad = await fetch(`${url}/v1/generate`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ history: [1], max_tokens: 5000 }) });
    expect(bad.status).toBe(413);
  });

  // Seeded trials over HTTP: each opens a session after a fixed prompt, drafts γ = 2 tokens sampled from
  // the draft model's q̃ (top-4 support), and runs rounds until two tokens are committed. The pair counts
  // are compared with target-only sampling, p(a)·p(b|a) from the target's own logits. Small top_k keeps
  // the cells few; accept at chi-square p ≥ 0.001 (reproducible: every seed is fixed).
  it.each([
    ["temperature 1, top_k 4", { temperature: 1, top_p: 1, top_k: 4, seed: 0 }],
    ["temperature 0.7, top_k 8, top_p 0.8", { temperature: 0.7, top_p: 0.8, top_k: 8, seed: 0 }],
  ] as const)("sampling rounds commit pairs distributed as target-only sampling (%s)", async (_name, sampling: Sampling) => {
    const params = { temperature: sampling.temperature, topP: sampling.top_p, topK: sampling.top_k };
    const prompt = tok.encode("El tiempo es");
    const rows = new Map<string, Float32Array>();
    const lastRow = async (model: CausalLM, ctx: number[]) => {
      const key = `${model === target ? "t" : "d"}${ctx.join(",")}`;
      if (!rows.has(key)) rows.set(key, (await model.forward(model.newSequence(), ctx)).last().slice());
      return rows.get(key)!;
    };
    const trials = 2000;
    const counts = new Map<string, number>();
    let next = 0;
    const worker = async () => {
      for (let t = next++; t < trials; t = next++) {
        const rng = new SeededRng(1000 + t);
        const out: number[] = [];
        let committed: number[] = [];
        for (let seq = 0; out.length < 2; seq++) {
          const drafts: number[] = [];
          const q = [];
          for (let i = 0; i < 2; i++) {
            const qi = truncateTopK(targetDistribution(await lastRow(draft, [...prompt, ...out, ...drafts]), params), 4);
            drafts.push(sampleSparse(qi, rng.next()));
            q.push(qi);
          }
          const res = await post({ session: `p${t}`, seq, drafts, q, ...(seq === 0 ? { history: prompt, sampling: { ...sampling, seed: t } } : { committed }) });
          expect(res.status).toBe(200);
          const r = VerifyResponseSchema.parse(await res.json());
          committed = [...drafts.slice(0, r.accepted), r.token];
          out.push(...committed);
        }
        const key = `${out[0]},${out[1]}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker)); // concurrent sessions: rounds are batched
    const exact = new Map<string, number>();
    const pa = targetDistribution(await lastRow(target, prompt), params);
    for (const [a, P] of pa.entries()) {
      if (P === 0) continue;
      const pb = targetDistribution(await lastRow(target, [...prompt, a]), params);
      for (const [b, Q] of pb.entries()) if (Q > 0) exact.set(`${a},${b}`, P * Q);
    }
    for (const k of counts.keys()) expect(exact.has(k), `committed pair ${k} has probability 0 under the target`).toBe(true);
    const keys = [...exact.keys()];
    const observed = keys.map((k) => counts.get(k) ?? 0);
    const probs = keys.map((k) => exact.get(k)!);
    const r = chiSquareTest(observed, probs);
    expect(r.pValue, `chi2 ${r.statistic.toFixed(1)} on ${r.dof} dof`).toBeGreaterThanOrEqual(0.001);
  });

  it("serves Prometheus metrics without a token, counting rounds and accepted drafts", async () => {
    // Three sessions opened together on one history (a request's n choices): one prefill, two shared.
    const prompt = tok.encode(SPANISH_PROMPTS[0]);
    const opened = await Promise.all([0, 1, 2].map((i) => post({ session: `shared-${i}`, seq: 0, drafts: [], history: prompt })));
    for (const r of opened) expect(r.status).toBe(200);
    const text = await (await fetch(`${url}/metrics`)).text();
    const value = (name: string) => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1]);
    expect(value("alia_verifier_rounds_total")).toBeGreaterThan(10);
    expect(value("alia_verifier_accepted_tokens_total")).toBeGreaterThan(0);
    expect(value("alia_verifier_accepted_tokens_total")).toBeLessThanOrEqual(value("alia_verifier_drafted_tokens_total"));
    expect(value("alia_verifier_generated_tokens_total")).toBeGreaterThanOrEqual(24);
    expect(value("alia_verifier_sessions_closed_total")).toBeGreaterThanOrEqual(10);
    expect(value("alia_verifier_prefills_shared_total")).toBeGreaterThanOrEqual(2);
    expect(value("alia_verifier_prefills_total")).toBeGreaterThan(50);
    expect(text).toMatch(/alia_verifier_round_seconds_bucket\{le="0.005"\}/);
    // Requests are counted on arrival: every answered round was one, and refused ones count too.
    expect(value('alia_verifier_requests_total{route="/v1/verify"}')).toBeGreaterThanOrEqual(value("alia_verifier_rounds_total"));
    expect(value('alia_verifier_requests_total{route="/v1/generate"}')).toBeGreaterThan(0);
    // The concurrent sampling trials above ran through batched passes of more than one session.
    const batched = [...text.matchAll(/^alia_verifier_batches_total\{size="(\d+)"\} (\d+)$/gm)].filter(([, size]) => Number(size) > 1);
    expect(batched.length).toBeGreaterThan(0);
  });

  it("exits 0 on SIGTERM", async () => {
    expect(await verifier.stop("SIGTERM")).toEqual({ code: 0, signal: null });
  });

  it("after a kill mid-generation, a restarted verifier re-opened by history continues identically", async () => {
    verifier = await startVerifier();
    url = verifier.url;
    const prompt = tok.encode("Nunca es tarde");
    const out: number[] = [];
    let committed: number[] = [];
    let seq = 0;
    let reopen = true;
    let killed = false;
    while (out.length < 32) {
      if (!killed && out.length >= 12) {
        await verifier.stop("SIGKILL"); // the session's KV cache dies with the process
        verifier = await startVerifier();
        url = verifier.url;
        killed = true;
        const lost = await post({ session: "k", seq, committed, drafts: [] });
        expect(lost.status).toBe(404); // the new process does not know the session
        reopen = true;
      }
      const drafts = await draft.greedy([...prompt, ...out], 4);
      const res = await post({ session: "k", seq, drafts, ...(reopen ? { history: [...prompt, ...out] } : { committed }) });
      expect(res.status).toBe(200);
      const r = VerifyResponseSchema.parse(await res.json());
      committed = [...drafts.slice(0, r.accepted), r.token];
      out.push(...committed);
      seq++;
      reopen = false;
    }
    expect(killed).toBe(true);
    expect(out.slice(0, 32)).toEqual(await target.greedy(prompt, 32));
  });
});
