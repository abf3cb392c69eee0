// Keys, budgets and the usage ledger over a SqlClient (PostgreSQL server or PGlite; schema in migrations.ts).
//
// Budget invariant: for every key with a budget, settled spend in the current period plus the open, unexpired
// reservations never exceeds the budget — whatever number of edge processes share the database. The same holds
// for every org with a budget, over the spend settled under it and the open reservations of all its keys.
//
// Why it is race-free (reserve, settle, renew, takeRateLimit): each takes `SELECT … FOR UPDATE` on the key's api_keys row
// first (reserve and renew: right after the row of the key's org, see Orgs below), in a READ COMMITTED transaction, so those operations on one key run one at a time in the server,
// whichever process or connection issues them. In READ COMMITTED every statement takes a fresh snapshot, so
// the statement after the lock sees every reservation and spend committed by earlier lock holders; the check
// (spend + open reservations + amount <= budget) and the insert are then one statement under that lock. Without
// the lock two transactions could each check a snapshot lacking the other's uncommitted row and both insert.
// release and expiry only ever shrink the open set, so they need no key lock. Lock order is always key row,
// then reservation rows (expiry skips locked rows), so these operations cannot deadlock with one another.
//
// Orgs: reserve and renew of a key in an org first lock the org's row, then the key's (always that order; see
// withOrgAndKeyLocked), so every operation that can grow an org's held amount runs one at a time per org, and
// the statement that checks both budgets and inserts sees every earlier holder's reservations and spend,
// whichever of the org's keys they were for. Attaching a key to an org (setLimits) takes the org lock too,
// since the key's open reservations count for the org from then on. The org row is locked FOR NO KEY UPDATE,
// which does not conflict with the FOR KEY SHARE lock a foreign key check takes: creating a key in the org or
// settling (which adds to org_spend under the key lock only) never waits on the org lock, so no lock cycle.
// Expiry is judged by the database's clock_timestamp() only — one clock for every edge.
// PGlite has one connection and runs one transaction at a time: the same code is trivially serial there.
import { sha256Hex } from "../common/hash.ts";
import { checkRateLimit, EMPTY_RATE_LIMIT_STATE, type RateLimitDecision, type RateLimits, type RateLimitState, refundTokens } from "./rate-limit.ts";
import { type SqlClient, type SqlQueryable, toInt, toIntOrNull } from "./sql-client.ts";

export const SCOPES = ["chat", "translate", "admin"] as const;
export type Scope = (typeof SCOPES)[number];
export type BudgetPeriod = "none" | "day" | "month";

export interface KeyLimits {
  /** Spend allowed per period, in micro-euros; null = unlimited. */
  budgetMicroEur: number | null;
  budgetPeriod: BudgetPeriod;
  /** Requests and tokens per minute; null = no limit. Enforced by takeRateLimit (state in rate_limit_state). */
  rpmLimit: number | null;
  tpmLimit: number | null;
}

export interface KeyRecord extends KeyLimits {
  keyId: string;
  name: string;
  scopes: Scope[];
  createdAt: Date;
  revokedAt: Date | null;
  /** The org whose budget the key also spends; null = only the key's own budget. */
  orgId: string | null;
}

export interface CreateKeyInput extends Partial<KeyLimits> {
  name: string;
  scopes: Scope[];
  orgId?: string | null;
}

/** What setLimits() may change: the limits given, and the key's org (null detaches it). */
export interface KeyChanges extends Partial<KeyLimits> {
  orgId?: string | null;
}

/** An org's budget: the same semantics as a key's (µ€ per UTC period; null = unlimited). */
export interface OrgLimits {
  budgetMicroEur: number | null;
  budgetPeriod: BudgetPeriod;
}

export interface CreateOrgInput extends Partial<OrgLimits> {
  name: string;
}

export interface OrgRecord extends OrgLimits {
  orgId: string;
  name: string;
  createdAt: Date;
}

/** An org with its spend settled this period and what its keys' open reservations hold. */
export interface OrgState extends OrgRecord {
  spentMicroEur: number;
  reservedMicroEur: number;
  /** Keys in the org, revoked ones included. */
  keyCount: number;
}

/** createKey() or setLimits() named an org that does not exist. */
export class UnknownOrgError extends Error {
  constructor(readonly orgId: string) {
    super(`no org '${orgId}'`);
  }
}

export interface Reservation {
  id: string;
  keyId: string;
  amountMicroEur: number;
  expiresAt: Date;
}

/** takeRateLimit()'s decision, with the limits it was judged by (the key row's, read under its lock). */
export type RateLimitTake = RateLimitDecision & { limits: RateLimits };

const RATE_LIMIT_MAX = 1_000_000_000;

/**
 * reserve() could not hold the amount: over the key's budget, over its org's (`refused: "org"`), or the key
 * is revoked or unknown. Maps to 402 / 401. The reason alone names the limit too ("org_budget"), so a caller
 * that passes on only the reason still reports the right one.
 */
export type ReserveRefusal = { refused: "key"; reason: "budget" | "revoked" | "unknown_key" } | { refused: "org"; reason: "org_budget" };

export interface UsageEventInput {
  /** The request id; the ledger's primary key. */
  requestId: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  targetPasses: number;
  costMicroEur: number;
  /** What the request would have cost without speculation (saving = this − cost). */
  costWithoutSpeculationMicroEur: number;
  /** e.g. "completed", "failed", "cancelled". */
  status: string;
}

