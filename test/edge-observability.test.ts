// Request logs, request ids and /metrics of the Node edge, end to end: src/node.ts as a real process (with
// its own local verifier) on 127.0.0.1. The log lines are JSON with the request's numbers and no secret or
// text; /metrics agrees with what the responses reported in `usage` and `alia_speculation`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deadEndpoint } from "./harness/ports.ts";
import { startEdgeProcess, type EdgeProcess } from "./harness/processes.ts";

const API_KEY = "obs-test-key-7f3a9c2e51";
const WRONG_KEY = "obs-wrong-key-b81d44e07c";
const METRICS_TOKEN = "obs-metrics-token-5e6f7a8b9c";
const CHAT_PROMPT = "Cuéntame un refrán sobre la paciencia y el mar";
const COMPLETION_PROMPT = "La paciencia es la madre de la ciencia y";
const TRANSLATE_TEXT = "Mi zanahoria secreta vive en Zaragoza.";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Spec {
  rounds: number;
  drafted_tokens: number;
  accepted_tokens: number;
  pool_generated_tokens: number;
  target_passes: number;
}
interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
}
type LogLine = Record<string, unknown>;

let edge: EdgeProcess;
let url: string;
let output: () => string;
let modelId: string;

const auth = (key = API_KEY) => ({ authorization: `Bearer ${key}`, "content-type": "application/json" });

function logLines(out: string): LogLine[] {
  return out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine);
}

