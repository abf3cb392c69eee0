// The one Hono app; runtimes (src/node.ts, src/worker.ts) only build its dependencies and serve it.
import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { bodyLimit } from "hono/body-limit";
import { GenerationAdmission } from "./api/admission.ts";
import { createCompletionHandlers, type ApiDeps } from "./api/openai.ts";
import { openApiDocument } from "./api/openapi.ts";
import type { Health, Model, ModelList, Ready, TranslateStats } from "./api/schemas.ts";
import { createTranslateHandlers, type TranslateSettings } from "./api/translate.ts";
import type { ServedModel } from "./model-pair/served-model.ts";
import type { Config } from "./config.ts";
import { poolClientFromConfig } from "./pool/pool-client.ts";
import type { CacheTier } from "./translate/cache-tiers/cache-tier.ts";
import { Translator } from "./translate/translator.ts";
import { proposerFactoryFromConfig, speculationSettingsFromConfig } from "./speculative/settings.ts";
import { requireBearer } from "./common/bearer-auth.ts";
import { errorBody } from "./common/errors.ts";
import { accountOf, requireAccountKey } from "./api/billing.ts";
import { registerKeyAdmin } from "./api/admin.ts";
import type { AccountStore } from "./billing/account-store.ts";
import { DEFAULT_PRICE_TABLE, eur, parsePriceTable, type PassTimer } from "./billing/prices.ts";
import { passCostModel } from "./common/h200-alia-40b.ts";
import { generationFromStats } from "./observability/edge-metrics.ts";
import { observe, type ObservabilitySettings } from "./observability/request-observer.ts";
import { registerUsagePage } from "./api/usage-page.ts";
import { signedUrlRoutes } from "./api/signed-urls.ts";
import type { GrammarEngine } from "./structured/grammar.ts";

export interface AppDeps extends ApiDeps {
  /** Bearer keys accepted on /v1/*; none: open (the local default). */
  apiKeys?: readonly string[];
  maxBodyBytes: number;
  /** The translation endpoint (sentence cache tiers chosen by the runtime). */
  translation?: { translator: Translator; settings: TranslateSettings };
  /** Request logs and the /metrics token (unset: no request logs; /metrics open). */
  observability?: ObservabilitySettings;
  /** URL_SIGNING_SECRET, then URL_SIGNING_SECRET_PREVIOUS: signed translation URLs (none: off). */
  urlSigningSecrets?: readonly string[];
}