export interface UsageEvent extends UsageEventInput {
  keyId: string;
  /** ISO 8601, UTC, microseconds: the same text every time it is read (exported objects are byte-stable). */
  createdAt: string;
}

export interface SettleResult {
  /** false when this reservation was already settled, or this request id already has an event: nothing counted. */
  recorded: boolean;
  /** The reservation's state before settling: "expired" or "released" means the edge settled late. */
  previousState: "open" | "settled" | "released" | "expired";
  /** Cost above the reserved amount (0 when the edge reserved the maximum, as it must). Recorded all the same. */
  overrunMicroEur: number;
}

export interface BudgetState {
  budgetMicroEur: number | null;
  spentMicroEur: number;
  reservedMicroEur: number;
  /** The key's org, present only when it has one: the key can spend no more than either allows. */
  org?: OrgState;
}

export interface UsageDay {
  /** YYYY-MM-DD, UTC */
  day: string;
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  targetPasses: number;
  costMicroEur: number;
  savingMicroEur: number;
}

export interface ExportBatch {
  /** `usage/<day>/<first seq>-<last seq>.jsonl`: fixed when the batch is claimed, so a rewrite overwrites. */
  objectName: string;
  day: string;
  /** In outbox order; immutable, so the object's content is the same on every attempt. */
  events: UsageEvent[];
}

const KEY_PREFIX = "sk-alia-";
const KEY_RE = /^sk-alia-([a-z2-7]{12})_([A-Za-z0-9_-]{43})$/;
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

const KEY_COLUMNS = "key_id, name, scopes, created_at, revoked_at, budget_micro_eur, budget_period, rpm_limit, tpm_limit, org_id";
const ORG_ID_RE = /^org-[a-z2-7]{12}$/;

/** An org row with its spend this period, its keys' open reservations and its key count; `WHERE` follows. */
const ORG_STATE_SELECT = `SELECT o.org_id, o.name, o.budget_micro_eur, o.budget_period, o.created_at,
  coalesce((SELECT s.spent_micro_eur FROM org_spend s WHERE s.org_id = o.org_id AND s.period_start = billing_period_start(o.budget_period, clock_timestamp())), 0)::text AS spent,
  coalesce((SELECT sum(r.amount_micro_eur) FROM reservations r JOIN api_keys k ON k.key_id = r.key_id WHERE k.org_id = o.org_id AND r.state = 'open' AND r.expires_at > clock_timestamp()), 0)::text AS reserved,
  (SELECT count(*) FROM api_keys k WHERE k.org_id = o.org_id)::text AS key_count
  FROM orgs o`;

const EVENT_COLUMNS = `e.id, e.key_id, e.model, e.prompt_tokens, e.completion_tokens, e.target_passes, e.cost_micro_eur,
  e.cost_without_speculation_micro_eur, e.status, to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at`;

export class AccountStore {
  constructor(private readonly db: SqlClient) {}

  // ---- keys ----

  /** A new key. `key` is the only time the secret exists outside the caller: only its SHA-256 is stored. */
  async createKey(input: CreateKeyInput): Promise<{ key: string; keyId: string }> {
    if (!input.name) throw new TypeError("a key needs a name");
    const scopes = checkScopes(input.scopes);
    const limits = checkLimits(input);
    const orgId = input.orgId ?? null;
    const keyId = randomBase32(12);
    const secret = randomBase64Url(32);
    // No org lock: a new key holds no reservations, so it cannot add to what the org holds. Orgs are never
    // deleted, so the org found here is still there for the insert (whose foreign key checks it anyway).
    if (orgId !== null && !(ORG_ID_RE.test(orgId) && (await this.db.query("SELECT 1 FROM orgs WHERE org_id = $1", [orgId])).rows.length > 0)) throw new UnknownOrgError(orgId);
    await this.db.query(
      `INSERT INTO api_keys (key_id, secret_sha256, name, scopes, budget_micro_eur, budget_period, rpm_limit, tpm_limit, org_id)
       VALUES ($1, $2, $3, $4::text[], $5, $6, $7, $8, $9)`,
      [keyId, await sha256Hex(secret), input.name, scopes, limits.budgetMicroEur ?? null, limits.budgetPeriod ?? "none", limits.rpmLimit ?? null, limits.tpmLimit ?? null, orgId],
    );
    return { key: `${KEY_PREFIX}${keyId}_${secret}`, keyId };
  }

  /** The key's record if `presented` is a live key with the right secret; undefined otherwise (no cache: revocation is immediate). */
  async verifyKey(presented: string): Promise<KeyRecord | undefined> {
    const m = KEY_RE.exec(presented);
    if (!m) return undefined;
    const { rows } = await this.db.query<KeyRow & { secret_sha256: string }>(`SELECT ${KEY_COLUMNS}, secret_sha256 FROM api_keys WHERE key_id = $1`, [m[1]]);
    const row = rows[0];
    if (!row) return undefined;
    // Compare hashes in constant time, so response timing says nothing about how much of a guess was right.
    if (!equalConstantTime(await sha256Hex(m[2]), row.secret_sha256)) return undefined;
    if (row.revoked_at) return undefined;
    return keyRecord(row);
  }

