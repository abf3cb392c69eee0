// Upload a bundle folder to an S3-compatible bucket, in the key layout s3-model-store.ts reads:
// `<prefix>/<id>/<path>` for every file, then `<prefix>/<id>/manifest.json` LAST, so a reader never
// sees a manifest whose files are not there yet. The version lives in the manifest only; uploading
// a new version replaces the bundle in place (a reader mid-download then fails its sha256 check and
// can retry; it never loads a mix). Files left over from an older version are not deleted.
import { AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, HeadObjectCommand, PutObjectCommand, UploadPartCommand, type CompletedPart, type S3Client } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { open, readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { MANIFEST_FILE, bundleLabel, type Manifest, type ManifestFile } from "./bundle.ts";
import { bundleFilePath, writeManifest, type ManifestMeta } from "./manifest.ts";
import type { Progress } from "./model-store.ts";
import { bundleKey, checkRef, createS3Client, isNotFound, runLimited, type S3Options } from "./s3-model-store.ts";

const MiB = 1 << 20;
/** S3 (and R2) refuse parts under 5 MiB, except the last one. */
export const MIN_PART_SIZE = 5 * MiB;
export const DEFAULT_PART_SIZE = 8 * MiB;
const MAX_PARTS = 10_000;

export interface UploadOptions extends S3Options {
  /** Bundle id/version/role for the manifest; default: those of the folder's existing manifest.json. */
  id?: string;
  version?: string;
  role?: ManifestMeta["role"];
  /** Files larger than this go up as multipart uploads in parts of this size (default 8 MiB, min 5 MiB). */
  partSize?: number;
  /** Files uploaded at the same time (default 4). */
  concurrency?: number;
  /** Parts of one multipart file uploaded at the same time (default 4). Memory ≈ files × parts × partSize. */
  partConcurrency?: number;
  /** Upload every file even if the bucket already holds it with the same size and sha256. */
  force?: boolean;
  onProgress?: (p: Progress) => void;
  /** One line per file decision (uploaded, skipped). */
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** Use this client instead of creating one from the options. */
  client?: S3Client;
}

export interface UploadResult {
  manifest: Manifest;
  /** `<prefix>/<id>` — the key folder holding the bundle. */
  keyPrefix: string;
  uploaded: string[];
  skipped: string[];
}

// Only id/version/role are taken from an old manifest; its file list is rebuilt, so it may be stale.
const ExistingMetaSchema = z.object({
  id: z.string(),
  version: z.string(),
  role: z.enum(["draft", "target", "any"]).optional(),
});

/** Bundle id/version/role from the options, else from the folder's existing manifest.json. */
export async function resolveMeta(dir: string, o: Partial<ManifestMeta>): Promise<ManifestMeta> {
  let existing: z.infer<typeof ExistingMetaSchema> | undefined;
  try {
    const raw: unknown = JSON.parse(await readFile(path.join(dir, MANIFEST_FILE), "utf8"));
    const r = ExistingMetaSchema.safeParse(raw);
    if (r.success) existing = r.data;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT" && !(e instanceof SyntaxError)) throw e;
  }
  const id = o.id ?? existing?.id;
  const version = o.version ?? existing?.version;
  if (!id || !version) throw new Error(`${dir}: give the bundle id and version (--id, --version); there is no readable ${MANIFEST_FILE} to take them from`);
  return { id, version, role: o.role ?? existing?.role ?? "any" };
}

function contentType(file: string): string {
  return file.endsWith(".json") ? "application/json" : "application/octet-stream";
}

/** Write/refresh `dir/manifest.json`, then upload every file and the manifest last. */
export async function uploadBundle(dir: string, o: UploadOptions): Promise<UploadResult> {
  if (!o.bucket) throw new Error("uploadBundle: bucket is required");
  const partSize = o.partSize ?? DEFAULT_PART_SIZE;
  if (!Number.isInteger(partSize) || partSize < MIN_PART_SIZE) throw new Error(`part size ${partSize} is below the S3 minimum of ${MIN_PART_SIZE} bytes (5 MiB)`);
  const client = o.client ?? createS3Client(o);
  const { signal, onProgress, log } = o;

  const meta = await resolveMeta(dir, o);
  checkRef(meta.id);
  let hashed = 0;
  const manifest = await writeManifest(dir, meta, {
    signal,
    onBytes: (n, total) => {
      hashed += n;
      onProgress?.({ phase: "hash", bytes: hashed, total });
    },
  });
  const label = `bundle ${bundleLabel(manifest)}`;

  const total = manifest.files.reduce((a, f) => a + f.size, 0);
  let sent = 0;
  const advance = (n: number, file: string) => {
    sent += n;
    onProgress?.({ phase: "upload", bytes: sent, total, file });
  };
  const uploaded: string[] = [];
  const skipped: string[] = [];
  await runLimited(manifest.files, o.concurrency ?? 4, signal, async (f, sig) => {
    const key = bundleKey(o.prefix, manifest.id, f.path);
    try {
      if (!o.force && (await alreadyThere(client, o.bucket, key, f, sig))) {
        skipped.push(f.path);
        log?.(`skip ${f.path} (bucket copy has the same sha256)`);
        advance(f.size, f.path);
        return;
      }
      const file = bundleFilePath(dir, f.path);
      if (f.size > partSize) await putMultipart(client, o.bucket, key, file, f, partSize, o.partConcurrency ?? 4, sig, (n) => advance(n, f.path));
      else await putSmall(client, o.bucket, key, file, f, sig, (n) => advance(n, f.path));
      uploaded.push(f.path);
      log?.(`uploaded ${f.path} (${f.size} bytes${f.size > partSize ? ", multipart" : ""})`);
    } catch (e) {
      const err = e as Error;
      if (err.name === "AbortError") throw err;
      throw new Error(`${label}: ${f.path}: upload to s3://${o.bucket}/${key} failed: ${err.message}`, { cause: e });
    }
  });

  // Last: from here on readers see the new bundle.
  const manifestKey = bundleKey(o.prefix, manifest.id, MANIFEST_FILE);
  await client.send(
    new PutObjectCommand({
      Bucket: o.bucket,
      Key: manifestKey,
      Body: await readFile(path.join(dir, MANIFEST_FILE)),
      ContentType: "application/json",
      // A CDN or proxy in front of the bucket must not keep serving the previous version's manifest.
      CacheControl: "no-cache",
    }),
    { abortSignal: signal },
  );
  log?.(`uploaded ${MANIFEST_FILE} → s3://${o.bucket}/${manifestKey}`);
  return { manifest, keyPrefix: bundleKey(o.prefix, manifest.id, ""), uploaded: uploaded.sort(), skipped: skipped.sort() };
}

/** The bucket copy matches when its size and the sha256 we stored as metadata both agree. */
async function alreadyThere(client: S3Client, bucket: string, key: string, f: ManifestFile, signal: AbortSignal): Promise<boolean> {
  try {
    const h = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    return h.ContentLength === f.size && h.Metadata?.sha256 === f.sha256;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

function changedError(f: ManifestFile, got: string): Error {
  return new Error(`file changed since the manifest was written (sha256 ${got}, manifest says ${f.sha256}); rerun the upload`);
}

/** Small files are read whole: a Buffer body lets the SDK retry, which a stream body does not. */
async function putSmall(client: S3Client, bucket: string, key: string, file: string, f: ManifestFile, signal: AbortSignal, onBytes: (n: number) => void): Promise<void> {
  const body = await readFile(file, { signal });
  const got = createHash("sha256").update(body).digest("hex");
  if (body.length !== f.size || got !== f.sha256) throw changedError(f, got);
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length, ContentType: contentType(f.path), Metadata: { sha256: f.sha256 } }), { abortSignal: signal });
  onBytes(body.length);
}

