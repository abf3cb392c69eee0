// Exports usage events from the account store's outbox as JSONL objects (one object per claimed batch,
// partitioned by UTC day), exactly once (issue 15; docs/BILLING.md "Export").
//
// The loop is pendingExport → sink.put(objectName, jsonl) → markExported, until nothing is pending. Why a
// crash or a sink outage at any point loses and duplicates nothing:
// - A batch's name and content are fixed when the store claims it, and pendingExport() hands back a claimed,
//   unmarked batch before claiming a new one. A run that died (kill -9, S3 error) after the claim or after
//   the put is resumed by the next run with the same name and the same bytes.
// - The sink's put replaces an object of the same name (S3/R2 PutObject), so writing a batch twice leaves one
//   object: the retry is idempotent. Marking happens only after the put succeeded: marking first would lose.
// - A claimed row belongs to one batch only, so an event is in exactly one object.
// Consumers that load objects into a billing system use the request id as the idempotency key as well.
import type { AccountStore, ExportBatch, UsageEvent } from "./account-store.ts";
import { eur } from "./prices.ts";

/** Where export objects go. `put` must replace an object of the same name (the retry is then idempotent). */
export interface UsageSink {
  put(name: string, body: string): Promise<void>;
}

export interface ExportUsageOptions {
  /** Events per object, at most (default 1000). Applies to new claims; a resumed batch keeps its size. */
  batchSize?: number;
  /** Objects written in this run, at most (default: until nothing is pending). */
  maxObjects?: number;
  /** One line per object written. */
  log?: (line: string) => void;
  /** Tests only: sleep this long after each put, before marking, so a kill -9 lands in that window. */
  pauseAfterPutMs?: number;
  signal?: AbortSignal;
}

export interface ExportUsageResult {
  /** Objects written (a resumed batch counts). */
  objects: number;
  /** Events in those objects. */
  events: number;
}

export const DEFAULT_EXPORT_BATCH_SIZE = 1000;

/** Writes pending batches to `sink` and marks them exported, until nothing is pending (or maxObjects). */
export async function exportUsage(store: Pick<AccountStore, "pendingExport" | "markExported">, sink: UsageSink, o: ExportUsageOptions = {}): Promise<ExportUsageResult> {
  const batchSize = o.batchSize ?? DEFAULT_EXPORT_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError("batchSize must be a positive integer");
  const maxObjects = o.maxObjects ?? Number.POSITIVE_INFINITY;
  let objects = 0;
  let events = 0;
  while (objects < maxObjects) {
    o.signal?.throwIfAborted();
    const batch = await store.pendingExport(batchSize);
    if (!batch) break;
    await sink.put(batch.objectName, usageJsonl(batch));
    if (o.pauseAfterPutMs) await new Promise((r) => setTimeout(r, o.pauseAfterPutMs));
    await store.markExported(batch.objectName);
    objects++;
    events += batch.events.length;
    o.log?.(`wrote ${batch.objectName} (${batch.events.length} events)`);
  }
  return { objects, events };
}

/** One export line: snake_case, money as integer micro-euros and as euros (6 decimals). */
export interface UsageExportLine {
  /** The request id: the ledger's primary key, and the idempotency key downstream (Stripe `identifier`, Lago `transaction_id`). */
  request_id: string;
  key_id: string;
  /** YYYY-MM-DD, UTC: the object's partition. */
  day: string;
  /** ISO 8601 UTC with microseconds. */
  created_at: string;
  model: string;
  status: string;
  prompt_tokens: number;
  completion_tokens: number;
  target_passes: number;
  cost_micro_eur: number;
  cost_eur: number;
  cost_without_speculation_micro_eur: number;
  cost_without_speculation_eur: number;
  /** cost_without_speculation − cost; negative when speculation cost more. */
  saving_micro_eur: number;
  saving_eur: number;
}

export function usageExportLine(e: UsageEvent, day: string): UsageExportLine {
  const saving = e.costWithoutSpeculationMicroEur - e.costMicroEur;
  return {
    request_id: e.requestId,
    key_id: e.keyId,
    day,
    created_at: e.createdAt,
    model: e.model,
    status: e.status,
    prompt_tokens: e.promptTokens,
    completion_tokens: e.completionTokens,
    target_passes: e.targetPasses,
    cost_micro_eur: e.costMicroEur,
    cost_eur: eur(e.costMicroEur),
    cost_without_speculation_micro_eur: e.costWithoutSpeculationMicroEur,
    cost_without_speculation_eur: eur(e.costWithoutSpeculationMicroEur),
    saving_micro_eur: saving,
    saving_eur: saving < 0 ? -eur(-saving) : eur(saving),
  };
}

/** The object's body: one JSON line per event, in outbox order, newline-terminated. The same bytes on every attempt. */
export function usageJsonl(batch: ExportBatch): string {
  return batch.events.map((e) => `${JSON.stringify(usageExportLine(e, batch.day))}\n`).join("");
}