  async getKey(keyId: string): Promise<KeyRecord | undefined> {
    const { rows } = await this.db.query<KeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_id = $1`, [keyId]);
    return rows[0] ? keyRecord(rows[0]) : undefined;
  }

  async listKeys(): Promise<KeyRecord[]> {
    const { rows } = await this.db.query<KeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id`);
    return rows.map(keyRecord);
  }

  /** true when the key was live and is now revoked. Its open reservations stay until settled, released or expired. */
  async revokeKey(keyId: string): Promise<boolean> {
    const { rows } = await this.db.query("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL RETURNING key_id", [keyId]);
    return rows.length > 0;
  }

  /**
   * Changes the given limits only, and the key's org when `orgId` is given (null detaches it; UnknownOrgError
   * for an org that does not exist). A budget lowered below what is spent refuses further reservations, and
   * a key attached to an org brings its open reservations into the org's; nothing is undone.
   */
  async setLimits(keyId: string, changes: KeyChanges): Promise<KeyRecord | undefined> {
    const l = checkLimits(changes);
    const columns: [string, unknown][] = [];
    if (l.budgetMicroEur !== undefined) columns.push(["budget_micro_eur", l.budgetMicroEur]);
    if (l.budgetPeriod !== undefined) columns.push(["budget_period", l.budgetPeriod]);
    if (l.rpmLimit !== undefined) columns.push(["rpm_limit", l.rpmLimit]);
    if (l.tpmLimit !== undefined) columns.push(["tpm_limit", l.tpmLimit]);
    if (l.orgId !== undefined) columns.push(["org_id", l.orgId]);
    if (columns.length === 0) return this.getKey(keyId);
    const set = columns.map(([c], i) => `${c} = $${i + 2}`).join(", ");
    return this.db.transaction(async (tx) => {
      // Org row before key row, as in reserve(): an attach waits for the org's reservation in flight.
      if (l.orgId) await lockOrgOf(tx, l.orgId);
      const { rows } = await tx.query<KeyRow>(`UPDATE api_keys SET ${set} WHERE key_id = $1 RETURNING ${KEY_COLUMNS}`, [keyId, ...columns.map(([, v]) => v)]);
      return rows[0] ? keyRecord(rows[0]) : undefined;
    });
  }

  // ---- orgs ----

  /** A new org; its keys spend its budget as well as their own. */
  async createOrg(input: CreateOrgInput): Promise<OrgRecord> {
    if (!input.name) throw new TypeError("an org needs a name");
    const l = checkOrgLimits(input);
    const { rows } = await this.db.query<OrgRow>("INSERT INTO orgs (org_id, name, budget_micro_eur, budget_period) VALUES ($1, $2, $3, $4) RETURNING org_id, name, budget_micro_eur, budget_period, created_at", [
      `org-${randomBase32(12)}`,
      input.name,
      l.budgetMicroEur ?? null,
      l.budgetPeriod ?? "none",
    ]);
    return orgRecord(rows[0]);
  }

  /** The org with this period's spend and reservations; undefined for an unknown (or malformed) id. */
  async getOrg(orgId: string): Promise<OrgState | undefined> {
    if (!ORG_ID_RE.test(orgId)) return undefined;
    const { rows } = await this.db.query<OrgStateRow>(`${ORG_STATE_SELECT} WHERE o.org_id = $1`, [orgId]);
    return rows[0] ? orgState(rows[0]) : undefined;
  }

  async listOrgs(): Promise<OrgState[]> {
    const { rows } = await this.db.query<OrgStateRow>(`${ORG_STATE_SELECT} ORDER BY o.created_at, o.org_id`);
    return rows.map(orgState);
  }

  /**
   * Changes the org's budget or period, as setLimits() does a key's: a budget lowered below what is spent
   * refuses its keys' further reservations; nothing is undone. undefined for an unknown org.
   */
  async setOrgLimits(orgId: string, limits: Partial<OrgLimits>): Promise<OrgState | undefined> {
    const l = checkOrgLimits(limits);
    if (!ORG_ID_RE.test(orgId)) return undefined;
    const columns: [string, unknown][] = [];
    if (l.budgetMicroEur !== undefined) columns.push(["budget_micro_eur", l.budgetMicroEur]);
    if (l.budgetPeriod !== undefined) columns.push(["budget_period", l.budgetPeriod]);
    if (columns.length > 0) {
      const set = columns.map(([c], i) => `${c} = $${i + 2}`).join(", ");
      await this.db.query(`UPDATE orgs SET ${set} WHERE org_id = $1`, [orgId, ...columns.map(([, v]) => v)]);
    }
    return this.getOrg(orgId);
  }

  // ---- budgets ----

  /**
   * Holds `amountMicroEur` (the request's maximum cost) against the key's budget for `ttlMs`. A reservation
   * not settled, released or renewed within the TTL stops counting (its edge is presumed dead).
   */
  async reserve(keyId: string, amountMicroEur: number, ttlMs: number): Promise<Reservation | ReserveRefusal> {
    checkMoney(amountMicroEur, "amountMicroEur");
    checkTtl(ttlMs);
    const id = crypto.randomUUID();
    return withOrgAndKeyLocked(this.db, keyId, async (tx, key): Promise<Reservation | ReserveRefusal> => {
      if (!key) return { refused: "key", reason: "unknown_key" };
      if (key.revoked) return { refused: "key", reason: "revoked" };
      // Tidy this key's stale reservations while its lock is held (they already stopped counting below).
      await tx.query("UPDATE reservations SET state = 'expired', closed_at = clock_timestamp() WHERE key_id = $1 AND state = 'open' AND expires_at <= clock_timestamp()", [keyId]);
      // Both checks and the insert in one statement, under the org and key locks (see the top of this file);
      // it also says which budget had no room. A key without an org joins no org row: its org check is true.
      const { rows } = await tx.query<{ key_room: boolean; org_room: boolean; expires_at: Date | null }>(
        `WITH room AS (
           SELECT k.key_id,
             (k.budget_micro_eur IS NULL OR
               coalesce((SELECT s.spent_micro_eur FROM key_spend s WHERE s.key_id = k.key_id AND s.period_start = billing_period_start(k.budget_period, clock_timestamp())), 0)
               + coalesce((SELECT sum(r.amount_micro_eur) FROM reservations r WHERE r.key_id = k.key_id AND r.state = 'open' AND r.expires_at > clock_timestamp()), 0)
               + $3::bigint <= k.budget_micro_eur) AS key_room,
             (o.budget_micro_eur IS NULL OR
               coalesce((SELECT s.spent_micro_eur FROM org_spend s WHERE s.org_id = o.org_id AND s.period_start = billing_period_start(o.budget_period, clock_timestamp())), 0)
               + coalesce((SELECT sum(r.amount_micro_eur) FROM reservations r JOIN api_keys ok ON ok.key_id = r.key_id
                           WHERE ok.org_id = o.org_id AND r.state = 'open' AND r.expires_at > clock_timestamp()), 0)
               + $3::bigint <= o.budget_micro_eur) AS org_room
           FROM api_keys k LEFT JOIN orgs o ON o.org_id = k.org_id
           WHERE k.key_id = $1
         ), held AS (
           INSERT INTO reservations (id, key_id, amount_micro_eur, expires_at)
           SELECT $2::uuid, key_id, $3::bigint, clock_timestamp() + $4::float8 * interval '1 millisecond' FROM room WHERE key_room AND org_room
           RETURNING expires_at
         )
         SELECT room.key_room, room.org_room, (SELECT expires_at FROM held) AS expires_at FROM room`,
        [keyId, id, amountMicroEur, ttlMs],
      );
      const r = rows[0];
      // Both full: the key's own budget is named, as raising the org's alone would not help.
      if (!r.key_room) return { refused: "key", reason: "budget" };
      if (!r.org_room || r.expires_at === null) return { refused: "org", reason: "org_budget" };
      return { id, keyId, amountMicroEur, expiresAt: new Date(r.expires_at) };
    });
  }

  /**
   * Closes the reservation and records the request's usage event, in one transaction: the event (idempotent
   * by request id), its outbox row and the period's spend. Settling again is a no-op. A reservation that
   * expired or was released is still settled (the work was done, so it is billed) and says so in the result.
   */
  async settle(reservationId: string, event: UsageEventInput): Promise<SettleResult> {
    checkEvent(event);
    return this.db.transaction(async (tx) => {
      await readCommitted(tx);
      const found = await tx.query<{ key_id: string }>("SELECT key_id FROM reservations WHERE id = $1::uuid", [reservationId]);
      if (!found.rows[0]) throw new Error(`unknown reservation ${reservationId}`);
      const keyId = found.rows[0].key_id;
      await lockKey(tx, keyId);
      const r = (await tx.query<{ state: SettleResult["previousState"]; amount_micro_eur: unknown }>("SELECT state, amount_micro_eur FROM reservations WHERE id = $1::uuid FOR UPDATE", [reservationId])).rows[0];
      const overrunMicroEur = Math.max(0, event.costMicroEur - toInt(r.amount_micro_eur));
      if (r.state === "settled") return { recorded: false, previousState: r.state, overrunMicroEur };
      await tx.query("UPDATE reservations SET state = 'settled', closed_at = clock_timestamp() WHERE id = $1::uuid", [reservationId]);
      const inserted = await tx.query(
        `INSERT INTO usage_events (id, key_id, reservation_id, model, prompt_tokens, completion_tokens, target_passes, cost_micro_eur, cost_without_speculation_micro_eur, status)
         VALUES ($1, $2, $3::uuid, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING RETURNING id`,
        [event.requestId, keyId, reservationId, event.model, event.promptTokens, event.completionTokens, event.targetPasses, event.costMicroEur, event.costWithoutSpeculationMicroEur, event.status],
      );
      // Same request id settled through another reservation: counted once already; this one just closes.
      if (inserted.rows.length === 0) return { recorded: false, previousState: r.state, overrunMicroEur };
      await tx.query("INSERT INTO export_outbox (event_id, day) SELECT id, (created_at AT TIME ZONE 'UTC')::date FROM usage_events WHERE id = $1", [event.requestId]);
      await tx.query(
        `INSERT INTO key_spend (key_id, period_start, spent_micro_eur)
         SELECT key_id, billing_period_start(budget_period, clock_timestamp()), $2::bigint FROM api_keys WHERE key_id = $1
         ON CONFLICT (key_id, period_start) DO UPDATE SET spent_micro_eur = key_spend.spent_micro_eur + EXCLUDED.spent_micro_eur`,
        [keyId, event.costMicroEur],
      );
      // The spend counts for the org the key is in now (none: no row). The FK check's KEY SHARE lock on the
      // org row does not wait for reserve()'s NO KEY UPDATE one, so settle never waits on the org lock.
      await tx.query(
        `INSERT INTO org_spend (org_id, period_start, spent_micro_eur)
         SELECT o.org_id, billing_period_start(o.budget_period, clock_timestamp()), $2::bigint FROM api_keys k JOIN orgs o ON o.org_id = k.org_id WHERE k.key_id = $1
         ON CONFLICT (org_id, period_start) DO UPDATE SET spent_micro_eur = org_spend.spent_micro_eur + EXCLUDED.spent_micro_eur`,
        [keyId, event.costMicroEur],
      );
      return { recorded: true, previousState: r.state, overrunMicroEur };
    });
  }

  /** Frees an open reservation (request failed, client left before any cost). false if it was no longer open. */
  async release(reservationId: string): Promise<boolean> {
    const { rows } = await this.db.query("UPDATE reservations SET state = 'released', closed_at = clock_timestamp() WHERE id = $1::uuid AND state = 'open' RETURNING id", [reservationId]);
    return rows.length > 0;
  }

  /**
   * Extends a live reservation (a long stream) to `ttlMs` from now. false if it already expired or closed:
   * its amount may already be held by another request, so it cannot come back.
   */
  async renew(reservationId: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    const found = await this.db.query<{ key_id: string }>("SELECT key_id FROM reservations WHERE id = $1::uuid", [reservationId]);
    if (!found.rows[0]) return false;
    // Under the org and key locks, so that reserve() — of this key or of another key of its org — never
    // counts a reservation as expired that renew() then revives.
    return withOrgAndKeyLocked(this.db, found.rows[0].key_id, async (tx) => {
      const { rows } = await tx.query(
        `UPDATE reservations SET expires_at = clock_timestamp() + $2::float8 * interval '1 millisecond'
         WHERE id = $1::uuid AND state = 'open' AND expires_at > clock_timestamp() RETURNING id`,
        [reservationId, ttlMs],
      );
      return rows.length > 0;
    });
  }

  /**
   * Marks reservations past their expiry (edges that died mid-request) expired; returns how many. Budgets
   * do not wait for this — reserve() ignores expired ones — it keeps the table honest for operators.
   * Rows another transaction holds are skipped (the next run gets them), so this never blocks a request.
   */
  async expireReservations(): Promise<number> {
    const { rows } = await this.db.query(
      `UPDATE reservations SET state = 'expired', closed_at = clock_timestamp()
       WHERE state = 'open' AND id IN (SELECT id FROM reservations WHERE state = 'open' AND expires_at <= clock_timestamp() FOR UPDATE SKIP LOCKED)
       RETURNING id`,
    );
    return rows.length;
  }

  /** The key's budget, settled spend this period, and what open reservations hold; its org's too when it has one. */
  async budgetState(keyId: string): Promise<BudgetState | undefined> {
    const { rows } = await this.db.query<{ budget_micro_eur: unknown; spent: unknown; reserved: unknown; org_id: string | null }>(
      `SELECT k.budget_micro_eur, k.org_id,
         coalesce((SELECT s.spent_micro_eur FROM key_spend s WHERE s.key_id = k.key_id AND s.period_start = billing_period_start(k.budget_period, clock_timestamp())), 0)::text AS spent,
         coalesce((SELECT sum(r.amount_micro_eur) FROM reservations r WHERE r.key_id = k.key_id AND r.state = 'open' AND r.expires_at > clock_timestamp()), 0)::text AS reserved
       FROM api_keys k WHERE k.key_id = $1`,
      [keyId],
    );
    const r = rows[0];
    if (!r) return undefined;
    const state: BudgetState = { budgetMicroEur: toIntOrNull(r.budget_micro_eur), spentMicroEur: toInt(r.spent), reservedMicroEur: toInt(r.reserved) };
    const org = r.org_id ? await this.getOrg(r.org_id) : undefined;
    return org ? { ...state, org } : state;
  }

  // ---- rate limits ----
  //
  // Requests and tokens per minute (src/billing/rate-limit.ts, GCRA), one state row per key. Race-free across
  // processes for the same reason as reserve(): the state is read, checked and written under the key's
  // api_keys row lock, in a READ COMMITTED transaction, so takes on one key run one at a time in the server
  // and each reads the state the previous holder committed. `now` is the database's clock_timestamp() in ms,
  // read after the lock is held, so edges with skewed clocks share one clock and a later lock holder never
  // sees an earlier `now` than the state it reads (and the GCRA state never runs backwards anyway).
  // The limits are the locked row's: a change by `npm run keys -- limits` holds from the next request.

  /**
   * Admits one request of `tokens` tokens (prompt + max_tokens) against the key's rpm/tpm, or refuses it
   * (nothing spent). A key with neither limit is admitted without touching the state (headers empty).
   */
  async takeRateLimit(keyId: string, tokens: number): Promise<RateLimitTake | ReserveRefusal> {
    return this.db.transaction(async (tx) => {
      await readCommitted(tx);
      const key = await lockKeyLimits(tx, keyId);
      if (!key) return { refused: "key", reason: "unknown_key" } as const;
      if (key.revoked) return { refused: "key", reason: "revoked" } as const;
      const limits = key.limits;
      if (limits.requestsPerMinute === null && limits.tokensPerMinute === null) return { ...checkRateLimit(limits, EMPTY_RATE_LIMIT_STATE, 0, 0), limits };
      const now = await dbNowMs(tx);
      const decision = checkRateLimit(limits, await readRateState(tx, keyId), now, tokens);
      if (decision.allowed) await writeRateState(tx, keyId, decision.state);
      return { ...decision, limits };
    });
  }

  /** Gives back `tokens` of a request's reservation that it did not use (max_tokens − completion tokens). */
  async refundRateLimitTokens(keyId: string, tokens: number): Promise<void> {
    if (tokens <= 0) return;
    await this.db.transaction(async (tx) => {
      await readCommitted(tx);
      const key = await lockKeyLimits(tx, keyId);
      if (!key || key.limits.tokensPerMinute === null) return;
      const now = await dbNowMs(tx);
      await writeRateState(tx, keyId, refundTokens(key.limits, await readRateState(tx, keyId), now, tokens));
    });
  }

  // ---- usage ----

  /** Usage per UTC day and model, `from` and `to` (YYYY-MM-DD) inclusive. */
  async usageByDay(keyId: string, from: string, to: string): Promise<UsageDay[]> {
    const { rows } = await this.db.query<Record<string, unknown>>(
      `SELECT (created_at AT TIME ZONE 'UTC')::date::text AS day, model, count(*)::text AS requests,
         sum(prompt_tokens)::text AS prompt_tokens, sum(completion_tokens)::text AS completion_tokens, sum(target_passes)::text AS target_passes,
         sum(cost_micro_eur)::text AS cost, sum(cost_without_speculation_micro_eur - cost_micro_eur)::text AS saving
       FROM usage_events
       WHERE key_id = $1 AND created_at >= ($2::date::timestamp AT TIME ZONE 'UTC') AND created_at < (($3::date + 1)::timestamp AT TIME ZONE 'UTC')
       GROUP BY 1, 2 ORDER BY 1, 2`,
      [keyId, from, to],
    );
    return rows.map((r) => ({
      day: String(r.day),
      model: String(r.model),
      requests: toInt(r.requests),
      promptTokens: toInt(r.prompt_tokens),
      completionTokens: toInt(r.completion_tokens),
      targetPasses: toInt(r.target_passes),
      costMicroEur: toInt(r.cost),
      savingMicroEur: toInt(r.saving),
    }));
  }

  async usageEvent(requestId: string): Promise<UsageEvent | undefined> {
    const { rows } = await this.db.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM usage_events e WHERE e.id = $1`, [requestId]);
    return rows[0] ? usageEvent(rows[0]) : undefined;
  }

  // ---- export outbox ----
  //
  // Exactly once, with at-least-once writers: an exporter calls pendingExport(), writes the batch to
  // `objectName` (S3 PUT, which replaces an object of the same name), then markExported(objectName).
  // - Claiming sets object_name on up to `limit` unclaimed rows of one day in one transaction (SKIP LOCKED:
  //   two exporters never claim the same row). A row is claimed once, so an event is in exactly one batch.
  // - A batch's name (its day and first/last outbox seq — unique, as claimed sets are disjoint) and content
  //   (immutable events in seq order) are fixed at claim time.
  // - pendingExport() returns a claimed, unexported batch before claiming a new one. An exporter that
  //   crashed after claiming, or after writing but before marking, therefore rewrites the same bytes under
  //   the same name: nothing is lost and the bucket holds no duplicate. Marking before writing would lose.

  /** The next batch to write: an unfinished claimed one first, else a new claim; undefined when all is exported. */
  async pendingExport(limit: number): Promise<ExportBatch | undefined> {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError("limit must be a positive integer");
    return this.db.transaction(async (tx) => {
      let objectName = (await tx.query<{ object_name: string }>("SELECT object_name FROM export_outbox WHERE object_name IS NOT NULL AND exported_at IS NULL ORDER BY seq LIMIT 1")).rows[0]?.object_name;
      if (!objectName) {
        const picked = await tx.query<{ seq: unknown; day: string }>(
          `SELECT o.seq::text AS seq, o.day::text AS day FROM export_outbox o
           WHERE o.object_name IS NULL AND o.day = (SELECT day FROM export_outbox WHERE object_name IS NULL ORDER BY seq LIMIT 1)
           ORDER BY o.seq LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [limit],
        );
        if (picked.rows.length === 0) return undefined;
        const seqs = picked.rows.map((r) => toInt(r.seq));
        const pad = (n: number) => String(n).padStart(20, "0");
        objectName = `usage/${picked.rows[0].day}/${pad(seqs[0])}-${pad(seqs[seqs.length - 1])}.jsonl`;
        await tx.query("UPDATE export_outbox SET object_name = $1, claimed_at = clock_timestamp() WHERE seq = ANY($2::bigint[])", [objectName, seqs.map(String)]);
      }
      const { rows } = await tx.query<EventRow & { day: string }>(`SELECT ${EVENT_COLUMNS}, o.day::text AS day FROM export_outbox o JOIN usage_events e ON e.id = o.event_id WHERE o.object_name = $1 ORDER BY o.seq`, [
        objectName,
      ]);
      return { objectName, day: rows[0].day, events: rows.map(usageEvent) };
    });
  }

  /** Call after the object is written. Returns how many events it marked (0 if already marked). */
  async markExported(objectName: string): Promise<number> {
    const { rows } = await this.db.query("UPDATE export_outbox SET exported_at = clock_timestamp() WHERE object_name = $1 AND exported_at IS NULL RETURNING seq", [objectName]);
    return rows.length;
  }
}

