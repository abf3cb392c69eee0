// /v1/translate on Node: the app in-process (real Hono app, real translator) over a real verifier process,
// with the in-memory tier in front of a real S3 tier (s3rver on loopback). First request MISS, second HIT
// with the same body and ETag, 304 on If-None-Match, a new bundle id never hits old entries, the S3 tier
// answers once memory is cleared, S3 down still answers, 50 concurrent identical misses compute once,
// layout kept and mixed hits/misses assembled in order; held-out sentences come back translated (chrF).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Hono } from "hono";
import { type LocalS3, startS3rver } from "./harness/s3rver.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServedModel } from "../src/model-pair/served-model.ts";
import { createApp } from "../src/app.ts";
import { createS3Client } from "../src/common/models/s3-model-store.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import type { CacheTier } from "../src/translate/cache-tiers/cache-tier.ts";
import { MemoryLruTier } from "../src/translate/cache-tiers/memory-lru-tier.ts";
import { S3Tier } from "../src/translate/cache-tiers/s3-tier.ts";
import { splitSentences } from "../src/translate/sentences.ts";
import { Translator } from "../src/translate/translator.ts";
import { chrF } from "../fixtures/generate/chrf.ts";
import { readHeldOutTranslations } from "../fixtures/generate/heldout.ts";
import { DEFAULT_PAIR_DIR, loadDefaultPair } from "./harness/default-pair.ts";
import { deadEndpoint } from "./harness/ports.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { ProposerFactory } from "../src/speculative/proposer-factory.ts";

let verifier: ListeningProcess;
let pool: PoolClient;
let model: ServedModel;
let s3server: LocalS3;
let s3port: number;
let work: string;

