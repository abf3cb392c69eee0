// The ModelStore interface (where bundles come from) and loadBundle (turning a verified local
// folder into a LoadedBundle). Implementations: local-model-store.ts, s3-model-store.ts.
import { constants as bufferConstants } from "node:buffer";
import { open, readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { GenerationConfigSchema, MANIFEST_FILE, ModelConfigSchema, bundleLabel, externalDataFiles, TokenizerConfigSchema, parseJsonFile, type LoadedBundle, type Manifest } from "./bundle.ts";
import { bundleFilePath, parseManifest, verifyBundleDir } from "./manifest.ts";

export interface Progress {
  /** "hash": building a manifest; "verify": checking files on disk; "download"/"upload": moving bytes. */
  phase: "hash" | "verify" | "download" | "upload";
  /** Bytes done so far in this phase. */
  bytes: number;
  /** Bytes this phase handles in all. */
  total: number;
  /** The file that most recently advanced. */
  file?: string;
}

export interface FetchOptions {
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  /**
   * Only these files of the bundle (its manifest always): the edge needs a target's config and tokenizer,
   * not its weights (ALIA-40b: ≈81 GB). Unset: every file.
   */
  files?: readonly string[];
}

/** The manifest entries a fetch covers; a requested file the manifest does not list is an error. */
export function filesToFetch(manifest: Manifest, files: readonly string[] | undefined): Manifest["files"] {
  if (!files) return manifest.files;
  const missing = files.filter((p) => !manifest.files.some((f) => f.path === p));
  if (missing.length) throw new Error(`bundle ${bundleLabel(manifest)}: ${MANIFEST_FILE} does not list ${missing.join(", ")}`);
  return manifest.files.filter((f) => files.includes(f.path));
}

export interface ModelStore {
  /** Human-readable origin, for logs ("local:<root>", "s3://bucket/prefix"). */
  readonly name: string;
  /** Make bundle `ref` available locally and return its folder; every file has been verified. */
  fetchBundle(ref: string, opts?: FetchOptions): Promise<string>;
}

/** Read and validate `dir/manifest.json`. */
export async function readManifest(dir: string): Promise<Manifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`no bundle at ${dir}: ${MANIFEST_FILE} is missing`);
    throw e;
  }
  return parseManifestBytes(bytes, file);
}

export function parseManifestBytes(bytes: Uint8Array, source: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new Error(`invalid manifest ${source}: not valid JSON (${(e as Error).message})`);
  }
  return parseManifest(raw, source);
}

// tokenizer.json is consumed by @huggingface/tokenizers; here we only insist on its outer shape.
const TokenizerJsonSchema = z.looseObject({ model: z.looseObject({}) });

/**
 * Load a bundle folder: validate manifest.json, verify every file's size and sha256, parse the JSON
 * files with the schemas of bundle.ts and read the ONNX graph (`onnxFile`, default onnx/model.onnx,
 * which must be listed in the manifest so that it was verified).
 */
export async function loadBundle(
  dir: string,
  opts: { onnxFile?: string; signal?: AbortSignal /** The files were just verified (e.g. by fetchBundle): check sizes only. */; verified?: boolean } = {},
): Promise<LoadedBundle> {
  const manifest = await readManifest(dir);
  const label = `bundle ${bundleLabel(manifest)}`;
  const onnxFile = opts.onnxFile ?? "onnx/model.onnx";
  if (!manifest.files.some((f) => f.path === onnxFile))
    throw new Error(
      `${label}: ${onnxFile} is not listed in ${MANIFEST_FILE} (onnx files: ${
        manifest.files
          .filter((f) => f.path.endsWith(".onnx"))
          .map((f) => f.path)
          .join(", ") || "none"
      })`,
    );
  await verifyBundleDir(dir, manifest, { signal: opts.signal, quick: opts.verified });

  const json = async <T>(schema: z.ZodType<T>, rel: string): Promise<T> => parseJsonFile(schema, await readFile(bundleFilePath(dir, rel)), `${label}: ${rel}`);
  const [config, generationConfig, tokenizerJson, tokenizerConfig] = await Promise.all([
    json(ModelConfigSchema, "config.json"),
    json(GenerationConfigSchema, "generation_config.json"),
    json(TokenizerJsonSchema, "tokenizer.json"),
    json(TokenizerConfigSchema, "tokenizer_config.json"),
  ]);
  const onnx = await readLargeFile(bundleFilePath(dir, onnxFile));
  const externalData = await Promise.all(externalDataFiles(manifest, onnxFile).map(async (f) => ({ path: f.path, data: await readLargeFile(bundleFilePath(dir, f.file)) })));
  return { manifest, config, generationConfig, tokenizerJson, tokenizerConfig, onnx, externalData, dir, onnxFile };
}

/** fs.readFile stops at 2 GiB; a preallocated Buffer read in chunks reaches Node's 4 GiB limit. */
export async function readLargeFile(file: string): Promise<Uint8Array> {
  const fh = await open(file, "r");
  try {
    const { size } = await fh.stat();
    const max = bufferConstants.MAX_LENGTH;
    if (size > max) throw new Error(`${file}: ${size} bytes is more than one buffer can hold (${max}); export the ONNX model with external data (model.onnx_data)`);
    const buf = Buffer.allocUnsafe(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(buf, off, Math.min(64 << 20, size - off), off);
      if (bytesRead === 0) throw new Error(`${file}: file shrank while reading (${off} of ${size} bytes)`);
      off += bytesRead;
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, size);
  } finally {
    await fh.close();
  }
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** Phases over fewer bytes than this finish in well under a second: no progress output for them. */
export const PROGRESS_MIN_BYTES = 64 * 1024 * 1024;

/**
 * An onProgress callback that writes to stderr. On a TTY it rewrites one line (`\r`) at most ~10
 * times a second; otherwise (CI logs, files) it prints one line per 10% so logs stay short.
 */
export function progressReporter(label: string, stream: NodeJS.WriteStream = process.stderr, minBytes = PROGRESS_MIN_BYTES): (p: Progress) => void {
  const tty = Boolean(stream.isTTY);
  let phase: Progress["phase"] | undefined;
  let start = 0;
  let lastDraw = 0;
  let lastDecile = -1;
  let finished = false;
  return (p) => {
    const now = Date.now();
    if (p.phase !== phase) {
      if (tty && phase !== undefined && !finished) stream.write("\n");
      phase = p.phase;
      start = now;
      lastDraw = 0;
      lastDecile = -1;
      finished = false;
    }
    if (finished || p.total < minBytes) return;
    const done = p.bytes >= p.total;
    const pct = p.total > 0 ? (100 * p.bytes) / p.total : 100;
    const secs = Math.max((now - start) / 1000, 1e-3);
    const rate = p.bytes / secs / 1e6;
    // Floor, so 99.97% does not print as "100.0%" before the phase is really done.
    const shown = (Math.floor(pct * 10) / 10).toFixed(1);
    const line = `${label}: ${phase} ${fmtBytes(p.bytes)} / ${fmtBytes(p.total)} (${shown}%) ${rate.toFixed(1)} MB/s`;
    if (tty) {
      if (!done && now - lastDraw < 100) return;
      lastDraw = now;
      stream.write(`\r${line}\x1b[K${done ? "\n" : ""}`);
    } else {
      const decile = Math.floor(pct / 10);
      if (decile <= lastDecile) return;
      lastDecile = decile;
      stream.write(line + "\n");
    }
    finished = done;
  };
}
