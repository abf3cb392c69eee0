// The Cloudflare Worker, built once per isolate from its environment — the model pair from the MODELS R2
// bucket through the same loader as Node (src/model-pair/load-model-pair.ts: every file checked against its
// manifest, a mismatched tokenizer pair refused), the configuration from vars and secrets, the Cache API
// and R2 sentence tiers — handing every request to the one Hono app (src/app.ts). Two thin entries use it:
// src/worker.ts drafts with the draft model (onnxruntime-web inside), src/worker-suffix.ts drafts by suffix
// matching alone and carries no model runtime at all.
import { Hono } from "hono";
import { createAppFromConfig, healthz } from "./app.ts";
import { AccountStore } from "./billing/account-store.ts";
import { HyperdriveSqlClient } from "./billing/hyperdrive-sql-client.ts";
import { migrate } from "./billing/migrations.ts";
import { loadConfig } from "./config.ts";
import { loadModelPair, type DraftSource, type ModelPair } from "./model-pair/load-model-pair.ts";
import { R2BundleReader, type R2BucketLike } from "./model-pair/r2-bundle-reader.ts";
import { errorBody } from "./common/errors.ts";
import { CacheApiTier, type CacheLike } from "./translate/cache-tiers/cache-api-tier.ts";
import type { CacheTier } from "./translate/cache-tiers/cache-tier.ts";
import { R2Tier, type R2Like } from "./translate/cache-tiers/r2-tier.ts";
import { createWorkerdGrammarEngine } from "./structured/xgrammar-workerd.ts";

export interface Env {
  MODELS: R2BucketLike;
  /** Key prefix of the draft bundle in MODELS, e.g. "bundles/<id>/" (SPEC_PROPOSER=model). */
  DRAFT_BUNDLE_PREFIX?: string;
  /** Key prefix of the target bundle: its manifest, config.json and tokenizer files are read (no weights). */
  TARGET_BUNDLE_PREFIX?: string;
  /** Shared sentence cache of /v1/translate (optional; without it the Cache API tier alone). */
  TRANSLATIONS?: R2Like;
  /** Pay-per-request keys, budgets and usage: a Hyperdrive binding to the PostgreSQL the Node edges use (unset: API_KEYS alone). */
  BILLING_DB?: { connectionString: string };
  /** "1" enables /__test/* routes; only tests set it. */
  ENABLE_TEST_ROUTES?: string;
}

export interface Built {
  app: Hono;
  pair: ModelPair;
}

export type WorkerApp = Hono<{ Bindings: Env }>;

/**
 * The Worker: `loadDraft` loads a draft model (absent: this Worker drafts by suffix matching only);
 * `routes` adds routes before the public API's catch-all (test routes).
 */
export function createWorker(o: { loadDraft?: DraftSource["load"]; routes?: (w: WorkerApp, built: (env: Env) => Promise<Built>) => void } = {}): WorkerApp {
  // One build per isolate and configuration; a failed build is forgotten so the next request retries.
  const builds = new Map<string, Promise<Built>>();
  const built = (env: Env): Promise<Built> => {
    const key = `${env.DRAFT_BUNDLE_PREFIX}|${env.TARGET_BUNDLE_PREFIX}`;
    let p = builds.get(key);
    if (!p) {
      p = build(env);
      builds.set(key, p);
      p.catch(() => builds.delete(key));
    }
    return p;
  };

  async function build(env: Env): Promise<Built> {
    const config = loadConfig(env as unknown as Record<string, string | undefined>);
    if (!env.TARGET_BUNDLE_PREFIX) throw new Error("TARGET_BUNDLE_PREFIX is not set");
    let draft: DraftSource | undefined;
    if (config.SPEC_PROPOSER !== "suffix") {
      if (!o.loadDraft) throw new Error("this Worker drafts without a model (src/worker-suffix.ts): set SPEC_PROPOSER=suffix");
      if (!env.DRAFT_BUNDLE_PREFIX) throw new Error("DRAFT_BUNDLE_PREFIX is not set");
      draft = { reader: new R2BundleReader(env.MODELS, env.DRAFT_BUNDLE_PREFIX), load: o.loadDraft };
    }
    const pair = await loadModelPair(new R2BundleReader(env.MODELS, env.TARGET_BUNDLE_PREFIX), draft);
    // Sentence cache: this data centre's Cache API, then the R2 bucket every location shares.
    const tiers: CacheTier[] = [new CacheApiTier((globalThis as unknown as { caches: { default: CacheLike } }).caches.default, config.TRANSLATE_S_MAXAGE_S)];
    if (env.TRANSLATIONS) tiers.push(new R2Tier(env.TRANSLATIONS, config.TRANSLATE_S3_PREFIX));
    // Billing: the same store, migrations and metering as a Node edge, over Hyperdrive.
    let accounts: AccountStore | undefined;
    if (env.BILLING_DB) {
      const db = new HyperdriveSqlClient(env.BILLING_DB.connectionString, config.BILLING_DB_SCHEMA);
      await migrate(db);
      accounts = new AccountStore(db);
    }
    // Structured outputs: xgrammar's WebAssembly, compiled at upload.
    return { app: createAppFromConfig(config, pair.served, tiers, accounts, () => createWorkerdGrammarEngine(pair.served.tokenizer)), pair };
  }

  const worker: WorkerApp = new Hono();
  // Liveness must not depend on R2 or the model: answered here, before anything is loaded.
  worker.get("/healthz", healthz);
  o.routes?.(worker, built);
  // Everything else is the public API, the same app as on Node.
  worker.all("*", async (c) => (await built(c.env)).app.fetch(c.req.raw));
  // A failed build (a corrupt or mismatched bundle in R2, a bad var) is an operator error worth naming; the
  // message holds bundle keys, hashes and variable names, never secrets.
  worker.onError((err, c) => {
    console.error(err);
    return c.json(errorBody(err.message, "server_error", "model_unavailable"), 500);
  });
  return worker;
}
