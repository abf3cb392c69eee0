// The key admin API (`admin` scope; a static API_KEYS key has every scope): create a key (its secret is
// in this one answer only), list keys (never their secrets), change a key's limits or org, revoke a key (at
// once: every request checks its key); create, list and limit orgs (a budget their keys share). `npm run
// keys` does the same from a shell.
import type { Context, Hono } from "hono";
import { z } from "zod";
import { SCOPES, UnknownOrgError, type AccountStore, type KeyChanges, type OrgLimits, type OrgState, type KeyRecord } from "../billing/account-store.ts";
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
const Period = z.enum(["none", "day", "month"]);
/** An org id as createOrg makes them; null (on a key) = no org. */
const OrgId = z
  .string()
  .regex(/^org-[a-z2-7]{12}$/, "an org id: org- and 12 characters of a-z and 2-7")
  .nullable();
const Limits = z.strictObject({ budget_eur: Budget.optional(), budget_period: Period.optional(), rpm_limit: PerMinute.optional(), tpm_limit: PerMinute.optional(), org_id: OrgId.optional() });
const CreateKey = Limits.extend({ name: z.string().min(1).max(200), scopes: z.array(z.enum(SCOPES)).min(1).max(SCOPES.length).default(["chat", "translate"]) });
const OrgLimitsBody = z.strictObject({ budget_eur: Budget.optional(), budget_period: Period.optional() });
const CreateOrg = OrgLimitsBody.extend({ name: z.string().min(1).max(200) });

function orgLimitsOf(b: z.infer<typeof OrgLimitsBody>): Partial<OrgLimits> {
  return {
    ...(b.budget_eur !== undefined ? { budgetMicroEur: b.budget_eur === null ? null : toMicro(b.budget_eur) } : {}),
    ...(b.budget_period !== undefined ? { budgetPeriod: b.budget_period } : {}),
  };
}

function limitsOf(b: z.infer<typeof Limits>): KeyChanges {
  return {
    ...orgLimitsOf(b),
    ...(b.rpm_limit !== undefined ? { rpmLimit: b.rpm_limit } : {}),
    ...(b.tpm_limit !== undefined ? { tpmLimit: b.tpm_limit } : {}),
    ...(b.org_id !== undefined ? { orgId: b.org_id } : {}),
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
  org_id: k.orgId,
  created_at: k.createdAt.toISOString(),
  revoked_at: k.revokedAt?.toISOString() ?? null,
});

/** An org as the admin API and `npm run keys -- org … --json` show it, with this period's spend. */
export const orgJson = (o: OrgState) => ({
  object: "organization",
  org_id: o.orgId,
  name: o.name,
  budget_eur: o.budgetMicroEur === null ? null : eur(o.budgetMicroEur),
  budget_period: o.budgetPeriod,
  spent_eur: eur(o.spentMicroEur),
  reserved_eur: eur(o.reservedMicroEur),
  remaining_eur: o.budgetMicroEur === null ? null : eur(Math.max(0, o.budgetMicroEur - o.spentMicroEur - o.reservedMicroEur)),
  key_count: o.keyCount,
  created_at: o.createdAt.toISOString(),
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
const orgNotFound = (c: Context, orgId: string, param: string) => c.json(errorBody(`no org '${orgId}' (see GET /v1/admin/orgs)`, "invalid_request_error", "org_not_found", param), 404);

/** `fn`'s answer, or 404 org_not_found when it names an org that does not exist (a key's `org_id`). */
async function orUnknownOrg(c: Context, fn: () => Promise<Response>): Promise<Response> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UnknownOrgError) return orgNotFound(c, e.orgId, "org_id");
    throw e;
  }
}

/** /v1/admin/keys and /v1/admin/orgs on `app` (the auth middleware in front of /v1 checks the `admin` scope). */
export function registerKeyAdmin(app: Hono, store: AccountStore): void {
  app.post("/v1/admin/keys", async (c) => {
    const b = await body(c, CreateKey);
    if (b instanceof Response) return b;
    return orUnknownOrg(c, async () => {
      const { key, keyId } = await store.createKey({ name: b.name, scopes: b.scopes, ...limitsOf(b) });
      const record = await store.getKey(keyId);
      return c.json({ ...keyJson(record!), key }, 201);
    });
  });
  app.get("/v1/admin/keys", async (c) => c.json({ object: "list", data: (await store.listKeys()).map(keyJson) }));
  app.get("/v1/admin/keys/:id", async (c) => {
    const k = await store.getKey(c.req.param("id"));
    return k ? c.json(keyJson(k)) : notFound(c);
  });
  app.patch("/v1/admin/keys/:id", async (c) => {
    const b = await body(c, Limits);
    if (b instanceof Response) return b;
    return orUnknownOrg(c, async () => {
      const k = await store.setLimits(c.req.param("id"), limitsOf(b));
      return k ? c.json(keyJson(k)) : notFound(c);
    });
  });
  app.delete("/v1/admin/keys/:id", async (c) => ((await store.revokeKey(c.req.param("id"))) ? c.body(null, 204) : notFound(c)));

  app.post("/v1/admin/orgs", async (c) => {
    const b = await body(c, CreateOrg);
    if (b instanceof Response) return b;
    const { orgId } = await store.createOrg({ name: b.name, ...orgLimitsOf(b) });
    return c.json(orgJson((await store.getOrg(orgId))!), 201);
  });
  app.get("/v1/admin/orgs", async (c) => c.json({ object: "list", data: (await store.listOrgs()).map(orgJson) }));
  app.get("/v1/admin/orgs/:id", async (c) => {
    const o = await store.getOrg(c.req.param("id"));
    return o ? c.json(orgJson(o)) : orgNotFound(c, c.req.param("id"), "id");
  });
  app.patch("/v1/admin/orgs/:id", async (c) => {
    const b = await body(c, OrgLimitsBody);
    if (b instanceof Response) return b;
    const o = await store.setOrgLimits(c.req.param("id"), orgLimitsOf(b));
    return o ? c.json(orgJson(o)) : orgNotFound(c, c.req.param("id"), "id");
  });
}
