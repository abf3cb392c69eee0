// Runner benchmark: the same draft and target bundles on onnxruntime-web (WASM), onnxruntime-node and
// transformers.js, measured in one run with one method (greedy decoding of N tokens minus 1 token, so
// prefill is excluded), plus the verify pattern (one chunk of γ tokens) and greedy agreement α.
import path from "node:path";
import { AutoModelForCausalLM, env } from "@huggingface/transformers";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { eosIds } from "../src/models/bundle.ts";
import type { CausalLM } from "../src/models/causal-lm.ts";
import { loadDraftModel } from "../src/models/draft-model.ts";
import { loadBundle } from "../src/models/model-store.ts";
import { TextTokenizer } from "../src/models/tokenizer.ts";
import { measureGreedyAgreement } from "../tools/fixtures/agreement.ts";
import { SPANISH_PROMPTS } from "./prompts.ts";

export interface RuntimeTimes {
  /** Median ms per decoded token (prefill excluded). */
  ort_web_ms_per_token: number;
  ort_node_ms_per_token: number;
  transformersjs_ms_per_token: number;
  /** Median ms for one verify-style chunk of `gamma` tokens after a prompt. */
  ort_web_chunk_ms: number;
  ort_node_chunk_ms: number;
}

export interface RunnerBench {
  tokens: number;
  prompts: number;
  gamma: number;
  draft: RuntimeTimes & { bundle: string };
  target: RuntimeTimes & { bundle: string };
  /** Greedy α along target trajectories of ≤ 32 tokens, each ending at EOS. */
  alpha: { value: number; prompts: number; tokens_per_prompt: number; positions: number };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function time(f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

async function oursPerToken(lm: CausalLM, prompts: number[][], n: number): Promise<number> {
  await lm.greedy(prompts[0], 4); // warm-up
  const per: number[] = [];
  for (const p of prompts) {
    const one = await time(() => lm.greedy(p, 1));
    const many = await time(() => lm.greedy(p, n));
    per.push((many - one) / (n - 1));
  }
  return median(per);
}

async function chunkMs(lm: CausalLM, prompts: number[][], gamma: number): Promise<number> {
  const per: number[] = [];
  for (const p of prompts) {
    const seq = lm.newSequence();
    await lm.forward(seq, p);
    const drafts = p.slice(0, gamma).concat(Array(Math.max(0, gamma - p.length)).fill(p[0]));
    per.push(await time(() => lm.forward(seq, drafts)));
  }
  return median(per);
}

async function transformersPerToken(dir: string, prompts: number[][], n: number): Promise<number> {
  env.allowRemoteModels = false;
  env.localModelPath = path.dirname(dir);
  const model = await AutoModelForCausalLM.from_pretrained(path.basename(dir), { dtype: "fp32", device: "cpu" });
  const { Tensor } = await import("@huggingface/transformers");
  const gen = (p: number[], k: number) =>
    model.generate({
      input_ids: new Tensor("int64", BigInt64Array.from(p, BigInt), [1, p.length]),
      attention_mask: new Tensor("int64", new BigInt64Array(p.length).fill(1n), [1, p.length]),
      max_new_tokens: k,
      min_new_tokens: k, // no early EOS: every runtime decodes exactly k tokens
      do_sample: false,
    });
  try {
    await gen(prompts[0], 4);
    const per: number[] = [];
    for (const p of prompts) {
      const one = await time(() => gen(p, 1));
      const many = await time(() => gen(p, n));
      per.push((many - one) / (n - 1));
    }
    return median(per);
  } finally {
    await model.dispose();
  }
}

export async function benchRunners(o: {
  pairDir: string;
  tokens?: number;
  prompts?: number;
  gamma?: number;
  alphaPrompts?: number;
  log?: (s: string) => void;
}): Promise<RunnerBench> {
  const log = o.log ?? (() => {});
  const n = o.tokens ?? 48;
  const gamma = o.gamma ?? 4;
  const draftDir = path.join(o.pairDir, "draft");
  const targetDir = path.join(o.pairDir, "target");
  const draftB = await loadBundle(draftDir);
  const targetB = await loadBundle(targetDir);
  const tok = TextTokenizer.fromBundle(targetB);
  const prompts = SPANISH_PROMPTS.slice(0, o.prompts ?? 8).map((t) => tok.encode(t));

  const times = async (dir: string, bundle: typeof draftB, name: string): Promise<RuntimeTimes & { bundle: string }> => {
    const web = await loadDraftModel(bundle);
    const node = await loadTargetModel(bundle);
    try {
      log(`${name}: onnxruntime-web…`);
      const ort_web_ms_per_token = await oursPerToken(web, prompts, n);
      log(`${name}: onnxruntime-node…`);
      const ort_node_ms_per_token = await oursPerToken(node, prompts, n);
      log(`${name}: transformers.js…`);
      const transformersjs_ms_per_token = await transformersPerToken(dir, prompts, n);
      log(`${name}: verify chunks of ${gamma}…`);
      const ort_web_chunk_ms = await chunkMs(web, prompts, gamma);
      const ort_node_chunk_ms = await chunkMs(node, prompts, gamma);
      return {
        bundle: `${bundle.manifest.id}@${bundle.manifest.version}`,
        ort_web_ms_per_token,
        ort_node_ms_per_token,
        transformersjs_ms_per_token,
        ort_web_chunk_ms,
        ort_node_chunk_ms,
      };
    } finally {
      await web.dispose();
      await node.dispose();
    }
  };
  const draft = await times(draftDir, draftB, "draft");
  const target = await times(targetDir, targetB, "target");

  log("greedy agreement…");
  const alphaPrompts = SPANISH_PROMPTS.slice(0, o.alphaPrompts ?? 50).map((t) => tok.encode(t));
  const tLm = await loadTargetModel(targetB);
  const dLm = await loadTargetModel(draftB);
  const a = await measureGreedyAgreement(tLm, dLm, alphaPrompts, 32, eosIds(targetB.config));
  await tLm.dispose();
  await dLm.dispose();
  return {
    tokens: n,
    prompts: prompts.length,
    gamma,
    draft,
    target,
    alpha: { value: a.alpha, prompts: alphaPrompts.length, tokens_per_prompt: 32, positions: a.positions },
  };
}
