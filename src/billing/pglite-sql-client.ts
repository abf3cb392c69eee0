// SqlClient over PGlite (PostgreSQL compiled to WebAssembly, in this process): the embedded default, so that
// `npm start` needs no server. In memory, or persisted in a data directory. One connection: PGlite runs one
// query or transaction at a time, so budgets are exact within this process but not shared with any other —
// several edge processes need the PostgreSQL server (pg-sql-client.ts).
import { PGlite } from "@electric-sql/pglite";
import { assertSchemaName, type SqlClient, type SqlQueryable, type SqlResult } from "./sql-client.ts";

export interface PgliteSqlClientOptions {
  /** A directory to persist the database in; in memory when absent. */
  dataDir?: string;
  /** Schema to create (if missing) and put on the search_path. */
  schema?: string;
}

export class PgliteSqlClient implements SqlClient {
  readonly #db: PGlite;

  /** Wraps an open PGlite (tests share one instance between schemas). */
  constructor(db: PGlite) {
    this.#db = db;
  }

  static async open(opts: PgliteSqlClientOptions = {}): Promise<PgliteSqlClient> {
    const db = await PGlite.create(opts.dataDir);
    if (opts.schema) {
      const s = assertSchemaName(opts.schema);
      await db.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await db.query(`SET search_path TO ${s}`);
    }
    return new PgliteSqlClient(db);
  }

  async query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<SqlResult<R>> {
    const r = await this.#db.query<R>(sql, params as unknown[] | undefined);
    return { rows: r.rows };
  }

  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
    return this.#db.transaction((t) =>
      fn({
        query: async <R>(sql: string, params?: unknown[]) => ({ rows: (await t.query<R>(sql, params as unknown[] | undefined)).rows }),
      }),
    );
  }

  async close(): Promise<void> {
    if (!this.#db.closed) await this.#db.close();
  }
}
