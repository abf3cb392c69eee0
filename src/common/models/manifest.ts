// Building and checking a bundle's manifest.json: sha256 + size of every file. Hashes are streamed
// because real bundles hold multi-GB ONNX files.
import { createHash } from "node:crypto";
import { createReadStream, type Stats } from "node:fs";
import { readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { MANIFEST_FILE, ManifestSchema, bundleLabel, type Manifest, type ManifestFile } from "./bundle.ts";
import { describeZodIssues } from "../zod-issues.ts";

/** Chunk size for hashing reads: large enough that GB files do not cost millions of callbacks. */
const HASH_CHUNK = 1 << 20;

export interface HashResult {
  sha256: string;
  size: number;
}

/** sha256 + size of one file, streamed; `onBytes` sees every chunk length (for progress). */
export async function hashFile(file: string, opts: { onBytes?: (n: number) => void; signal?: AbortSignal } = {}): Promise<HashResult> {
  const hash = createHash("sha256");
  let size = 0;
  const stream = createReadStream(file, { highWaterMark: HASH_CHUNK, signal: opts.signal });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
    opts.onBytes?.(chunk.length);
  }
  return { sha256: hash.digest("hex"), size };
}

/**
 * Join a manifest path onto a folder, refusing anything that could land outside it. The manifest
 * schema already bans '..', absolute paths and '\\'; this is the last line of defence before a
 * write, so it also refuses empty and '.' segments and checks the resolved result.
 */
export function bundleFilePath(dir: string, rel: string): string {
  const segs = rel.split("/");
  if (rel.length === 0 || rel.includes("\\") || rel.includes("\0") || path.isAbsolute(rel) || segs.some((s) => s === "" || s === "." || s === ".."))
    throw new Error(`unsafe file path in manifest: ${JSON.stringify(rel)}`);
  const root = path.resolve(dir);
  const full = path.resolve(root, ...segs);
  if (!full.startsWith(root + path.sep)) throw new Error(`unsafe file path in manifest: ${JSON.stringify(rel)} escapes the bundle folder`);
  return full;
}

/**
 * Files to list in a manifest: every regular file under `dir` except the manifest itself, dotfiles
 * and dot-folders (.git, .gitattributes, .cache from HF downloads) and leftover `*.partial` downloads.
 */
async function listBundleFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    const entries = await readdir(path.join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      if (e.name.startsWith(".") || e.name.endsWith(".partial")) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (r === MANIFEST_FILE) continue;
      // Follow symlinks (HF caches link files to blobs); the manifest describes their contents.
      const s = e.isSymbolicLink() ? await stat(path.join(dir, r)) : e;
      if (s.isDirectory()) await walk(r);
      else if (s.isFile()) out.push(r);
    }
  }
  await walk("");
  // Code-point order, not locale order, so the manifest is byte-identical on every machine.
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export interface ManifestMeta {
  id: string;
  version: string;
  role?: "draft" | "target" | "any";
}

/** Hash every file in `dir` and return a validated manifest (throws if a required file is absent). */
export async function buildManifest(dir: string, meta: ManifestMeta, opts: { onBytes?: (n: number, total: number) => void; signal?: AbortSignal } = {}): Promise<Manifest> {
  const paths = await listBundleFiles(dir);
  const sizes = await Promise.all(paths.map(async (p) => (await stat(path.join(dir, p))).size));
  const total = sizes.reduce((a, b) => a + b, 0);
  const files: ManifestFile[] = [];
  for (const p of paths) {
    const { sha256, size } = await hashFile(path.join(dir, p), {
      signal: opts.signal,
      onBytes: opts.onBytes && ((n) => opts.onBytes!(n, total)),
    });
    files.push({ path: p, size, sha256 });
  }
  const candidate = {
    format: "alia-edge-bundle/1" as const,
    id: meta.id,
    version: meta.version,
    role: meta.role ?? "any",
    created: new Date().toISOString(),
    files,
  };
  return parseManifest(candidate, `${dir}/${MANIFEST_FILE}`);
}

/** Validate a manifest object (already JSON-parsed), with every zod issue spelled out. */
export function parseManifest(raw: unknown, source: string): Manifest {
  const r = ManifestSchema.safeParse(raw);
  if (!r.success) throw new Error(`invalid manifest ${source}: ${describeZodIssues(r.error)}`);
  checkManifestNames(r.data, source);
  return r.data;
}

/** Checks beyond the schema: file paths must stay inside the bundle folder. */
function checkManifestNames(m: Manifest, source: string): void {
  for (const f of m.files) {
    if (f.path === MANIFEST_FILE) throw new Error(`invalid manifest ${source}: files: lists ${MANIFEST_FILE} itself`);
    bundleFilePath("/bundle", f.path);
  }
}

/** Build the manifest and write it to `dir/manifest.json` (atomically, via a temp file). */
export async function writeManifest(dir: string, meta: ManifestMeta, opts: { onBytes?: (n: number, total: number) => void; signal?: AbortSignal } = {}): Promise<Manifest> {
  const m = await buildManifest(dir, meta, opts);
  await writeJsonAtomic(path.join(dir, MANIFEST_FILE), m);
  return m;
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}-${Math.random().toString(36).slice(2)}.partial`;
  try {
    await writeFile(tmp, JSON.stringify(value, null, 2) + "\n");
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Check one manifest file on disk. Returns null when it matches, else a description of what is
 * wrong (without the bundle label). `quick` checks presence and size only.
 */
export async function checkBundleFile(dir: string, f: ManifestFile, opts: { quick?: boolean; onBytes?: (n: number) => void; signal?: AbortSignal } = {}): Promise<string | null> {
  const full = bundleFilePath(dir, f.path);
  let s: Stats;
  try {
    s = await stat(full);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    throw e;
  }
  if (!s.isFile()) return "not a regular file";
  if (s.size !== f.size) return `size ${s.size} != ${f.size} in manifest (truncated or partial download?)`;
  if (opts.quick) return null;
  const got = await hashFile(full, { onBytes: opts.onBytes, signal: opts.signal });
  // The file can change between stat and read; report the size the hash actually saw.
  if (got.size !== f.size) return `size ${got.size} != ${f.size} in manifest (file changed while reading?)`;
  if (got.sha256 !== f.sha256) return `sha256 mismatch (expected ${f.sha256}, got ${got.sha256})`;
  return null;
}

/**
 * Verify every file of `manifest` inside `dir`: present, right size, right sha256 (unless `quick`).
 * Throws one Error naming every bad file, e.g.
 * `bundle fixture-target@1: onnx/model.onnx: sha256 mismatch (expected …, got …)`.
 */
export async function verifyBundleDir(dir: string, manifest: Manifest, opts: { quick?: boolean; onBytes?: (n: number, total: number) => void; signal?: AbortSignal } = {}): Promise<void> {
  const total = manifest.files.reduce((a, f) => a + f.size, 0);
  const problems: string[] = [];
  for (const f of manifest.files) {
    opts.signal?.throwIfAborted();
    const p = await checkBundleFile(dir, f, {
      quick: opts.quick,
      signal: opts.signal,
      onBytes: opts.onBytes && ((n) => opts.onBytes!(n, total)),
    });
    if (p) problems.push(`${f.path}: ${p}`);
  }
  if (problems.length) throw new Error(`bundle ${bundleLabel(manifest)}: ${problems.join("; ")}`);
}
