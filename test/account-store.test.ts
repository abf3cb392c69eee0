// The billing store (src/billing) against real databases: the same suite on PGlite (in memory, the embedded
// default) and on the PostgreSQL server at 127.0.0.1:5432 (CI has one; unreachable = these tests fail, they
// do not skip). Each Postgres run works in fresh schemas, dropped afterwards, so runs never collide. The
// Postgres half adds what only a shared server can show: three processes spending one budget (a key's, and
// an org's over two keys), three taking from one key's requests per minute, and an edge killed with -9 in
// the middle of a request.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountStore, type Reservation, type ReserveRefusal, UnknownOrgError, type UsageEventInput } from "../src/billing/account-store.ts";
import { MIGRATIONS, migrate } from "../src/billing/migrations.ts";
import { PgSqlClient } from "../src/billing/pg-sql-client.ts";
import { PgliteSqlClient } from "../src/billing/pglite-sql-client.ts";
import type { SqlClient } from "../src/billing/sql-client.ts";
import { sha256Hex } from "../src/common/hash.ts";
import { startProcess } from "./harness/processes.ts";

const PG_URL = process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

interface Backend {
  name: string;
  /** A client on a new, empty database (a fresh schema on the server, a fresh PGlite). */
  fresh(): Promise<SqlClient>;
  /** A second client on the same database as `fresh()`'s last one (for concurrent migration). */
  peer(): Promise<SqlClient>;
  cleanup(): Promise<void>;
}

