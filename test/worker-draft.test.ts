// The drafter inside workerd: the Worker (bundled by wrangler exactly as for deploy) loads a draft bundle
// from its R2 binding, verifies it against manifest.json, and scores a chunk with the same logits as
// onnxruntime-web under Node. Runs local workerd through Miniflare, loopback only.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHATML_TEMPLATE, ModelConfigSchema } from "../src/shared/models/bundle.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { llamaConfigJson, llamaOnnx, type LlamaArch } from "../fixtures/generate/llama-onnx.ts";
import { randomLlamaWeights } from "../fixtures/generate/random-weights.ts";

// Same ORT build and .wasm, one thread, same graph: workerd and Node should agree to the bit; 1e-5
// absolute still leaves room for a differently ordered float32 reduction without hiding a real bug.
const TOL = 1e-5;

const ARCH: LlamaArch = {
  vocabSize: 300,
  hiddenSize: 64,
  intermediateSize: 128,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositions: 512,
};
const TOKENS = [1, 17, 230, 45, 99, 210, 12, 7];
const PREFIX = "bundles/test-draft/";

const root = fileURLToPath(new URL("..", import.meta.url));
const wranglerBin = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");
// Offline and quiet: no cf.json fetch, no telemetry.
const wranglerEnv = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" };

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v, null, 2) + "\n");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

const onnx = llamaOnnx(randomLlamaWeights(ARCH, 11));
const files: Record<string, Uint8Array> = {
  "config.json": enc(llamaConfigJson(ARCH)),
  "generation_config.json": enc({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 3 }),
  "tokenizer.json": enc({}),
  "tokenizer_config.json": enc({ chat_template: CHATML_TEMPLATE }),
  "onnx/model.onnx": onnx,
};
const manifest = {
  format: "alia-edge-bundle/1",
  id: "test-draft",
  version: "1",
  role: "draft",
  files: Object.entries(files).map(([p, b]) => ({ path: p, size: b.byteLength, sha256: sha256(b) })),
};

// Miniflare's binding types come from @cloudflare/workers-types, which this project does not install.
interface BucketPut {
  put(key: string, value: Uint8Array): Promise<unknown>;
}

let outdir: string;
let mf: Miniflare;

beforeAll(async () => {
  // wrangler's own bundling (esbuild, default rules: the .wasm stays a CompiledWasm module).
  outdir = await mkdtemp(path.join(os.tmpdir(), "alia-edge-worker-"));
  await promisify(execFile)(process.execPath, [wranglerBin, "deploy", "--dry-run", "--outdir", outdir], {
    cwd: root,
    env: wranglerEnv,
  });
  // Bindings, compatibility date/flags and module rules come from wrangler.toml, as under `wrangler dev`.
  const { workerOptions: w } = unstable_getMiniflareWorkerOptions(path.join(root, "wrangler.toml"));
  // Modules listed explicitly: Miniflare's import discovery stops at ORT's (never taken) `import(url)`.
  const emitted = await readdir(outdir);
  const base = {
    modulesRoot: outdir,
    modules: [
      { type: "ESModule" as const, path: path.join(outdir, "worker.js") },
      ...emitted.filter((f) => f.endsWith(".wasm")).map((f) => ({ type: "CompiledWasm" as const, path: path.join(outdir, f) })),
    ],
    compatibilityDate: w.compatibilityDate,
    compatibilityFlags: w.compatibilityFlags,
    r2Buckets: w.r2Buckets,
  };
  mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    r2Persist: false,
    workers: [
      { ...base, name: "alia-edge", bindings: { ...w.bindings, DRAFT_BUNDLE_PREFIX: PREFIX, ENABLE_TEST_ROUTES: "1" } },
      // wrangler.toml's vars untouched: what production gets.
      { ...base, name: "alia-edge-prod", bindings: w.bindings },
    ],
  });
  await mf.ready;
});

afterAll(async () => {
  try {
    await mf?.dispose();
  } finally {
    if (outdir) await rm(outdir, { recursive: true, force: true });
  }
});

async function putBundle(overrides: Record<string, Uint8Array> = {}): Promise<void> {
  const bucket = (await mf.getR2Bucket("MODELS", "alia-edge")) as unknown as BucketPut;
  await bucket.put(PREFIX + "manifest.json", enc(manifest));
  for (const [p, b] of Object.entries({ ...files, ...overrides })) await bucket.put(PREFIX + p, b);
}

async function logitsRequest(): Promise<Response> {
  return (await mf.dispatchFetch("http://localhost/__test/logits", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ tokens: TOKENS }),
  })) as unknown as Response;
}

// In order: the flipped-byte load must fail before the good bundle is loaded and cached.
describe("worker in workerd", () => {
  it("answers /healthz without loading a model", async () => {
    const res = await mf.dispatchFetch("http://localhost/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("has no test routes with wrangler.toml's vars", async () => {
    const prod = (await mf.getWorker("alia-edge-prod")) as unknown as { fetch: typeof fetch };
    const res = await prod.fetch("http://localhost/__test/logits", { method: "POST", body: "{}" });
    expect(res.status).toBe(404);
    await res.arrayBuffer();
  });

  it("refuses a bundle with a flipped byte with a 500 naming the file", async () => {
    const bad = onnx.slice();
    bad[bad.length >> 1] ^= 0x01;
    await putBundle({ "onnx/model.onnx": bad });
    const res = await logitsRequest();
    expect(res.status).toBe(500);
    const { error } = (await res.json()) as { error: { message: string; type: string } };
    expect(error.type).toBe("server_error");
    expect(error.message).toContain("onnx/model.onnx");
    expect(error.message).toContain("sha256");
  });

  it("once the bundle is fixed (failures are not cached), gives the same logits as under Node", async () => {
    await putBundle();
    const res = await logitsRequest();
    expect(res.status, await res.clone().text()).toBe(200);
    const got = (await res.json()) as { rows: number; vocab: number; logits: number[] };
    expect(got.rows).toBe(TOKENS.length);
    expect(got.vocab).toBe(ARCH.vocabSize);

    const config = ModelConfigSchema.parse(JSON.parse(new TextDecoder().decode(files["config.json"])));
    const node = await loadDraftModel({ onnx, config });
    const want = await node.forward(node.newSequence(), TOKENS);
    await node.dispose();
    expect(got.logits.length).toBe(want.data.length);
    let maxDiff = 0;
    for (let i = 0; i < want.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got.logits[i] - want.data[i]));
    expect(maxDiff).toBeLessThanOrEqual(TOL);

    // The model is cached in module scope: /readyz reports it without reloading.
    const ready = await mf.dispatchFetch("http://localhost/readyz");
    expect(await ready.json()).toMatchObject({ status: "ready", draft: { id: "test-draft", vocab: ARCH.vocabSize } });
  });
});
