// `npm run bench`: runs the benchmarks and writes bench/results/<name>.json: the runners (draft and
// target on onnxruntime-web, onnxruntime-node and transformers.js, greedy α), the verifier (in-process
// and over HTTP), and speculation end to end at simulated RTTs (`--only speculation` runs just that).
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { benchRunners } from "../bench/runners.ts";
import { SPANISH_PROMPTS } from "../bench/prompts.ts";
import { benchSpeculation } from "../bench/speculation.ts";
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
    only: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log("usage: npm run bench -- [--quick] [--only speculation] [--out bench/results/NAME.json] [--pair DIR with draft/ and target/]");
  process.exit(0);
}
const t0 = performance.now();
const log = (s: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${s}`);

/** Speculation end to end at simulated RTTs; writes bench/results/speculation(-quick).json. */
async function runSpeculation(): Promise<void> {
  const tok = TextTokenizer.fromBundle(await loadBundle(path.join(values.pair, "target")));
  const prompts = SPANISH_PROMPTS.slice(0, values.quick ? 2 : 4).map((t) => tok.encode(t));
  const rows = [];
  // The fixture target as it is, then standing in for ALIA-40b: 17 ms per pass (DESIGN §5).
  for (const passMs of [0, 17]) rows.push(...(await benchSpeculation(values.pair, prompts, { rtts: [0, 20, 80], tokens: values.quick ? 24 : 64, passMs, log })));
  const file = path.join("bench", "results", values.quick ? "speculation-quick.json" : "speculation.json");
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, prompts: prompts.length, rows }, null, 2) + "\n");
  console.log(`\nspeculation, greedy, ${prompts.length} prompts × ≤ ${values.quick ? 24 : 64} tokens, one stream (ms per token: wall time incl. prefill):`);
  console.log("pass ms | RTT ms | mode                  | proactive |    τ | passes/token | ms/token | pool-generated | mean γ | ahead used");
  for (const x of rows)
    console.log(
      `${String(x.pass_ms).padStart(7)} | ${String(x.rtt_ms).padStart(6)} | ${x.mode.padEnd(21)} | ${String(x.proactive).padEnd(9)} | ${x.tau.toFixed(2).padStart(4)} | ${x.target_passes_per_token.toFixed(3).padStart(12)} | ${x.ms_per_token.toFixed(2).padStart(8)} | ${(100 * x.pool_generated_share).toFixed(0).padStart(13)}% | ${x.mean_gamma.toFixed(1).padStart(6)} | ${x.proactive ? `${(100 * x.ahead_used_share).toFixed(0)}%` : "—"}`,
    );
  console.log(`wrote ${file}`);
}

if (values.only === "speculation") {
  await runSpeculation();
  process.exit(0);
}
if (values.only) {
  console.error(`unknown --only ${values.only} (known: speculation)`);
  process.exit(2);
}

const r = await benchRunners({
  pairDir: values.pair,
  tokens: values.quick ? 16 : 64,
  prompts: values.quick ? 3 : 16,
  rounds: values.quick ? 1 : 3,
  alphaPrompts: values.quick ? 10 : 50,
  log,
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
await runSpeculation();
