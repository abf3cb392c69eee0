// Usage export (issue 15): the exporter as a real child process (`scripts/export-usage.ts`), the PostgreSQL
// server at 127.0.0.1:5432 (a fresh schema, dropped afterwards; unreachable = fail, not skip) and a real
// S3 server (s3rver). Acceptance: kill -9 the exporter mid-run, restart it, and every event is in exactly
// one object; an S3 outage marks nothing exported, and the next run exports everything once.
// USAGE_EXPORT_TEST_PAUSE_MS makes the exporter sleep between writing an object and marking it, so the
// kill lands in the one window that matters (object written, not marked) every time.
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountStore, Reservation, ReserveRefusal } from "../src/billing/account-store.ts";
import { type OpenedAccountStore, openAccountStore } from "../src/billing/open-account-store.ts";
import { PgSqlClient } from "../src/billing/pg-sql-client.ts";
import type { UsageExportLine } from "../src/billing/usage-exporter.ts";
import { createS3Client } from "../src/common/models/s3-model-store.ts";
import { deadEndpoint } from "./harness/ports.ts";
import { startProcess } from "./harness/processes.ts";
import { type LocalS3, startS3rver } from "./harness/s3rver.ts";

const PG_URL = process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const BUCKET = "usage-exports";
const PREFIX = "exports/usage/";

