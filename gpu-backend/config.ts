// Verifier service configuration (zod, validated at start-up). Model store settings (MODEL_STORE, S3_*, …)
// come from the shared ModelStoreConfigSchema; these are the verifier's own.
import { z } from "zod";
import { ConfigError, LOOPBACK_HOSTS, envBool, parseEnv } from "../src/common/env.ts";
import { PASS_COST_MODELS } from "../src/common/h200-alia-40b.ts";
import { BEARER_TOKEN, BEARER_TOKEN_HINT } from "../src/common/bearer-auth.ts";
import { MAX_GAMMA } from "../src/common/protocol.ts";

export const VerifierConfigSchema = z.object({
  VERIFIER_PORT: z.coerce.number().int().min(0).max(65535).default(8788).describe("HTTP port of the verifier"),
  VERIFIER_HOST: z.string().min(1).default("127.0.0.1").describe("Interface the verifier listens on"),
  VERIFIER_TOKEN: z.string().min(16, "at least 16 characters").regex(BEARER_TOKEN, `only ${BEARER_TOKEN_HINT}`).optional().describe("Shared bearer token the edge sends; required off loopback"),
  VERIFIER_TOKEN_PREVIOUS: z
    .string()
    .min(16, "at least 16 characters")
    .regex(BEARER_TOKEN, `only ${BEARER_TOKEN_HINT}`)
    .optional()
    .describe("The pool token being retired, still accepted beside VERIFIER_TOKEN while the edges move to the new one (rotation)"),
  VERIFIER_KV_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(256 * 1024 * 1024)
    .describe("Byte budget of all sessions' KV caches"),
  VERIFIER_MAX_SESSIONS: z.coerce.number().int().positive().default(256).describe("Sessions kept at once (LRU beyond)"),
  VERIFIER_IDLE_TTL_S: z.coerce.number().positive().default(300).describe("Idle seconds before a session is evicted"),
  VERIFIER_BATCH_WINDOW_MS: z.coerce.number().min(0).max(100).default(0).describe("Extra wait for company before a batch (0: batch what queued while the previous pass ran)"),
  VERIFIER_WAIT_FOR_COMPANY: envBool
    .default(true)
    .describe("With a cost model (onnx engine): a pass may wait for sessions expected back before it would end, when the GPU time that joining them saves pays for the wait (speculating sessions then share passes)"),
  VERIFIER_MAX_BATCH: z.coerce.number().int().min(1).max(256).default(32).describe("Sessions in one batched pass"),
  VERIFIER_MAX_QUEUE: z.coerce.number().int().min(1).default(256).describe("Verify passes waiting at most; beyond: 503 + Retry-After"),
  VERIFIER_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(1024 * 1024)
    .describe("Largest request body accepted (history re-opens are the big ones)"),
  VERIFIER_MAX_GAMMA: z.coerce.number().int().min(0).max(MAX_GAMMA).default(MAX_GAMMA).describe(`Most drafts per round (protocol limit ${MAX_GAMMA})`),
  VERIFIER_MAX_CONTEXT: z.coerce.number().int().positive().optional().describe("Most tokens per session (default: the model's positions)"),
  VERIFIER_COST_MODEL: z
    .enum(["none", ...PASS_COST_MODELS])
    .default("none")
    .describe("GPU cost model behind the load hint (what the next pass costs per drafted token): `h200-alia-40b` (measured) or `engine`; `none` reports measured pass times only"),
  VERIFIER_SIMULATE_GPU: envBool.default(false).describe("Benchmarks only (ONNX engine): hold every batched pass to the cost model's time for its rows, one pass at a time like one GPU"),
  VERIFIER_SIMULATED_PAST: z.coerce.number().int().min(0).default(0).describe("Benchmarks only: tokens of past the cost model adds to every row (long contexts on the short fixture)"),
  VERIFIER_DEVICE: z.enum(["cpu", "cuda"]).default("cpu").describe("ONNX engine: where the target runs (`cuda` needs onnxruntime-node's CUDA provider: `npm run onnxruntime:cuda`)"),
  VERIFIER_ENGINE: z.enum(["onnx", "sglang"]).default("onnx").describe("onnx: the target bundle on onnxruntime-node; sglang: an SGLang server"),
  VERIFIER_SGLANG_URL: z.url().optional().describe("SGLang server base URL (VERIFIER_ENGINE=sglang)"),
  VERIFIER_SGLANG_API_KEY: z.string().min(1).optional().describe("Bearer key SGLang expects, if any"),
  VERIFIER_SGLANG_TOP_LOGPROBS: z.coerce.number().int().min(1).max(1000).default(20).describe("K: top log-probs per position; sampling needs 0 < top_k ≤ K"),
  VERIFIER_SGLANG_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000).describe("Timeout of one SGLang request"),
  VERIFIER_SGLANG_VOCAB: z.coerce.number().int().positive().default(256_000).describe("Vocabulary of the SGLang model (ALIA-40b: 256000)"),
  VERIFIER_SGLANG_MAX_POSITIONS: z.coerce.number().int().positive().default(32_768).describe("Context of the SGLang model (ALIA-40b: 32768)"),
});
export type VerifierConfig = z.infer<typeof VerifierConfigSchema>;

export function loadVerifierConfig(env: Record<string, string | undefined>): VerifierConfig {
  const c = parseEnv(VerifierConfigSchema, env);
  if (c.VERIFIER_TOKEN_PREVIOUS && !c.VERIFIER_TOKEN) throw new ConfigError("invalid configuration: VERIFIER_TOKEN_PREVIOUS needs VERIFIER_TOKEN (the token the edges move to)");
  if (!c.VERIFIER_TOKEN && !LOOPBACK_HOSTS.has(c.VERIFIER_HOST)) throw new ConfigError(`invalid configuration: VERIFIER_TOKEN is required when VERIFIER_HOST (${c.VERIFIER_HOST}) is not loopback`);
  if (c.VERIFIER_ENGINE === "sglang" && !c.VERIFIER_SGLANG_URL) throw new ConfigError("invalid configuration: VERIFIER_SGLANG_URL is required when VERIFIER_ENGINE=sglang");
  if (c.VERIFIER_SIMULATE_GPU && c.VERIFIER_COST_MODEL === "none") throw new ConfigError("invalid configuration: VERIFIER_SIMULATE_GPU needs a VERIFIER_COST_MODEL");
  if (c.VERIFIER_SIMULATE_GPU && c.VERIFIER_ENGINE !== "onnx") throw new ConfigError("invalid configuration: VERIFIER_SIMULATE_GPU applies to the onnx engine only");
  return c;
}