/** Liveness: the process answers (needs no model, no pool). */
export const healthz = (c: Context) => c.json({ status: "ok" } satisfies Health);

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  // One set of MAX_CONCURRENT slots for chat, completions and translation sentences, fair across API keys.
  const admission = deps.admission ?? new GenerationAdmission({ slots: deps.maxConcurrent, maxWaitMs: deps.maxQueueWaitMs ?? 0 });
  const api = createCompletionHandlers({ ...deps, admission });
  const { model } = deps;
  // First, so that it sees every request: x-request-id, one JSON log line per request, metrics, GET /metrics.
  const metrics = observe(app, deps.observability, { api, pool: deps.pool, translator: deps.translation?.translator });
  if (deps.translation) deps.translation.translator.onGeneration = (stats, usage) => metrics.recordGeneration(generationFromStats(stats, usage));
  app.get("/healthz", healthz);
  // Readiness: the model pair is loaded (the app exists only then); what it serves.
  const draft = model.draft &&
    model.draftManifest && {
      ...model.draftManifest,
      vocab: model.draft.vocab,
      layers: model.draft.layers,
      ...(model.draftVocabulary ? { trimmed_from: model.draftVocabulary.targetVocabSize } : {}),
    };
  app.get("/readyz", (c) => c.json({ status: "ready", model: model.id, bundle: model.bundle, proposer: deps.proposers.kind, ...(draft ? { draft } : {}) } satisfies Ready));
  app.get("/openapi.json", (c) => c.json(openApiDocument(new URL(c.req.url).origin)));

  // With keys, every answer is a key holder's: never for shared caches (translate.ts).
  const tr = deps.translation && createTranslateHandlers(deps.translation.translator, { ...deps.translation.settings, keyed: !!deps.apiKeys?.length || !!deps.billing }, admission, deps.billing);
  const signed = deps.translation && tr && signedUrlRoutes({ secrets: deps.urlSigningSecrets ?? [], billing: deps.billing, translate: tr, settings: deps.translation.settings });
  // A signed translation URL is its own authorization (key id, expiry, signature): checked ahead of the keys.
  if (signed) app.use("/v1/translate", signed.gate);
  // Keys: account keys from the billing store (and the static ones beside them), or the static ones alone.
  if (deps.billing) app.use("/v1/*", requireAccountKey(deps.billing.store, deps.apiKeys));
  else if (deps.apiKeys?.length) app.use("/v1/*", requireBearer(deps.apiKeys, { missing: "You didn't provide an API key (Authorization: Bearer <key>).", wrong: "Incorrect API key provided.", code: "invalid_api_key" }));
  app.get("/v1/models", (c) =>
    c.json({
      object: "list",
      data: [{ id: model.id, object: "model", created: model.created, owned_by: "alia-edge", bundle: model.bundle, ...(model.draftBundle ? { draft_bundle: model.draftBundle } : {}) }],
    } satisfies ModelList),
  );
  app.get("/v1/models/:id", (c) =>
    c.req.param("id") === model.id
      ? c.json({ id: model.id, object: "model", created: model.created, owned_by: "alia-edge" } satisfies Model)
      : c.json(errorBody(`The model '${c.req.param("id")}' does not exist`, "invalid_request_error", "model_not_found", "model"), 404),
  );
  const limit = bodyLimit({
    maxSize: deps.maxBodyBytes,
    // The rest of the body is left unread on the connection, so it cannot carry another request: say so
    // (clients then open a new one) rather than promise keep-alive and cut it.
    onError: (c) => c.json(errorBody(`request body over ${deps.maxBodyBytes} bytes`, "invalid_request_error", "request_too_large"), 413, { Connection: "close" }),
  });
  if (deps.billing) {
    const { store } = deps.billing;
    registerUsagePage(app);
    registerKeyAdmin(app, store);
    // The calling key's limits and spend, and its usage by day and model (a static key has neither).
    const noAccount = (c: Context) => c.json(errorBody("this key has no account (a static API_KEYS key): no budget or usage is kept for it", "invalid_request_error", "no_account"), 404);
    app.get("/v1/key", async (c) => {
      const key = accountOf(c);
      if (!key) return noAccount(c);
      const b = await store.budgetState(key.keyId);
      const eurOrNull = (m: number | null | undefined) => (m == null ? null : eur(m));
      return c.json({
        key_id: key.keyId,
        name: key.name,
        scopes: key.scopes,
        budget: eurOrNull(b?.budgetMicroEur),
        budget_period: key.budgetPeriod,
        spent: eur(b?.spentMicroEur ?? 0),
        reserved: eur(b?.reservedMicroEur ?? 0),
        remaining: b?.budgetMicroEur == null ? null : eur(Math.max(0, b.budgetMicroEur - b.spentMicroEur - b.reservedMicroEur)),
        currency: "EUR",
        rpm_limit: key.rpmLimit,
        tpm_limit: key.tpmLimit,
        // The key's org, whose budget it spends too: it can spend no more than either `remaining`.
        org: b?.org
          ? {
              org_id: b.org.orgId,
              name: b.org.name,
              budget: eurOrNull(b.org.budgetMicroEur),
              budget_period: b.org.budgetPeriod,
              spent: eur(b.org.spentMicroEur),
              reserved: eur(b.org.reservedMicroEur),
              remaining: b.org.budgetMicroEur === null ? null : eur(Math.max(0, b.org.budgetMicroEur - b.org.spentMicroEur - b.org.reservedMicroEur)),
            }
          : null,
      });
    });
    app.get("/v1/usage", async (c) => {
      const key = accountOf(c);
      if (!key) return noAccount(c);
      const day = /^\d{4}-\d{2}-\d{2}$/;
      const to = c.req.query("to") ?? new Date().toISOString().slice(0, 10);
      const from = c.req.query("from") ?? new Date(Date.parse(to) - 29 * 86_400_000).toISOString().slice(0, 10);
      if (!day.test(from) || !day.test(to) || from > to) return c.json(errorBody("from and to must be days (YYYY-MM-DD), from ≤ to", "invalid_request_error", "invalid_request", "from"), 400);
      const days = await store.usageByDay(key.keyId, from, to);
      return c.json({
        object: "list",
        from,
        to,
        currency: "EUR",
        data: days.map((d) => ({
          day: d.day,
          model: d.model,
          requests: d.requests,
          prompt_tokens: d.promptTokens,
          completion_tokens: d.completionTokens,
          target_passes: d.targetPasses,
          cost: eur(d.costMicroEur),
          saving: eur(d.savingMicroEur),
        })),
      });
    });
  }
  app.post("/v1/completions", limit, api.completions);
  app.post("/v1/chat/completions", limit, api.chat);
  if (deps.translation && tr && signed) {
    app.get("/v1/translate", tr.get);
    app.post("/v1/translate", limit, tr.post);
    app.post("/v1/translate/sign", limit, signed.sign);
    app.get("/v1/translate/stats", (c) => c.json({ ...deps.translation!.translator.counters, tier_errors: deps.translation!.translator.tierErrors() } satisfies TranslateStats));
  }

  app.notFound((c) => c.json(errorBody(`Unknown request URL: ${c.req.method} ${c.req.path}`, "invalid_request_error", "not_found"), 404));
  app.onError((e, c) => {
    if (e instanceof HTTPException) return e.getResponse(); // a middleware's own answer (401 from auth)
    console.error(e);
    return c.json(errorBody("internal error", "server_error", "internal_error"), 500);
  });
  return app;
}

