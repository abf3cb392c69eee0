// wrangler's build step (wrangler.toml's `[build]`, run before every `wrangler deploy`, `--dry-run` and `wrangler
// dev`). @mlc-ai/web-xgrammar ships its WebAssembly only inlined, as base64 in its lib/index.js; this writes
//   .cache/xgrammar/xgrammar.wasm  the binary, which the Worker imports as a module compiled at upload
//                                  (src/structured/xgrammar-workerd.ts: Workers cannot compile from bytes);
//   .cache/xgrammar/index.js       the package's lib/index.js without it (the base64 emptied: ~1 MB the
//                                  Worker would upload twice), which wrangler.toml's [alias] bundles instead.
// Generated from the installed package each time, never committed; a file is rewritten only when it changes.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const XGRAMMAR_DIR = path.join(ROOT, ".cache", "xgrammar");
const PREFIX = "data:application/octet-stream;base64,";

/** The installed @mlc-ai/web-xgrammar's lib/index.js, split into its inlined WebAssembly binary and the rest. */
export async function splitXgrammar(): Promise<{ wasm: Buffer; js: string }> {
  const lib = createRequire(import.meta.url).resolve("@mlc-ai/web-xgrammar");
  const text = await readFile(lib, "utf8");
  // The glue's `wasmBinaryFile="data:…;base64,<binary>"` (its `dataURIPrefix` holds the prefix alone).
  const found = /"data:application\/octet-stream;base64,([A-Za-z0-9+/=]+)"/.exec(text);
  if (!found) throw new Error(`${lib}: no inlined WebAssembly (${PREFIX}…) found; has the package's build changed?`);
  const wasm = Buffer.from(found[1], "base64");
  if (wasm.readUInt32BE(0) !== 0x0061736d) throw new Error(`${lib}: the inlined data is not WebAssembly`);
  // Emptied, the glue decodes no bytes and still calls WebAssembly.instantiate, which the Worker reroutes.
  const js = text.slice(0, found.index) + `"${PREFIX}"` + text.slice(found.index + found[0].length);
  return { wasm, js };
}

async function writeIfChanged(file: string, data: Buffer): Promise<void> {
  const old = await readFile(file).catch(() => undefined);
  if (old?.equals(data)) return;
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, data);
}

/** Writes both files where the Worker's bundle takes them from; returns their sizes. */
export async function writeXgrammarForWorkers(dir = XGRAMMAR_DIR): Promise<{ wasmBytes: number; jsBytes: number }> {
  const { wasm, js } = await splitXgrammar();
  const jsBuffer = Buffer.from(js, "utf8");
  await writeIfChanged(path.join(dir, "xgrammar.wasm"), wasm);
  await writeIfChanged(path.join(dir, "index.js"), jsBuffer);
  return { wasmBytes: wasm.length, jsBytes: jsBuffer.length };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const n = await writeXgrammarForWorkers();
  const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
  console.error(`[xgrammar-wasm] ${path.relative(ROOT, XGRAMMAR_DIR)}: xgrammar.wasm ${kib(n.wasmBytes)}, index.js ${kib(n.jsBytes)}`);
}
