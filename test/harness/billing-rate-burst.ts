// A stand-in edge process for test/account-store.test.ts's rate-limit case: several of these share one
// PostgreSQL server, as edge processes do. Environment: DATABASE_URL, SCHEMA, KEY_ID, COUNT, TOKENS, GATE.
// Prints `ready`, waits at the gate (a shared advisory lock the test holds exclusively), makes COUNT
// concurrent takeRateLimit(KEY_ID, TOKENS) calls, prints `result {"allowed":…,"refused":…,"minRetryAfterS":…}`
// and exits.
import { AccountStore } from "../../src/billing/account-store.ts";
import { PgSqlClient } from "../../src/billing/pg-sql-client.ts";

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

const count = Number(env("COUNT"));
const tokens = Number(env("TOKENS"));
const keyId = env("KEY_ID");
// One connection per concurrent call, so that all of them reach the server at once.
const db = new PgSqlClient({ connectionString: env("DATABASE_URL"), schema: env("SCHEMA"), max: count });
const store = new AccountStore(db);

console.log("ready");
await db.transaction((tx) => tx.query("SELECT pg_advisory_xact_lock_shared($1)", [Number(env("GATE"))]));
const results = await Promise.all(Array.from({ length: count }, () => store.takeRateLimit(keyId, tokens)));
let allowed = 0;
let minRetryAfterS = Number.POSITIVE_INFINITY;
for (const r of results) {
  if ("refused" in r) throw new Error(`key refused: ${r.reason}`);
  if (r.allowed) allowed++;
  else minRetryAfterS = Math.min(minRetryAfterS, r.retryAfterS);
}
console.log(`result ${JSON.stringify({ allowed, refused: count - allowed, minRetryAfterS: Number.isFinite(minRetryAfterS) ? minRetryAfterS : null })}`);
await db.close();
