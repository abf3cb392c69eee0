// A fresh schema on the real PostgreSQL server (127.0.0.1:5432, database test) for one test file's
// billing: migrated, an AccountStore on it, and the BILLING_DATABASE_URL that points an edge process at
// the same schema (libpq's `options`, which node-postgres passes to the server). Dropped by close().
import { AccountStore } from "../../src/billing/account-store.ts";
import { migrate } from "../../src/billing/migrations.ts";
import { PgSqlClient } from "../../src/billing/pg-sql-client.ts";

export const PG_URL = "postgres://postgres@127.0.0.1:5432/test";

export interface BillingSchema {
  store: AccountStore;
  /** The schema's name (a Worker's BILLING_DB_SCHEMA). */
  schema: string;
  /** BILLING_DATABASE_URL for an edge process on this schema. */
  url: string;
  close(): Promise<void>;
}

export async function billingSchema(prefix: string): Promise<BillingSchema> {
  const schema = `t_${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new PgSqlClient({ connectionString: PG_URL, max: 1 });
  await admin.query(`CREATE SCHEMA ${schema}`);
  const db = new PgSqlClient({ connectionString: PG_URL, schema });
  await migrate(db);
  return {
    store: new AccountStore(db),
    schema,
    url: `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`,
    async close() {
      await db.close();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.close();
    },
  };
}
