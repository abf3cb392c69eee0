// Which draft-model shapes fit a Cloudflare Worker (`npm run bench:drafter-shapes`): random-weight Llama
// decoders at real scale — vocabulary {16k, 32k} × hidden {384, 512, 768} × layers {4, 8}, fp32 and int8
// weights (ONNX Runtime's quantize_dynamic pattern) — on onnxruntime-web with one thread, as the edge runs
// its drafter: in Node (ms per drafted token) and in workerd through Miniflare (ms per drafted token, and
// the workerd process's peak memory above an idle Worker's: model bytes, WASM heap and runtime). A shape
// fits when a drafted token costs ≤ 3 ms and the isolate ≤ 100 MB (a Worker's limit is 128 MB).
import { readFile, readdir, writeFile } from "node:fs/promises";
import os from "node:os";
import { ModelConfigSchema } from "../src/common/models/bundle.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { argmax } from "../src/common/sampling.ts";
import { llamaConfigJson, llamaOnnx, paramCount, type LlamaArch } from "../fixtures/generate/llama-onnx.ts";
import { randomLlamaWeights } from "../fixtures/generate/random-weights.ts";
import { bundleWorker, runWorker, type WorkerBundle } from "../test/harness/workerd.ts";
import { median } from "./statistics.ts";

export interface DrafterShape {
  vocab: number;
  hidden: number;
  layers: number;
  weights: "fp32" | "int8";
}

export const SHAPE_GRID = { vocab: [16_384, 32_768], hidden: [384, 512, 768], layers: [4, 8], weights: ["fp32", "int8"] as const };
/** A few shapes that span the grid, for a run of a minute or two. */
export const QUICK_SHAPES: DrafterShape[] = [
  { vocab: 16_384, hidden: 384, layers: 4, weights: "fp32" },
  { vocab: 32_768, hidden: 512, layers: 4, weights: "int8" },
  { vocab: 32_768, hidden: 768, layers: 8, weights: "int8" },
];
export const TARGET_MS_PER_TOKEN = 3;
export const TARGET_ISOLATE_MB = 100;
/** Tokens already in the draft's cache when drafting is timed (a prompt and some output). */
const CONTEXT = 256;
const STEPS = 32;
const WARMUP = 8;
const PART_BYTES = 32 << 20;

export interface ShapeResult extends DrafterShape {
  params: number;
  onnx_mb: number;
  node_ms_per_token: number;
  workerd_ms_per_token: number;
  /** Peak resident memory of workerd above an idle Worker's, after loading and drafting (MB). */
  workerd_isolate_mb: number;
  workerd_load_ms: number;
  /** Why workerd gave no figures (it failed to load or run the model), if it did not. */
  workerd_error?: string;
  fits: boolean;
}

export interface DrafterShapesResult {
  date: string;
  machine: { node: string; cpus: number; cpu_model: string };
  context_tokens: number;
  steps: number;
  targets: { ms_per_token: number; isolate_mb: number };
  shapes: ShapeResult[];
  /** The fitting shape with the most transformer (non-vocabulary) parameters, then the larger vocabulary. */
  recommended: ShapeResult | null;
}

export function allShapes(): DrafterShape[] {
  const out: DrafterShape[] = [];
  for (const vocab of SHAPE_GRID.vocab) for (const hidden of SHAPE_GRID.hidden) for (const layers of SHAPE_GRID.layers) for (const weights of SHAPE_GRID.weights) out.push({ vocab, hidden, layers, weights });
  return out;
}

/** A Llama drafter of this size: heads of 64, full multi-head attention, SwiGLU of ~8/3 × hidden. */
export function shapeArch(s: DrafterShape): LlamaArch {
  const heads = s.hidden / 64;
  return {
    vocabSize: s.vocab,
    hiddenSize: s.hidden,
    intermediateSize: Math.ceil((8 * s.hidden) / 3 / 128) * 128,
    numLayers: s.layers,
    numHeads: heads,
    numKvHeads: heads,
    headDim: 64,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    maxPositions: 4096,
  };
}

const nonVocabParams = (s: ShapeResult) => s.params - 2 * s.vocab * s.hidden;

export function recommend(shapes: readonly ShapeResult[]): ShapeResult | null {
  const fitting = shapes.filter((s) => s.fits);
  fitting.sort((a, b) => nonVocabParams(b) - nonVocabParams(a) || b.vocab - a.vocab || (a.weights === "int8" ? -1 : 1));
  return fitting[0] ?? null;
}

/**
 * Peak and current resident memory (MB) of the workerd processes this process started; `resetPeak` first
 * clears their peak (so that putting the model into R2 does not count).
 */
async function workerdMemory(resetPeak = false): Promise<{ peak: number; rss: number }> {
  let peak = 0;
  let rss = 0;
  let found = 0;
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    if (!/^Name:\s+workerd$/m.test(status) || Number(status.match(/^PPid:\s+(\d+)/m)?.[1]) !== process.pid) continue;
    if (resetPeak) await writeFile(`/proc/${pid}/clear_refs`, "5");
    found++;
    peak += Number(status.match(/^VmHWM:\s+(\d+) kB/m)?.[1] ?? 0) / 1024;
    rss += Number(status.match(/^VmRSS:\s+(\d+) kB/m)?.[1] ?? 0) / 1024;
  }
  if (!found) throw new Error("no workerd child process found in /proc (Linux only)");
  return { peak, rss };
}

