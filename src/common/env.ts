// Start-up configuration from environment variables (Node) or Worker vars, shared by the edge and the
// verifier: one zod schema per process, validated once, with errors that name each variable.
import { z } from "zod";
import { describeZodIssues } from "./zod-issues.ts";

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** "true"/"false"/"1"/"0" (or a boolean) as a boolean. */
export const envBool = z.union([z.boolean(), z.enum(["true", "false", "1", "0"])]).transform((v) => v === true || v === "true" || v === "1");

/** Host names that mean this machine (URL hostnames keep IPv6 brackets, listen addresses do not). */
export const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** Validate the variables a schema names (empty counts as unset); errors name each variable. */
export function parseEnv<S extends z.ZodObject>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  const known = Object.fromEntries(Object.keys(schema.shape).map((k) => [k, env[k] === "" ? undefined : env[k]]));
  const r = schema.safeParse(known);
  if (!r.success) throw new ConfigError(`invalid configuration: ${describeZodIssues(r.error)}`);
  return r.data;
}