/** The request's log line, once the edge has written it (streams: when the stream has ended). */
async function logOf(requestId: string): Promise<LogLine> {
  for (let i = 0; i < 300; i++) {
    const line = logLines(output()).find((l) => l.msg === "request" && l.request_id === requestId);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no log line for request ${requestId}:\n${output()}`);
}

/** /metrics as a map from `name{labels}` to value. */
async function scrape(base = url, headers: Record<string, string> = { authorization: `Bearer ${METRICS_TOKEN}` }): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^(\S+?(?:\{.*\})?) (\S+)$/.exec(line);
    expect(m, `malformed sample line: ${line}`).not.toBeNull();
    samples.set(m![1], Number(m![2]));
  }
  return samples;
}

/** The data events of a Server-Sent Events body. */
function sseData(body: string): string[] {
  return body
    .split(/\n\n/)
    .map((block) =>
      block
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trim())
        .join("\n"),
    )
    .filter(Boolean);
}

beforeAll(async () => {
  // A fixed γ so that the requests speculate (the adaptive policy may let the pool generate short outputs).
  // The draft model alone: every round's series carries its label (the hybrid's split is unit-tested).
  edge = await startEdgeProcess({ API_KEYS: API_KEY, METRICS_TOKEN, SPEC_GAMMA: "4", SPEC_PROPOSER: "model" });
  ({ url, output } = edge);
  modelId = ((await (await fetch(`${url}/v1/models`, { headers: auth() })).json()) as { data: { id: string }[] }).data[0].id;
});
afterAll(async () => {
  await edge?.stop("SIGINT");
});

describe("edge request logs and /metrics (Node process)", () => {
  let chat: { usage: Usage; alia_speculation: Spec; choices: { message: { content: string }; finish_reason: string }[] };
  let streamed: { text: string; usage: Usage; spec: Spec; finish: string; requestId: string };

  it("logs a chat completion as one JSON line carrying the request id the response header shows", async () => {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { ...auth(), "x-request-id": "obs-chat-1" },
      body: JSON.stringify({ model: modelId, messages: [{ role: "user", content: CHAT_PROMPT }], max_tokens: 24, temperature: 0 }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("obs-chat-1");
    chat = (await res.json()) as typeof chat;
    const line = await logOf("obs-chat-1");
    expect(line).toMatchObject({
      level: "info",
      msg: "request",
      method: "POST",
      path: "/v1/chat/completions",
      status: 200,
      stream: false,
      proposer: "model",
      prompt_tokens: chat.usage.prompt_tokens,
      completion_tokens: chat.usage.completion_tokens,
      finish_reason: chat.choices[0].finish_reason,
      rounds: chat.alia_speculation.rounds,
      drafted_tokens: chat.alia_speculation.drafted_tokens,
      accepted_tokens: chat.alia_speculation.accepted_tokens,
      pool_generated_tokens: chat.alia_speculation.pool_generated_tokens,
      target_passes: chat.alia_speculation.target_passes,
    });
    expect(new Date(line.time as string).toISOString()).toBe(line.time);
    expect(line.duration_ms).toBeTypeOf("number");
    expect(line.duration_ms as number).toBeGreaterThanOrEqual(0);
  });

  it("logs a streamed completion when its stream ends, with the stream's usage and speculation", async () => {
    const res = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: auth(),
      body: JSON.stringify({ model: modelId, prompt: COMPLETION_PROMPT, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } }),
    });
    expect(res.status).toBe(200);
    const requestId = res.headers.get("x-request-id")!;
    expect(requestId).toMatch(UUID);
    const events = sseData(await res.text()); // to the end of the body: the generation has been recorded
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { choices: { text: string; finish_reason: string | null }[]; usage?: Usage | null; alia_speculation?: Spec });
    streamed = {
      text: chunks.map((c) => c.choices[0]?.text ?? "").join(""),
      usage: chunks.find((c) => c.usage)!.usage!,
      spec: chunks.find((c) => c.alia_speculation)!.alia_speculation!,
      finish: chunks.find((c) => c.choices[0]?.finish_reason)!.choices[0].finish_reason!,
      requestId,
    };
    const line = await logOf(requestId);
    expect(line).toMatchObject({
      level: "info",
      method: "POST",
      path: "/v1/completions",
      status: 200,
      stream: true,
      proposer: "model",
      prompt_tokens: streamed.usage.prompt_tokens,
      completion_tokens: streamed.usage.completion_tokens,
      finish_reason: streamed.finish,
      rounds: streamed.spec.rounds,
      drafted_tokens: streamed.spec.drafted_tokens,
      accepted_tokens: streamed.spec.accepted_tokens,
      pool_generated_tokens: streamed.spec.pool_generated_tokens,
      target_passes: streamed.spec.target_passes,
    });
    expect(line).not.toHaveProperty("cancelled");
  });

  it("serves /metrics consistent with the responses' usage and alia_speculation", async () => {
    const m = await scrape();
    const v = (key: string) => {
      expect(m.has(key), `/metrics lacks ${key}`).toBe(true);
      return m.get(key);
    };
    expect(v('alia_edge_requests_total{route="/v1/chat/completions",method="POST",status="200"}')).toBe(1);
    expect(v('alia_edge_requests_total{route="/v1/completions",method="POST",status="200"}')).toBe(1);
    for (const route of ["/v1/chat/completions", "/v1/completions"]) {
      const buckets = [...m].filter(([k]) => k.startsWith(`alia_edge_request_duration_seconds_bucket{route="${route}",`)).map(([, n]) => n);
      expect(buckets.length).toBeGreaterThan(2);
      expect(buckets).toEqual([...buckets].sort((a, b) => a - b)); // cumulative
      expect(buckets.at(-1)).toBe(1);
      expect(v(`alia_edge_request_duration_seconds_bucket{route="${route}",le="+Inf"}`)).toBe(1);
      expect(v(`alia_edge_request_duration_seconds_count{route="${route}"}`)).toBe(1);
      expect(v(`alia_edge_request_duration_seconds_sum{route="${route}"}`)).toBeGreaterThan(0);
    }
    const sum = (f: (s: Spec) => number) => f(chat.alia_speculation) + f(streamed.spec);
    expect(sum((s) => s.rounds)).toBeGreaterThan(0); // SPEC_GAMMA=4: speculative rounds, not pool generation alone
    expect(v("alia_edge_prompt_tokens_total")).toBe(chat.usage.prompt_tokens + streamed.usage.prompt_tokens);
    expect(v("alia_edge_completion_tokens_total")).toBe(chat.usage.completion_tokens + streamed.usage.completion_tokens);
    expect(v('alia_edge_rounds_total{proposer="model"}')).toBe(sum((s) => s.rounds));
    expect(v('alia_edge_drafted_tokens_total{proposer="model"}')).toBe(sum((s) => s.drafted_tokens));
    expect(v('alia_edge_accepted_tokens_total{proposer="model"}')).toBe(sum((s) => s.accepted_tokens));
    expect(v('alia_edge_pool_generated_tokens_total{proposer="model"}')).toBe(sum((s) => s.pool_generated_tokens));
    expect(v('alia_edge_target_passes_total{proposer="model"}')).toBe(sum((s) => s.target_passes));
    const finishes = [chat.choices[0].finish_reason, streamed.finish];
    for (const f of new Set(finishes)) expect(v(`alia_edge_generations_total{proposer="model",finish_reason="${f}"}`)).toBe(finishes.filter((x) => x === f).length);
    expect(v("alia_edge_generations_in_flight")).toBe(0);
    expect(v("alia_edge_requests_in_flight")).toBe(1); // this scrape
    expect(v("alia_edge_pool_errors_total")).toBe(0);
    expect(v("alia_edge_pool_failovers_total")).toBe(0);
    expect(m.has("alia_edge_pool_reopens_total")).toBe(true);
  });

  it("protects /metrics with METRICS_TOKEN (an API key is not enough)", async () => {
    const variants: Record<string, string>[] = [{}, { authorization: `Bearer ${API_KEY}` }, { authorization: "Bearer obs-metrics-token-5e6f7a8b9X" }, { authorization: METRICS_TOKEN }];
    for (const headers of variants) {
      const res = await fetch(`${url}/metrics`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_metrics_token");
    }
    await scrape();
  });

  it("keeps a sane incoming x-request-id only, logs refused keys and translations without the key or the text", async () => {
    for (const bad of ["has spaces in it", "x".repeat(200), "-leading-dash", 'quote"d;semi']) {
      const res = await fetch(`${url}/v1/models`, { headers: { ...auth(), "x-request-id": bad } });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-request-id")).toMatch(UUID);
      await res.body?.cancel();
    }
    const refused = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { ...auth(WRONG_KEY), "x-request-id": "obs-refused-1" },
      body: JSON.stringify({ model: modelId, messages: [{ role: "user", content: CHAT_PROMPT }] }),
    });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("x-request-id")).toBe("obs-refused-1");
    expect(await logOf("obs-refused-1")).toMatchObject({ level: "warn", status: 401, path: "/v1/chat/completions", stream: false });

    const generations = (m: Map<string, number>) => [...m].filter(([k]) => k.startsWith("alia_edge_generations_total{")).reduce((n, [, v]) => n + v, 0);
    const before = generations(await scrape());
    const q = new URLSearchParams({ text: TRANSLATE_TEXT, source: "es", target: "ca" });
    const tr = await fetch(`${url}/v1/translate?${q}`, { headers: { ...auth(), "x-request-id": "obs-translate-1" } });
    expect(tr.status).toBe(200);
    const translation = ((await tr.json()) as { translation: string }).translation;
    expect(await logOf("obs-translate-1")).toMatchObject({ method: "GET", path: "/v1/translate", status: 200 });
    const m = await scrape();
    expect(m.get('alia_edge_requests_total{route="/v1/translate",method="GET",status="200"}')).toBe(1);
    expect(m.get('alia_edge_requests_total{route="/v1/chat/completions",method="POST",status="401"}')).toBe(1);
    expect(m.get('alia_edge_translation_sentences_total{source="computed"}')).toBeGreaterThan(0);
    // Each computed sentence is a generation in the speculation metrics too.
    expect(generations(m) - before).toBe(m.get('alia_edge_translation_sentences_total{source="computed"}'));

    // Nothing the edge printed holds a key, a prompt, the translated text or generated text.
    const out = output();
    for (const secret of [API_KEY, WRONG_KEY, METRICS_TOKEN, CHAT_PROMPT, COMPLETION_PROMPT, TRANSLATE_TEXT, "zanahoria", encodeURIComponent(TRANSLATE_TEXT), q.toString()])
      expect(out, `the edge's output holds ${secret}`).not.toContain(secret);
    for (const text of [chat.choices[0].message.content, streamed.text, translation].map((t) => t.trim()).filter((t) => t.length >= 8)) {
      expect(out).not.toContain(text);
      expect(out).not.toContain(JSON.stringify(text).slice(1, -1));
    }
    // Every JSON line is a well-formed record.
    for (const line of logLines(out).filter((l) => l.msg === "request")) {
      expect(Object.keys(line).slice(0, 3)).toEqual(["time", "level", "msg"]);
      expect(line).toMatchObject({
        request_id: expect.any(String),
        method: expect.any(String),
        path: expect.stringMatching(/^\/[^?]*$/),
        status: expect.any(Number),
        duration_ms: expect.any(Number),
        stream: expect.any(Boolean),
      });
    }
  });

  it("logs a stream the client cancels when it is cancelled, and counts the generation as cancelled", async () => {
    // A seeded request that, left alone, runs for hundreds of tokens: the cancel surely comes first. (The
    // fixture's text often ends early; the search is bounded and seeded, so it finds the same seed each run.)
    // A seeded run that reaches 300 tokens without ending repeats them as the prefix of a longer one.
    const body = (seed: number, max_tokens = 900) => ({ model: modelId, prompt: COMPLETION_PROMPT, max_tokens, temperature: 2, seed });
    let seed = 1;
    for (; seed <= 20; seed++) {
      const whole = await fetch(`${url}/v1/completions`, { method: "POST", headers: auth(), body: JSON.stringify(body(seed, 300)) });
      if (((await whole.json()) as { choices: { finish_reason: string }[] }).choices[0].finish_reason === "length") break;
    }
    expect(seed).toBeLessThanOrEqual(20);
    const before = (await scrape()).get('alia_edge_generations_total{proposer="model",finish_reason="cancelled"}') ?? 0;
    const ctl = new AbortController();
    const res = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { ...auth(), "x-request-id": "obs-cancel-1" },
      body: JSON.stringify({ ...body(seed), stream: true }),
      signal: ctl.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    ctl.abort();
    await reader.cancel().catch(() => undefined);
    expect(await logOf("obs-cancel-1")).toMatchObject({ status: 200, stream: true, cancelled: true, path: "/v1/completions" });
    // The generation winds down after the cancel: poll until it is counted.
    let cancelled = before;
    for (let i = 0; i < 100 && cancelled === before; i++) {
      cancelled = (await scrape()).get('alia_edge_generations_total{proposer="model",finish_reason="cancelled"}') ?? 0;
      if (cancelled === before) await new Promise((r) => setTimeout(r, 100));
    }
    expect(cancelled - before).toBe(1);
    expect((await scrape()).get("alia_edge_generations_in_flight")).toBe(0);
  });

  it("without METRICS_TOKEN serves /metrics without any key; LOG_REQUESTS=false logs no requests; pool errors are counted", async () => {
    const nowhere = await deadEndpoint();
    const dead = await startEdgeProcess({ POOL_NODES: nowhere.url, EMBEDDED_VERIFIER: "false", API_KEYS: API_KEY, LOG_REQUESTS: "false" });
    try {
      expect((await fetch(`${dead.url}/v1/models`)).status).toBe(401);
      const res = await fetch(`${dead.url}/v1/completions`, { method: "POST", headers: { ...auth(), "x-request-id": "obs-dead-1" }, body: JSON.stringify({ model: modelId, prompt: COMPLETION_PROMPT, max_tokens: 4 }) });
      expect(res.status).toBe(503);
      expect(res.headers.get("x-request-id")).toBe("obs-dead-1");
      const m = await scrape(dead.url, {});
      expect(m.get("alia_edge_pool_errors_total")).toBe(1);
      expect(m.get("alia_edge_pool_failovers_total")).toBeGreaterThanOrEqual(1);
      expect(m.get('alia_edge_requests_total{route="/v1/completions",method="POST",status="503"}')).toBe(1);
      expect(m.get('alia_edge_requests_total{route="/v1/models",method="GET",status="401"}')).toBe(1);
      expect(m.get('alia_edge_generations_total{proposer="hybrid",finish_reason="error"}')).toBe(1); // the default proposer
      expect(logLines(dead.output()).filter((l) => l.msg === "request")).toEqual([]);
    } finally {
      await dead.stop("SIGKILL");
      await nowhere.close();
    }
  });
});
