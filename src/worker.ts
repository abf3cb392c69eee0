// Cloudflare Worker entry: a thin adapter. Once per isolate it builds the app's dependencies from the
// environment — the model pair from the MODELS R2 bucket through the same loader as Node
// (src/model-pair/load-model-pair.ts: every file checked against its manifest, a mismatched tokenizer pair
// refused), the configuration from vars and secrets, the Cache API and R2 sentence tiers — and hands every
// request to the one Hono app (src/app.ts).
import { Hono } from "hono";
// wrangler's default rules turn a .wasm import into a WebAssembly.Module compiled at upload; Workers
// cannot compile WASM from bytes at run time (typed by src/wasm-modules.d.ts).
import ortWasmModule from "onnxruntime-web/ort-wasm-simd-threaded.wasm";
import { createAppFromConfig, healthz } from "./app.ts";
import { loadConfig } from "./config.ts";
import { loadModelPair, type ModelPair } from "./model-pair/load-model-pair.ts";
import { installWorkerdWasm } from "./model-pair/ort-web-workerd.ts";
import { R2BundleReader, type R2BucketLike } from "./model-pair/r2-bundle-reader.ts";
import { errorBody } from "./common/errors.ts";
import { CacheApiTier, type CacheLike } from "./translate/cache-tiers/cache-api-tier.ts";
import type { CacheTier } from "./translate/cache-tiers/cache-tier.ts";
import { R2Tier, type R2Like } from "./translate/cache-tiers/r2-tier.ts";

export interface Env {
  MODELS: R2BucketLike;
  /** Key prefix of the draft bundle in MODELS, e.g. "bundles/<id>/". */
  DRAFT_BUNDLE_PREFIX?: string;
  /** Key prefix of the target bundle: its manifest, config.json and tokenizer files are read (no weights). */
  TARGET_BUNDLE_PREFIX?: string;
  /** Shared sentence cache of /v1/translate (optional; without it the Cache API tier alone). */
  TRANSLATIONS?: R2Like;
  /** "1" enables /__test/* routes; only tests set it. */
  ENABLE_TEST_ROUTES?: string;
}

installWorkerdWasm(ortWasmModule);

interface Built {
  app: Hono;
  pair: ModelPair;
}

// One build per isolate and bundle pair; a failed build is forgotten so the next request retries.
const builds = new Map<string, Promise<Built>>();

function built(env: Env): Promise<Built> {
  const key = `${env.DRAFT_BUNDLE_PREFIX}|${env.TARGET_BUNDLE_PREFIX}`;
  let p = builds.get(key);
  if (!p) {
    p = build(env);
    builds.set(key, p);
    p.catch(() => builds.delete(key));
  }
  return p;
}

async function build(env: Env): Promise<Built> {
  const config = loadConfig(env as unknown as Record<string, string | undefined>);
  if (!env.DRAFT_BUNDLE_PREFIX) throw new Error("DRAFT_BUNDLE_PREFIX is not set");
  if (!env.TARGET_BUNDLE_PREFIX) throw new Error("TARGET_BUNDLE_PREFIX is not set");
  const pair = await loadModelPair(new R2BundleReader(env.MODELS, env.DRAFT_BUNDLE_PREFIX), new R2BundleReader(env.MODELS, env.TARGET_BUNDLE_PREFIX));
  // Sentence cache: this data centre's Cache API, then the R2 bucket every location shares.
  const tiers: CacheTier[] = [new CacheApiTier((globalThis as unknown as { caches: { default: CacheLike } }).caches.default, config.TRANSLATE_S_MAXAGE_S)];
  if (env.TRANSLATIONS) tiers.push(new R2Tier(env.TRANSLATIONS, config.TRANSLATE_S3_PREFIX));
  return { app: createAppFromConfig(config, pair.served, tiers), pair };
}

const worker = new Hono<{ Bindings: Env }>();

// Liveness must not depend on R2 or the model: answered here, before anything is loaded.
worker.get("/healthz", healthz);

// Test-only: logits of one chunk from a fresh draft sequence, to compare workerd with Node bit for bit.
worker.post("/__test/logits", async (c) => {
  if (c.env.ENABLE_TEST_ROUTES !== "1") return c.notFound();
  const body = (await c.req.json().catch(() => null)) as { tokens?: unknown } | null;
  const tokens = body?.tokens;
  if (!Array.isArray(tokens) || tokens.length === 0 || !tokens.every((t) => Number.isInteger(t)))
    return c.json(errorBody('body must be {"tokens": [non-empty integer array]}', "invalid_request_error", null, "tokens"), 400);
  const { draftModel } = (await built(c.env)).pair;
  const logits = await draftModel.forward(draftModel.newSequence(), tokens as number[]);
  return c.json({ rows: logits.rows, vocab: logits.vocab, logits: Array.from(logits.data) });
});

// Everything else is the public API, the same app as on Node.
worker.all("*", async (c) => (await built(c.env)).app.fetch(c.req.raw));

// A failed build (a corrupt or mismatched bundle in R2, a bad var) is an operator error worth naming; the
// message holds bundle keys, hashes and variable names, never secrets.
worker.onError((err, c) => {
  console.error(err);
  return c.json(errorBody(err.message, "server_error", "model_unavailable"), 500);
});

export default worker;