function postgresBackend(): Backend {
  const admin = new PgSqlClient({ connectionString: PG_URL, max: 2 });
  const schemas: string[] = [];
  const clients: SqlClient[] = [];
  const open = (schema: string) => {
    const c = new PgSqlClient({ connectionString: PG_URL, schema, max: 20 });
    clients.push(c);
    return c;
  };
  return {
    name: "postgres",
    async fresh() {
      const schema = `t_billing_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
      await admin.query(`CREATE SCHEMA ${schema}`);
      schemas.push(schema);
      return open(schema);
    },
    async peer() {
      return open(schemas[schemas.length - 1]);
    },
    async cleanup() {
      for (const c of clients) await c.close();
      for (const s of schemas) await admin.query(`DROP SCHEMA ${s} CASCADE`);
      await admin.close();
    },
  };
}

function pgliteBackend(): Backend {
  const clients: SqlClient[] = [];
  let last: PGlite | undefined;
  return {
    name: "pglite",
    async fresh() {
      last = await PGlite.create();
      const c = new PgliteSqlClient(last);
      clients.push(c);
      return c;
    },
    async peer() {
      // PGlite is one connection: a second client is a second handle on the same instance.
      return new PgliteSqlClient(last!);
    },
    async cleanup() {
      for (const c of clients) await c.close();
    },
  };
}

const usage = (requestId: string, cost: number, model = "alia-40b", extra: Partial<UsageEventInput> = {}): UsageEventInput => ({
  requestId,
  model,
  promptTokens: 10,
  completionTokens: 20,
  targetPasses: 5,
  costMicroEur: cost,
  costWithoutSpeculationMicroEur: cost * 3,
  status: "completed",
  ...extra,
});

function held(r: Reservation | ReserveRefusal): Reservation {
  if ("refused" in r) throw new Error(`expected a reservation, got refused (${r.reason})`);
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const make of [pgliteBackend, postgresBackend]) {
  const backend = make();
  describe(`AccountStore on ${backend.name}`, () => {
    let db: SqlClient;
    let store: AccountStore;
    const requestId = (tag: string) => `${backend.name}-${tag}-${Math.random().toString(36).slice(2, 10)}`;

    beforeAll(async () => {
      db = await backend.fresh();
      expect(await migrate(db)).toEqual(MIGRATIONS.map((m) => m.version));
      store = new AccountStore(db);
    });
    afterAll(() => backend.cleanup());

    it("migrations are idempotent, and two clients migrating at once apply each version once", async () => {
      expect(await migrate(db)).toEqual([]);
      const fresh = await backend.fresh();
      const peer = await backend.peer();
      const [a, b] = await Promise.all([migrate(fresh), migrate(peer)]);
      expect([...a, ...b].sort()).toEqual(MIGRATIONS.map((m) => m.version));
      const { rows } = await fresh.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version");
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
    });

    it("a key verifies until revoked, is stored hashed, and a wrong secret never verifies", async () => {
      const { key, keyId } = await store.createKey({ name: "alice", scopes: ["chat", "translate"], budgetMicroEur: 5_000_000, budgetPeriod: "month", rpmLimit: 60 });
      expect(key).toMatch(new RegExp(`^sk-alia-${keyId}_[A-Za-z0-9_-]{43}$`));
      const rec = await store.verifyKey(key);
      expect(rec).toMatchObject({ keyId, name: "alice", scopes: ["chat", "translate"], budgetMicroEur: 5_000_000, budgetPeriod: "month", rpmLimit: 60, tpmLimit: null, revokedAt: null });

      const secret = key.slice(key.indexOf("_") + 1);
      const stored = await db.query<{ secret_sha256: string }>("SELECT secret_sha256 FROM api_keys WHERE key_id = $1", [keyId]);
      expect(stored.rows[0].secret_sha256).toBe(await sha256Hex(secret));
      expect(JSON.stringify(await store.listKeys())).not.toContain(secret);
      expect((await store.listKeys()).map((k) => k.keyId)).toContain(keyId);

      const last = key.at(-1) === "A" ? "B" : "A";
      expect(await store.verifyKey(key.slice(0, -1) + last)).toBeUndefined();
      expect(await store.verifyKey(key.replace(keyId, "aaaaaaaaaaaa"))).toBeUndefined();
      expect(await store.verifyKey(`${key} `)).toBeUndefined();
      expect(await store.verifyKey("sk-alia-")).toBeUndefined();

      expect(await store.revokeKey(keyId)).toBe(true);
      expect(await store.verifyKey(key)).toBeUndefined();
      expect(await store.revokeKey(keyId)).toBe(false);
      expect(await store.reserve(keyId, 1, 60_000)).toEqual({ refused: "key", reason: "revoked" });
      expect(await store.reserve("zzzzzzzzzzzz", 1, 60_000)).toEqual({ refused: "key", reason: "unknown_key" });
      await expect(store.createKey({ name: "bad", scopes: ["root" as "chat"] })).rejects.toThrow(/scopes/);
    });

    it("50 concurrent reservations against a budget of 10: exactly 10 hold, and spend stays within the budget", async () => {
      const { keyId } = await store.createKey({ name: "burst", scopes: ["chat"], budgetMicroEur: 10 });
      const results = await Promise.all(Array.from({ length: 50 }, () => store.reserve(keyId, 1, 60_000)));
      const ok = results.filter((r): r is Reservation => !("refused" in r));
      expect(ok).toHaveLength(10);
      expect(results.filter((r) => "refused" in r).every((r) => (r as ReserveRefusal).reason === "budget")).toBe(true);
      expect(await store.budgetState(keyId)).toEqual({ budgetMicroEur: 10, spentMicroEur: 0, reservedMicroEur: 10 });

      await Promise.all(ok.map((r, i) => store.settle(r.id, usage(requestId(`burst-${i}`), 1))));
      expect(await store.budgetState(keyId)).toEqual({ budgetMicroEur: 10, spentMicroEur: 10, reservedMicroEur: 0 });
      const ledger = await db.query<{ n: string; spent: string }>("SELECT count(*)::text AS n, sum(cost_micro_eur)::text AS spent FROM usage_events WHERE key_id = $1", [keyId]);
      expect(ledger.rows[0]).toEqual({ n: "10", spent: "10" });
      expect(await store.reserve(keyId, 1, 60_000)).toEqual({ refused: "key", reason: "budget" });

      // Raising the budget frees room at once; null is unlimited.
      await store.setLimits(keyId, { budgetMicroEur: 11 });
      held(await store.reserve(keyId, 1, 60_000));
      expect(await store.reserve(keyId, 1, 60_000)).toEqual({ refused: "key", reason: "budget" });
      await store.setLimits(keyId, { budgetMicroEur: null });
      held(await store.reserve(keyId, 1_000_000, 60_000));
    });

    it("a reservation past its TTL stops counting, is marked expired, and cannot be renewed", async () => {
      const { keyId } = await store.createKey({ name: "ttl", scopes: ["chat"], budgetMicroEur: 1 });
      const r = held(await store.reserve(keyId, 1, 300));
      expect(await store.reserve(keyId, 1, 60_000)).toEqual({ refused: "key", reason: "budget" });
      await sleep(400);
      expect(await store.expireReservations()).toBeGreaterThanOrEqual(1);
      const state = await db.query<{ state: string }>("SELECT state FROM reservations WHERE id = $1", [r.id]);
      expect(state.rows[0].state).toBe("expired");
      expect(await store.renew(r.id, 60_000)).toBe(false);
      const next = held(await store.reserve(keyId, 1, 60_000));

      // A live one renews; a late settle of the expired one is still billed (the work was done) and says so.
      expect(await store.renew(next.id, 60_000)).toBe(true);
      expect(await store.settle(r.id, usage(requestId("late"), 1))).toEqual({ recorded: true, previousState: "expired", overrunMicroEur: 0 });
    });

    it("release frees the budget once; reserve alone ignores expired reservations", async () => {
      const { keyId } = await store.createKey({ name: "release", scopes: ["chat"], budgetMicroEur: 3 });
      const a = held(await store.reserve(keyId, 3, 60_000));
      expect(await store.reserve(keyId, 1, 60_000)).toEqual({ refused: "key", reason: "budget" });
      expect(await store.release(a.id)).toBe(true);
      expect(await store.release(a.id)).toBe(false);
      held(await store.reserve(keyId, 2, 200));
      await sleep(300);
      // No expireReservations() in between: reserve does not wait for a sweeper.
      held(await store.reserve(keyId, 3, 60_000));
    });

    it("settle is idempotent by reservation and by request id, and the ledger is append-only", async () => {
      const { keyId } = await store.createKey({ name: "settle", scopes: ["chat"], budgetMicroEur: 100 });
      const id = requestId("once");
      const a = held(await store.reserve(keyId, 10, 60_000));
      expect(await store.settle(a.id, usage(id, 7))).toEqual({ recorded: true, previousState: "open", overrunMicroEur: 0 });
      expect(await store.settle(a.id, usage(id, 7))).toEqual({ recorded: false, previousState: "settled", overrunMicroEur: 0 });
      const b = held(await store.reserve(keyId, 10, 60_000));
      expect((await store.settle(b.id, usage(id, 7))).recorded).toBe(false);
      expect(await store.budgetState(keyId)).toEqual({ budgetMicroEur: 100, spentMicroEur: 7, reservedMicroEur: 0 });
      const events = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM usage_events WHERE id = $1", [id]);
      expect(events.rows[0].n).toBe("1");
      expect(await store.usageEvent(id)).toMatchObject({ requestId: id, keyId, costMicroEur: 7, costWithoutSpeculationMicroEur: 21, status: "completed" });

      // A cost above the reservation is recorded as it was, and reported.
      const c = held(await store.reserve(keyId, 5, 60_000));
      expect(await store.settle(c.id, usage(requestId("over"), 6))).toMatchObject({ recorded: true, overrunMicroEur: 1 });

      await expect(db.query("UPDATE usage_events SET cost_micro_eur = 0 WHERE id = $1", [id])).rejects.toThrow(/append-only/);
      await expect(db.query("DELETE FROM usage_events WHERE id = $1", [id])).rejects.toThrow(/append-only/);
      await expect(store.settle("00000000-0000-0000-0000-000000000000", usage(requestId("none"), 1))).rejects.toThrow(/unknown reservation/);
    });

    it("usageByDay sums tokens, passes, cost and saving per day and model", async () => {
      const { keyId } = await store.createKey({ name: "usage", scopes: ["chat"] });
      const settleOne = async (model: string, cost: number, status = "completed") => store.settle(held(await store.reserve(keyId, cost, 60_000)).id, usage(requestId("u"), cost, model, { status }));
      await settleOne("alia-40b", 100);
      await settleOne("alia-40b", 50, "cancelled");
      await settleOne("salamandra-7b", 30);
      const today = (await db.query<{ d: string }>("SELECT (now() AT TIME ZONE 'UTC')::date::text AS d")).rows[0].d;
      expect(await store.usageByDay(keyId, today, today)).toEqual([
        { day: today, model: "alia-40b", requests: 2, promptTokens: 20, completionTokens: 40, targetPasses: 10, costMicroEur: 150, savingMicroEur: 300 },
        { day: today, model: "salamandra-7b", requests: 1, promptTokens: 10, completionTokens: 20, targetPasses: 5, costMicroEur: 30, savingMicroEur: 60 },
      ]);
      expect(await store.usageByDay(keyId, "2000-01-01", "2000-12-31")).toEqual([]);
    });

    it("the export outbox hands out every event exactly once, and a batch survives an exporter crash unchanged", async () => {
      const { keyId } = await store.createKey({ name: "export", scopes: ["chat"] });
      for (let i = 0; i < 3; i++) await store.settle(held(await store.reserve(keyId, 1, 60_000)).id, usage(requestId(`x${i}`), 1));

      const exported: string[] = [];
      const names = new Set<string>();
      for (;;) {
        const batch = await store.pendingExport(2);
        if (!batch) break;
        expect(batch.events.length).toBeGreaterThan(0);
        expect(batch.events.length).toBeLessThanOrEqual(2);
        expect(batch.objectName).toMatch(new RegExp(`^usage/${batch.day}/\\d{20}-\\d{20}\\.jsonl$`));
        // The exporter "crashes" after writing, before marking: the next call returns the very same batch.
        expect(await store.pendingExport(2)).toEqual(batch);
        expect(await store.markExported(batch.objectName)).toBe(batch.events.length);
        expect(await store.markExported(batch.objectName)).toBe(0);
        expect(names.has(batch.objectName)).toBe(false);
        names.add(batch.objectName);
        exported.push(...batch.events.map((e) => e.requestId));
      }
      const all = await db.query<{ id: string }>("SELECT id FROM usage_events");
      expect(exported.length).toBe(new Set(exported).size);
      expect(new Set(exported)).toEqual(new Set(all.rows.map((r) => r.id)));
    });

    it("rate limits: 10 concurrent takes against 3 rpm admit exactly 3, by the database clock, with OpenAI's headers", async () => {
      const { keyId } = await store.createKey({ name: "rpm", scopes: ["chat"], rpmLimit: 3 });
      const before = Date.now();
      const takes = await Promise.all(Array.from({ length: 10 }, () => store.takeRateLimit(keyId, 5)));
      const decisions = takes.map((t) => {
        if ("refused" in t) throw new Error(`key refused: ${t.reason}`);
        return t;
      });
      const ok = decisions.filter((d) => d.allowed);
      expect(ok.length).toBe(3);
      expect(ok.map((d) => d.headers["x-ratelimit-remaining-requests"]).sort()).toEqual(["0", "1", "2"]);
      for (const d of decisions.filter((x) => !x.allowed)) {
        expect(d).toMatchObject({ refusedBy: ["requests"], tooLarge: false, limits: { requestsPerMinute: 3, tokensPerMinute: null } });
        expect(d.retryAfterS).toBeGreaterThanOrEqual(1);
        expect(d.retryAfterS).toBeLessThanOrEqual(20);
        expect(d.headers).toMatchObject({ "x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0" });
        expect(d.headers["x-ratelimit-limit-tokens"]).toBeUndefined();
      }
      // The state is on the database's clock (ms), which here is the same machine's: within a few seconds.
      const { rows } = await db.query<{ at_ms: unknown; request_ticks: unknown }>("SELECT at_ms, request_ticks FROM rate_limit_state WHERE key_id = $1", [keyId]);
      expect(Math.abs(Number(rows[0].at_ms) - before)).toBeLessThan(5_000);
      expect(Number(rows[0].request_ticks)).toBeGreaterThan(2 * 60_000);
    });

    it("rate limits: tokens per minute, refunds of unused tokens, a request too large for a minute, keys without limits", async () => {
      const { keyId } = await store.createKey({ name: "tpm", scopes: ["chat"], tpmLimit: 100 });
      const take = async (tokens: number) => {
        const t = await store.takeRateLimit(keyId, tokens);
        if ("refused" in t) throw new Error(`key refused: ${t.reason}`);
        return t;
      };
      expect(await take(80)).toMatchObject({ allowed: true, headers: { "x-ratelimit-limit-tokens": "100", "x-ratelimit-remaining-tokens": "20" } });
      expect(await take(30)).toMatchObject({ allowed: false, refusedBy: ["tokens"], tooLarge: false });
      await store.refundRateLimitTokens(keyId, 50); // the request used 30 of its 80
      expect((await take(30)).allowed).toBe(true);
      expect(await take(101)).toMatchObject({ allowed: false, tooLarge: true, refusedBy: ["tokens"] });

      const { keyId: free } = await store.createKey({ name: "free", scopes: ["chat"] });
      expect(await store.takeRateLimit(free, 1_000_000)).toMatchObject({ allowed: true, headers: {} });
      expect((await db.query("SELECT 1 FROM rate_limit_state WHERE key_id = $1", [free])).rows).toEqual([]);
      await store.refundRateLimitTokens(free, 10); // no limit: nothing to give back, no error

      expect(await store.takeRateLimit("aaaaaaaaaaaa", 1)).toEqual({ refused: "key", reason: "unknown_key" });
      await store.revokeKey(keyId);
      expect(await store.takeRateLimit(keyId, 1)).toEqual({ refused: "key", reason: "revoked" });
    });

    it("org budgets: a key with room left is refused once its org's budget is spent; the key's own budget still holds", async () => {
      const org = await store.createOrg({ name: "acme", budgetMicroEur: 10, budgetPeriod: "month" });
      expect(org).toMatchObject({ name: "acme", budgetMicroEur: 10, budgetPeriod: "month" });
      expect(org.orgId).toMatch(/^org-[a-z2-7]{12}$/);
      const { keyId: a } = await store.createKey({ name: "acme-a", scopes: ["chat"], budgetMicroEur: 100, budgetPeriod: "month", orgId: org.orgId });
      const { keyId: b } = await store.createKey({ name: "acme-b", scopes: ["chat"], orgId: org.orgId });
      expect(await store.getKey(a)).toMatchObject({ orgId: org.orgId, budgetMicroEur: 100 });

      const ra = held(await store.reserve(a, 6, 60_000));
      expect(await store.reserve(b, 5, 60_000)).toEqual({ refused: "org", reason: "org_budget" });
      const rb = held(await store.reserve(b, 4, 60_000));
      await store.settle(ra.id, usage(requestId("org-a"), 6));
      await store.settle(rb.id, usage(requestId("org-b"), 3));
      // Key a has 94 left of its own, but the org only 1.
      expect(await store.budgetState(a)).toEqual({
        budgetMicroEur: 100,
        spentMicroEur: 6,
        reservedMicroEur: 0,
        org: { ...org, spentMicroEur: 9, reservedMicroEur: 0, keyCount: 2 },
      });
      expect(await store.reserve(a, 2, 60_000)).toEqual({ refused: "org", reason: "org_budget" });
      const last = held(await store.reserve(a, 1, 60_000));
      expect(await store.renew(last.id, 60_000)).toBe(true);
      expect(await store.reserve(b, 1, 60_000)).toEqual({ refused: "org", reason: "org_budget" });
      expect((await store.getOrg(org.orgId))!).toMatchObject({ spentMicroEur: 9, reservedMicroEur: 1, keyCount: 2 });

      // When the key's own budget is the one out of room, the refusal names the key.
      const { keyId: c } = await store.createKey({ name: "acme-c", scopes: ["chat"], budgetMicroEur: 0, orgId: org.orgId });
      expect(await store.reserve(c, 1, 60_000)).toEqual({ refused: "key", reason: "budget" });

      // Raising the org's budget frees room at once; null is unlimited; a key out of the org is free of it.
      await store.setOrgLimits(org.orgId, { budgetMicroEur: 11 });
      held(await store.reserve(b, 1, 60_000));
      expect(await store.reserve(b, 1, 60_000)).toEqual({ refused: "org", reason: "org_budget" });
      expect((await store.setLimits(b, { orgId: null }))!.orgId).toBeNull();
      held(await store.reserve(b, 1_000, 60_000));
      expect((await store.budgetState(b))!.org).toBeUndefined();
      expect(await store.setOrgLimits(org.orgId, { budgetMicroEur: null, budgetPeriod: "day" })).toMatchObject({ budgetMicroEur: null, budgetPeriod: "day", keyCount: 2 });
      held(await store.reserve(a, 50, 60_000));

      // Unknown orgs are refused by name; listOrgs has the org; a malformed id is simply not found.
      await expect(store.createKey({ name: "x", scopes: ["chat"], orgId: "org-aaaaaaaaaaaa" })).rejects.toBeInstanceOf(UnknownOrgError);
      await expect(store.setLimits(a, { orgId: "nope" })).rejects.toThrow(/no org 'nope'/);
      expect((await store.getKey(a))!.orgId).toBe(org.orgId);
      expect((await store.listOrgs()).map((o) => o.orgId)).toContain(org.orgId);
      expect(await store.getOrg("org-aaaaaaaaaaaa")).toBeUndefined();
      expect(await store.setOrgLimits("x", { budgetMicroEur: 1 })).toBeUndefined();
    });

    it("two keys of one org, 50 concurrent reservations that the org allows 10 of: exactly 10 hold, the rest are refused for the org", async () => {
      const org = await store.createOrg({ name: "burst-org", budgetMicroEur: 10, budgetPeriod: "day" });
      const keys = await Promise.all([0, 1].map((i) => store.createKey({ name: `burst-org-${i}`, scopes: ["chat"], budgetMicroEur: 1_000, orgId: org.orgId })));
      const { keyId: mover } = await store.createKey({ name: "mover", scopes: ["chat"] });
      // A key attached and detached meanwhile takes the org lock too: no deadlock, no overrun.
      const moves = (async () => {
        for (let i = 0; i < 6; i++) await store.setLimits(mover, { orgId: i % 2 === 0 ? org.orgId : null });
      })();
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.reserve(keys[i % 2].keyId, 1, 60_000)));
      await moves;
      const ok = results.filter((r): r is Reservation => !("refused" in r));
      expect(ok).toHaveLength(10);
      expect(results.filter((r) => "refused" in r)).toEqual(Array.from({ length: 40 }, () => ({ refused: "org", reason: "org_budget" })));
      expect((await store.getOrg(org.orgId))!).toMatchObject({ spentMicroEur: 0, reservedMicroEur: 10 });

      await Promise.all(ok.map((r, i) => store.settle(r.id, usage(requestId(`org-burst-${i}`), 1))));
      const state = (await store.getOrg(org.orgId))!;
      expect(state).toMatchObject({ budgetMicroEur: 10, spentMicroEur: 10, reservedMicroEur: 0 });
      const perKey = await Promise.all(keys.map((k) => store.budgetState(k.keyId)));
      expect(perKey.reduce((s, b) => s + b!.spentMicroEur, 0)).toBe(10);
      for (const k of keys) expect(await store.reserve(k.keyId, 1, 60_000)).toEqual({ refused: "org", reason: "org_budget" });
    });

    it("ten keys of one org, three rounds of 50 concurrent reservations: never more than the org's 10 held", async () => {
      // Ten keys lock ten different key rows, so only the org lock keeps their checks apart (on PostgreSQL,
      // without it about every other round held 11 or more).
      for (let round = 0; round < 3; round++) {
        const org = await store.createOrg({ name: `ten-${round}`, budgetMicroEur: 10 });
        const keys = await Promise.all(Array.from({ length: 10 }, (_, i) => store.createKey({ name: `ten-${round}-${i}`, scopes: ["chat"], orgId: org.orgId })));
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.reserve(keys[i % 10].keyId, 1, 60_000)));
        expect(results.filter((r) => !("refused" in r))).toHaveLength(10);
        expect((await store.getOrg(org.orgId))!.reservedMicroEur).toBe(10);
      }
    });

    if (backend.name === "postgres") {
      it("reserve locks the org's row, then the key's; creating keys in the org and settling never wait for the org lock", async () => {
        const org = await store.createOrg({ name: "locks", budgetMicroEur: 5 });
        const { keyId } = await store.createKey({ name: "locks-a", scopes: ["chat"], orgId: org.orgId });
        const { keyId: other } = await store.createKey({ name: "locks-b", scopes: ["chat"], orgId: org.orgId });
        const before = held(await store.reserve(other, 1, 60_000));
        /** A row lock held by a transaction of the test's until release(); xid: its transaction id. */
        const hold = async (sql: string, param: string) => {
          let release!: () => void;
          const released = new Promise<void>((r) => (release = r));
          let lockedBy!: (xid: string) => void;
          const xid = new Promise<string>((r) => (lockedBy = r));
          const done = db.transaction(async (tx) => {
            await tx.query(sql, [param]);
            lockedBy((await tx.query<{ x: string }>("SELECT txid_current()::text AS x")).rows[0].x);
            await released;
          });
          return { xid: await xid, release, done };
        };
        /** Until some transaction waits for `xid`'s lock (bounded). */
        const waitedOn = async (xid: string) => {
          for (let i = 0; i < 400; i++, await sleep(25)) {
            const q = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted AND transactionid::text = $1", [xid]);
            if (q.rows[0].n !== "0") return;
          }
          throw new Error(`nothing waited on transaction ${xid}`);
        };
        const bounded = <T>(p: Promise<T>, what: string) => Promise.race([p, sleep(10_000).then(() => Promise.reject(new Error(`${what} waited on a lock`)))]);

        // The org row held: reserve waits for it, without holding the key row meanwhile.
        const orgHeld = await hold("SELECT 1 FROM orgs WHERE org_id = $1 FOR NO KEY UPDATE", org.orgId);
        try {
          const pending = store.reserve(keyId, 1, 60_000);
          await waitedOn(orgHeld.xid);
          await bounded(
            db.transaction((tx) => tx.query("SELECT 1 FROM api_keys WHERE key_id = $1 FOR UPDATE NOWAIT", [keyId])),
            "locking the key",
          );
          orgHeld.release();
          held(await pending);
        } finally {
          orgHeld.release();
          await orgHeld.done;
        }

        // The key row held: reserve takes the org row first and waits for the key with it — in a mode that
        // lets a new key of the org (a foreign key check) and a settle into the org's spend through.
        const keyHeld = await hold("SELECT 1 FROM api_keys WHERE key_id = $1 FOR UPDATE", keyId);
        try {
          const pending = store.reserve(keyId, 1, 60_000);
          await waitedOn(keyHeld.xid);
          await expect(db.transaction((tx) => tx.query("SELECT 1 FROM orgs WHERE org_id = $1 FOR NO KEY UPDATE NOWAIT", [org.orgId]))).rejects.toThrow(/could not obtain lock/);
          await bounded(store.createKey({ name: "locks-c", scopes: ["chat"], orgId: org.orgId }), "createKey");
          expect(await bounded(store.settle(before.id, usage(requestId("locks"), 1)), "settle")).toMatchObject({ recorded: true });
          keyHeld.release();
          held(await pending);
        } finally {
          keyHeld.release();
          await keyHeld.done;
        }
        expect((await store.getOrg(org.orgId))!).toMatchObject({ spentMicroEur: 1, reservedMicroEur: 2, keyCount: 3 });
      });

      it("three edge processes taking from one key at once never pass its 10 requests per minute", async () => {
        const rpm = 10;
        const { keyId } = await store.createKey({ name: "three-rpm", scopes: ["chat"], rpmLimit: rpm, tpmLimit: 1_000 });
        const schema = (await db.query<{ s: string }>("SELECT current_schema() AS s")).rows[0].s;
        const gate = 8_000_000 + Math.floor(Math.random() * 1_000_000);
        let open!: () => void;
        const gateOpen = new Promise<void>((r) => (open = r));
        let locked!: () => void;
        const gateLocked = new Promise<void>((r) => (locked = r));
        const holding = db.transaction(async (tx) => {
          await tx.query("SELECT pg_advisory_xact_lock($1)", [gate]);
          locked();
          await gateOpen;
        });
        await gateLocked;
        const procs = [0, 1, 2].map(() => startProcess("test/harness/billing-rate-burst.ts", { DATABASE_URL: PG_URL, SCHEMA: schema, KEY_ID: keyId, COUNT: "15", TOKENS: "7", GATE: String(gate) }));
        try {
          await Promise.all(procs.map((p) => p.waitFor(/^ready$/m, 60_000)));
          for (let waiting = 0; waiting < 3; await sleep(50)) {
            const q = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1", [gate]);
            waiting = Number(q.rows[0].n);
          }
          const started = Date.now();
          open();
          await holding;
          const results = await Promise.all(procs.map(async (p) => JSON.parse((await p.waitFor(/^result (.*)$/m, 60_000))[1])));
          const elapsed = Date.now() - started;
          for (const p of procs) expect((await p.exited()).code).toBe(0);
          const allowed = results.reduce((s, r) => s + r.allowed, 0);
          // A minute's burst (10), plus one more for each 6 s the burst itself took (GCRA's steady rate).
          expect(allowed).toBeGreaterThanOrEqual(rpm);
          expect(allowed).toBeLessThanOrEqual(rpm + Math.floor((elapsed * rpm) / 60_000));
          expect(results.reduce((s, r) => s + r.refused, 0)).toBe(45 - allowed);
          for (const r of results) if (r.refused) expect(r.minRetryAfterS).toBeGreaterThanOrEqual(1);
          const { rows } = await db.query<{ token_ticks: unknown }>("SELECT token_ticks FROM rate_limit_state WHERE key_id = $1", [keyId]);
          expect(Number(rows[0].token_ticks)).toBeLessThanOrEqual(allowed * 7 * 60_000);
        } finally {
          open();
          for (const p of procs) await p.stop("SIGKILL");
        }
      });

      /**
       * Three stand-in edge processes (billing-reserve-burst.ts) each reserving 20 × 1 µ€ on `keyIds` (spread
       * over them) at once: a shared advisory lock held here until all three wait on it opens them together.
       * Their results, after checking each exited cleanly.
       */
      async function threeProcessBurst(keyIds: string[], tag: string): Promise<{ reserved: number; refused: number; refusedByOrg: number; recorded: number }[]> {
        const schema = (await db.query<{ s: string }>("SELECT current_schema() AS s")).rows[0].s;
        const gate = 7_000_000 + Math.floor(Math.random() * 3_000_000);
        let open!: () => void;
        const gateOpen = new Promise<void>((r) => (open = r));
        let locked!: () => void;
        const gateLocked = new Promise<void>((r) => (locked = r));
        const holding = db.transaction(async (tx) => {
          await tx.query("SELECT pg_advisory_xact_lock($1)", [gate]);
          locked();
          await gateOpen;
        });
        await gateLocked;
        const procs = [0, 1, 2].map((i) =>
          startProcess("test/harness/billing-reserve-burst.ts", {
            MODE: "burst",
            DATABASE_URL: PG_URL,
            SCHEMA: schema,
            KEY_ID: keyIds.join(","),
            COUNT: "20",
            TTL_MS: "60000",
            GATE: String(gate),
            TAG: `${schema}-${tag}${i}`,
          }),
        );
        try {
          await Promise.all(procs.map((p) => p.waitFor(/^ready$/m, 60_000)));
          for (let waiting = 0; waiting < 3; await sleep(50)) {
            const q = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1", [gate]);
            waiting = Number(q.rows[0].n);
          }
          open();
          await holding;
          const results = await Promise.all(procs.map(async (p) => JSON.parse((await p.waitFor(/^result (.*)$/m, 60_000))[1])));
          for (const p of procs) expect((await p.exited()).code).toBe(0);
          return results;
        } finally {
          open();
          for (const p of procs) await p.stop("SIGKILL");
        }
      }
      const total = (results: Record<string, number>[], field: string) => results.reduce((s, r) => s + r[field], 0);

      it("three edge processes sharing the server spend one budget of 10 exactly", async () => {
        const { keyId } = await store.createKey({ name: "three", scopes: ["chat"], budgetMicroEur: 10 });
        const results = await threeProcessBurst([keyId], "p");
        expect([total(results, "reserved"), total(results, "refused"), total(results, "recorded")]).toEqual([10, 50, 10]);
        expect(await store.budgetState(keyId)).toEqual({ budgetMicroEur: 10, spentMicroEur: 10, reservedMicroEur: 0 });
        const ledger = await db.query<{ spent: string }>("SELECT sum(cost_micro_eur)::text AS spent FROM usage_events WHERE key_id = $1", [keyId]);
        expect(ledger.rows[0].spent).toBe("10");
      });

      it("three edge processes reserving on two keys of one org spend the org's budget of 10 exactly", async () => {
        const org = await store.createOrg({ name: "three-org", budgetMicroEur: 10, budgetPeriod: "month" });
        const keyIds = await Promise.all([0, 1].map(async (i) => (await store.createKey({ name: `three-org-${i}`, scopes: ["chat"], budgetMicroEur: 100, orgId: org.orgId })).keyId));
        const results = await threeProcessBurst(keyIds, "org-p");
        expect([total(results, "reserved"), total(results, "refusedByOrg"), total(results, "recorded")]).toEqual([10, 50, 10]);
        expect(await store.getOrg(org.orgId)).toMatchObject({ budgetMicroEur: 10, spentMicroEur: 10, reservedMicroEur: 0 });
        const ledger = await db.query<{ spent: string }>("SELECT sum(cost_micro_eur)::text AS spent FROM usage_events WHERE key_id = ANY($1::text[])", [keyIds]);
        expect(ledger.rows[0].spent).toBe("10");
      });

      it("an edge killed with -9 mid-request blocks its budget only until the reservation's TTL", async () => {
        const { keyId } = await store.createKey({ name: "killed", scopes: ["chat"], budgetMicroEur: 1 });
        const schema = (await db.query<{ s: string }>("SELECT current_schema() AS s")).rows[0].s;
        const edge = startProcess("test/harness/billing-reserve-burst.ts", { MODE: "hold", DATABASE_URL: PG_URL, SCHEMA: schema, KEY_ID: keyId, TTL_MS: "2000" });
        const [, reservationId] = await edge.waitFor(/^reserved (\S+)$/m, 60_000);
        expect((await edge.stop("SIGKILL")).signal).toBe("SIGKILL");
        const { rows } = await db.query<{ ms: number }>("SELECT (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::float8 AS ms FROM reservations WHERE id = $1", [reservationId]);
        if (rows[0].ms > 100) expect(await store.reserve(keyId, 1, 60_000)).toEqual({ refused: "key", reason: "budget" });
        await sleep(Math.max(0, rows[0].ms) + 100);
        held(await store.reserve(keyId, 1, 60_000));
        const state = await db.query<{ state: string }>("SELECT state FROM reservations WHERE id = $1", [reservationId]);
        expect(state.rows[0].state).toBe("expired");
      });
    }
  });
}

describe("PGlite in a data directory (the embedded default's persistence)", () => {
  it("keeps keys and spend across a close and reopen", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "alia-billing-"));
    try {
      let db = await PgliteSqlClient.open({ dataDir: dir });
      await migrate(db);
      let store = new AccountStore(db);
      const { key, keyId } = await store.createKey({ name: "persisted", scopes: ["translate"], budgetMicroEur: 5 });
      const r = held(await store.reserve(keyId, 5, 60_000));
      await store.settle(r.id, usage("persisted-1", 4));
      await db.close();

      db = await PgliteSqlClient.open({ dataDir: dir });
      expect(await migrate(db)).toEqual([]);
      store = new AccountStore(db);
      expect((await store.verifyKey(key))?.scopes).toEqual(["translate"]);
      expect(await store.budgetState(keyId)).toEqual({ budgetMicroEur: 5, spentMicroEur: 4, reservedMicroEur: 0 });
      expect(await store.reserve(keyId, 2, 60_000)).toEqual({ refused: "key", reason: "budget" });
      await db.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
