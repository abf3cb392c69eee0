// Issue 14 against a real verifier process on loopback: session closes racing verify rounds, replayed
// sequence numbers, clients that go away mid-round (alone and through the edge's decoder), generation
// streams cut off, and token ids beyond the vocabulary. The GPU is simulated (each pass held to the
// ALIA-40b/H200 cost model at a long past), so rounds last long enough to be raced deterministically.
import net from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { VerifyResponseSchema } from "../src/common/protocol.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import { SpeculativeDecoder } from "../src/speculative/speculative-decoder.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";

const TOKEN = "test-token-0123456789abcdef";
const auth = { authorization: `Bearer ${TOKEN}` };
let verifier: ListeningProcess;
let draft: CausalLM;
let tok: TextTokenizer;
let vocab: number;

beforeAll(async () => {
  ({ draft, tok } = await loadDefaultPair());
  // Passes of ≥ 30 ms (one row) to ~500 ms (fifty rows); the first pass after an idle spell waits 100 ms
  // for company, so no round is answered sooner than ~130 ms after it came.
  verifier = await startVerifierProcess({
    VERIFIER_TOKEN: TOKEN,
    VERIFIER_COST_MODEL: "h200-alia-40b",
    VERIFIER_SIMULATE_GPU: "true",
    VERIFIER_SIMULATED_PAST: "32000",
    VERIFIER_BATCH_WINDOW_MS: "100",
    VERIFIER_MAX_BATCH: "256",
    VERIFIER_WAIT_FOR_COMPANY: "false",
  });
  vocab = ((await (await fetch(`${verifier.url}/v1/info`, { headers: auth })).json()) as { vocab: number }).vocab;
});
afterAll(async () => {
  await verifier?.stop("SIGKILL");
});

