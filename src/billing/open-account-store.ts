// The account store a Node process (the edge, `npm run keys`) opens from BILLING_DATABASE_URL: a
// PostgreSQL server (`postgres://…`), or PGlite embedded in the process (`pglite:` in memory,
// `pglite:<directory>` on disk) so that a single machine needs no database server. Migrations run on open.
import { AccountStore } from "./account-store.ts";
import { migrate } from "./migrations.ts";
import type { SqlClient } from "./sql-client.ts";

export interface OpenedAccountStore {
  store: AccountStore;
  db: SqlClient;
  /** What it is, for start-up logs (no credentials). */
  label: string;
}

export async function openAccountStore(url: string): Promise<OpenedAccountStore> {
  let db: SqlClient;
  let label: string;
  if (url.startsWith("pglite:")) {
    const dataDir = url.slice("pglite:".length) || undefined;
    const { PgliteSqlClient } = await import("./pglite-sql-client.ts");
    db = await PgliteSqlClient.open(dataDir ? { dataDir } : {});
    label = dataDir ? `PGlite at ${dataDir}` : "PGlite in memory";
  } else if (/^postgres(ql)?:\/\//.test(url)) {
    const { PgSqlClient } = await import("./pg-sql-client.ts");
    db = new PgSqlClient({ connectionString: url });
    const u = new URL(url);
    label = `PostgreSQL at ${u.host}${u.pathname}`;
  } else throw new RangeError(`BILLING_DATABASE_URL must be postgres://… or pglite:[directory], got ${JSON.stringify(url.slice(0, 40))}`);
  await migrate(db);
  return { store: new AccountStore(db), db, label };
}
