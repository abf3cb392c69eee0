// The one thing the billing store needs from a database: parameterised statements and transactions. Two
// implementations: pg-sql-client.ts (a PostgreSQL server, node-postgres) and pglite-sql-client.ts (PGlite,
// the embedded default). Kept this narrow so that a Worker-side driver can be added without touching the store.

export interface SqlResult<R> {
  rows: R[];
}

/** Runs one statement (`$1`, `$2`, … placeholders). One statement per call: PGlite's extended protocol takes no more. */
export interface SqlQueryable {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<SqlResult<R>>;
}

export interface SqlClient extends SqlQueryable {
  /**
   * Runs `fn` inside BEGIN … COMMIT on one connection; a throw rolls back and rethrows. `tx` is valid only
   * until `fn` settles. Transactions do not nest (the store never needs it).
   */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Integers from the driver (pg returns int8 and numeric as strings, PGlite int8 as numbers) as safe JS integers. */
export function toInt(v: unknown): number {
  if (v === null || v === undefined) return 0;
  const n = typeof v === "number" ? v : Number(typeof v === "bigint" ? v : String(v));
  if (!Number.isSafeInteger(n)) throw new RangeError(`not a safe integer: ${String(v)}`);
  return n;
}

/** A nullable integer column. */
export function toIntOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : toInt(v);
}

/** A schema name safe to splice into SQL (identifiers cannot be parameters). */
export function assertSchemaName(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid schema name: ${JSON.stringify(schema)}`);
  return schema;
}