interface KeyRow {
  key_id: string;
  name: string;
  scopes: string[];
  created_at: Date;
  revoked_at: Date | null;
  budget_micro_eur: unknown;
  budget_period: BudgetPeriod;
  rpm_limit: unknown;
  tpm_limit: unknown;
  org_id: string | null;
}

interface OrgRow {
  org_id: string;
  name: string;
  budget_micro_eur: unknown;
  budget_period: BudgetPeriod;
  created_at: Date;
}

interface OrgStateRow extends OrgRow {
  spent: unknown;
  reserved: unknown;
  key_count: unknown;
}

interface EventRow {
  id: string;
  key_id: string;
  model: string;
  prompt_tokens: unknown;
  completion_tokens: unknown;
  target_passes: unknown;
  cost_micro_eur: unknown;
  cost_without_speculation_micro_eur: unknown;
  status: string;
  created_at: string;
}

/**
 * The first statement of every transaction that locks a key: the argument at the top of this file needs a
 * fresh snapshot per statement, whatever default_transaction_isolation the server has.
 */
async function readCommitted(tx: SqlQueryable): Promise<void> {
  await tx.query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED");
}

/** Locks the key's row until the transaction ends; undefined for an unknown key. */
async function lockKey(tx: SqlQueryable, keyId: string): Promise<{ revoked: boolean } | undefined> {
  const { rows } = await tx.query<{ revoked: boolean }>("SELECT revoked_at IS NOT NULL AS revoked FROM api_keys WHERE key_id = $1 FOR UPDATE", [keyId]);
  return rows[0];
}

