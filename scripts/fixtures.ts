// `npm run fixtures`: writes synthetic draft/target bundle pairs with controlled greedy agreement
// (default α 0.3, 0.6, 0.9) next to the committed default pair, and reports the measured α of each.
// The default pair itself is trained, not generated: see `npm run fixtures:train`.
import { rm } from "node:fs/promises";
import path from "node:path";
import { ortNode } from "../gpu-backend/target-model.ts";
import { paramCount } from "../fixtures/generate/llama-onnx.ts";
import { writeSyntheticPairBundles } from "../fixtures/generate/synthetic-bundles.ts";
import { cliFail, parseCli } from "./cli.ts";

const { values } = parseCli("fixtures", "usage: npm run fixtures -- [--alpha 0.3,0.6,0.9] [--seed 1] [--out fixtures/synthetic]", {
  options: {
    alpha: { type: "string", default: "0.3,0.6,0.9" },
    seed: { type: "string", default: "1" },
    out: { type: "string", default: "fixtures/synthetic" },
  },
});
const alphas = values.alpha.split(",").map(Number);
const seed = Number(values.seed);
if (alphas.some((a) => !(a > 0 && a < 1)) || !Number.isInteger(seed)) cliFail("fixtures", "--alpha takes numbers strictly between 0 and 1, --seed an integer");
for (const alpha of alphas) {
  const outDir = path.join(values.out, `alpha-${alpha}`);
  await rm(outDir, { recursive: true, force: true });
  const t0 = performance.now();
  const p = await writeSyntheticPairBundles({ outDir, alpha, seed, ort: ortNode, prompts: 50 });
  console.log(
    `${outDir}: requested α ${alpha}, measured α ${p.alpha.toFixed(3)} over ${p.positions} positions ` +
      `(noise ${p.noise.toPrecision(3)}; target ${paramCount(p.target.arch)} params GQA ${p.target.arch.numHeads}/${p.target.arch.numKvHeads}, ` +
      `draft ${paramCount(p.draft.arch)} params MHA) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}