const post = (path: string, body: unknown, signal?: AbortSignal) => fetch(`${verifier.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...auth }, body: JSON.stringify(body), signal });
const del = (id: string) => fetch(`${verifier.url}/v1/sessions/${id}`, { method: "DELETE", headers: auth });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const held = async () => ((await (await fetch(`${verifier.url}/v1/info`, { headers: auth })).json()) as { sessions: { sessions: number } }).sessions.sessions;
/** Polls /v1/info until no session is held or `ms` have passed; the count last seen. */
async function heldAfter(ms: number): Promise<number> {
  const end = Date.now() + ms;
  let n = await held();
  while (n > 0 && Date.now() < end) {
    await sleep(100);
    n = await held();
  }
  return n;
}
/** A raw HTTP/1.1 request on a connection of its own: the test decides when its client goes, and knows whether any of the answer had come. */
function rawPost(path: string, body: unknown) {
  const { hostname, port } = new URL(verifier.url);
  const payload = JSON.stringify(body);
  const socket = net.connect(Number(port), hostname);
  let got = "";
  socket.on("data", (d) => (got += d));
  socket.on("error", () => {});
  const head = `POST ${path} HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${TOKEN}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\nconnection: close\r\n\r\n`;
  const sent = new Promise<void>((resolve) => socket.write(head + payload, () => resolve()));
  return { socket, sent, received: () => got.length > 0 };
}
const code = async (r: Response) => [r.status, ((await r.json()) as { error: { code: string } }).error.code];
/** What a verifier that hit one of the issue's failures prints: a 500's stack, or the sequence errors behind them. */
const FAILURES = /RangeError|truncate\(\)|forward\(\) called|internal error|Error:/;

describe("verifier sessions under races (issue 14)", () => {
  // Each test reads only what the verifier printed during it.
  let outputFrom = 0;
  beforeEach(() => {
    outputFrom = verifier.output().length;
  });

  it("DELETEs racing 60 sessions' rounds: no 5xx, each round answered or refused with a 4xx, nothing left held", async () => {
    const prompts = Array.from({ length: 60 }, (_, i) => tok.encode(SPANISH_PROMPTS[i % SPANISH_PROMPTS.length]));
    const opened = await Promise.all(prompts.map(async (history, i) => VerifyResponseSchema.parse(await (await post("/v1/verify", { session: `race${i}`, seq: 0, history, drafts: [] })).json())));
    const roundStatus: number[] = [];
    const deleteStatus: number[] = [];
    await Promise.all(
      opened.map(async (o, i) => {
        const drafts = prompts[i].slice(0, 4);
        let committed = [o.token];
        const rounds = (async () => {
          for (let seq = 1; seq <= 6; seq++) {
            const r = await post("/v1/verify", { session: `race${i}`, seq, committed, drafts });
            roundStatus.push(r.status);
            if (r.status !== 200) return void (await r.body?.cancel());
            const v = VerifyResponseSchema.parse(await r.json());
            committed = [...drafts.slice(0, v.accepted), v.token];
          }
        })();
        // Each DELETE lands at a different point of its session's rounds: queued, in a pass, between rounds.
        await sleep((i % 10) * 9);
        const d = await del(`race${i}`);
        deleteStatus.push(d.status);
        await d.body?.cancel();
        await rounds;
      }),
    );
    expect(roundStatus.filter((s) => s >= 500)).toEqual([]);
    expect(deleteStatus.filter((s) => s >= 500)).toEqual([]);
    for (const s of roundStatus) expect([200, 404]).toContain(s);
    for (const s of deleteStatus) expect([204, 404]).toContain(s);
    expect(roundStatus.length).toBeGreaterThanOrEqual(60);
    expect(await held()).toBe(0);
    expect(verifier.output().slice(outputFrom)).not.toMatch(FAILURES);
  });

  it("a disconnect storm of 100 opening rounds (γ = 4) leaves no session held within 5 s", async () => {
    const metric = async (name: string) => Number((await (await fetch(`${verifier.url}/metrics`)).text()).match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1]);
    expect(await held()).toBe(0);
    const closed0 = await metric("alia_verifier_sessions_closed_total");
    const clients = Array.from({ length: 100 }, (_, i) => {
      const history = tok.encode(SPANISH_PROMPTS[i % SPANISH_PROMPTS.length]);
      return rawPost("/v1/verify", { session: `storm${i}`, seq: 0, history, drafts: history.slice(0, 4) });
    });
    await Promise.all(clients.map((c) => c.sent));
    // The rounds are in their prefill, queued, or in the first pass when every client without its answer
    // goes; the poll phase before setImmediate reads any answer that has come.
    await sleep(150);
    await new Promise((r) => setImmediate(r));
    const answered = clients.flatMap((c, i) => (c.received() ? [i] : []));
    for (const c of clients) if (!c.received()) c.socket.destroy();
    // A client that has its answer knows its session exists and closes it, as the edge does.
    for (const i of answered) expect((await del(`storm${i}`)).status).toBe(204);
    expect(clients.length - answered.length).toBeGreaterThan(50);
    expect(await heldAfter(5000)).toBe(0);
    // Sessions were opened (prefilled, in the store) and closed again, not merely never opened.
    expect((await metric("alia_verifier_sessions_closed_total")) - closed0).toBeGreaterThan(answered.length);
    // The verifier still serves.
    const ok = await post("/v1/verify", { session: "after-storm", seq: 0, history: tok.encode("Hola"), drafts: [] });
    expect(ok.status).toBe(200);
    expect((await del("after-storm")).status).toBe(204);
    expect(verifier.output().slice(outputFrom)).not.toMatch(FAILURES);
  });

  it("the edge's decoder cut off mid-round by its client closes its session: no 5xx, nothing held", async () => {
    const pool = new PoolClient({ nodes: [verifier.url], token: TOKEN });
    const runs = Array.from({ length: 24 }, async (_, i) => {
      const ctl = new AbortController();
      // Fixed γ = 4, 60 tokens: more rounds than it is let run. Its client goes a little after its 1st, 2nd
      // or 3rd round, while it drafts or while the next round is on the verifier.
      const d = new SpeculativeDecoder({ draft, pool, gamma: 4, maxTokens: 60, session: `edge${i}`, signal: ctl.signal });
      let events = 0;
      for await (const _ of d.run(tok.encode(SPANISH_PROMPTS[i % SPANISH_PROMPTS.length]))) if (++events === 1 + (i % 3)) setTimeout(() => ctl.abort(), (i * 7) % 60);
      return d.finishReason;
    });
    const ends = await Promise.all(runs);
    expect(ends.filter((f) => f === undefined).length).toBeGreaterThan(12); // most were cut off
    expect(await heldAfter(5000)).toBe(0);
    expect(pool.counters.errors).toBe(0);
    expect(verifier.output().slice(outputFrom)).not.toMatch(FAILURES);
  });

  it("a round reusing a seq gets the stored answer only with the same body; other content is 409 seq_conflict", async () => {
    const history = tok.encode(SPANISH_PROMPTS[5]);
    const o = VerifyResponseSchema.parse(await (await post("/v1/verify", { session: "conflict", seq: 0, history, drafts: [] })).json());
    const body = { session: "conflict", seq: 1, committed: [o.token], drafts: [history[1], history[2]] };
    const first = VerifyResponseSchema.parse(await (await post("/v1/verify", body)).json());
    expect(await code(await post("/v1/verify", { ...body, drafts: [history[3], history[4]] }))).toEqual([409, "seq_conflict"]);
    expect(await code(await post("/v1/verify", { ...body, drafts: [] }))).toEqual([409, "seq_conflict"]);
    const again = VerifyResponseSchema.parse(await (await post("/v1/verify", body)).json());
    expect({ ...again, server_ms: 0 }).toEqual({ ...first, server_ms: 0 });
    expect((await del("conflict")).status).toBe(204);
  });

  it("token ids beyond the vocabulary (q̃ ids at 10⁹ included) are 400 invalid_request, never 500", async () => {
    const history = tok.encode("El tiempo es");
    const sampling = { temperature: 1, top_p: 1, top_k: 0, seed: 3 };
    const d = history[1];
    const cases: unknown[] = [
      { session: "voc1", seq: 0, history, drafts: [d], q: [{ ids: [d, 1e9], probs: [0.5, 0.5] }], sampling },
      { session: "voc2", seq: 0, history, drafts: [d], q: [{ ids: [1e9], probs: [1] }] },
      { session: "voc3", seq: 0, history, drafts: [vocab] },
      { session: "voc4", seq: 0, history: [...history, vocab + 5], drafts: [] },
    ];
    for (const c of cases) expect(await code(await post("/v1/verify", c))).toEqual([400, "invalid_request"]);
    expect(await code(await post("/v1/verify", { session: "voc5", seq: 0, history, drafts: [d], q: [{ ids: [d], probs: [1.5] }], sampling }))).toEqual([400, "invalid_request"]);
    expect(await code(await post("/v1/generate", { history, max_tokens: 4, stop_ids: [1e9] }))).toEqual([400, "invalid_request"]);
    expect(await code(await post("/v1/generate", { history: [...history, 1e9], max_tokens: 4 }))).toEqual([400, "invalid_request"]);
    expect(await held()).toBe(0);
  });

  it("generation streams cut off mid-stream end cleanly: no 5xx, and the verifier serves on", async () => {
    const history = tok.encode(SPANISH_PROMPTS[7]);
    const cut = Array.from({ length: 12 }, async (_, i) => {
      const ctl = new AbortController();
      const r = await post("/v1/generate", { history, max_tokens: 200 }, ctl.signal);
      expect(r.status).toBe(200);
      const reader = r.body!.getReader();
      for (let n = 0; n <= i % 4; n++) await reader.read();
      ctl.abort();
      await reader.cancel().catch(() => {});
    });
    await Promise.all(cut);
    const whole = await post("/v1/generate", { history, max_tokens: 8 });
    expect(whole.status).toBe(200);
    expect(await whole.text()).toMatch(/"done":true/);
    expect(verifier.output().slice(outputFrom)).not.toMatch(FAILURES);
  });
});
