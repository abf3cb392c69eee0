// Cloudflare Worker entry: a thin adapter that builds the app's dependencies from the environment — the
// draft bundle and the tokenizer from R2 (every file checked against the manifest), the target bundle's
// manifest and config.json (model id, EOS, context), the pool from POOL_* vars — once per isolate, and
// hands every API request to the same Hono app as Node (src/app.ts).
import { Hono } from "hono";
// wrangler's default rules turn a .wasm import into a WebAssembly.Module compiled at upload; Workers
// cannot compile WASM from bytes at run time (typed by src/wasm-modules.d.ts).
import ortWasmModule from "onnxruntime-web/ort-wasm-simd-threaded.wasm";
import { servedModel } from "./model-pair/served-model.ts";
import { createAppFromConfig } from "./app.ts";
import { loadConfig } from "./config.ts";
import { errorBody } from "./shared/errors.ts";
import { MANIFEST_FILE, ManifestSchema, ModelConfigSchema, TokenizerConfigSchema, parseJsonFile, type Manifest, type ModelConfig } from "./shared/models/bundle.ts";
import { TextTokenizer } from "./shared/models/tokenizer.ts";
import { CacheApiTier, R2Tier, type CacheLike, type CacheTier, type R2Like } from "./translate/cache-tiers.ts";
import type { ChunkLogits } from "./shared/models/causal-lm.ts";
import { loadDraftModel, type DraftModel } from "./model-pair/draft-model.ts";
import { installWorkerdWasm } from "./model-pair/ort-web-workerd.ts";

/** The slice of the R2 binding used here (no @cloudflare/workers-types in this project). */
interface R2BucketLike {
  get(key: string): Promise<{ arrayBuffer(): Promise<ArrayBuffer> } | null>;
}

export interface Env {
  MODELS: R2BucketLike;
  /** Key prefix of the draft bundle in MODELS, e.g. "bundles/<id>/". */
  DRAFT_BUNDLE_PREFIX: string;
  /** Key prefix of the target bundle in MODELS: only its manifest.json and config.json are read. */
  TARGET_BUNDLE_PREFIX?: string;
  /** Shared sentence cache of /v1/translate (optional; without it the Cache API tier alone). */
  TRANSLATIONS?: R2Like;
  /** "1" enables /__test/* routes; only tests set it. */
  ENABLE_TEST_ROUTES?: string;
}

installWorkerdWasm(ortWasmModule);

const CONFIG_FILE = "config.json";
const ONNX_FILE = "onnx/model.onnx";

interface Draft {
  manifest: Manifest;
  config: ModelConfig;
  model: DraftModel;
}

// One load per isolate and prefix; a failed load is forgotten so the next request retries.
const drafts = new Map<string, Promise<Draft>>();

// Keys are prefix + file name: accept a prefix with or without its trailing "/".
const slash = (p: string | undefined) => (p && !p.endsWith("/") ? `${p}/` : (p ?? ""));

function getDraft(env: Env): Promise<Draft> {
  const prefix = slash(env.DRAFT_BUNDLE_PREFIX);
  let p = drafts.get(prefix);
  if (!p) {
    p = loadDraft(env.MODELS, prefix);
    drafts.set(prefix, p);
    p.catch(() => drafts.delete(prefix));
  }
  return p;
}

