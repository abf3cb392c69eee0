// The verifier's model on onnxruntime-node: CPU by default, CUDA (VERIFIER_DEVICE=cuda) where
// onnxruntime-node's CUDA provider was installed (`npm run onnxruntime:cuda`). Production ALIA-40b is served
// by SGLang instead.
import path from "node:path";
import * as ort from "onnxruntime-node";
import type { LoadedBundle } from "../src/common/models/bundle.ts";
import { CausalLM, type CausalLMOptions, type OrtRuntime } from "../src/common/models/causal-lm.ts";

export const ortNode: OrtRuntime = ort as unknown as OrtRuntime;

export type TargetDevice = "cpu" | "cuda";

/** The target runs the same CausalLM interface as the drafter, natively. */
export type TargetModel = CausalLM;

export function loadTargetModel(bundle: Pick<LoadedBundle, "onnx" | "config" | "externalData" | "dir" | "onnxFile">, opts: CausalLMOptions & { device?: TargetDevice; threads?: number } = {}): Promise<TargetModel> {
  // onnxruntime-node takes no external-data buffers: with external weights, load the graph from disk
  // and let it find them beside the graph.
  let model: Uint8Array | string = bundle.onnx;
  if (bundle.externalData?.length) {
    if (!bundle.dir) throw new Error("a graph with external data must be loaded from its bundle folder (bundle.dir)");
    model = path.join(bundle.dir, bundle.onnxFile ?? "onnx/model.onnx");
  }
  return CausalLM.load(ortNode, model, bundle.config, {
    sessionOptions: {
      executionProviders: [opts.device ?? "cpu"],
      graphOptimizationLevel: "all",
      ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
      ...opts.sessionOptions,
    },
  });
}
