// SqlClient for the Worker: PostgreSQL through a Hyperdrive binding (the same server the Node edges use, so
// budgets and rate limits hold across both runtimes). A Worker may not use a socket opened by another
// request, so every statement or transaction opens its own connection and closes it; Hyperdrive pools the
// real connections next to the database, which keeps that cheap. node-postgres runs in workerd with the
// `nodejs_compat` flag (its sockets come from `cloudflare:sockets`).
import pg from "pg";
import { assertSchemaName, type SqlClient, type SqlQueryable, type SqlResult } from "./sql-client.ts";

export class HyperdriveSqlClient implements SqlClient {
  readonly #config: pg.ClientConfig;

  /** `schema`: the search_path of every connection (one deployment per schema); the server's default when absent. */
  constructor(connectionString: string, schema?: string) {
    this.#config = {
      connectionString,
      application_name: "alia-edge-worker",
      ...(schema ? { options: `-c search_path=${assertSchemaName(schema)}` } : {}),
    };
  }

  async #withConnection<T>(fn: (conn: pg.Client) => Promise<T>): Promise<T> {
    const conn = new pg.Client(this.#config);
    // A connection the server drops mid-call fails that call; without a listener the event would throw.
    conn.on("error", () => {});
    await conn.connect();
    try {
      return await fn(conn);
    } finally {
      await conn.end().catch(() => {});
    }
  }

  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<SqlResult<R>> {
    return this.#withConnection(async (conn) => ({ rows: (await conn.query(sql, params as unknown[] | undefined)).rows as R[] }));
  }

  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
    return this.#withConnection(async (conn) => {
      const tx: SqlQueryable = { query: async <R>(sql: string, params?: unknown[]) => ({ rows: (await conn.query(sql, params as unknown[] | undefined)).rows as R[] }) };
      await conn.query("BEGIN");
      try {
        const out = await fn(tx);
        await conn.query("COMMIT");
        return out;
      } catch (e) {
        // The connection is closed right after, which ends the transaction anyway if ROLLBACK fails.
        await conn.query("ROLLBACK").catch(() => {});
        throw e;
      }
    });
  }

  async close(): Promise<void> {}
}
