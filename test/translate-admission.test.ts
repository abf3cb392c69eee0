// Admission and cancellation of /v1/translate against a real edge (`npm start`'s entry, its own verifier
// process) with two API keys and MAX_CONCURRENT=4: a long translation leaves room for another key's chat
// and never runs more sentences at once than the slots allow; a translation whose client leaves stops the
// verifier's work within a second, except for sentences another request still waits for; a keyed answer
// is private to its key; one key's flood of requests does not push another key's single request into 429;
// translation sessions on the verifier have unguessable names.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PoolClient } from "../src/pool/pool-client.ts";
import { ProposerFactory } from "../src/speculative/proposer-factory.ts";
import type { TargetVerifier } from "../src/speculative/target-verifier.ts";
import { Translator } from "../src/translate/translator.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { startEdgeProcess, type EdgeProcess } from "./harness/processes.ts";

const KEY_A = "key-a-0123456789abcdef";
const KEY_B = "key-b-0123456789abcdef";
const SLOTS = 4;

let edge: EdgeProcess;
let modelId: string;

beforeAll(async () => {
  edge = await startEdgeProcess({ API_KEYS: `${KEY_A},${KEY_B}`, MAX_CONCURRENT: String(SLOTS), MAX_QUEUE_WAIT_MS: "5000", LOG_REQUESTS: "false" });
  modelId = ((await (await fetch(`${edge.url}/v1/models`, { headers: auth(KEY_A) })).json()) as { data: { id: string }[] }).data[0].id;
});
afterAll(async () => {
  await edge?.stop("SIGKILL");
});

const auth = (key: string) => ({ authorization: `Bearer ${key}` });
const json = (key: string) => ({ ...auth(key), "content-type": "application/json" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `texts` texts of `perText` distinct short sentences each (`tag` keeps them out of other tests' cache). */
function longBatch(tag: string, texts: number, perText: number): string[] {
  const nouns = ["perro", "gato", "río", "libro", "árbol", "tren", "barco", "campo"];
  return Array.from({ length: texts }, (_, t) => Array.from({ length: perText }, (_, s) => `El ${nouns[(t + s) % nouns.length]} ${tag}${t * perText + s} es nuevo.`).join(" "));
}

const translate = (key: string, text: string[] | string, signal?: AbortSignal) =>
  fetch(`${edge.url}/v1/translate`, { method: "POST", headers: json(key), body: JSON.stringify({ text, source: "es", target: "ca" }), signal });

/** The verifier's Prometheus text. */
const verifierMetrics = async () => (await fetch(`${edge.pool}/metrics`)).text();
/** Tokens the verifier committed: each round its accepted drafts plus one, /v1/generate one per token. */
async function verifierWork(): Promise<number> {
  const m = await verifierMetrics();
  const v = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(m)?.[1] ?? Number.NaN);
  return v("alia_verifier_rounds_total") + v("alia_verifier_accepted_tokens_total") + v("alia_verifier_generated_tokens_total");
}
/** Batched passes so far, by batch size (sessions in one pass). */
async function batches(): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const m of (await verifierMetrics()).matchAll(/^alia_verifier_batches_total\{size="(\d+)"\} (\S+)$/gm)) out.set(Number(m[1]), Number(m[2]));
  return out;
}

