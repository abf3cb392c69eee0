// A stand-in edge process for test/account-store.test.ts: several of these share one PostgreSQL server, as
// edge processes do. Environment: DATABASE_URL, SCHEMA, KEY_ID, TTL_MS, and MODE:
// - "burst": waits at a gate (a shared advisory lock the test holds exclusively, GATE), then makes COUNT
//   concurrent reserve() calls of 1 micro-euro, settles each success (request id TAG-i, cost 1), prints
//   `result {"reserved":…,"refused":…,"refusedByOrg":…,"recorded":…}` and exits. KEY_ID may be a
//   comma-separated list (keys of one org): call i reserves on key i mod n;
// - "hold": reserves 1, prints `reserved <id>`, and waits to be killed (an edge dying mid-stream).
import { AccountStore } from "../../src/billing/account-store.ts";
import { PgSqlClient } from "../../src/billing/pg-sql-client.ts";

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

const mode = env("MODE");
const keyIds = env("KEY_ID").split(",");
const keyId = keyIds[0];
const ttlMs = Number(env("TTL_MS"));
const count = mode === "burst" ? Number(env("COUNT")) : 1;
// One connection per concurrent call, so that all of them reach the server at once.
const db = new PgSqlClient({ connectionString: env("DATABASE_URL"), schema: env("SCHEMA"), max: count });
const store = new AccountStore(db);

if (mode === "hold") {
  const r = await store.reserve(keyId, 1, ttlMs);
  if ("refused" in r) throw new Error(`refused: ${r.reason}`);
  console.log(`reserved ${r.id}`);
  setInterval(() => {}, 60_000);
} else {
  const gate = Number(env("GATE"));
  const tag = env("TAG");
  console.log("ready");
  await db.transaction((tx) => tx.query("SELECT pg_advisory_xact_lock_shared($1)", [gate]));
  const results = await Promise.all(Array.from({ length: count }, (_, i) => store.reserve(keyIds[i % keyIds.length], 1, ttlMs)));
  let recorded = 0;
  await Promise.all(
    results.map(async (r, i) => {
      if ("refused" in r) return;
      const s = await store.settle(r.id, {
        requestId: `${tag}-${i}`,
        model: "burst",
        promptTokens: 1,
        completionTokens: 1,
        targetPasses: 1,
        costMicroEur: 1,
        costWithoutSpeculationMicroEur: 2,
        status: "completed",
      });
      if (s.recorded) recorded++;
    }),
  );
  const reserved = results.filter((r) => !("refused" in r)).length;
  const refusedByOrg = results.filter((r) => "refused" in r && r.refused === "org").length;
  console.log(`result ${JSON.stringify({ reserved, refused: count - reserved, refusedByOrg, recorded })}`);
  await db.close();
}
