// `npm run usage:export`: writes the account store's usage events to an S3/R2 bucket as JSONL objects,
// partitioned by UTC day, exactly once (issue 15, docs/BILLING.md "Export"). Safe to kill at any point and to
// run again: the next run rewrites an unfinished object under the same name with the same bytes, then goes on.
import { z } from "zod";
import { openAccountStore } from "../src/billing/open-account-store.ts";
import { DEFAULT_USAGE_PREFIX, S3UsageSink } from "../src/billing/s3-usage-sink.ts";
import { DEFAULT_EXPORT_BATCH_SIZE, exportUsage } from "../src/billing/usage-exporter.ts";
import { ConfigError, parseEnv } from "../src/common/env.ts";
import { ModelStoreConfigSchema } from "../src/common/models/model-store-config.ts";
import { cliFail, intFlag, parseCli } from "./cli.ts";

const SCRIPT = "usage:export";

const USAGE = `Usage: npm run usage:export -- [--once | --every SECONDS [--runs N]] [options]

Writes every usage event not yet exported to the bucket, one JSONL object per batch:
<prefix><YYYY-MM-DD>/<first seq>-<last seq>.jsonl. Killed or failed part-way, the next run finishes the
same objects under the same names: every event ends up in exactly one object.

Options:
  --once              one run until nothing is pending (default)
  --every SECONDS     a run every SECONDS; a failed run is reported and retried at the next one
  --runs N            with --every: stop after N runs (default: until SIGINT/SIGTERM)
  --batch-size N      events per object, at most (default USAGE_EXPORT_BATCH_SIZE, else ${DEFAULT_EXPORT_BATCH_SIZE})
  --max-objects N     objects per run, at most (default: no limit)
  -h, --help          this text

Environment:
  BILLING_DATABASE_URL   postgres://… or pglite:<directory> (required)
  USAGE_EXPORT_BUCKET    the bucket (required)
  USAGE_EXPORT_PREFIX    key prefix (default "${DEFAULT_USAGE_PREFIX}")
  USAGE_EXPORT_BATCH_SIZE   events per object, at most (--batch-size wins)
  S3_ENDPOINT, S3_REGION, S3_FORCE_PATH_STYLE   as for the model store (R2: https://<account>.r2.cloudflarestorage.com)
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY     credentials (or any source of the AWS SDK default chain)
  USAGE_EXPORT_TEST_PAUSE_MS   tests only: sleep between writing an object and marking it exported

Progress on stderr. Exit codes: 0 done, 1 database or bucket error, 2 bad arguments or environment.
`;

const EnvSchema = ModelStoreConfigSchema.pick({ S3_ENDPOINT: true, S3_REGION: true, S3_FORCE_PATH_STYLE: true }).extend({
  BILLING_DATABASE_URL: z.string().min(1).describe("Account store"),
  USAGE_EXPORT_BUCKET: z.string().min(1).describe("Bucket of usage exports"),
  USAGE_EXPORT_PREFIX: z.string().default(DEFAULT_USAGE_PREFIX).describe("Key prefix of usage exports"),
  USAGE_EXPORT_BATCH_SIZE: z.coerce.number().int().min(1).default(DEFAULT_EXPORT_BATCH_SIZE).describe("Events per object, at most"),
  USAGE_EXPORT_TEST_PAUSE_MS: z.coerce.number().int().min(0).optional().describe("Tests only: pause between put and mark"),
});

const { values } = parseCli(SCRIPT, USAGE, {
  options: {
    once: { type: "boolean" },
    every: { type: "string" },
    runs: { type: "string" },
    "batch-size": { type: "string" },
    "max-objects": { type: "string" },
  },
});
if (values.once && values.every !== undefined) cliFail(SCRIPT, "--once and --every exclude each other");
const every = intFlag(SCRIPT, "every", values.every, 1);
const runs = intFlag(SCRIPT, "runs", values.runs, 1);
if (runs !== undefined && every === undefined) cliFail(SCRIPT, "--runs needs --every");
const batchFlag = intFlag(SCRIPT, "batch-size", values["batch-size"], 1);
const maxObjects = intFlag(SCRIPT, "max-objects", values["max-objects"], 1);

let env: z.infer<typeof EnvSchema>;
try {
  env = parseEnv(EnvSchema, process.env);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  cliFail(SCRIPT, e.message);
}

const batchSize = batchFlag ?? env.USAGE_EXPORT_BATCH_SIZE;
const log = (line: string) => process.stderr.write(`${SCRIPT}: ${line}\n`);
const sink = new S3UsageSink({ bucket: env.USAGE_EXPORT_BUCKET, prefix: env.USAGE_EXPORT_PREFIX, endpoint: env.S3_ENDPOINT, region: env.S3_REGION, forcePathStyle: env.S3_FORCE_PATH_STYLE });

let opened: Awaited<ReturnType<typeof openAccountStore>>;
try {
  opened = await openAccountStore(env.BILLING_DATABASE_URL);
} catch (e) {
  log(`cannot open the account store: ${(e as Error).message}`);
  process.exit(e instanceof RangeError ? 2 : 1);
}
log(`exporting from ${opened.label} to ${sink.label}`);

const stop = new AbortController();
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort(new Error(`stopped by ${sig}`)));

/** One run; true when it finished without error. */
async function run(): Promise<boolean> {
  const started = Date.now();
  try {
    const r = await exportUsage(opened.store, sink, { batchSize, maxObjects, log, pauseAfterPutMs: env.USAGE_EXPORT_TEST_PAUSE_MS, signal: stop.signal });
    log(`done: ${r.objects} objects, ${r.events} events in ${Date.now() - started} ms`);
    return true;
  } catch (e) {
    if (stop.signal.aborted) log("stopped; the next run resumes where this one was");
    else log(`failed (nothing is lost: the next run resumes): ${(e as Error).message || (e as Error).name}`);
    return false;
  }
}

let ok: boolean;
if (every === undefined) ok = await run();
else {
  ok = true;
  for (let i = 0; (runs === undefined || i < runs) && !stop.signal.aborted; i++) {
    if (i > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, every * 1000);
        stop.signal.addEventListener(
          "abort",
          () => {
            clearTimeout(t);
            resolve();
          },
          { once: true },
        );
      });
      if (stop.signal.aborted) break;
    }
    ok = await run();
  }
}
await opened.db.close();
sink.client.destroy();
process.exit(ok ? 0 : 1);
