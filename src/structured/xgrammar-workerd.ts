// xgrammar inside Cloudflare Workers (workerd). Workers refuse to compile WebAssembly from bytes ("Wasm code
// generation disallowed by embedder"), and @mlc-ai/web-xgrammar ships its WebAssembly only inlined, as
// base64 its Emscripten glue decodes and hands to `WebAssembly.instantiate(bytes, imports)`. So:
//   1. wrangler's build step (scripts/xgrammar-wasm.ts, wrangler.toml's `[build]`) writes that binary to
//      .cache/xgrammar/xgrammar.wasm, which is imported here: wrangler compiles it at upload into a
//      WebAssembly.Module (wrangler's default rules; typed by src/wasm-modules.d.ts);
//   2. `WebAssembly.instantiate` is wrapped so that the glue's call, recognised by its imports matching the
//      Module's exactly, instantiates the Module instead and returns the `{ instance, module }` the glue
//      expects. Every other call (onnxruntime-web's, src/model-pair/ort-web-workerd.ts) goes on untouched.
// The rest is the engine's own loader (xgrammar-engine.ts: a `location` lent for the load).
import xgrammarWasm from "../../.cache/xgrammar/xgrammar.wasm";
import { loadXgrammar, XgrammarEngine } from "./xgrammar-engine.ts";
import type { TextTokenizer } from "../common/models/tokenizer.ts";

/** Whether `imports` supplies exactly what `module` imports (the glue passes `{ a: { …its functions } }`). */
function importsOf(module: WebAssembly.Module, imports: unknown): boolean {
  if (typeof imports !== "object" || imports === null) return false;
  const wanted = WebAssembly.Module.imports(module);
  const given = imports as Record<string, Record<string, unknown> | undefined>;
  const names = new Set(wanted.map((i) => `${i.module}\u0000${i.name}`));
  const offered = Object.entries(given).flatMap(([m, o]) => Object.keys(o ?? {}).map((n) => `${m}\u0000${n}`));
  return names.size === offered.length && offered.every((n) => names.has(n));
}

let routed = false;

/** Makes the glue's `WebAssembly.instantiate(bytes, imports)` instantiate the precompiled Module (once per isolate). */
function routeInstantiate(module: WebAssembly.Module): void {
  if (routed) return;
  routed = true;
  const original = WebAssembly.instantiate.bind(WebAssembly) as (...args: unknown[]) => Promise<unknown>;
  (WebAssembly as { instantiate: unknown }).instantiate = async (source: unknown, imports?: WebAssembly.Imports): Promise<unknown> => {
    if (source instanceof WebAssembly.Module || !importsOf(module, imports)) return original(source, imports);
    // Given a Module, instantiate resolves to an Instance; the glue wants the bytes-form result.
    return { instance: (await original(module, imports)) as WebAssembly.Instance, module };
  };
}

/** Loads xgrammar in a Worker: its WebAssembly from the module compiled at upload. */
export function loadXgrammarWorkerd(): ReturnType<typeof loadXgrammar> {
  return loadXgrammar((load) => {
    routeInstantiate(xgrammarWasm);
    return load();
  });
}

/** The grammar engine of a Worker, for the target's tokenizer. */
export function createWorkerdGrammarEngine(tokenizer: TextTokenizer): Promise<XgrammarEngine> {
  return XgrammarEngine.create(tokenizer, loadXgrammarWorkerd);
}
