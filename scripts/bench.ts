// `npm run bench`: runs the benchmarks and writes bench/results/<name>.json. Today: the runner
// benchmark (draft and target on onnxruntime-web, onnxruntime-node and transformers.js, greedy α).
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { benchRunners } from "../bench/runners.ts";
import { benchVerifier, benchVerifierHttp } from "../bench/verifier.ts";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { loadBundle } from "../src/models/model-store.ts";
import { TextTokenizer } from "../src/models/tokenizer.ts";
import { DEFAULT_PAIR_DIR } from "../tools/fixtures/synthetic-bundles.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    out: { type: "string" },
    pair: { type: "string", default: DEFAULT_PAIR_DIR },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log("usage: npm run bench -- [--quick] [--out bench/results/NAME.json] [--pair DIR with draft/ and target/]");
  process.exit(0);
}
const t0 = performance.now();
const r = await benchRunners({
  pairDir: values.pair,
  tokens: values.quick ? 16 : 64,
  prompts: values.quick ? 3 : 16,
  rounds: values.quick ? 1 : 3,
  alphaPrompts: values.quick ? 10 : 50,
  log: (s) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${s}`),
});
console.error("verifier rounds…");
const targetBundle = await loadBundle(path.join(values.pair, "target"));
const targetLm = await loadTargetModel(targetBundle);
const tokenizer = TextTokenizer.fromBundle(targetBundle);
const vb = await benchVerifier(targetLm, (t) => tokenizer.encode(t), { prompts: values.quick ? 5 : 30, gammas: [1, 2, 3, 4, 5, 6, 7, 8] });
await targetLm.dispose();
console.error("verifier over HTTP…");
const vh = await benchVerifierHttp(values.pair, (t) => tokenizer.encode(t), {
  prompts: values.quick ? 5 : 30,
  gammas: [1, 2, 3, 4, 5, 6, 7, 8],
  sessions: [1, 8, 32],
  rounds: values.quick ? 5 : 30,
});
const out = values.out ?? path.join("bench", "results", values.quick ? "runners-quick.json" : "runners.json");
await mkdir(path.dirname(out), { recursive: true });
const result = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, runners: r, verifier: vb, verifier_http: vh };
await writeFile(out, JSON.stringify(result, null, 2) + "\n");

const f = (x: number) => x.toFixed(3);
console.log(`\nms per decoded token (median of ${r.rounds} rounds × ${r.prompts} prompts × ${r.tokens} tokens, prefill excluded):`);
console.log("model   | onnxruntime-web | onnxruntime-node | transformers.js | web/node | tjs/node");
for (const [name, t] of [["draft", r.draft], ["target", r.target]] as const)
  console.log(
    `${name.padEnd(7)} | ${f(t.ort_web_ms_per_token).padStart(15)} | ${f(t.ort_node_ms_per_token).padStart(16)} | ${f(t.transformersjs_ms_per_token).padStart(15)} | ` +
      `${(t.ort_web_ms_per_token / t.ort_node_ms_per_token).toFixed(2).padStart(8)} | ${(t.transformersjs_ms_per_token / t.ort_node_ms_per_token).toFixed(2).padStart(8)}`,
  );
console.log(`verify chunk of ${r.gamma}: draft web ${f(r.draft.ort_web_chunk_ms)} ms, node ${f(r.draft.ort_node_chunk_ms)} ms; target web ${f(r.target.ort_web_chunk_ms)} ms, node ${f(r.target.ort_node_chunk_ms)} ms`);
console.log(`greedy α (draft vs target) = ${r.alpha.value.toFixed(3)} over ${r.alpha.prompts} prompts × ${r.alpha.tokens_per_prompt} tokens`);
console.log(`verifier round (in-process, median): ${vb.round_ms_by_gamma.map((x) => `γ=${x.gamma} ${x.round_ms.toFixed(3)} ms`).join(", ")}`);
console.log(`KV bytes per session per token (target): ${vb.kv_bytes_per_token}`);
for (const b of vb.batching)
  console.log(`verify chunks of 5, ${b.sessions} sessions: batched ${b.batched_tokens_per_s.toFixed(0)} tok/s, one by one ${b.one_by_one_tokens_per_s.toFixed(0)} tok/s (×${(b.batched_tokens_per_s / b.one_by_one_tokens_per_s).toFixed(2)})`);
console.log(`verifier round over HTTP (median): ${vh.round_ms_by_gamma.map((x) => `γ=${x.gamma} ${x.round_ms.toFixed(3)} ms`).join(", ")}`);
for (const t of vh.throughput)
  console.log(`HTTP, ${t.sessions} concurrent sessions, γ=4: batched ${t.batched_rounds_per_s.toFixed(0)} rounds/s, unbatched ${t.unbatched_rounds_per_s.toFixed(0)} rounds/s (×${(t.batched_rounds_per_s / t.unbatched_rounds_per_s).toFixed(2)})`);
console.log(`wrote ${out}`);
