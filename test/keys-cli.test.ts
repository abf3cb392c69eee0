// `npm run keys` (scripts/keys.ts) as the operator runs it: a child process per command, against PGlite
// persisted in a temporary directory (each command is a new process, so what one writes the next must read)
// and against the PostgreSQL server at 127.0.0.1:5432 in a fresh schema chosen by the URL's `options`
// (unreachable = these tests fail). The test opens the same database to check what the edges would see.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountStore } from "../src/billing/account-store.ts";
import { type OpenedAccountStore, openAccountStore } from "../src/billing/open-account-store.ts";
import { PgSqlClient } from "../src/billing/pg-sql-client.ts";
import { sha256Hex } from "../src/common/hash.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const PG_URL = process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `npm run keys -- …args` with BILLING_DATABASE_URL = `url` (unset when undefined). */
function keys(url: string | undefined, ...args: string[]): Promise<Run> {
  const env = { ...process.env };
  delete env.BILLING_DATABASE_URL;
  if (url !== undefined) env.BILLING_DATABASE_URL = url;
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", "scripts/keys.ts", ...args], { cwd: ROOT, env, timeout: 90_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : null) : 0, stdout, stderr });
    });
  });
}

interface Backend {
  name: string;
  url: string;
  /** The store on the CLI's database, for `fn` only: PGlite is one process's at a time, so never while a command runs. */
  withStore<T>(fn: (store: AccountStore) => Promise<T>): Promise<T>;
  cleanup(): Promise<void>;
}