const MOVED = Symbol("key moved to another org");

/**
 * Runs `fn` in a READ COMMITTED transaction holding the key's org row (if it has one) and then the key's
 * row, locked — the order every org-aware operation follows. The org is read before the key is locked, so a
 * key moved between orgs in that moment is retried with its new org (a few tries: moves are admin actions).
 * `key` is undefined for an unknown key.
 */
async function withOrgAndKeyLocked<T>(db: SqlClient, keyId: string, fn: (tx: SqlQueryable, key: { revoked: boolean; orgId: string | null } | undefined) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const result = await db.transaction(async (tx): Promise<T | typeof MOVED> => {
      await readCommitted(tx);
      const org = await tx.query<{ org_id: string }>("SELECT o.org_id FROM orgs o WHERE o.org_id = (SELECT k.org_id FROM api_keys k WHERE k.key_id = $1) FOR NO KEY UPDATE", [keyId]);
      const orgId = org.rows[0]?.org_id ?? null;
      const { rows } = await tx.query<{ revoked: boolean; org_id: string | null }>("SELECT revoked_at IS NOT NULL AS revoked, org_id FROM api_keys WHERE key_id = $1 FOR UPDATE", [keyId]);
      if (rows[0] && rows[0].org_id !== orgId) return MOVED;
      return fn(tx, rows[0] && { revoked: rows[0].revoked, orgId });
    });
    if (result !== MOVED) return result;
    if (attempt >= 5) throw new Error(`key ${keyId} kept moving between orgs; try again`);
  }
}

