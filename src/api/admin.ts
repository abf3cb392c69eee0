// The key admin API (`admin` scope; a static API_KEYS key has every scope): create a key (its secret is
// in this one answer only), list keys (never their secrets), change a key's limits, revoke a key (at once:
// every request checks its key). `npm run keys` does the same from a shell.
import type { Context, Hono } from "hono";
import { z } from "zod";
import { SCOPES, type AccountStore, type KeyLimits, type KeyRecord } from "../billing/account-store.ts";
import { eur, toMicro } from "../billing/prices.ts";
import { errorBody } from "../common/errors.ts";
import { describeIssue } from "./schemas.ts";

/** Euros with at most 6 decimals (whole micro-euros), or null for no budget. */
const Budget = z
  .number()
  .min(0)
  .refine((x) => Number.isSafeInteger(Math.round(x * 1e6)) && Math.abs(x * 1e6 - Math.round(x * 1e6)) < 1e-6, "at most 6 decimals (whole micro-euros)")
  .nullable();
const PerMinute = z
  .int()
  .min(1)
  .max(2 ** 31 - 1)
  .nullable();
const Limits = z.strictObject({ budget_eur: Budget.optional(), budget_period: z.enum(["none", "day", "month"]).optional(), rpm_limit: PerMinute.optional(), tpm_limit: PerMinute.optional() });
const CreateKey = Limits.extend({ name: z.string().min(1).max(200), scopes: z.array(z.enum(SCOPES)).min(1).max(SCOPES.length).default(["chat", "translate"]) });

function limitsOf(b: z.infer<typeof Limits>): Partial<KeyLimits> {
  return {
    ...(b.budget_eur !== undefined ? { budgetMicroEur: b.budget_eur === null ? null : toMicro(b.budget_eur) } : {}),
    ...(b.budget_period !== undefined ? { budgetPeriod: b.budget_period } : {}),
    ...(b.rpm_limit !== undefined ? { rpmLimit: b.rpm_limit } : {}),
    ...(b.tpm_limit !== undefined ? { tpmLimit: b.tpm_limit } : {}),
  };
}

/** A key as the admin API and `npm run keys -- … --json` show it: never its secret or hash. */
export const keyJson = (k: KeyRecord) => ({
  object: "api_key",
  key_id: k.keyId,
  name: k.name,
  scopes: k.scopes,
  budget_eur: k.budgetMicroEur === null ? null : eur(k.budgetMicroEur),
  budget_period: k.budgetPeriod,
  rpm_limit: k.rpmLimit,
  tpm_limit: k.tpmLimit,
  created_at: k.createdAt.toISOString(),
  revoked_at: k.revokedAt?.toISOString() ?? null,
});

async function body<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T> | Response> {
  const raw = await c.req.json().catch(() => undefined);
  if (raw === undefined) return c.json(errorBody("We could not parse the JSON body of your request.", "invalid_request_error", "invalid_json"), 400);
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const { message, param } = describeIssue(parsed.error);
  return c.json(errorBody(message, "invalid_request_error", "invalid_request", param), 400);
}

const notFound = (c: Context) => c.json(errorBody(`no key '${c.req.param("id")}'`, "invalid_request_error", "key_not_found", "id"), 404);

/** /v1/admin/keys on `app` (the auth middleware in front of /v1 checks the `admin` scope). */
export function registerKeyAdmin(app: Hono, store: AccountStore): void {
  app.post("/v1/admin/keys", async (c) => {
    const b = await body(c, CreateKey);
    if (b instanceof Response) return b;
    const { key, keyId } = await store.createKey({ name: b.name, scopes: b.scopes, ...limitsOf(b) });
    const record = await store.getKey(keyId);
    return c.json({ ...keyJson(record!), key }, 201);
  });
  app.get("/v1/admin/keys", async (c) => c.json({ object: "list", data: (await store.listKeys()).map(keyJson) }));
  app.get("/v1/admin/keys/:id", async (c) => {
    const k = await store.getKey(c.req.param("id"));
    return k ? c.json(keyJson(k)) : notFound(c);
  });
  app.patch("/v1/admin/keys/:id", async (c) => {
    const b = await body(c, Limits);
    if (b instanceof Response) return b;
    const k = await store.setLimits(c.req.param("id"), limitsOf(b));
    return k ? c.json(keyJson(k)) : notFound(c);
  });
  app.delete("/v1/admin/keys/:id", async (c) => ((await store.revokeKey(c.req.param("id"))) ? c.body(null, 204) : notFound(c)));
}
