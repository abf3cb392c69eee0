// Bundles in an S3-compatible bucket (Cloudflare R2, MinIO, AWS S3), cached on local disk.
//
// Key layout (shared with s3-upload.ts): `<prefix>/<id>/manifest.json` and `<prefix>/<id>/<path>`
// for every manifest file. The ref is the bundle id; the version lives only in the manifest, so
// re-uploading replaces a bundle in place. Cache layout: `<cacheDir>/<id>/<version>/<path>`.
import { GetObjectCommand, S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { MANIFEST_FILE, bundleLabel, type Manifest, type ManifestFile } from "./bundle.ts";
import { bundleFilePath, checkBundleFile, verifyBundleDir, writeJsonAtomic } from "./manifest.ts";
import { filesToFetch, parseManifestBytes, type FetchOptions, type ModelStore } from "./model-store.ts";

export interface S3Options {
  bucket: string;
  /** Key prefix under which bundles live ("models" → `models/<id>/...`); no leading/trailing '/'. */
  prefix?: string;
  /** e.g. `https://<account>.r2.cloudflarestorage.com`; omit for AWS S3. */
  endpoint?: string;
  /** Default "auto", what R2 expects; set a real region for AWS S3. */
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`): needed by local servers (s3rver, MinIO). */
  forcePathStyle?: boolean;
  /** Omit to use the SDK's default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles…). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** SDK attempts per request (default 3). */
  maxAttempts?: number;
}

export function createS3Client(o: S3Options): S3Client {
  const cfg: S3ClientConfig = {
    region: o.region ?? "auto",
    endpoint: o.endpoint,
    forcePathStyle: o.forcePathStyle ?? false,
    credentials: o.credentials,
    ...(o.maxAttempts ? { maxAttempts: o.maxAttempts } : {}),
    // R2 rejects/ignores the SDK's default CRC32 checksums; integrity comes from our sha256 instead.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  };
  return new S3Client(cfg);
}

/** `<prefix>/<ref>/<file>` with empty parts dropped. */
export function bundleKey(prefix: string | undefined, ref: string, file: string): string {
  return [(prefix ?? "").replace(/^\/+|\/+$/g, ""), ref, file].filter(Boolean).join("/");
}

/** Refs become key segments and cache folder names: same charset as bundle ids, no '.'/'..'. */
export function checkRef(ref: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(ref) || ref === "." || ref === "..") throw new Error(`invalid bundle ref ${JSON.stringify(ref)}: expected a bundle id (letters, digits, '.', '_', '-')`);
}

export function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err?.name === "NoSuchKey" || err?.name === "NotFound" || err?.$metadata?.httpStatusCode === 404;
}

/** Run `fn` over `items`, at most `limit` at a time; on the first failure abort the others, wait, rethrow. */
export async function runLimited<T>(items: readonly T[], limit: number, signal: AbortSignal | undefined, fn: (item: T, signal: AbortSignal) => Promise<void>): Promise<void> {
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal!.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  let next = 0;
  let firstError: unknown;
  const worker = async () => {
    while (next < items.length && !ac.signal.aborted) {
      const item = items[next++];
      try {
        await fn(item, ac.signal);
      } catch (e) {
        if (firstError === undefined) firstError = e;
        ac.abort(e);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (firstError !== undefined) throw firstError;
  signal?.throwIfAborted();
}

export interface S3ModelStoreOptions extends S3Options {
  /** Local folder for downloaded bundles (`<cacheDir>/<id>/<version>/`). */
  cacheDir: string;
  /** Files downloaded at the same time (default 4). */
  concurrency?: number;
}

export class S3ModelStore implements ModelStore {
  readonly name: string;
  readonly client: S3Client;
  private readonly opts: S3ModelStoreOptions;

  constructor(opts: S3ModelStoreOptions) {
    if (!opts.bucket) throw new Error("S3ModelStore: bucket is required");
    if (!opts.cacheDir) throw new Error("S3ModelStore: cacheDir is required");
    this.opts = opts;
    this.client = createS3Client(opts);
    this.name = `s3://${opts.bucket}/${bundleKey(opts.prefix, "", "")}`;
  }

  private url(key: string): string {
    return `s3://${this.opts.bucket}/${key}`;
  }

  async fetchBundle(ref: string, opts: FetchOptions = {}): Promise<string> {
    checkRef(ref);
    const { signal, onProgress } = opts;
    const manifest = await this.fetchManifest(ref, signal);
    // A partial fetch still writes the whole manifest: a later full fetch re-checks every file anyway.
    const files = filesToFetch(manifest, opts.files);
    const dir = path.resolve(this.opts.cacheDir, manifest.id, manifest.version);
    await mkdir(dir, { recursive: true });

    // 1. Which cached files are still good? Every cached file is re-hashed: a file corrupted on disk
    //    since the last fetch is re-downloaded rather than trusted.
    const verifyTotal = files.reduce((a, f) => a + f.size, 0);
    let verified = 0;
    const stale: ManifestFile[] = [];
    await runLimited(files, this.opts.concurrency ?? 4, signal, async (f, sig) => {
      let hashed = 0;
      const report = (n: number) => {
        verified += n;
        onProgress?.({ phase: "verify", bytes: verified, total: verifyTotal, file: f.path });
      };
      const problem = await checkBundleFile(dir, f, {
        signal: sig,
        onBytes: (n) => {
          hashed += n;
          report(n);
        },
      });
      // Missing or wrong-size files are not hashed; count them as checked so the total is reached.
      if (f.size - hashed > 0) report(f.size - hashed);
      if (problem) stale.push(f);
    });

    // 2. Download what is missing or bad. The old manifest.json goes first, so that a fetch that
    //    fails half-way never leaves a folder that looks complete.
    if (stale.length) await rm(path.join(dir, MANIFEST_FILE), { force: true });
    const dlTotal = stale.reduce((a, f) => a + f.size, 0);
    let downloaded = 0;
    await runLimited(stale, this.opts.concurrency ?? 4, signal, (f, sig) =>
      this.downloadFile(ref, manifest, f, dir, sig, (n) => {
        downloaded += n;
        onProgress?.({ phase: "download", bytes: downloaded, total: dlTotal, file: f.path });
      }),
    );

    // 3. Every file's sha256 was computed in this call (cache check or while streaming), so the
    //    final pass only checks presence and size instead of hashing GBs a second time.
    await verifyBundleDir(dir, { ...manifest, files }, { quick: true, signal });
    // The manifest goes in last: a cache folder with a manifest.json is a complete bundle.
    await writeJsonAtomic(path.join(dir, MANIFEST_FILE), manifest);
    return dir;
  }

  private async fetchManifest(ref: string, signal?: AbortSignal): Promise<Manifest> {
    const key = bundleKey(this.opts.prefix, ref, MANIFEST_FILE);
    let bytes: Uint8Array;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: key }), { abortSignal: signal });
      if (!res.Body) throw new Error("empty response body");
      bytes = await res.Body.transformToByteArray();
    } catch (e) {
      if (isNotFound(e)) throw new Error(`${this.name}: no bundle ${JSON.stringify(ref)} (${this.url(key)} does not exist)`);
      throw new Error(`${this.name}: could not read ${this.url(key)}: ${(e as Error).message}`, { cause: e });
    }
    return parseManifestBytes(bytes, this.url(key));
  }

  /** Stream one object to `<dest>.<random>.partial` while hashing; rename into place only if it matches. */
  private async downloadFile(ref: string, manifest: Manifest, f: ManifestFile, dir: string, signal: AbortSignal, onBytes: (n: number) => void): Promise<void> {
    const label = `bundle ${bundleLabel(manifest)}: ${f.path}`;
    const key = bundleKey(this.opts.prefix, ref, f.path);
    const url = this.url(key);
    const dest = bundleFilePath(dir, f.path);
    await mkdir(path.dirname(dest), { recursive: true });
    // Unique temp name: two processes sharing a cache never write into the same partial file.
    const partial = `${dest}.${randomBytes(6).toString("hex")}.partial`;
    const hash = createHash("sha256");
    let size = 0;
    try {
      let body: Readable;
      try {
        const res = await this.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: key }), { abortSignal: signal });
        if (!res.Body) throw new Error("empty response body");
        body = res.Body as Readable;
      } catch (e) {
        if (isNotFound(e)) throw new Error(`${label}: missing in bucket (${url} does not exist)`);
        throw e;
      }
      const meter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          size += chunk.length;
          // Stop early instead of filling the disk when the object is bigger than the manifest says.
          if (size > f.size) return cb(new Error(`${label}: object in bucket is larger than ${f.size} bytes in manifest (${url})`));
          hash.update(chunk);
          onBytes(chunk.length);
          cb(null, chunk);
        },
      });
      await pipeline(body, meter, createWriteStream(partial), { signal });
      if (size !== f.size) throw new Error(`${label}: size ${size} != ${f.size} in manifest (truncated download from ${url}?)`);
      const got = hash.digest("hex");
      if (got !== f.sha256) throw new Error(`${label}: sha256 mismatch (expected ${f.sha256}, got ${got}) in ${url}`);
      await rename(partial, dest);
    } catch (e) {
      await rm(partial, { force: true });
      const err = e as Error;
      if (err.name === "AbortError" || err.message.startsWith(label)) throw err;
      throw new Error(`${label}: download of ${url} failed: ${err.message}`, { cause: e });
    }
  }
}