describe("/v1/translate admission and cancellation", () => {
  it("a long translation shares MAX_CONCURRENT: another key's chat is admitted and done while it runs, and no pass batches more than the slots allow", async () => {
    const before = await batches();
    const texts = longBatch("a", 16, 6); // 96 sentences, all misses
    const t0 = performance.now();
    let translationMs = 0;
    const translation = translate(KEY_A, texts).then(
      async (r) => {
        translationMs = performance.now() - t0;
        return { status: r.status, body: (await r.json()) as { translations: string[] } };
      },
      (e: Error) => ({ status: 0, body: { translations: [e.message] } }),
    );
    await sleep(300);
    const chat = await fetch(`${edge.url}/v1/chat/completions`, {
      method: "POST",
      headers: json(KEY_B),
      body: JSON.stringify({ model: modelId, messages: [{ role: "user", content: "Hola" }], max_tokens: 8, temperature: 0 }),
    });
    const chatMs = performance.now() - t0;
    expect(chat.status, await chat.clone().text()).toBe(200);
    expect(translationMs, "the chat ended while the translation still ran").toBe(0);
    const done = await translation;
    expect(done.status).toBe(200);
    expect(done.body.translations).toHaveLength(16);
    expect(chatMs).toBeLessThan(translationMs);
    // Generations at once are bounded by the slots (a pass still in flight from a closed stream may join
    // the next ones; a translation unbounded by them ran 8 sentences per text, 96 at once here).
    const after = await batches();
    const largest = Math.max(...[...after].filter(([size, n]) => n > (before.get(size) ?? 0)).map(([size]) => size));
    expect(largest).toBeLessThanOrEqual(2 * SLOTS);
  });

  it("stops the verifier's work within a second when the client of a long translation leaves", async () => {
    const texts = longBatch("b", 16, 25); // 400 sentences, 9.3k characters (the limit is 10k)
    const ctl = new AbortController();
    const started = translate(KEY_A, texts, ctl.signal).catch(() => undefined);
    const w0 = await verifierWork();
    await sleep(300);
    ctl.abort();
    await started;
    await sleep(1000);
    const w1 = await verifierWork();
    expect(w1, "the translation had started generating").toBeGreaterThan(w0);
    await sleep(1000);
    expect(await verifierWork(), "no generation after the client left").toBe(w1);
    // And its slots are free again: a chat is admitted at once.
    const chat = await fetch(`${edge.url}/v1/chat/completions`, {
      method: "POST",
      headers: json(KEY_B),
      body: JSON.stringify({ model: modelId, messages: [{ role: "user", content: "Hola" }], max_tokens: 4, temperature: 0 }),
    });
    expect(chat.status).toBe(200);
  });

  it("keeps computing a sentence that another request still waits for when one client leaves", async () => {
    const text = longBatch("e", 1, 24)[0];
    const ctl = new AbortController();
    const leaving = translate(KEY_A, text, ctl.signal).catch(() => undefined);
    await sleep(50);
    const staying = translate(KEY_B, text);
    await sleep(300);
    ctl.abort();
    await leaving;
    const r = await staying;
    expect(r.status).toBe(200);
    // Every sentence answered: joined while the leaving request computed it (an aborted shared computation
    // would have failed this request), started here, or cached by the leaving request before it left.
    expect(r.headers.get("x-alia-sentences")).toMatch(/^total=24, computed=\d+/);
    const { translation } = (await r.json()) as { translation: string };
    // What was cached is whole: the same text again is all hits and the same translation.
    const again = await translate(KEY_A, text);
    expect(again.headers.get("x-cache")).toBe("HIT memory");
    expect(((await again.json()) as { translation: string }).translation).toBe(translation);
  });

  it("answers a keyed translation privately: Cache-Control private without s-maxage, Vary: Authorization", async () => {
    const get = await fetch(`${edge.url}/v1/translate?${new URLSearchParams({ text: "La casa es grande.", source: "es", target: "ca" })}`, { headers: auth(KEY_A) });
    expect(get.status).toBe(200);
    const cc = get.headers.get("cache-control") ?? "";
    expect(cc).toMatch(/^private, max-age=\d+$/);
    expect(cc).not.toMatch(/public|s-maxage/);
    expect(get.headers.get("vary") ?? "").toMatch(/authorization/i);
    const cond = await fetch(`${edge.url}/v1/translate?${new URLSearchParams({ text: "La casa es grande.", source: "es", target: "ca" })}`, { headers: { ...auth(KEY_A), "if-none-match": get.headers.get("etag")! } });
    expect(cond.status).toBe(304);
    expect(cond.headers.get("cache-control")).toBe(cc);
    const post = await translate(KEY_B, ["La casa es grande."]);
    expect(post.headers.get("cache-control")).toBe(cc);
    expect(post.headers.get("vary") ?? "").toMatch(/authorization/i);
  });

  it("admits another key's single request (200) while one key holds many more requests than MAX_CONCURRENT", async () => {
    const body = (seed: number) => JSON.stringify({ model: modelId, prompt: "La vida es", max_tokens: 48, temperature: 2, seed });
    const flood = Array.from({ length: 4 * SLOTS }, (_, i) =>
      fetch(`${edge.url}/v1/completions`, { method: "POST", headers: json(KEY_A), body: body(i + 1) }).then(
        (r) => r.status,
        () => 0,
      ),
    );
    // Wait until key A holds every slot.
    for (let i = 0; i < 40; i++) {
      const m = await (await fetch(`${edge.url}/metrics`)).text();
      if (Number(/^alia_edge_generations_in_flight (\S+)$/m.exec(m)?.[1]) >= SLOTS) break;
      await sleep(25);
    }
    const single = await fetch(`${edge.url}/v1/completions`, { method: "POST", headers: json(KEY_B), body: body(1000) });
    expect(single.status, await single.clone().text()).toBe(200);
    const statuses = await Promise.all(flood);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
  });

  it("names translation sessions on the verifier unguessably (96 random bits), never by time and counter", async () => {
    const { served } = await loadDefaultPair();
    const pool = new PoolClient({ nodes: [edge.pool] });
    const sessions: string[] = [];
    // The real pool, its session names noted on the way.
    const recording: TargetVerifier = {
      round: (session, build, signal) => {
        sessions.push(session);
        return pool.round(session, build, signal);
      },
      generate: (req, signal, onLoad) => pool.generate(req, signal, onLoad),
      close: (session) => pool.close(session),
    };
    const translator = new Translator({ model: served, pool: recording, tiers: [], speculation: { gamma: 2 }, proposers: new ProposerFactory({ kind: "model", draft: served.draft }) });
    await translator.translate("El sol sale. La luna brilla. El mar es azul.", "es", "gl", { sentences: 0, computed: 0, hits: {} });
    const names = [...new Set(sessions)];
    expect(names.length).toBe(3);
    for (const name of names) expect(name).toMatch(/^tr-[0-9a-f]{24}$/);
  });
});