/** Locks the org's row as reserve() does (before any key row); UnknownOrgError if there is none. */
async function lockOrgOf(tx: SqlQueryable, orgId: string): Promise<void> {
  const { rows } = ORG_ID_RE.test(orgId) ? await tx.query("SELECT 1 FROM orgs WHERE org_id = $1 FOR NO KEY UPDATE", [orgId]) : { rows: [] };
  if (rows.length === 0) throw new UnknownOrgError(orgId);
}

/** The key's row locked (as lockKey), with its rate limits. */
async function lockKeyLimits(tx: SqlQueryable, keyId: string): Promise<{ revoked: boolean; limits: RateLimits } | undefined> {
  const { rows } = await tx.query<{ revoked: boolean; rpm_limit: unknown; tpm_limit: unknown }>("SELECT revoked_at IS NOT NULL AS revoked, rpm_limit, tpm_limit FROM api_keys WHERE key_id = $1 FOR UPDATE", [keyId]);
  const r = rows[0];
  if (!r) return undefined;
  // rate-limit.ts takes limits up to 10^9 (exact integer ticks); a larger one is no limit in practice.
  const cap = (v: unknown) => {
    const n = toIntOrNull(v);
    return n === null ? null : Math.min(n, RATE_LIMIT_MAX);
  };
  return { revoked: r.revoked, limits: { requestsPerMinute: cap(r.rpm_limit), tokensPerMinute: cap(r.tpm_limit) } };
}

