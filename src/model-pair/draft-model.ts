// The edge drafter's model: onnxruntime-web (WASM), the one ONNX Runtime that runs in Node, browsers and
// Cloudflare Workers alike. In workerd, call `installWorkerdWasm` (ort-web-workerd.ts) before loading.
import * as ort from "onnxruntime-web/wasm";
import type { LoadedBundle } from "../common/models/bundle.ts";
import { CausalLM, type CausalLMOptions, type OrtRuntime } from "../common/models/causal-lm.ts";

// One thread: Workers have no threads, and a single thread keeps drafting deterministic everywhere.
ort.env.wasm.numThreads = 1;

export const ortWeb: OrtRuntime = ort;

/** The drafter runs the same CausalLM interface as the target, on WASM. */
export type DraftModel = CausalLM;

export function loadDraftModel(bundle: Pick<LoadedBundle, "onnx" | "config" | "externalData">, opts: CausalLMOptions = {}): Promise<DraftModel> {
  return CausalLM.load(ortWeb, bundle.onnx, bundle.config, {
    sessionOptions: {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all",
      ...(bundle.externalData?.length ? { externalData: bundle.externalData } : {}),
      ...opts.sessionOptions,
    },
  });
}