/** The app as a runtime configures it: the pool and every setting from the config; the runtime gives the
 * served model and its sentence cache tiers. */
/** BILLING_GPU_COST_MODEL as the billing's pass timer (a past beyond the measured ones costs as the longest measured). */
function gpuTimer(config: Config): { gpu?: PassTimer } {
  if (config.BILLING_GPU_COST_MODEL === "none") return {};
  const model = passCostModel(config.BILLING_GPU_COST_MODEL);
  return { gpu: { passMs: (batch, chunk, past) => model.passMsClampingPast(batch, chunk, past) } };
}

/**
 * `createGrammar`: how the runtime makes its grammar engine for structured outputs (xgrammar in WebAssembly,
 * loaded its own way on Node and in a Worker). It is made at the first request with a response_format, once;
 * a failure is forgotten, so that the next such request tries again. Without it json_* formats are a 400.
 */
export function createAppFromConfig(config: Config, model: ServedModel, tiers: CacheTier[], accounts?: AccountStore, createGrammar?: () => Promise<GrammarEngine>): Hono {
  const pool = poolClientFromConfig(config);
  let engine: Promise<GrammarEngine> | undefined;
  const grammar =
    createGrammar &&
    (() =>
      (engine ??= createGrammar().catch((e: unknown) => {
        engine = undefined;
        throw e;
      })));
  const speculation = speculationSettingsFromConfig(config);
  const proposers = proposerFactoryFromConfig(config, model.draft, model.draftVocabulary);
  return createApp({
    model,
    pool,
    speculation,
    proposers,
    defaultMaxTokens: config.DEFAULT_MAX_TOKENS,
    ...(grammar ? { grammar } : {}),
    maxConcurrent: config.MAX_CONCURRENT,
    maxQueueWaitMs: config.MAX_QUEUE_WAIT_MS,
    apiKeys: config.API_KEYS,
    ...(accounts
      ? { billing: { store: accounts, prices: config.PRICES ? parsePriceTable(config.PRICES, "PRICES") : DEFAULT_PRICE_TABLE, reservationTtlMs: config.BILLING_RESERVATION_TTL_S * 1000, ...gpuTimer(config) } }
      : {}),
    maxBodyBytes: config.MAX_BODY_BYTES,
    observability: { logRequests: config.LOG_REQUESTS, logLevel: config.LOG_LEVEL, metricsToken: config.METRICS_TOKEN },
    urlSigningSecrets: [config.URL_SIGNING_SECRET, config.URL_SIGNING_SECRET_PREVIOUS].filter((x): x is string => !!x),
    translation: {
      translator: new Translator({ model, pool, tiers, speculation, proposers }),
      settings: { maxChars: config.TRANSLATE_MAX_CHARS, maxAgeS: config.TRANSLATE_MAX_AGE_S, sMaxAgeS: config.TRANSLATE_S_MAXAGE_S },
    },
  });
}
