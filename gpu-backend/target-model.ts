// The verifier's model on onnxruntime-node: CPU here, CUDA where onnxruntime-node was installed with
// `onnxruntime-node-install=cuda12` (production ALIA-40b goes through SglangEngine instead).
import * as ort from "onnxruntime-node";
import type { LoadedBundle } from "../src/models/bundle.ts";
import { CausalLM, type CausalLMOptions, type OrtRuntime } from "../src/models/causal-lm.ts";

export const ortNode: OrtRuntime = ort as unknown as OrtRuntime;

export type TargetDevice = "cpu" | "cuda";

/** The target runs the same CausalLM interface as the drafter, natively. */
export type TargetModel = CausalLM;

export function loadTargetModel(
  bundle: Pick<LoadedBundle, "onnx" | "config">,
  opts: CausalLMOptions & { device?: TargetDevice; threads?: number } = {},
): Promise<TargetModel> {
  return CausalLM.load(ortNode, bundle.onnx, bundle.config, {
    sessionOptions: {
      executionProviders: [opts.device ?? "cpu"],
      graphOptimizationLevel: "all",
      ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
      ...opts.sessionOptions,
    },
  });
}
