// The measured cost models on one H200 (measurements/h200-pass-times.json), for each (batch, chunk, past) the
// faster of the two exact attention paths the measuring script ran (`ms_best_exact`):
//
// * `h200-alia-40b`: ALIA-40b's pass times as measured.
// * `engine`: an estimate of ALIA-40b under attention kernels that read a row's K/V once whatever its chunk
//   (the measured paths read it once per new token, so long pasts make long chunks dear). With T the
//   measured model and p0 the shortest measured past (512, where attention is negligible):
//     engine(b, c, p) = T(b, 1, p) + [T(b, c, p0) − T(b, 1, p0)]
//   the measured one-token pass at that past (one K/V read) plus the measured cost of the extra tokens
//   at that short past. Derived at every (batch, chunk, past) of ALIA-40b's grid and modelled like a
//   measurement, so that it interpolates and extrapolates as `h200-alia-40b` does.
// * `h200-salamandra-2b`: the draft model's step times, measured at 512 past only (`passMsClampingPast`
//   costs longer pasts there: a lower bound).
import passTimes from "../../measurements/h200-pass-times.json";
import { type MeasuredPass, PassCostModel } from "./pass-cost-model.ts";

interface MeasuredRow {
  model: string;
  batch: number;
  chunk: number;
  past: number;
  ms_best_exact: number;
}

/** Measured passes of one of the measured models ("alia-40b", "salamandra-7b", "salamandra-2b"). */
export function measuredPasses(model: string): MeasuredPass[] {
  return (passTimes.passes as MeasuredRow[]).filter((p) => p.model === model).map((p) => ({ batch: p.batch, chunk: p.chunk, past: p.past, ms: p.ms_best_exact }));
}

/** The cost models a configuration can name. */
export const PASS_COST_MODELS = ["h200-alia-40b", "engine"] as const;
export type PassCostModelName = (typeof PASS_COST_MODELS)[number];

const build: Record<PassCostModelName, () => PassCostModel> = {
  "h200-alia-40b": () => new PassCostModel("h200-alia-40b", measuredPasses("alia-40b")),
  engine: () => {
    const t = h200Alia40b();
    const measured = measuredPasses("alia-40b");
    const axis = (f: (m: MeasuredPass) => number) => [...new Set(measured.map(f))].sort((a, b) => a - b);
    const pasts = axis((m) => m.past);
    const p0 = pasts[0];
    const derived = pasts.flatMap((past) =>
      axis((m) => m.batch).flatMap((batch) => axis((m) => m.chunk).map((chunk) => ({ batch, chunk, past, ms: t.passMs(batch, 1, past) + t.passMs(batch, chunk, p0) - t.passMs(batch, 1, p0) }))),
    );
    return new PassCostModel("engine", derived);
  },
};
const built = new Map<PassCostModelName, PassCostModel>();

/** The named cost model (built once). */
export function passCostModel(name: PassCostModelName): PassCostModel {
  let model = built.get(name);
  if (!model) {
    model = build[name]();
    built.set(name, model);
  }
  return model;
}

/** `h200-alia-40b`: ALIA-40b's pass times on one H200, as measured. */
export function h200Alia40b(): PassCostModel {
  return passCostModel("h200-alia-40b");
}

let salamandra2b: PassCostModel | undefined;

/** `h200-salamandra-2b`: Salamandra-2b's pass times on one H200, as measured (512 past only). */
export function h200Salamandra2b(): PassCostModel {
  salamandra2b ??= new PassCostModel("h200-salamandra-2b", measuredPasses("salamandra-2b"));
  return salamandra2b;
}
