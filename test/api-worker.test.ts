// The public API inside workerd: the Worker bundled by wrangler exactly as for deploy, run by Miniflare
// with the fixture pair in its R2 binding and a real verifier process on loopback as its pool, queried
// with the official `openai` client — the same conformance checks as on Node.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Miniflare } from "miniflare";
import OpenAI from "openai";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Translator } from "../src/translate/translator.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { openAiConformance, type ConformanceContext } from "./harness/openai-conformance.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const wranglerBin = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");
const wranglerEnv = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" };
const TOKEN = "worker-test-token-0123456789";

interface BucketPut {
  put(key: string, value: Uint8Array): Promise<unknown>;
}

let outdir: string;
let mf: Miniflare;
let verifier: ListeningProcess;
let context: ConformanceContext;

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

beforeAll(async () => {
  outdir = await mkdtemp(path.join(os.tmpdir(), "alia-edge-api-worker-"));
  await promisify(execFile)(process.execPath, [wranglerBin, "deploy", "--dry-run", "--outdir", outdir], { cwd: root, env: wranglerEnv });
  const { workerOptions: w } = unstable_getMiniflareWorkerOptions(path.join(root, "wrangler.toml"));
  const emitted = await readdir(outdir);
  const pair = await loadDefaultPair();
  verifier = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN });
  const v = verifier;
  mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    r2Persist: false,
    modulesRoot: outdir,
    modules: [{ type: "ESModule", path: path.join(outdir, "worker.js") }, ...emitted.filter((f) => f.endsWith(".wasm")).map((f) => ({ type: "CompiledWasm" as const, path: path.join(outdir, f) }))],
    compatibilityDate: w.compatibilityDate,
    compatibilityFlags: w.compatibilityFlags,
    r2Buckets: w.r2Buckets,
    bindings: { ...w.bindings, DRAFT_BUNDLE_PREFIX: "bundles/draft/", TARGET_BUNDLE_PREFIX: "bundles/target", POOL_NODES: v.url, POOL_TOKEN: TOKEN },
  });
  const url = (await mf.ready).origin;
  const bucket = (await mf.getR2Bucket("MODELS")) as unknown as BucketPut;
  const { draftDir, targetDir } = pair;
  for (const f of await walk(draftDir)) await bucket.put(`bundles/draft/${path.relative(draftDir, f).split(path.sep).join("/")}`, new Uint8Array(await readFile(f)));
  // Only the target's manifest and config.json travel to the edge.
  for (const f of ["manifest.json", "config.json"]) await bucket.put(`bundles/target/${f}`, new Uint8Array(await readFile(path.join(targetDir, f))));

  const { target, served, tok, modelId } = pair;
  context = { client: new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 }), url, modelId, target, served, tok };
});

afterAll(async () => {
  await verifier?.stop("SIGKILL");
  try {
    await mf?.dispose();
  } finally {
    if (outdir) await rm(outdir, { recursive: true, force: true });
  }
});

describe("OpenAI-compatible API in workerd (official openai client)", () => {
  openAiConformance(() => context);
});

describe("/v1/translate in workerd (real Cache API, R2 behind it)", () => {
  const q = (text: string) => `${context.url}/v1/translate?${new URLSearchParams({ text, source: "es", target: "ca" })}`;

  it("MISS, then HIT from the Cache API with the same body and ETag, 304, and the R2 tier once the Cache API entry is gone", async () => {
    const first = await fetch(q("La vida es bella. El amor es ciego."));
    expect(first.status, await first.clone().text()).toBe(200);
    expect(first.headers.get("x-cache")).toBe("MISS");
    const body = await first.text();
    const etag = first.headers.get("etag")!;
    const second = await fetch(q("La vida es bella. El amor es ciego."));
    expect(second.headers.get("x-cache")).toBe("HIT cache-api");
    expect(second.headers.get("x-alia-sentences")).toBe("total=2, computed=0, cache-api=2");
    expect(second.headers.get("etag")).toBe(etag);
    expect(await second.text()).toBe(body);
    const cond = await fetch(q("La vida es bella. El amor es ciego."), { headers: { "If-None-Match": etag } });
    expect(cond.status).toBe(304);
    await cond.arrayBuffer();
    // Drop one sentence from this data centre's cache: it comes back from the shared R2 tier.
    const key = await new Translator({ model: context.served, pool: undefined as never, tiers: [], speculation: { gamma: 4 } }).key("es", "ca", "El amor es ciego.");
    const caches = (await mf.getCaches()) as unknown as { default: { delete(r: string): Promise<boolean> } };
    expect(await caches.default.delete(`https://translation-cache.alia-edge.invalid/${key}`)).toBe(true);
    const third = await fetch(q("La vida es bella. El amor es ciego."));
    expect(third.headers.get("x-cache")).toBe("HIT cache-api,r2");
    expect(third.headers.get("x-alia-sentences")).toBe("total=2, computed=0, cache-api=1, r2=1");
    expect(await third.text()).toBe(body);
  });
});