async function timeGet(url: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url);
  const body = await res.text();
  if (!res.ok) throw new Error(`${url}: ${res.status} ${body}`);
  return performance.now() - t0;
}

/** ms per drafted token in this process (onnxruntime-web, one thread). */
async function nodeMsPerToken(onnx: Uint8Array, arch: LlamaArch): Promise<number> {
  const model = await loadDraftModel({ onnx, config: ModelConfigSchema.parse(llamaConfigJson(arch)) });
  try {
    const seq = model.newSequence();
    await model.forward(
      seq,
      Array.from({ length: CONTEXT }, (_, i) => 6 + ((i * 7919) % (arch.vocabSize - 6))),
    );
    let token = 1;
    const step = async () => {
      const t0 = performance.now();
      token = argmax((await model.forward(seq, [token])).last());
      return performance.now() - t0;
    };
    // The first steps warm the WASM up (as the Worker's earlier requests do there); then two runs of
    // STEPS are timed and the quieter one kept (the machine is shared).
    for (let i = 0; i < WARMUP; i++) await step();
    const run = async () => {
      const times: number[] = [];
      for (let i = 0; i < STEPS; i++) times.push(await step());
      return median(times);
    };
    return Math.min(await run(), await run());
  } finally {
    await model.dispose();
  }
}

/** In a fresh workerd: load time, ms per drafted token (timed from outside), and memory above idle. */
async function workerdRun(probe: WorkerBundle, onnx: Uint8Array, arch: LlamaArch): Promise<{ msPerToken: number; isolateMb: number; loadMs: number }> {
  // Miniflare's R2 refuses very large single puts: the graph travels in parts the Worker joins.
  const parts: Record<string, Uint8Array> = {};
  for (let i = 0, k = 0; i < onnx.length; i += PART_BYTES, k++) parts[`m/model.onnx.${k}`] = onnx.subarray(i, i + PART_BYTES);
  const config = { ...llamaConfigJson(arch), alia_edge_probe_parts: Object.keys(parts).length, alia_edge_probe_bytes: onnx.length };
  const { url, mf } = await runWorker(probe, { bindings: {}, models: { ...parts, "m/config.json": new TextEncoder().encode(JSON.stringify(config)) } });
  try {
    await timeGet(url); // idle: the Worker is up, the model in R2, no model runtime started
    const idle = await workerdMemory(true);
    const q = (steps: number) => `${url}/?model=m&context=${CONTEXT}&steps=${steps}`;
    const first = await timeGet(q(0));
    const prefill = Math.min(await timeGet(q(0)), await timeGet(q(0)));
    const withSteps = Math.min(await timeGet(q(STEPS)), await timeGet(q(STEPS)));
    const mem = await workerdMemory();
    return { msPerToken: Math.max(0, withSteps - prefill) / STEPS, isolateMb: mem.peak - idle.rss, loadMs: first - prefill };
  } finally {
    await mf.dispose();
  }
}

export async function benchDrafterShapes(o: { shapes: DrafterShape[]; log: (s: string) => void }): Promise<DrafterShapesResult> {
  const probe = await bundleWorker({ config: "bench/wrangler.drafter-probe.toml" });
  const shapes: ShapeResult[] = [];
  try {
    for (const s of o.shapes) {
      const arch = shapeArch(s);
      const onnx = llamaOnnx(randomLlamaWeights(arch, 7), { weights: s.weights });
      const node = await nodeMsPerToken(onnx, arch);
      // A model workerd cannot load or run does not fit; its failure is recorded, and the grid goes on.
      const w = await workerdRun(probe, onnx, arch).catch((e: unknown) => ({ msPerToken: NaN, isolateMb: NaN, loadMs: NaN, error: String((e as Error).cause ?? (e as Error).message) }));
      const r: ShapeResult = {
        ...s,
        params: paramCount(arch),
        onnx_mb: onnx.length / 2 ** 20,
        node_ms_per_token: node,
        workerd_ms_per_token: w.msPerToken,
        workerd_isolate_mb: w.isolateMb,
        workerd_load_ms: w.loadMs,
        ...("error" in w ? { workerd_error: w.error } : {}),
        fits: w.msPerToken <= TARGET_MS_PER_TOKEN && w.isolateMb <= TARGET_ISOLATE_MB,
      };
      shapes.push(r);
      o.log(
        `vocab ${s.vocab} hidden ${s.hidden} layers ${s.layers} ${s.weights}: ${(r.params / 1e6).toFixed(1)} M params, ONNX ${r.onnx_mb.toFixed(0)} MB; ` +
          `Node ${node.toFixed(2)} ms/token; ${r.workerd_error ? `workerd failed: ${r.workerd_error}` : `workerd ${w.msPerToken.toFixed(2)} ms/token, ${w.isolateMb.toFixed(0)} MB above idle, load ${w.loadMs.toFixed(0)} ms`}${r.fits ? " — fits" : ""}`,
      );
    }
  } finally {
    await probe.remove();
  }
  return {
    date: new Date().toISOString(),
    machine: { node: process.version, cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model ?? "unknown" },
    context_tokens: CONTEXT,
    steps: STEPS,
    targets: { ms_per_token: TARGET_MS_PER_TOKEN, isolate_mb: TARGET_ISOLATE_MB },
    shapes,
    recommended: recommend(shapes),
  };
}
