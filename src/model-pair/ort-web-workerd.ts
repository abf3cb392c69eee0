// Runs onnxruntime-web inside Cloudflare Workers (workerd). Workers forbid compiling WASM from bytes
// ("Wasm code generation disallowed by embedder"): the only WASM a Worker may run is a module that was
// compiled at upload, i.e. an `import wasm from "….wasm"` that wrangler turns into a `WebAssembly.Module`.
// ORT 1.30 offers no hook to hand its Emscripten glue a ready Module (it builds the glue's options itself:
// only numThreads, wasmBinary, locateFile pass through), so this shim:
//   1. sets `env.wasm.wasmBinary` to a small placeholder. With a wasmBinary and one thread,
//      `onnxruntime-web/wasm` uses its inlined glue — no `import()` of ort-wasm-*.mjs, which workerd
//      would refuse — and the glue fetches nothing: it calls `WebAssembly.instantiate(bytes, imports)`
//      with a copy of the placeholder;
//   2. wraps `WebAssembly.instantiate` so that exactly that call (recognised by the placeholder's bytes)
//      instantiates the imported Module instead and returns the `{ instance, module }` the glue expects.
//      Every other call goes to the original untouched.
// Pass the Module of `onnxruntime-web/ort-wasm-simd-threaded.wasm`: the file the `onnxruntime-web/wasm`
// entry loads. Its glue and the .wasm must come from the same ORT build, or instantiation fails on imports.
import { env } from "onnxruntime-web/wasm";

/**
 * A token, not code: the WASM header plus one custom section naming this shim. The glue copies
 * wasmBinary (`new Uint8Array(wasmBinary)`) before instantiating, so it is recognised by content.
 */
const PLACEHOLDER = (() => {
  const name = new TextEncoder().encode("alia-edge/ort-web-workerd placeholder");
  const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  // Custom section: id 0, size, name length, name (both sizes < 128, so one-byte LEB128).
  return new Uint8Array([...header, 0x00, name.length + 1, name.length, ...name]);
})();

let installed: WebAssembly.Module | undefined;

function isPlaceholder(source: unknown): boolean {
  let bytes: Uint8Array;
  if (source instanceof ArrayBuffer) bytes = new Uint8Array(source);
  else if (ArrayBuffer.isView(source)) bytes = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  else return false;
  return bytes.length === PLACEHOLDER.length && bytes.every((b, i) => b === PLACEHOLDER[i]);
}

/**
 * Make onnxruntime-web instantiate `module` instead of compiling bytes. Call once per isolate, before the
 * first `InferenceSession.create` (e.g. before `loadDraftModel`); calling again with the same Module is a
 * no-op, with a different one an error (ORT initialises its WASM once per isolate).
 */
export function installWorkerdWasm(module: WebAssembly.Module): void {
  if (!(module instanceof WebAssembly.Module)) throw new TypeError("installWorkerdWasm needs a WebAssembly.Module (import the .wasm as a CompiledWasm module)");
  if (installed) {
    if (installed !== module) throw new Error("installWorkerdWasm: a different WASM module is already installed");
    return;
  }
  installed = module;

  // Workers have no threads (no SharedArrayBuffer workers); draft-model.ts sets this too.
  env.wasm.numThreads = 1;
  // No proxy worker: Workers cannot spawn Web Workers.
  env.wasm.proxy = false;
  env.wasm.wasmBinary = PLACEHOLDER;

  const original = WebAssembly.instantiate.bind(WebAssembly) as (...args: unknown[]) => Promise<unknown>;
  const routed = async (source: unknown, imports?: WebAssembly.Imports): Promise<unknown> => {
    if (!isPlaceholder(source)) return original(source, imports);
    // Given a Module, instantiate resolves to an Instance; the glue wants the bytes-form result.
    const instance = (await original(module, imports)) as WebAssembly.Instance;
    return { instance, module };
  };
  // Only the placeholder is rerouted, so other WASM users in the isolate see the original behaviour.
  (WebAssembly as { instantiate: unknown }).instantiate = routed;
}
