// Verifier service configuration (zod, validated at start-up). Model store settings are shared with the
// edge (src/config.ts); these are the verifier's own.
import { z } from "zod";
import { ConfigError, parseEnv } from "../src/config.ts";

export const VerifierConfigSchema = z.object({
  VERIFIER_PORT: z.coerce.number().int().min(0).max(65535).default(8788).describe("HTTP port of the verifier"),
  VERIFIER_HOST: z.string().min(1).default("127.0.0.1").describe("Interface the verifier listens on"),
  VERIFIER_TOKEN: z.string().min(16, "at least 16 characters").optional().describe("Shared bearer token the edge sends; required off loopback"),
  VERIFIER_KV_BYTES: z.coerce.number().int().positive().default(256 * 1024 * 1024).describe("Byte budget of all sessions' KV caches"),
  VERIFIER_MAX_SESSIONS: z.coerce.number().int().positive().default(256).describe("Sessions kept at once (LRU beyond)"),
  VERIFIER_IDLE_TTL_S: z.coerce.number().positive().default(300).describe("Idle seconds before a session is evicted"),
  VERIFIER_BATCH_WINDOW_MS: z.coerce.number().min(0).max(100).default(0).describe("Extra wait for company before a batch (0: batch what queued while the previous pass ran)"),
  VERIFIER_MAX_BATCH: z.coerce.number().int().min(1).max(256).default(32).describe("Sessions in one batched pass"),
  VERIFIER_MAX_QUEUE: z.coerce.number().int().min(1).default(256).describe("Verify passes waiting at most; beyond: 503 + Retry-After"),
  VERIFIER_MAX_BODY_BYTES: z.coerce.number().int().positive().default(1024 * 1024).describe("Largest request body accepted (history re-opens are the big ones)"),
});
export type VerifierConfig = z.infer<typeof VerifierConfigSchema>;

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

export function loadVerifierConfig(env: Record<string, string | undefined>): VerifierConfig {
  const c = parseEnv(VerifierConfigSchema, env);
  if (!c.VERIFIER_TOKEN && !LOOPBACK.has(c.VERIFIER_HOST))
    throw new ConfigError(`invalid configuration: VERIFIER_TOKEN is required when VERIFIER_HOST (${c.VERIFIER_HOST}) is not loopback`);
  return c;
}
