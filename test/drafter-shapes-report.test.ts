// The drafter-shape benchmark's pure parts: the grid, the architecture of a shape, the recommendation rule,
// and its BENCHMARKS.md section (the committed one is what the committed results JSON generates).
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { allShapes, recommend, shapeArch, type DrafterShapesResult, type ShapeResult } from "../bench/drafter-shapes.ts";
import { SHAPES_END, SHAPES_START, drafterShapesSection, updateDrafterShapesSection } from "../bench/drafter-shapes-report.ts";
import { paramCount } from "../fixtures/generate/llama-onnx.ts";

const result = (s: Partial<ShapeResult> & Pick<ShapeResult, "vocab" | "hidden" | "layers" | "weights">): ShapeResult => ({
  params: paramCount(shapeArch(s)),
  onnx_mb: 10,
  node_ms_per_token: 1,
  workerd_ms_per_token: 1,
  workerd_isolate_mb: 50,
  workerd_load_ms: 100,
  fits: true,
  ...s,
});

describe("drafter shapes", () => {
  it("the grid is vocabulary × hidden × layers × weights, each shape once", () => {
    const shapes = allShapes();
    expect(shapes).toHaveLength(24);
    expect(new Set(shapes.map((s) => JSON.stringify(s))).size).toBe(24);
  });

  it("a shape is a Llama drafter with heads of 64, full attention and SwiGLU of ~8/3 × hidden", () => {
    const a = shapeArch({ vocab: 32_768, hidden: 512, layers: 8, weights: "int8" });
    expect(a).toMatchObject({ vocabSize: 32_768, hiddenSize: 512, numLayers: 8, numHeads: 8, numKvHeads: 8, headDim: 64, intermediateSize: 1408 });
    expect(shapeArch({ vocab: 16_384, hidden: 384, layers: 4, weights: "fp32" }).intermediateSize).toBe(1024);
  });

  it("recommends the fitting shape with the most transformer parameters, then the larger vocabulary", () => {
    const small = result({ vocab: 32_768, hidden: 384, layers: 4, weights: "int8" });
    const deep = result({ vocab: 16_384, hidden: 512, layers: 8, weights: "int8" });
    const deepWide = result({ vocab: 32_768, hidden: 512, layers: 8, weights: "int8" });
    const tooSlow = result({ vocab: 32_768, hidden: 768, layers: 8, weights: "int8", fits: false });
    expect(recommend([small, deep, tooSlow])).toBe(deep);
    expect(recommend([small, deep, deepWide, tooSlow])).toBe(deepWide);
    expect(recommend([tooSlow])).toBeNull();
  });

  it("writes its section between its markers, replacing the previous one and nothing else", () => {
    const r: DrafterShapesResult = {
      date: "2026-12-01T00:00:00Z",
      machine: { node: "v20", cpus: 2, cpu_model: "cpu" },
      context_tokens: 256,
      steps: 32,
      targets: { ms_per_token: 3, isolate_mb: 100 },
      shapes: [result({ vocab: 32_768, hidden: 512, layers: 4, weights: "int8", workerd_ms_per_token: 2.25 })],
      recommended: null,
    };
    r.recommended = r.shapes[0];
    const doc = updateDrafterShapesSection("# title\n\nbefore\n", r);
    expect(doc.startsWith("# title\n\nbefore\n")).toBe(true);
    expect(doc).toContain(SHAPES_START);
    expect(doc).toContain("| 32k | 512 | 4 | int8 |");
    expect(doc).toContain("**Recommended: vocab 32k, hidden 512, 4 layers, int8** — the fitting shape with the most transformer parameters: 2.25 ms");
    const again = updateDrafterShapesSection(`${doc}\nafter\n`, { ...r, shapes: [], recommended: null });
    expect(again.split(SHAPES_START)).toHaveLength(2);
    expect(again).toContain("**No shape fits**");
    expect(again.endsWith(`${SHAPES_END}\n\nafter\n`)).toBe(true);
  });

  it.runIf(existsSync("bench/results/drafter-shapes.json"))("the committed BENCHMARKS.md holds what the committed results JSON generates", async () => {
    const r = JSON.parse(await readFile("bench/results/drafter-shapes.json", "utf8")) as DrafterShapesResult;
    expect(await readFile("BENCHMARKS.md", "utf8")).toContain(drafterShapesSection(r));
  });
});