/** The database clock in integer ms: one clock for every edge. A statement of its own, run after the lock. */
async function dbNowMs(tx: SqlQueryable): Promise<number> {
  const { rows } = await tx.query<{ now_ms: unknown }>("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms");
  return toInt(rows[0].now_ms);
}

async function readRateState(tx: SqlQueryable, keyId: string): Promise<RateLimitState> {
  const { rows } = await tx.query<{ at_ms: unknown; request_ticks: unknown; token_ticks: unknown }>("SELECT at_ms, request_ticks, token_ticks FROM rate_limit_state WHERE key_id = $1", [keyId]);
  const r = rows[0];
  return r ? { at: toInt(r.at_ms), requestTicks: toInt(r.request_ticks), tokenTicks: toInt(r.token_ticks) } : EMPTY_RATE_LIMIT_STATE;
}

async function writeRateState(tx: SqlQueryable, keyId: string, s: RateLimitState): Promise<void> {
  await tx.query(
    `INSERT INTO rate_limit_state (key_id, at_ms, request_ticks, token_ticks, updated_at) VALUES ($1, $2::bigint, $3::bigint, $4::bigint, clock_timestamp())
     ON CONFLICT (key_id) DO UPDATE SET at_ms = EXCLUDED.at_ms, request_ticks = EXCLUDED.request_ticks, token_ticks = EXCLUDED.token_ticks, updated_at = EXCLUDED.updated_at`,
    [keyId, String(s.at), String(s.requestTicks), String(s.tokenTicks)],
  );
}

