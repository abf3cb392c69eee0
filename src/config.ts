// The one configuration schema, validated at start-up from the environment (Node) or Worker vars.
// Every limit and location is named here; a bad value stops start-up with a message naming the variable.
import { z } from "zod";
import { BEARER_TOKEN, BEARER_TOKEN_HINT } from "./common/bearer-auth.ts";
import { ConfigError, envBool, parseEnv } from "./common/env.ts";
import { parsePriceTable } from "./billing/prices.ts";
import { PASS_COST_MODELS } from "./common/h200-alia-40b.ts";
import { LOG_LEVELS } from "./observability/log.ts";
import { PROPOSER_KINDS } from "./speculative/proposer.ts";
import { checkModelStoreConfig, ModelStoreConfigSchema } from "./common/models/model-store-config.ts";

export const ConfigSchema = ModelStoreConfigSchema.extend({
  PORT: z.coerce.number().int().min(0).max(65535).default(8787).describe("HTTP port of the Node edge"),
  HOST: z.string().min(1).default("127.0.0.1").describe("Interface the Node edge listens on"),
  ALLOW_UNAUTHENTICATED: envBool.default(false).describe("Node: start on a non-loopback HOST without API_KEYS (an open API; only behind something that authenticates)"),
  POOL_NODES: z
    .string()
    .default("http://127.0.0.1:8788")
    .transform((s, ctx) => {
      const urls = s
        .split(",")
        .map((u) => u.trim())
        .filter(Boolean);
      for (const u of urls) if (!URL.canParse(u)) ctx.addIssue({ code: "custom", message: `not a URL: ${u}` });
      if (!urls.length) ctx.addIssue({ code: "custom", message: "at least one verifier URL" });
      return urls;
    })
    .describe("Verifier nodes of the pool, comma-separated URLs"),
  POOL_TOKEN: z.string().min(16, "at least 16 characters").regex(BEARER_TOKEN, `only ${BEARER_TOKEN_HINT}`).optional().describe("Bearer token of the pool (the nodes' VERIFIER_TOKEN)"),
  POOL_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000).describe("Timeout of one verify request (or of the wait for the next generated token)"),
  POOL_MAX_IN_FLIGHT: z.coerce.number().int().positive().default(64).describe("Requests in flight per node"),
  POOL_FAILURE_THRESHOLD: z.coerce.number().int().positive().default(3).describe("Consecutive failures that open a node's circuit"),
  POOL_BACKOFF_MS: z.coerce.number().int().positive().default(500).describe("First wait before probing a failed node's /readyz (doubles per failed probe, ≤ 1 s unless set higher; one probe per node at a time)"),
  SPEC_GAMMA: z
    .union([z.literal("adaptive"), z.coerce.number().int().min(0).max(16)])
    .default("adaptive")
    .describe("Drafts per round: `adaptive` (γ policy) or a fixed 0…16 (0: pool generation)"),
  SPEC_MAX_GAMMA: z.coerce.number().int().min(1).max(16).default(8).describe("Largest γ the policy may choose; 16 (the protocol's limit) pays where answers copy the prompt or earlier answers (BENCHMARKS.md, drafters)"),
  SPEC_OBJECTIVE: z.enum(["latency", "gpu"]).default("latency").describe("What the γ policy maximises: tokens per second or per GPU-second"),
  SPEC_PROACTIVE: envBool.default(false).describe("Draft ahead while a verify call is in flight (pays when drafting a block takes about as long as a round trip)"),
  SPEC_PIPELINE: envBool
    .default(true)
    .describe("Adaptive γ: send the next round of a strong copy (suffix match) while the round before it is in flight, on the bet that it accepts everything; a lost bet costs no GPU pass"),
  EMBEDDED_VERIFIER: z.enum(["auto", "true", "false"]).default("auto").describe("Node: start a local verifier (`auto`: when POOL_NODES is one loopback URL where none answers yet)"),
  API_KEYS: z
    .string()
    .optional()
    .transform((s) =>
      s
        ? s
            .split(",")
            .map((k) => k.trim())
            .filter(Boolean)
        : undefined,
    )
    .refine((keys) => !keys || keys.every((k) => BEARER_TOKEN.test(k)), `each key may hold only ${BEARER_TOKEN_HINT}`)
    .describe("Comma-separated API keys accepted as Bearer tokens on /v1/* (unset: no key needed)"),
  BILLING_DATABASE_URL: z
    .string()
    .regex(/^(postgres(ql)?:\/\/.+|pglite:.*)$/, "postgres://… (a PostgreSQL server) or pglite:[directory] (embedded; in memory without a directory)")
    .optional()
    .describe("Pay-per-request keys, budgets and usage (docs/BILLING.md): where they are stored; unset: no billing (API_KEYS alone)"),
  BILLING_DB_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, "a lower-case PostgreSQL schema name")
    .optional()
    .describe("Worker only: the PostgreSQL schema of the billing tables behind the BILLING_DB Hyperdrive binding (Node puts search_path in BILLING_DATABASE_URL's options); unset: the server's default"),
  BILLING_RESERVATION_TTL_S: z.coerce
    .number()
    .int()
    .min(2)
    .max(3600)
    .default(120)
    .describe("How long a request's budget reservation holds without renewal: a running request renews it every third of this; an edge killed mid-request frees its reservation after at most this long"),
  PRICES: z.string().optional().describe("Price table as JSON (docs/BILLING.md); unset: the built-in table"),
  BILLING_GPU_COST_MODEL: z
    .enum(["none", ...PASS_COST_MODELS])
    .default("h200-alia-40b")
    .describe(
      "GPU cost model behind each response's cost without speculation: target GPU time of its passes as run vs plain decoding, at the rows per pass the verifier reports (1 when it reports none); none: target pass counts",
    ),
  URL_SIGNING_SECRET: z.string().min(32, "at least 32 characters").optional().describe('Secret that signs translation URLs for account keys (docs/BILLING.md, "Signed translation URLs"); unset: signed URLs off'),
  URL_SIGNING_SECRET_PREVIOUS: z.string().min(32, "at least 32 characters").optional().describe("The secret being retired: URLs it signed are still accepted (rotation); never signs"),
  MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(1024 * 1024)
    .describe("Largest request body (413 beyond)"),
  DEFAULT_MAX_TOKENS: z.coerce.number().int().positive().default(256).describe("Chat completion budget when the request names none"),
  MAX_CONCURRENT: z.coerce
    .number()
    .int()
    .positive()
    .default(64)
    .describe("Generations at once per edge process, shared fairly by API keys (a chat or completion is one, a translation one per sentence it computes); beyond, requests wait (MAX_QUEUE_WAIT_MS), then 429"),
  MAX_QUEUE_WAIT_MS: z.coerce.number().int().min(0).default(2000).describe("Longest wait for a generation slot when MAX_CONCURRENT are running (then 429; 0: 429 at once); at most MAX_CONCURRENT requests wait"),
  TRANSLATE_MAX_CHARS: z.coerce.number().int().positive().default(10_000).describe("Longest text /v1/translate accepts (characters, all texts of a batch together)"),
  TRANSLATE_MAX_AGE_S: z.coerce.number().int().min(0).default(86_400).describe("Cache-Control max-age of translations (browsers)"),
  TRANSLATE_S_MAXAGE_S: z.coerce.number().int().min(0).default(604_800).describe("Cache-Control s-maxage of translations (CDNs) and the Cache API tier's TTL"),
  TRANSLATE_MEMORY_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(64 * 1024 * 1024)
    .describe("Node: byte budget of the in-memory sentence cache (0: off)"),
  TRANSLATE_S3_BUCKET: z.string().min(1).optional().describe("Bucket of the shared sentence cache tier (S3/R2; endpoint and credentials as S3_*); unset: no shared tier"),
  TRANSLATE_S3_PREFIX: z.string().default("translations/").describe("Key prefix of cached sentences in TRANSLATE_S3_BUCKET"),
  SPEC_PROPOSER: z
    .enum(PROPOSER_KINDS)
    .default("hybrid")
    .describe(
      "Who drafts: `model` (the draft bundle's model), `suffix` (no model: matches the prompt, the output so far and the API key's recent outputs; the draft bundle is not loaded) or `hybrid` (per round, whichever of the two is expected to commit more per unit of time)",
    ),
  SPEC_SUFFIX_MAX_ORDER: z.coerce.number().int().min(1).max(32).default(8).describe("Suffix proposer: longest context matched (tokens)"),
  SPEC_SUFFIX_TENANT_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .default(4 * 1024 * 1024)
    .describe("Suffix proposer: byte budget of one API key's index of recent outputs (0: no cross-request cache)"),
  SPEC_SUFFIX_TENANTS: z.coerce.number().int().min(1).default(16).describe("Suffix proposer: API keys whose output caches are held at once (least recently used dropped)"),
  SPEC_Q_SUPPORT: z.coerce.number().int().min(1).max(64).default(8).describe("Support K of the sparse q̃ sent with sampled drafts"),
  LOG_REQUESTS: envBool.default(true).describe("One JSON line per finished request on stdout (id, route, status, duration, token and speculation numbers; never keys, prompts or text)"),
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info").describe("Least level logged: `debug` (also /metrics and /healthz requests), `info`, `warn` (4xx and 5xx only), `error` (5xx only)"),
  METRICS_TOKEN: z
    .string()
    .min(16, "at least 16 characters")
    .regex(BEARER_TOKEN, `only ${BEARER_TOKEN_HINT}`)
    .optional()
    .describe("Bearer token GET /metrics requires (unset: /metrics is open, like /healthz; set it on a non-loopback HOST)"),
});
export type Config = z.infer<typeof ConfigSchema>;

export function loadConfig(env: Record<string, string | undefined>): Config {
  const c = parseEnv(ConfigSchema, env);
  checkModelStoreConfig(c);
  if (c.PRICES !== undefined) {
    try {
      parsePriceTable(c.PRICES, "PRICES");
    } catch (e) {
      throw new ConfigError(`invalid configuration: ${(e as Error).message}`);
    }
  }
  if (c.URL_SIGNING_SECRET_PREVIOUS && !c.URL_SIGNING_SECRET) throw new ConfigError("invalid configuration: URL_SIGNING_SECRET_PREVIOUS needs URL_SIGNING_SECRET (the secret that signs now)");
  if (typeof c.SPEC_GAMMA === "number" && c.SPEC_GAMMA > c.SPEC_MAX_GAMMA) throw new ConfigError(`invalid configuration: SPEC_GAMMA (${c.SPEC_GAMMA}) is above SPEC_MAX_GAMMA (${c.SPEC_MAX_GAMMA})`);
  return c;
}