async function pgliteBackend(): Promise<Backend> {
  const dir = await mkdtemp(path.join(tmpdir(), "keys-cli-"));
  const url = `pglite:${path.join(dir, "db")}`;
  return {
    name: "PGlite",
    url,
    async withStore(fn) {
      const opened = await openAccountStore(url);
      try {
        return await fn(opened.store);
      } finally {
        await opened.db.close();
      }
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

async function postgresBackend(): Promise<Backend> {
  const admin = new PgSqlClient({ connectionString: PG_URL, max: 1 });
  const schema = `t_keys_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  await admin.query(`CREATE SCHEMA ${schema}`);
  // libpq's form, which node-postgres passes to the server at connect: every connection gets this search_path.
  const url = `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  let opened: OpenedAccountStore | undefined;
  return {
    name: "PostgreSQL",
    url,
    async withStore(fn) {
      opened ??= await openAccountStore(url);
      // The CLI's tables are in the schema: node-postgres honoured `options` from the URL.
      expect((await admin.query<{ t: string | null }>("SELECT to_regclass($1)::text AS t", [`${schema}.api_keys`])).rows[0].t).toBe(`${schema}.api_keys`);
      return fn(opened.store);
    },
    async cleanup() {
      await opened?.db.close();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.close();
    },
  };
}

describe("npm run keys: arguments", () => {
  it("bad flags, scopes, amounts and ids exit 2 with a message before touching a database; no BILLING_DATABASE_URL names it", async () => {
    const db = "pglite:/nonexistent/never-opened";
    const [unknownFlag, badScope, badMoney, badId, unknownCommand, pastedKey, noUrl, inMemory, help] = await Promise.all([
      keys(db, "create", "--name", "x", "--budget", "10"),
      keys(db, "create", "--name", "x", "--scopes", "chat,root"),
      keys(db, "limits", "abcdefghijkl", "--budget-eur", "1.0000001"),
      keys(db, "revoke", "nope"),
      keys(db, "rotate"),
      keys(db, "revoke", "sk-alia-abcdefghijkl_secretsecret"),
      keys(undefined, "list"),
      keys("pglite:", "list"),
      keys(undefined, "create", "--help"),
    ]);
    expect(unknownFlag).toMatchObject({ code: 2, stdout: "" });
    expect(unknownFlag.stderr).toMatch(/keys create: .*'--budget'/);
    expect(badScope).toMatchObject({ code: 2 });
    expect(badScope.stderr).toContain("--scopes must be a comma-separated list of chat, translate, admin");
    expect(badMoney).toMatchObject({ code: 2 });
    expect(badMoney.stderr).toContain("--budget-eur must be euros with at most 6 decimals");
    expect(badId).toMatchObject({ code: 2 });
    expect(badId.stderr).toContain("not a key id");
    expect(unknownCommand).toMatchObject({ code: 2 });
    expect(unknownCommand.stderr).toMatch(/unknown command "rotate"[\s\S]*Usage: npm run keys/);
    expect(pastedKey).toMatchObject({ code: 2 });
    expect(pastedKey.stderr).not.toContain("secretsecret");
    expect(noUrl.code).not.toBe(0);
    expect(noUrl.stderr).toMatch(/BILLING_DATABASE_URL is not set[\s\S]*postgres:\/\/[\s\S]*pglite:<directory>/);
    expect(inMemory.code).not.toBe(0);
    expect(inMemory.stderr).toContain("in memory");
    // --help needs no database.
    expect(help).toMatchObject({ code: 0 });
    expect(help.stdout).toMatch(/Usage: npm run keys -- create --name NAME[\s\S]*--budget-eur/);
  });

  it("org: a bad org id, a missing or unknown org command, and a missing name exit 2 before touching a database", async () => {
    const db = "pglite:/nonexistent/never-opened";
    const [badOrgOnKey, badOrgId, noCommand, unknownCommand, noName, help] = await Promise.all([
      keys(db, "create", "--name", "x", "--org", "acme"),
      keys(db, "org", "limits", "org-ABC", "--budget-eur", "1"),
      keys(db, "org"),
      keys(db, "org", "delete"),
      keys(db, "org", "create", "--budget-eur", "1"),
      keys(undefined, "org", "create", "--help"),
    ]);
    expect(badOrgOnKey).toMatchObject({ code: 2, stdout: "" });
    expect(badOrgOnKey.stderr).toContain('not an org id: "acme"');
    expect(badOrgId).toMatchObject({ code: 2 });
    expect(badOrgId.stderr).toContain("not an org id");
    expect(noCommand).toMatchObject({ code: 2 });
    expect(noCommand.stderr).toMatch(/missing command[\s\S]*Usage: npm run keys -- org/);
    expect(unknownCommand).toMatchObject({ code: 2 });
    expect(unknownCommand.stderr).toContain('unknown command "delete"');
    expect(noName).toMatchObject({ code: 2 });
    expect(noName.stderr).toContain("--name is required");
    expect(help).toMatchObject({ code: 0 });
    expect(help.stdout).toMatch(/Usage: npm run keys -- org create --name NAME[\s\S]*--budget-eur/);
  });
});

for (const make of [pgliteBackend, postgresBackend]) {
  describe(`npm run keys on ${make === pgliteBackend ? "PGlite (data directory)" : "PostgreSQL (fresh schema)"}`, () => {
    let b: Backend;
    let key: string;
    let keyId: string;

    beforeAll(async () => {
      b = await make();
    });
    afterAll(() => b?.cleanup());

    it("create prints the key once, with the warning, and the store verifies it with the limits given", async () => {
      const r = await keys(b.url, "create", "--name", "ci key", "--scopes", "chat,translate", "--budget-eur", "10", "--period", "day", "--rpm", "60");
      expect(r.code, r.stderr).toBe(0);
      const m = r.stdout.match(/sk-alia-([a-z2-7]{12})_[A-Za-z0-9_-]{43}/);
      expect(m).not.toBeNull();
      [key, keyId] = [m![0], m![1]];
      expect(r.stdout.split(key)).toHaveLength(2);
      expect(r.stdout).toContain(`Created key ${keyId}`);
      expect(r.stdout).toContain("cannot be shown again");
      const record = await b.withStore(async (store) => {
        const rec = await store.verifyKey(key);
        // Spend something, so that list and usage have a figure to show.
        const held = await store.reserve(keyId, 2_000, 60_000);
        if ("refused" in held) throw new Error(`refused: ${held.reason}`);
        const usage = { requestId: `keys-cli-${keyId}`, model: "alia-40b", promptTokens: 10, completionTokens: 20, targetPasses: 6, status: "completed" };
        await store.settle(held.id, { ...usage, costMicroEur: 1_234, costWithoutSpeculationMicroEur: 3_000 });
        return rec;
      });
      expect(record).toMatchObject({ keyId, name: "ci key", scopes: ["chat", "translate"], budgetMicroEur: 10_000_000, budgetPeriod: "day", rpmLimit: 60, tpmLimit: null, revokedAt: null });
    });

    it("list shows the key, its limits and this period's spend, never the secret or its hash", async () => {
      const r = await keys(b.url, "list");
      expect(r.code, r.stderr).toBe(0);
      const row = r.stdout.split("\n").find((l) => l.startsWith(keyId));
      expect(row).toMatch(/ci key\s+chat,translate\s+10\.000000\s+day\s+0\.001234\s+0\.000000\s+60\s+-/);
      const secret = key.slice(key.indexOf("_") + 1);
      expect(r.stdout + r.stderr).not.toContain(secret);
      expect(r.stdout + r.stderr).not.toContain(await sha256Hex(secret));
    });

    it("limits changes the budget and rate limits; usage reports the day's spend", async () => {
      const r = await keys(b.url, "limits", keyId, "--budget-eur", "0.5", "--tpm", "1000", "--rpm", "none", "--json");
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ key_id: keyId, budget_eur: 0.5, budget_period: "day", rpm_limit: null, tpm_limit: 1000, spent_eur: 0.001234 });
      expect(await b.withStore(async (store) => store.getKey(keyId))).toMatchObject({ budgetMicroEur: 500_000, rpmLimit: null, tpmLimit: 1000 });

      const u = await keys(b.url, "usage", keyId, "--json");
      expect(u.code, u.stderr).toBe(0);
      const today = new Date().toISOString().slice(0, 10);
      expect(JSON.parse(u.stdout)).toMatchObject({
        key_id: keyId,
        to: today,
        days: [{ day: today, model: "alia-40b", requests: 1, prompt_tokens: 10, completion_tokens: 20, target_passes: 6, cost_eur: 0.001234, saving_eur: 0.001766 }],
      });
    });

    it("org create, create --org, org list, org limits and limits --org: the org's budget binds its keys; an unknown org exits 1", async () => {
      const made = await keys(b.url, "org", "create", "--name", "acme org", "--budget-eur", "0.001", "--json");
      expect(made.code, made.stderr).toBe(0);
      const org = JSON.parse(made.stdout) as { org_id: string };
      expect(org).toMatchObject({ object: "organization", name: "acme org", budget_eur: 0.001, budget_period: "month", spent_eur: 0, key_count: 0 });
      expect(org.org_id).toMatch(/^org-[a-z2-7]{12}$/);

      const k = await keys(b.url, "create", "--name", "org key", "--budget-eur", "5", "--org", org.org_id, "--json");
      expect(k.code, k.stderr).toBe(0);
      const orgKey = JSON.parse(k.stdout) as { key_id: string };
      expect(orgKey).toMatchObject({ org_id: org.org_id, budget_eur: 5 });
      await b.withStore(async (store) => {
        const r = await store.reserve(orgKey.key_id, 1_000, 60_000);
        if ("refused" in r) throw new Error(`refused: ${r.reason}`);
        // The key has 5 € of its own, the org nothing more.
        expect(await store.reserve(orgKey.key_id, 1, 60_000)).toEqual({ refused: "org", reason: "org_budget" });
        await store.settle(r.id, {
          requestId: `keys-cli-org-${orgKey.key_id}`,
          model: "alia-40b",
          promptTokens: 1,
          completionTokens: 1,
          targetPasses: 1,
          costMicroEur: 600,
          costWithoutSpeculationMicroEur: 600,
          status: "completed",
        });
      });

      const list = await keys(b.url, "org", "list");
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout.split("\n").find((l) => l.startsWith(org.org_id))).toMatch(/acme org\s+0\.001000\s+month\s+0\.000600\s+0\.000000\s+0\.000400\s+1\s/);
      expect((await keys(b.url, "list")).stdout.split("\n").find((l) => l.startsWith(orgKey.key_id))).toContain(org.org_id);

      const raised = await keys(b.url, "org", "limits", org.org_id, "--budget-eur", "0.002", "--period", "day", "--json");
      expect(raised.code, raised.stderr).toBe(0);
      expect(JSON.parse(raised.stdout)).toMatchObject({ org_id: org.org_id, budget_eur: 0.002, budget_period: "day" });

      const out = await keys(b.url, "limits", orgKey.key_id, "--org", "none", "--json");
      expect(out.code, out.stderr).toBe(0);
      expect(JSON.parse(out.stdout)).toMatchObject({ key_id: orgKey.key_id, org_id: null });
      expect(await b.withStore(async (store) => (await store.getOrg(org.org_id))?.keyCount)).toBe(0);

      const unknownOnCreate = await keys(b.url, "create", "--name", "x", "--org", "org-aaaaaaaaaaaa");
      expect(unknownOnCreate.code).toBe(1);
      expect(unknownOnCreate.stderr).toContain("no org 'org-aaaaaaaaaaaa'");
      const unknown = await keys(b.url, "org", "limits", "org-aaaaaaaaaaaa", "--budget-eur", "1");
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain("no org 'org-aaaaaaaaaaaa' (see `npm run keys -- org list`)");
    });

    it("revoke takes effect at once; an unknown key exits 1", async () => {
      const r = await keys(b.url, "revoke", keyId);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`Revoked key ${keyId}`);
      expect(await b.withStore(async (store) => store.verifyKey(key))).toBeUndefined();

      const unknown = await keys(b.url, "revoke", "aaaaaaaaaaaa");
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain("no key aaaaaaaaaaaa");
    });
  });
}