const s3tier = (port = s3port) =>
  new S3Tier(createS3Client({ bucket: "tr", endpoint: `http://127.0.0.1:${port}`, region: "auto", forcePathStyle: true, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" }, maxAttempts: 1 }), "tr");

function appWith(tiers: CacheTier[], m: ServedModel = model): { app: Hono; translator: Translator } {
  const proposers = new ProposerFactory({ kind: "model", draft: m.draft });
  const translator = new Translator({ model: m, pool, tiers, speculation: { gamma: 4 }, proposers });
  const app = createApp({
    model: m,
    pool,
    proposers,
    speculation: { gamma: 4, maxGamma: 8, objective: "latency", proactive: false, support: 8 },
    defaultMaxTokens: 64,
    maxConcurrent: 256,
    maxBodyBytes: 1 << 20,
    translation: { translator, settings: { maxChars: 2000, maxAgeS: 60, sMaxAgeS: 600 } },
  });
  return { app, translator };
}

beforeAll(async () => {
  ({ served: model } = await loadDefaultPair());
  verifier = await startVerifierProcess({});
  pool = new PoolClient({ nodes: [verifier.url] });
  work = await mkdtemp(path.join(tmpdir(), "alia-translate-"));
  s3server = await startS3rver(path.join(work, "s3"), ["tr"]);
  s3port = s3server.port;
});
afterAll(async () => {
  await verifier?.stop("SIGKILL");
  await s3server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

const q = (text: string, source = "es", target = "ca") => `/v1/translate?${new URLSearchParams({ text, source, target })}`;

describe("sentence splitting", () => {
  it("separates sentences from whitespace and keeps every character", () => {
    const text = "Hola, mundo. ¿Qué tal?\n\n  Segundo párrafo: una frase.\nUna línea sin punto\n";
    const pieces = splitSentences(text);
    expect(pieces.map((p) => p.text).join("")).toBe(text);
    expect(pieces.filter((p) => p.kind === "sentence").map((p) => p.text)).toEqual(["Hola, mundo.", "¿Qué tal?", "Segundo párrafo: una frase.", "Una línea sin punto"]);
    expect(pieces.filter((p) => p.kind === "space").every((p) => !p.text.trim())).toBe(true);
  });
});

describe("/v1/translate on Node", () => {
  it("MISS, then HIT with the same body and strong ETag, then 304; cache headers for CDNs", async () => {
    const { app, translator } = appWith([new MemoryLruTier(1 << 20), s3tier()]);
    const first = await app.request(q("La vida es bella."));
    expect(first.status).toBe(200);
    expect(first.headers.get("x-cache")).toBe("MISS");
    expect(first.headers.get("cache-control")).toBe("public, max-age=60, s-maxage=600");
    const etag = first.headers.get("etag")!;
    expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
    const body = await first.text();
    expect(JSON.parse(body)).toMatchObject({ source: "es", target: "ca" });
    expect(typeof JSON.parse(body).translation).toBe("string");
    const second = await app.request(q("La vida es bella."));
    expect(second.headers.get("x-cache")).toBe("HIT memory");
    expect(second.headers.get("x-alia-sentences")).toBe("total=1, computed=0, memory=1");
    expect(second.headers.get("etag")).toBe(etag);
    expect(await second.text()).toBe(body);
    const cond = await app.request(q("La vida es bella."), { headers: { "If-None-Match": etag } });
    expect(cond.status).toBe(304);
    expect(await cond.text()).toBe("");
    expect(translator.counters.computed).toBe(1);
  });

  it("a different bundle id never hits an old entry; the S3 tier serves once memory is cleared", async () => {
    const memory = new MemoryLruTier(1 << 20);
    const shared = s3tier();
    const a = appWith([memory, shared]);
    const text = "El amor es ciego.";
    const miss = await a.app.request(q(text, "es", "gl"));
    expect(miss.headers.get("x-cache")).toBe("MISS");
    memory.clear();
    const fromS3 = await a.app.request(q(text, "es", "gl"));
    expect(fromS3.headers.get("x-cache")).toBe("HIT s3");
    expect(await fromS3.text()).toBe(await (await a.app.request(q(text, "es", "gl"))).text()); // and memory was refilled
    const newer = appWith([new MemoryLruTier(1 << 20), s3tier()], { ...model, fingerprint: `${model.fingerprint}-v2` });
    const other = await newer.app.request(q(text, "es", "gl"));
    expect(other.headers.get("x-cache")).toBe("MISS");
    expect(newer.translator.counters.computed).toBe(1);
  });

  it("still answers with the S3 tier down (degrades to computing)", async () => {
    const unreachable = await deadEndpoint(); // no S3 can answer there
    try {
      const down = s3tier(unreachable.port);
      const { app, translator } = appWith([down]);
      const r = await app.request(q("Nunca es tarde.", "es", "eu"));
      expect(r.status).toBe(200);
      expect(r.headers.get("x-cache")).toBe("MISS");
      expect(down.errors).toBeGreaterThan(0);
      expect(translator.tierErrors().s3).toBeGreaterThan(0);
    } finally {
      await unreachable.close();
    }
  });

  it("computes 50 concurrent identical misses once", async () => {
    const { app, translator } = appWith([new MemoryLruTier(1 << 20)]);
    const rs = await Promise.all(Array.from({ length: 50 }, () => app.request(q("Quien mucho abarca poco aprieta.", "es", "en"))));
    const bodies = await Promise.all(rs.map((r) => r.text()));
    expect(new Set(bodies).size).toBe(1);
    expect(translator.counters.computed).toBe(1);
    expect(translator.counters.coalesced).toBe(49);
    const stats = (await (await app.request("/v1/translate/stats")).json()) as { computed: number; coalesced: number };
    expect(stats).toMatchObject({ computed: 1, coalesced: 49 });
  });

  it("keeps paragraphs and spacing, and assembles cached and new sentences in order (POST, batches)", async () => {
    const { app, translator } = appWith([new MemoryLruTier(1 << 20)]);
    const one = async (text: string) => {
      const r = await app.request(q(text, "es", "fr"));
      return ((await r.json()) as { translation: string }).translation;
    };
    const a = await one("Primera frase.");
    const b = await one("Segunda frase.");
    const text = "Primera frase.  Tercera frase nueva.\n\nSegunda frase.\n";
    const r = await app.request("/v1/translate", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: [text, "Primera frase."], source: "es", target: "fr", format: "text" }) });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-alia-sentences")).toBe("total=4, computed=1, memory=3");
    const { translations } = (await r.json()) as { translations: string[] };
    const c = await one("Tercera frase nueva.");
    expect(translations).toEqual([`${a}  ${c}\n\n${b}\n`, a]);
    expect(translator.counters.computed).toBe(3);
  });

  it("refuses unknown languages, a missing source, empty and over-long text with 400s", async () => {
    const { app } = appWith([new MemoryLruTier(1 << 20)]);
    const code = async (path: string, init?: RequestInit) => {
      const r = await app.request(path, init);
      return [r.status, ((await r.json()) as { error: { code: string; param: string } }).error.param];
    };
    expect(await code(q("Hola.", "es", "xx"))).toEqual([400, "target"]);
    expect(await code(q("Hola.", "zz", "ca"))).toEqual([400, "source"]);
    expect(await code(`/v1/translate?${new URLSearchParams({ text: "Hola.", target: "ca" })}`)).toEqual([400, "source"]);
    expect(await code(q("   ", "es", "ca"))).toEqual([400, "text"]);
    expect(await code(q("a".repeat(2001), "es", "ca"))).toEqual([400, "text"]);
    expect(await code(q("Hola.", "es", "es"))).toEqual([400, "target"]);
    expect(await code("/v1/translate", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: "Hola.", source: "es", target: "ca", format: "html" }) })).toEqual([400, "format"]);
  });

  it("translates held-out sentences into Catalan and Galician better than copying the Spanish (chrF against Apertium)", async () => {
    const { app } = appWith([new MemoryLruTier(1 << 20)]);
    const heldOut = await readHeldOutTranslations(DEFAULT_PAIR_DIR);
    for (const target of ["ca", "gl"]) {
      const cases = heldOut.filter((t) => t.source === "es" && t.target === target).slice(0, 12);
      const res = await app.request("/v1/translate", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: cases.map((c) => c.text), source: "es", target }) });
      expect(res.status).toBe(200);
      const { translations } = (await res.json()) as { translations: string[] };
      const refs = cases.map((c) => c.reference);
      expect(chrF(translations, refs), translations.slice(0, 3).join(" | ")).toBeGreaterThan(
        chrF(
          cases.map((c) => c.text),
          refs,
        ),
      );
    }
  });
});
