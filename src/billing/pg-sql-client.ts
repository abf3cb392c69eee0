// SqlClient over a PostgreSQL server (node-postgres Pool): production, and the shared store that several edge
// processes use so that budgets hold across all of them. Node only: the Worker bundle must not import this file.
import pg from "pg";
import { assertSchemaName, type SqlClient, type SqlQueryable, type SqlResult } from "./sql-client.ts";

export interface PgSqlClientOptions {
  /** postgres://user@host:port/database */
  connectionString: string;
  /** Schema for every connection's search_path (tests use a fresh one per run); the server's default when absent. */
  schema?: string;
  /** Pool size; waiting reservations hold a connection each, so this bounds one process's concurrency. */
  max?: number;
}

export class PgSqlClient implements SqlClient {
  readonly #pool: pg.Pool;

  constructor(opts: PgSqlClientOptions) {
    this.#pool = new pg.Pool({
      connectionString: opts.connectionString,
      max: opts.max ?? 10,
      application_name: "alia-edge",
      // Per connection, so every pooled connection sees the same tables whichever one a query lands on.
      ...(opts.schema ? { options: `-c search_path=${assertSchemaName(opts.schema)}` } : {}),
    });
    // An idle connection the server drops (restart, failover) is discarded by the pool; without a listener
    // the "error" event would crash the process instead. The next query opens a new connection.
    this.#pool.on("error", () => {});
  }

  async query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<SqlResult<R>> {
    const r = await this.#pool.query(sql, params as unknown[] | undefined);
    return { rows: r.rows as R[] };
  }

  async transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
    const conn = await this.#pool.connect();
    const tx: SqlQueryable = {
      query: async <R>(sql: string, params?: unknown[]) => ({ rows: (await conn.query(sql, params as unknown[] | undefined)).rows as R[] }),
    };
    try {
      await conn.query("BEGIN");
      const out = await fn(tx);
      await conn.query("COMMIT");
      conn.release();
      return out;
    } catch (e) {
      // A connection whose ROLLBACK fails is in an unknown state: destroy it rather than return it to the pool.
      try {
        await conn.query("ROLLBACK");
        conn.release();
      } catch (rollbackError) {
        conn.release(rollbackError as Error);
      }
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
