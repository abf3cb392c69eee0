// The model pair inside workerd: the Worker (bundled by wrangler exactly as for deploy) loads the draft
// and the target's facts from its R2 binding through the same loader as Node, checks every file against
// its manifest, refuses a corrupt file and a mismatched tokenizer pair with errors naming them, and scores
// a chunk with the same logits as onnxruntime-web under Node. Local workerd through Miniflare, loopback only.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { ModelConfigSchema, type Manifest } from "../src/common/models/bundle.ts";

// Same ORT build and .wasm, one thread, same graph: workerd and Node should agree to the bit; 1e-5
// absolute still leaves room for a differently ordered float32 reduction without hiding a real bug.
const TOL = 1e-5;
const TOKENS = [1, 17, 230, 45, 99, 210, 12, 7];
const DRAFT = "bundles/draft/";
const TARGET = "bundles/target/";

const root = fileURLToPath(new URL("..", import.meta.url));
const wranglerBin = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");
// Offline and quiet: no cf.json fetch, no telemetry.
const wranglerEnv = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" };
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v, null, 2) + "\n");

/** A bundle folder's files by path (the manifest among them). */
async function bundleFiles(dir: string): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true }))
    if (e.isFile()) {
      const full = path.join(e.parentPath, e.name);
      out[path.relative(dir, full).split(path.sep).join("/")] = new Uint8Array(await readFile(full));
    }
  return out;
}

/** Replaces files of a bundle and writes a manifest that lists their new sizes and hashes. */
function withFiles(files: Record<string, Uint8Array>, changed: Record<string, Uint8Array>): Record<string, Uint8Array> {
  const manifest = JSON.parse(new TextDecoder().decode(files["manifest.json"])) as Manifest;
  const next = { ...files, ...changed };
  manifest.files = manifest.files.map((f) => (changed[f.path] ? { ...f, size: changed[f.path].byteLength, sha256: sha256(changed[f.path]) } : f));
  return { ...next, "manifest.json": enc(manifest) };
}

interface BucketPut {
  put(key: string, value: Uint8Array): Promise<unknown>;
}

let outdir: string;
let mf: Miniflare;
let draftFiles: Record<string, Uint8Array>;
let targetFiles: Record<string, Uint8Array>;

beforeAll(async () => {
  draftFiles = await bundleFiles(path.join(DEFAULT_PAIR_DIR, "draft"));
  const t = await bundleFiles(path.join(DEFAULT_PAIR_DIR, "target"));
  // The edge reads no target weights: leave them out of R2 to prove it.
  targetFiles = Object.fromEntries(Object.entries(t).filter(([p]) => !p.startsWith("onnx/")));
  outdir = await mkdtemp(path.join(os.tmpdir(), "alia-edge-worker-"));
  await promisify(execFile)(process.execPath, [wranglerBin, "deploy", "--dry-run", "--outdir", outdir], { cwd: root, env: wranglerEnv });
  const { workerOptions: w } = unstable_getMiniflareWorkerOptions(path.join(root, "wrangler.toml"));
  // Modules listed explicitly: Miniflare's import discovery stops at ORT's (never taken) `import(url)`.
  const emitted = await readdir(outdir);
  const base = {
    modulesRoot: outdir,
    modules: [{ type: "ESModule" as const, path: path.join(outdir, "worker.js") }, ...emitted.filter((f) => f.endsWith(".wasm")).map((f) => ({ type: "CompiledWasm" as const, path: path.join(outdir, f) }))],
    compatibilityDate: w.compatibilityDate,
    compatibilityFlags: w.compatibilityFlags,
    r2Buckets: w.r2Buckets,
  };
  mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    r2Persist: false,
    workers: [
      { ...base, name: "alia-edge", bindings: { ...w.bindings, DRAFT_BUNDLE_PREFIX: DRAFT, TARGET_BUNDLE_PREFIX: TARGET, ENABLE_TEST_ROUTES: "1" } },
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

async function put(prefix: string, files: Record<string, Uint8Array>): Promise<void> {
  const bucket = (await mf.getR2Bucket("MODELS", "alia-edge")) as unknown as BucketPut;
  // Manifest last, as the uploader does.
  for (const [p, b] of Object.entries(files)) if (p !== "manifest.json") await bucket.put(prefix + p, b);
  await bucket.put(prefix + "manifest.json", files["manifest.json"]);
}

async function logits(): Promise<Response> {
  return (await mf.dispatchFetch("http://localhost/__test/logits", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ tokens: TOKENS }) })) as unknown as Response;
}

async function failure(res: Response): Promise<string> {
  expect(res.status).toBe(500);
  const { error } = (await res.json()) as { error: { message: string; type: string } };
  expect(error.type).toBe("server_error");
  return error.message;
}

// In order: each refused load must fail before the good pair is loaded and cached.
describe("model pair in workerd", () => {
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

  it("refuses a draft with a flipped byte, naming the file", async () => {
    const bad = draftFiles["onnx/model.onnx"].slice();
    bad[bad.length >> 1] ^= 0x01;
    await put(DRAFT, { ...draftFiles, "onnx/model.onnx": bad });
    await put(TARGET, targetFiles);
    const message = await failure(await logits());
    expect(message).toContain("onnx/model.onnx");
    expect(message).toContain("sha256");
  });

  it("refuses a target whose tokenizer maps a token to another id (the same check as Node)", async () => {
    await put(DRAFT, draftFiles);
    const tok = JSON.parse(new TextDecoder().decode(targetFiles["tokenizer.json"])) as { model: { vocab: Record<string, number> } };
    const vocab = tok.model.vocab;
    [vocab["▁de"], vocab["▁la"]] = [vocab["▁la"], vocab["▁de"]];
    await put(TARGET, withFiles(targetFiles, { "tokenizer.json": enc(tok) }));
    const message = await failure(await logits());
    expect(message).toMatch(/tokenizer mismatch between draft bundle .+ and target bundle .+: token "▁(de|la)" is id \d+ in the draft but \d+ in the target/);
    // The public API is refused too: nothing is served from a mismatched pair.
    const models = (await mf.dispatchFetch("http://localhost/v1/models")) as unknown as Response;
    expect(await failure(models)).toContain("tokenizer mismatch");
  });

  it("once the pair is consistent (failures are not cached), gives the same logits as Node and reports ready", async () => {
    await put(TARGET, targetFiles);
    const res = await logits();
    expect(res.status, await res.clone().text()).toBe(200);
    const got = (await res.json()) as { rows: number; vocab: number; logits: number[] };
    const config = ModelConfigSchema.parse(JSON.parse(new TextDecoder().decode(draftFiles["config.json"])));
    expect(got.rows).toBe(TOKENS.length);
    expect(got.vocab).toBe(config.vocab_size);
    const node = await loadDraftModel({ onnx: draftFiles["onnx/model.onnx"], config });
    const want = await node.forward(node.newSequence(), TOKENS);
    await node.dispose();
    expect(got.logits.length).toBe(want.data.length);
    let maxDiff = 0;
    for (let i = 0; i < want.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got.logits[i] - want.data[i]));
    expect(maxDiff).toBeLessThanOrEqual(TOL);

    const draftManifest = JSON.parse(new TextDecoder().decode(draftFiles["manifest.json"])) as Manifest;
    const ready = (await mf.dispatchFetch("http://localhost/readyz")) as unknown as Response;
    expect(await ready.json()).toMatchObject({ status: "ready", draft: { id: draftManifest.id, version: draftManifest.version, vocab: config.vocab_size } });
  });
});
