// The billing schema, versioned. SQL lives in TypeScript rather than .sql files because a Worker cannot read
// files. Each migration is a list of single statements (PGlite's extended protocol takes one per query) and is
// applied in its own transaction together with its schema_migrations row, so it is all there or not at all.
// Never edit a migration that has shipped: add the next version.
import type { SqlClient } from "./sql-client.ts";

export interface Migration {
  version: number;
  name: string;
  statements: readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "keys, reservations, usage ledger, export outbox",
    statements: [
      // Money is integer micro-euros (bigint) everywhere: sums and comparisons are exact.
      `CREATE TABLE api_keys (
        key_id text PRIMARY KEY CHECK (key_id ~ '^[a-z2-7]{12}$'),
        secret_sha256 text NOT NULL CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
        name text NOT NULL,
        scopes text[] NOT NULL CHECK (scopes <@ ARRAY['chat', 'translate', 'admin']::text[]),
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        budget_micro_eur bigint CHECK (budget_micro_eur >= 0),
        budget_period text NOT NULL DEFAULT 'none' CHECK (budget_period IN ('none', 'day', 'month')),
        rpm_limit integer CHECK (rpm_limit > 0),
        tpm_limit integer CHECK (tpm_limit > 0)
      )`,
      // The first day of the budget period that contains `at`, in UTC; 'none' is one period since 1970.
      `CREATE FUNCTION billing_period_start(period text, at timestamptz) RETURNS date LANGUAGE sql STABLE AS $$
        SELECT CASE period
          WHEN 'month' THEN date_trunc('month', at AT TIME ZONE 'UTC')::date
          WHEN 'day' THEN (at AT TIME ZONE 'UTC')::date
          ELSE DATE '1970-01-01'
        END
      $$`,
      // Settled spend per key and period: one row read instead of summing the ledger on every reservation.
      `CREATE TABLE key_spend (
        key_id text NOT NULL REFERENCES api_keys,
        period_start date NOT NULL,
        spent_micro_eur bigint NOT NULL CHECK (spent_micro_eur >= 0),
        PRIMARY KEY (key_id, period_start)
      )`,
      `CREATE TABLE reservations (
        id uuid PRIMARY KEY,
        key_id text NOT NULL REFERENCES api_keys,
        amount_micro_eur bigint NOT NULL CHECK (amount_micro_eur >= 0),
        state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'settled', 'released', 'expired')),
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        closed_at timestamptz
      )`,
      "CREATE INDEX reservations_open_by_key ON reservations (key_id, expires_at) WHERE state = 'open'",
      "CREATE INDEX reservations_open_by_expiry ON reservations (expires_at) WHERE state = 'open'",
      // The ledger: one row per request, id = the request id (so a retried settle cannot count twice).
      `CREATE TABLE usage_events (
        id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
        key_id text NOT NULL REFERENCES api_keys,
        reservation_id uuid REFERENCES reservations,
        model text NOT NULL,
        prompt_tokens integer NOT NULL CHECK (prompt_tokens >= 0),
        completion_tokens integer NOT NULL CHECK (completion_tokens >= 0),
        target_passes integer NOT NULL CHECK (target_passes >= 0),
        cost_micro_eur bigint NOT NULL CHECK (cost_micro_eur >= 0),
        cost_without_speculation_micro_eur bigint NOT NULL CHECK (cost_without_speculation_micro_eur >= 0),
        status text NOT NULL CHECK (length(status) BETWEEN 1 AND 40),
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
      "CREATE INDEX usage_events_by_key_time ON usage_events (key_id, created_at)",
      // Append-only, enforced by the database rather than by convention: an UPDATE or DELETE is an error.
      `CREATE FUNCTION usage_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'usage_events is append-only (% refused)', TG_OP;
        END
      $$`,
      "CREATE TRIGGER usage_events_append_only BEFORE UPDATE OR DELETE ON usage_events FOR EACH ROW EXECUTE FUNCTION usage_events_append_only()",
      // Transactional outbox, written in the settle transaction. object_name is set once, when an exporter
      // claims the row into a batch; exported_at when that object is written (see AccountStore.pendingExport).
      `CREATE TABLE export_outbox (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id text NOT NULL UNIQUE REFERENCES usage_events,
        day date NOT NULL,
        object_name text,
        claimed_at timestamptz,
        exported_at timestamptz
      )`,
      "CREATE INDEX export_outbox_unclaimed ON export_outbox (seq) WHERE object_name IS NULL",
      "CREATE INDEX export_outbox_by_object ON export_outbox (object_name) WHERE object_name IS NOT NULL",
    ],
  },
  {
    version: 2,
    name: "rate limit state per key",
    statements: [
      // The GCRA buckets of src/billing/rate-limit.ts (RateLimitState), one row per key that was ever
      // rate-limited: at_ms is the database clock in ms, the ticks are exact integers (≤ 6·10^13: bigint).
      // Read and written only under the key's api_keys row lock (AccountStore.takeRateLimit).
      `CREATE TABLE rate_limit_state (
        key_id text PRIMARY KEY REFERENCES api_keys,
        at_ms bigint NOT NULL CHECK (at_ms >= 0),
        request_ticks bigint NOT NULL CHECK (request_ticks >= 0),
        token_ticks bigint NOT NULL CHECK (token_ticks >= 0),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
    ],
  },
  {
    version: 3,
    name: "organisations: a budget shared by their keys",
    statements: [
      // An org's budget has the key budget's semantics: µ€ per period (billing_period_start), null = unlimited.
      `CREATE TABLE orgs (
        org_id text PRIMARY KEY CHECK (org_id ~ '^org-[a-z2-7]{12}$'),
        name text NOT NULL,
        budget_micro_eur bigint CHECK (budget_micro_eur >= 0),
        budget_period text NOT NULL DEFAULT 'none' CHECK (budget_period IN ('none', 'day', 'month')),
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
      // Null: the key has no org and only its own budget applies, as before this migration.
      "ALTER TABLE api_keys ADD COLUMN org_id text REFERENCES orgs",
      "CREATE INDEX api_keys_by_org ON api_keys (org_id) WHERE org_id IS NOT NULL",
      // Settled spend per org and period, added in the settle transaction for the key's org at that moment
      // (as key_spend is for the key): reserve reads one row instead of summing the ledger of every key.
      `CREATE TABLE org_spend (
        org_id text NOT NULL REFERENCES orgs,
        period_start date NOT NULL,
        spent_micro_eur bigint NOT NULL CHECK (spent_micro_eur >= 0),
        PRIMARY KEY (org_id, period_start)
      )`,
    ],
  },
];

/**
 * Applies the migrations not yet in schema_migrations, in version order; returns the versions it applied.
 * Safe when several processes start at once: each migration's transaction first takes a transaction-scoped
 * advisory lock (keyed by the schema, so separate schemas do not wait on each other), then re-reads
 * schema_migrations, so a process that waited finds the version applied and skips it. The lock also covers
 * CREATE TABLE IF NOT EXISTS schema_migrations, which on its own can fail when two sessions race it.
 */
export async function migrate(db: SqlClient, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  const applied: number[] = [];
  for (const m of sorted) {
    const did = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(hashtext(coalesce(current_schema(), '') || '.schema_migrations'))");
      await tx.query("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
      const { rows } = await tx.query("SELECT 1 FROM schema_migrations WHERE version = $1", [m.version]);
      if (rows.length > 0) return false;
      for (const statement of m.statements) await tx.query(statement);
      await tx.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [m.version, m.name]);
      return true;
    });
    if (did) applied.push(m.version);
  }
  return applied;
}