/**
 * Multipart upload, parts read in order (so the file is hashed once, alongside) and sent a few at a
 * time. The hash is checked before CompleteMultipartUpload: a file edited after the manifest was
 * written never becomes an object. Any failure aborts the upload so no orphaned parts are billed.
 */
async function putMultipart(
  client: S3Client,
  bucket: string,
  key: string,
  file: string,
  f: ManifestFile,
  partSizeWanted: number,
  partConcurrency: number,
  signal: AbortSignal,
  onBytes: (n: number) => void,
): Promise<void> {
  // Keep within S3's 10,000-part limit by growing parts (in whole MiB) for very large files.
  const partSize = Math.max(partSizeWanted, Math.ceil(f.size / MAX_PARTS / MiB) * MiB);
  const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: contentType(f.path), Metadata: { sha256: f.sha256 } }), { abortSignal: signal });
  const uploadId = created.UploadId;
  if (!uploadId) throw new Error("CreateMultipartUpload returned no UploadId");
  const parts: CompletedPart[] = [];
  const inflight = new Set<Promise<void>>();
  const fh = await open(file, "r");
  try {
    const hash = createHash("sha256");
    let off = 0;
    for (let partNumber = 1; off < f.size; partNumber++) {
      signal.throwIfAborted();
      const len = Math.min(partSize, f.size - off);
      const buf = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await fh.read(buf, got, len - got, off + got);
        if (bytesRead === 0) throw new Error(`file shrank while uploading (${off + got} of ${f.size} bytes)`);
        got += bytesRead;
      }
      hash.update(buf);
      off += len;
      const p: Promise<void> = client
        .send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: buf, ContentLength: len }), {
          abortSignal: signal,
        })
        .then((r) => {
          if (!r.ETag) throw new Error(`UploadPart ${partNumber} returned no ETag`);
          parts.push({ PartNumber: partNumber, ETag: r.ETag });
          onBytes(len);
        });
      inflight.add(p);
      p.then(
        () => inflight.delete(p),
        () => inflight.delete(p),
      );
      if (inflight.size >= partConcurrency) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    const digest = hash.digest("hex");
    if (digest !== f.sha256) throw changedError(f, digest);
    parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
    await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }), { abortSignal: signal });
  } catch (e) {
    await Promise.allSettled(inflight);
    // Best effort: some servers (s3rver) do not implement AbortMultipartUpload; the original error matters more.
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
    throw e;
  } finally {
    await fh.close();
  }
}