function keyRecord(r: KeyRow): KeyRecord {
  return {
    keyId: r.key_id,
    name: r.name,
    scopes: r.scopes as Scope[],
    createdAt: new Date(r.created_at),
    revokedAt: r.revoked_at ? new Date(r.revoked_at) : null,
    budgetMicroEur: toIntOrNull(r.budget_micro_eur),
    budgetPeriod: r.budget_period,
    rpmLimit: toIntOrNull(r.rpm_limit),
    tpmLimit: toIntOrNull(r.tpm_limit),
    orgId: r.org_id,
  };
}

function orgRecord(r: OrgRow): OrgRecord {
  return { orgId: r.org_id, name: r.name, budgetMicroEur: toIntOrNull(r.budget_micro_eur), budgetPeriod: r.budget_period, createdAt: new Date(r.created_at) };
}

function orgState(r: OrgStateRow): OrgState {
  return { ...orgRecord(r), spentMicroEur: toInt(r.spent), reservedMicroEur: toInt(r.reserved), keyCount: toInt(r.key_count) };
}

function usageEvent(r: EventRow): UsageEvent {
  return {
    requestId: r.id,
    keyId: r.key_id,
    model: r.model,
    promptTokens: toInt(r.prompt_tokens),
    completionTokens: toInt(r.completion_tokens),
    targetPasses: toInt(r.target_passes),
    costMicroEur: toInt(r.cost_micro_eur),
    costWithoutSpeculationMicroEur: toInt(r.cost_without_speculation_micro_eur),
    status: r.status,
    createdAt: r.created_at,
  };
}

function checkScopes(scopes: readonly string[]): Scope[] {
  const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (bad.length > 0 || scopes.length === 0) throw new TypeError(`scopes must be a non-empty subset of ${SCOPES.join(", ")}; got ${JSON.stringify(scopes)}`);
  return [...new Set(scopes)] as Scope[];
}

function checkLimits<T extends Partial<KeyLimits>>(l: T): T {
  checkOrgLimits(l);
  for (const f of ["rpmLimit", "tpmLimit"] as const) {
    const v = l[f];
    if (v !== undefined && v !== null && (!Number.isSafeInteger(v) || v <= 0 || v > 2 ** 31 - 1)) throw new RangeError(`${f} must be a positive integer`);
  }
  return l;
}

function checkOrgLimits<T extends Partial<OrgLimits>>(l: T): T {
  if (l.budgetMicroEur !== undefined && l.budgetMicroEur !== null) checkMoney(l.budgetMicroEur, "budgetMicroEur");
  if (l.budgetPeriod !== undefined && !["none", "day", "month"].includes(l.budgetPeriod)) throw new TypeError(`budgetPeriod: ${l.budgetPeriod}`);
  return l;
}

function checkMoney(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative integer of micro-euros, got ${v}`);
}

function checkTtl(ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be positive, got ${ttlMs}`);
}

function checkEvent(e: UsageEventInput): void {
  if (!e.requestId || e.requestId.length > 200) throw new TypeError("requestId must be 1–200 characters");
  if (!e.model) throw new TypeError("model is required");
  if (!e.status || e.status.length > 40) throw new TypeError("status must be 1–40 characters");
  for (const f of ["promptTokens", "completionTokens", "targetPasses"] as const) {
    if (!Number.isSafeInteger(e[f]) || e[f] < 0 || e[f] > 2 ** 31 - 1) throw new RangeError(`${f} must be a non-negative 32-bit integer`);
  }
  checkMoney(e.costMicroEur, "costMicroEur");
  checkMoney(e.costWithoutSpeculationMicroEur, "costWithoutSpeculationMicroEur");
}

function equalConstantTime(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function randomBase32(n: number): string {
  // 256 is a multiple of 32, so `byte & 31` is uniform.
  const b = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(b, (x) => BASE32[x & 31]).join("");
}

function randomBase64Url(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...b))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}
