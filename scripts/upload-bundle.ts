// CLI: refresh a bundle folder's manifest.json and upload the bundle to an S3-compatible bucket.
//   npm run bundle:upload -- <bundle-dir> --bucket models --id salamandra-2b-q4 --version 1
import { progressReporter } from "../src/common/models/model-store.ts";
import { DEFAULT_PART_SIZE, MIN_PART_SIZE, uploadBundle } from "../src/common/models/s3-upload.ts";
import { choiceFlag, cliFail, intFlag, parseCli } from "./cli.ts";

const HELP = `Usage: npm run bundle:upload -- <bundle-dir> [options]

Writes <bundle-dir>/manifest.json (sha256 + size of every file), uploads every file to
s3://<bucket>/<prefix>/<id>/<file>, and uploads manifest.json last so readers never see a
manifest before its files. Files already in the bucket with the same sha256 are skipped.
The version is recorded in the manifest only: a new version replaces the old one in place.

Options:
  --bucket <name>        bucket (env S3_BUCKET)
  --prefix <p>           key prefix (default: $S3_PREFIX, else "bundles", as the model store reads)
  --endpoint <url>       S3 endpoint, e.g. https://<account>.r2.cloudflarestorage.com (env S3_ENDPOINT)
  --region <r>           region (env S3_REGION, default "auto" as R2 expects)
  --path-style           path-style URLs, for local servers like s3rver/MinIO (env S3_FORCE_PATH_STYLE=1)
  --id <id>              bundle id (default: from the folder's existing manifest.json)
  --version <v>          bundle version (default: from the existing manifest.json)
  --role <r>             draft | target | any (default: existing manifest's, else any)
  --part-size-mib <n>    multipart part size in MiB; larger files go multipart (default ${DEFAULT_PART_SIZE >> 20}, min ${MIN_PART_SIZE >> 20})
  --concurrency <n>      files uploaded at once (default 4)
  --force                upload every file even when the bucket copy matches
  -h, --help             this text

Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or any source of the AWS SDK default chain).
`;

const SCRIPT = "upload-bundle";
function fail(msg: string): never {
  return cliFail(SCRIPT, msg);
}

function envFlag(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|on)$/i.test(v);
}

async function main(): Promise<void> {
  const { values: v, positionals } = parseCli(SCRIPT, HELP, {
    allowPositionals: true,
    options: {
      bucket: { type: "string" },
      prefix: { type: "string" },
      endpoint: { type: "string" },
      region: { type: "string" },
      "path-style": { type: "boolean" },
      id: { type: "string" },
      version: { type: "string" },
      role: { type: "string" },
      "part-size-mib": { type: "string" },
      concurrency: { type: "string" },
      force: { type: "boolean" },
    },
  });
  if (positionals.length !== 1) fail(positionals.length ? `expected one bundle folder, got ${positionals.length}` : "missing <bundle-dir>");
  const bucket = v.bucket ?? process.env.S3_BUCKET;
  if (!bucket) fail("no bucket: pass --bucket or set S3_BUCKET");
  const role = choiceFlag(SCRIPT, "role", v.role, ["draft", "target", "any"]);
  const partMiB = intFlag(SCRIPT, "part-size-mib", v["part-size-mib"], 1);
  if (partMiB !== undefined && partMiB < MIN_PART_SIZE >> 20) fail(`--part-size-mib must be at least ${MIN_PART_SIZE >> 20} (S3 minimum part size)`);

  const dir = positionals[0];
  const report = progressReporter("upload");
  const result = await uploadBundle(dir, {
    bucket,
    prefix: v.prefix ?? process.env.S3_PREFIX ?? "bundles",
    endpoint: v.endpoint ?? process.env.S3_ENDPOINT,
    region: v.region ?? process.env.S3_REGION ?? "auto",
    forcePathStyle: v["path-style"] ?? envFlag(process.env.S3_FORCE_PATH_STYLE),
    id: v.id,
    version: v.version,
    role,
    partSize: partMiB !== undefined ? partMiB << 20 : undefined,
    concurrency: intFlag(SCRIPT, "concurrency", v.concurrency, 1),
    force: v.force,
    onProgress: report,
    log: (line) => process.stderr.write(`  ${line}\n`),
  });
  const m = result.manifest;
  process.stdout.write(`uploaded bundle ${m.id}@${m.version} (${m.role}) to s3://${bucket}/${result.keyPrefix}: ` + `${result.uploaded.length} file(s) sent, ${result.skipped.length} already there\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`${SCRIPT}: ${e.message}\n`);
  process.exit(1);
});
