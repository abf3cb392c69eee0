// The measured cost model of ALIA-40b on one H200 (measurements/h200-pass-times.json): for each (batch,
// chunk, past) the faster of the two exact attention paths the measuring script ran (`ms_best_exact`).
import passTimes from "../../measurements/h200-pass-times.json";
import { PassCostModel } from "./pass-cost-model.ts";

interface MeasuredRow {
  model: string;
  batch: number;
  chunk: number;
  past: number;
  ms_best_exact: number;
}

/** Measured passes of one of the measured models ("alia-40b", "salamandra-7b", "salamandra-2b"). */
export function measuredPasses(model: string): { batch: number; chunk: number; past: number; ms: number }[] {
  return (passTimes.passes as MeasuredRow[]).filter((p) => p.model === model).map((p) => ({ batch: p.batch, chunk: p.chunk, past: p.past, ms: p.ms_best_exact }));
}

let cached: PassCostModel | undefined;

/** `h200-alia-40b`: ALIA-40b's pass times on one H200, as measured. */
export function h200Alia40b(): PassCostModel {
  cached ??= new PassCostModel("h200-alia-40b", measuredPasses("alia-40b"));
  return cached;
}