async function readObject(bucket: R2BucketLike, prefix: string, file: string): Promise<Uint8Array<ArrayBuffer>> {
  const obj = await bucket.get(prefix + file);
  if (!obj) throw new Error(`draft bundle ${prefix}: ${file} is missing from R2`);
  return new Uint8Array(await obj.arrayBuffer());
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Read one bundle file and check it against the manifest's size and sha256. */
async function readVerified(bucket: R2BucketLike, prefix: string, manifest: Manifest, file: string): Promise<Uint8Array> {
  const entry = manifest.files.find((f) => f.path === file);
  if (!entry) throw new Error(`draft bundle ${prefix}: ${MANIFEST_FILE} does not list ${file}`);
  const bytes = await readObject(bucket, prefix, file);
  if (bytes.byteLength !== entry.size)
    throw new Error(`draft bundle ${prefix}: ${file} is ${bytes.byteLength} bytes, ${MANIFEST_FILE} says ${entry.size}`);
  const got = await sha256Hex(bytes);
  if (got !== entry.sha256) throw new Error(`draft bundle ${prefix}: ${file} sha256 ${got} does not match ${MANIFEST_FILE} (${entry.sha256})`);
  return bytes;
}

async function loadDraft(bucket: R2BucketLike, prefix: string): Promise<Draft> {
  if (!prefix) throw new Error("DRAFT_BUNDLE_PREFIX is not set");
  const manifest = parseJsonFile(ManifestSchema, await readObject(bucket, prefix, MANIFEST_FILE), prefix + MANIFEST_FILE);
  if (manifest.role === "target") throw new Error(`draft bundle ${prefix}: ${manifest.id} is a target bundle`);
  const [configBytes, onnx] = await Promise.all([
    readVerified(bucket, prefix, manifest, CONFIG_FILE),
    readVerified(bucket, prefix, manifest, ONNX_FILE),
  ]);
  const config = parseJsonFile(ModelConfigSchema, configBytes, prefix + CONFIG_FILE);
  return { manifest, config, model: await loadDraftModel({ onnx, config }) };
}

/** The API app for this environment: draft + tokenizer + target facts + pool, built once per isolate. */
const apps = new Map<string, Promise<Hono>>();

function getApi(env: Env): Promise<Hono> {
  const key = `${env.DRAFT_BUNDLE_PREFIX}|${env.TARGET_BUNDLE_PREFIX}`;
  let p = apps.get(key);
  if (!p) {
    p = buildApi(env);
    apps.set(key, p);
    p.catch(() => apps.delete(key));
  }
  return p;
}

async function buildApi(env: Env): Promise<Hono> {
  const config = loadConfig(env as unknown as Record<string, string | undefined>);
  const draft = await getDraft(env);
  const dp = slash(env.DRAFT_BUNDLE_PREFIX);
  const tp = slash(env.TARGET_BUNDLE_PREFIX);
  if (!tp) throw new Error("TARGET_BUNDLE_PREFIX is not set");
  const targetManifest = parseJsonFile(ManifestSchema, await readObject(env.MODELS, tp, MANIFEST_FILE), tp + MANIFEST_FILE);
  const [tokenizerJson, tokenizerConfigBytes, targetConfigBytes] = await Promise.all([
    readVerified(env.MODELS, dp, draft.manifest, "tokenizer.json"),
    readVerified(env.MODELS, dp, draft.manifest, "tokenizer_config.json"),
    readVerified(env.MODELS, tp, targetManifest, CONFIG_FILE),
  ]);
  const tokenizerConfig = parseJsonFile(TokenizerConfigSchema, tokenizerConfigBytes, dp + "tokenizer_config.json");
  const tokenizer = new TextTokenizer(JSON.parse(new TextDecoder().decode(tokenizerJson)), tokenizerConfig);
  const targetConfig = parseJsonFile(ModelConfigSchema, targetConfigBytes, tp + CONFIG_FILE);
  if (targetConfig.vocab_size !== draft.config.vocab_size)
    throw new Error(`draft ${draft.manifest.id} (vocab ${draft.config.vocab_size}) and target ${targetManifest.id} (vocab ${targetConfig.vocab_size}) do not share a vocabulary`);
  const model = servedModel({ target: { manifest: targetManifest, config: targetConfig }, draft: { manifest: draft.manifest, config: draft.config, tokenizerConfig }, draftModel: draft.model, tokenizer });
  // Sentence cache: this data centre's Cache API, then the R2 bucket every location shares.
  const tiers: CacheTier[] = [new CacheApiTier((globalThis as unknown as { caches: { default: CacheLike } }).caches.default, config.TRANSLATE_S_MAXAGE_S)];
  if (env.TRANSLATIONS) tiers.push(new R2Tier(env.TRANSLATIONS, config.TRANSLATE_S3_PREFIX));
  return createAppFromConfig(config, model, tiers);
}

const app = new Hono<{ Bindings: Env }>();

app.get("/healthz", (c) => c.json({ status: "ok" }));

/** Loads the draft on first call (warm-up / readiness probe). */
app.get("/readyz", async (c) => {
  const { manifest, model } = await getDraft(c.env);
  return c.json({ status: "ready", draft: { id: manifest.id, version: manifest.version, vocab: model.vocab, layers: model.layers } });
});

// Test-only: logits of one chunk from a fresh sequence, to compare workerd with Node bit for bit.
app.use("/__test/*", async (c, next) => {
  if (c.env.ENABLE_TEST_ROUTES !== "1") return c.notFound();
  await next();
});
app.post("/__test/logits", async (c) => {
  const body = (await c.req.json().catch(() => null)) as { tokens?: unknown } | null;
  const tokens = body?.tokens;
  if (!Array.isArray(tokens) || tokens.length === 0 || !tokens.every((t) => Number.isInteger(t)))
    return c.json(errorBody('body must be {"tokens": [non-empty integer array]}', "invalid_request_error", null, "tokens"), 400);
  const { model } = await getDraft(c.env);
  const logits: ChunkLogits = await model.forward(model.newSequence(), tokens as number[]);
  return c.json({ rows: logits.rows, vocab: logits.vocab, logits: Array.from(logits.data) });
});

// Everything else is the public API (the same app as on Node).
app.all("*", async (c) => (await getApi(c.env)).fetch(c.req.raw));
app.notFound((c) => c.json(errorBody(`no route ${c.req.method} ${c.req.path}`, "invalid_request_error", "not_found"), 404));

// Model-loading failures (a corrupt bundle in R2) are operator errors worth naming; the message holds
// bundle keys and hashes, never secrets.
app.onError((err, c) => {
  console.error(err);
  if (err instanceof RangeError) return c.json(errorBody(err.message, "invalid_request_error"), 400);
  return c.json(errorBody(err.message, "server_error", "model_unavailable"), 500);
});

export default app;