describe("usage export to S3 (PostgreSQL + s3rver, exporter killed with -9)", () => {
  const admin = new PgSqlClient({ connectionString: PG_URL, max: 1 });
  const schema = `t_export_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const url = `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  let opened: OpenedAccountStore;
  let store: AccountStore;
  let keyId: string;
  let dir: string;
  let s3: LocalS3;
  let client: S3Client;
  const settled: string[] = [];

  const exporterEnv = (extra: Record<string, string> = {}) => ({
    BILLING_DATABASE_URL: url,
    USAGE_EXPORT_BUCKET: BUCKET,
    USAGE_EXPORT_PREFIX: PREFIX,
    S3_ENDPOINT: s3.options.endpoint,
    S3_REGION: "auto",
    S3_FORCE_PATH_STYLE: "true",
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
    ...extra,
  });
  const exporter = (extra: Record<string, string> = {}) => startProcess("scripts/export-usage.ts", exporterEnv(extra));

  async function settle(n: number, tag: string): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const r: Reservation | ReserveRefusal = await store.reserve(keyId, 1000, 60_000);
      if ("refused" in r) throw new Error(`refused: ${r.reason}`);
      const requestId = `req-${tag}-${String(i).padStart(3, "0")}`;
      await store.settle(r.id, {
        requestId,
        model: "alia-40b",
        promptTokens: 10 + i,
        completionTokens: 20,
        targetPasses: 5,
        costMicroEur: 100 + i,
        costWithoutSpeculationMicroEur: 300 + i,
        status: "completed",
      });
      ids.push(requestId);
    }
    settled.push(...ids);
    return ids;
  }

  /** Every object in the bucket: key → parsed lines. */
  async function bucketObjects(): Promise<Map<string, UsageExportLine[]>> {
    const out = new Map<string, UsageExportLine[]>();
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        const body = await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: o.Key! }))).Body!.transformToString();
        expect(body.endsWith("\n")).toBe(true);
        out.set(
          o.Key!,
          body
            .trimEnd()
            .split("\n")
            .map((l) => JSON.parse(l) as UsageExportLine),
        );
      }
      token = page.NextContinuationToken;
    } while (token);
    return out;
  }

  /** Every settled request id exactly once across all objects; each object in its events' day partition. */
  async function expectExactlyOnce(): Promise<Map<string, UsageExportLine[]>> {
    const objects = await bucketObjects();
    const ids: string[] = [];
    for (const [key, lines] of objects) {
      const m = /^exports\/usage\/(\d{4}-\d{2}-\d{2})\/(\d{20})-(\d{20})\.jsonl$/.exec(key);
      expect(m, key).not.toBeNull();
      for (const l of lines) {
        expect(l.day).toBe(m![1]);
        expect(l.created_at.slice(0, 10)).toBe(m![1]);
        ids.push(l.request_id);
      }
    }
    expect(ids.length).toBe(settled.length);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual([...settled].sort());
    return objects;
  }

  const outbox = async () =>
    (
      await admin.query<{ exported: string; claimed: string; total: string }>(
        `SELECT count(*) FILTER (WHERE exported_at IS NOT NULL)::text AS exported, count(*) FILTER (WHERE object_name IS NOT NULL AND exported_at IS NULL)::text AS claimed, count(*)::text AS total FROM ${schema}.export_outbox`,
      )
    ).rows[0];

  beforeAll(async () => {
    await admin.query(`CREATE SCHEMA ${schema}`);
    opened = await openAccountStore(url);
    store = opened.store;
    keyId = (await store.createKey({ name: "export", scopes: ["chat"] })).keyId;
    dir = await mkdtemp(path.join(tmpdir(), "usage-export-"));
    s3 = await startS3rver(dir, [BUCKET]);
    client = createS3Client({ bucket: BUCKET, ...s3.options });
  });

  afterAll(async () => {
    client?.destroy();
    await s3?.close();
    await opened?.db.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("kill -9 mid-run, restart: every event exported exactly once, objects partitioned by day", async () => {
    const ids = await settle(50, "a");
    // Half the events on the previous UTC day, interleaved, so batches must follow the day, not the order.
    // (The ledger is append-only by trigger: lifted for this test's backdating only.)
    const yesterday = ids.filter((_, i) => i % 2 === 1);
    await admin.query(`ALTER TABLE ${schema}.usage_events DISABLE TRIGGER usage_events_append_only`);
    await admin.query(`UPDATE ${schema}.usage_events SET created_at = created_at - interval '1 day' WHERE id = ANY($1::text[])`, [yesterday]);
    await admin.query(`ALTER TABLE ${schema}.usage_events ENABLE TRIGGER usage_events_append_only`);
    await admin.query(`UPDATE ${schema}.export_outbox SET day = day - 1 WHERE event_id = ANY($1::text[])`, [yesterday]);

    const first = exporter({ USAGE_EXPORT_BATCH_SIZE: "7", USAGE_EXPORT_TEST_PAUSE_MS: "400" });
    // The pause is after the put, before the mark: once the 2nd object is in the bucket the 1st is marked
    // and the 2nd is not, for 400 ms. Kill then.
    const written = await (async () => {
      for (let i = 0; i < 1200; i++) {
        if ((await bucketObjects()).size >= 2) return true;
        await new Promise((r) => setTimeout(r, 25));
      }
      return false;
    })();
    first.child.kill("SIGKILL");
    const status = await first.exited();
    expect(written, first.output()).toBe(true);
    expect(status.signal).toBe("SIGKILL");
    // Mid-run: some events exported, a written batch claimed but not marked, others not yet claimed.
    const mid = await outbox();
    expect(Number(mid.exported)).toBeGreaterThan(0);
    expect(Number(mid.exported)).toBeLessThan(50);
    expect(Number(mid.claimed)).toBe(7);

    const second = exporter({ USAGE_EXPORT_BATCH_SIZE: "7" });
    const done = await second.exited(60_000);
    expect(done.code, second.output()).toBe(0);
    expect(second.output()).toMatch(/done: \d+ objects, \d+ events/);
    const after = await outbox();
    expect(after).toEqual({ exported: "50", claimed: "0", total: "50" });

    const objects = await expectExactlyOnce();
    const days = new Set([...objects.keys()].map((k) => k.split("/")[2]));
    expect(days.size).toBe(2);
    for (const lines of objects.values()) expect(lines.length).toBeLessThanOrEqual(1000);
    // Money as integer micro-euros and as euros.
    const line = [...objects.values()].flat().find((l) => l.request_id === "req-a-003")!;
    expect(line).toMatchObject({ key_id: keyId, model: "alia-40b", cost_micro_eur: 103, cost_eur: 0.000103, saving_micro_eur: 200, saving_eur: 0.0002, prompt_tokens: 13 });

    // A run with nothing pending writes nothing and succeeds.
    const idle = exporter();
    expect((await idle.exited(60_000)).code).toBe(0);
    expect(idle.output()).toMatch(/done: 0 objects, 0 events/);
  }, 120_000);

  it("S3 outage: exits non-zero and marks nothing; the next run exports everything once", async () => {
    await settle(10, "b");
    const before = await outbox();
    const dead = await deadEndpoint();
    try {
      const failed = exporter({ S3_ENDPOINT: dead.url, USAGE_EXPORT_BATCH_SIZE: "4" });
      const status = await failed.exited(60_000);
      expect(status.code, failed.output()).toBe(1);
      expect(failed.output()).toMatch(/failed/);
    } finally {
      await dead.close();
    }
    const during = await outbox();
    expect(during.exported).toBe(before.exported);
    expect(Number(during.total) - Number(during.exported)).toBe(10);

    const again = exporter({ USAGE_EXPORT_BATCH_SIZE: "4" });
    const done = await again.exited(60_000);
    expect(done.code, again.output()).toBe(0);
    expect(await outbox()).toEqual({ exported: "60", claimed: "0", total: "60" });
    await expectExactlyOnce();
  }, 120_000);
});
