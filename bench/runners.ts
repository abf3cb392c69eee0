// Runner benchmark: the same draft and target bundles on onnxruntime-web (WASM), onnxruntime-node and
// transformers.js, measured in one run with one method (greedy decoding of N tokens minus 1 token, so
// prefill is excluded), plus the verify pattern (one chunk of γ tokens) and greedy agreement α.
import path from "node:path";
import { AutoModelForCausalLM, Tensor, env } from "@huggingface/transformers";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { eosIds } from "../src/common/models/bundle.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { measureGreedyAgreement } from "../fixtures/generate/agreement.ts";
import { SPANISH_PROMPTS } from "../test/harness/prompts.ts";

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
  rounds: number;
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

/** Greedy decode of exactly k tokens after prompt p. */
type Generate = (p: number[], k: number) => Promise<unknown>;

function oursGenerate(lm: CausalLM): Generate {
  return (p, k) => lm.greedy(p, k);
}

async function transformersGenerate(dir: string): Promise<{ gen: Generate; dispose(): Promise<unknown> }> {
  env.allowRemoteModels = false;
  env.localModelPath = path.dirname(dir);
  const model = await AutoModelForCausalLM.from_pretrained(path.basename(dir), { dtype: "fp32", device: "cpu" });
  const gen: Generate = (p, k) =>
    model.generate({
      input_ids: new Tensor("int64", BigInt64Array.from(p, BigInt), [1, p.length]),
      attention_mask: new Tensor("int64", new BigInt64Array(p.length).fill(1n), [1, p.length]),
      max_new_tokens: k,
      min_new_tokens: k, // no early EOS: every runtime decodes exactly k tokens
      do_sample: false,
    });
  return { gen, dispose: () => model.dispose() };
}

/**
 * Median ms per decoded token of each runtime, (T(n) − T(1)) / (n − 1) so prefill cancels out. The
 * runtimes take turns on every prompt and round, so machine noise hits them alike.
 */
async function perTokenMs(gens: Generate[], prompts: number[][], n: number, rounds: number): Promise<number[]> {
  for (const g of gens) await g(prompts[0], 4); // warm-up: first runs allocate and JIT
  const per: number[][] = gens.map(() => []);
  for (let r = 0; r < rounds; r++)
    for (const p of prompts)
      for (const [i, g] of gens.entries()) {
        const one = await time(() => g(p, 1));
        const many = await time(() => g(p, n));
        per[i].push((many - one) / (n - 1));
      }
  return per.map(median);
}

async function chunkMs(lm: CausalLM, prompts: number[][], gamma: number, rounds: number): Promise<number> {
  const per: number[] = [];
  for (let r = 0; r < rounds; r++)
    for (const p of prompts) {
      const seq = lm.newSequence();
      await lm.forward(seq, p);
      const drafts = Array.from({ length: gamma }, (_, i) => p[i % p.length]);
      per.push(await time(() => lm.forward(seq, drafts)));
    }
  return median(per);
}

export async function benchRunners(o: { pairDir: string; tokens?: number; prompts?: number; gamma?: number; rounds?: number; alphaPrompts?: number; log?: (s: string) => void }): Promise<RunnerBench> {
  const log = o.log ?? (() => {});
  const n = o.tokens ?? 48;
  const gamma = o.gamma ?? 4;
  const rounds = o.rounds ?? 3;
  const draftDir = path.join(o.pairDir, "draft");
  const targetDir = path.join(o.pairDir, "target");
  const draftB = await loadBundle(draftDir);
  const targetB = await loadBundle(targetDir);
  const tok = TextTokenizer.fromBundle(targetB);
  const prompts = SPANISH_PROMPTS.slice(0, o.prompts ?? 8).map((t) => tok.encode(t));

  const times = async (dir: string, bundle: typeof draftB, name: string): Promise<RuntimeTimes & { bundle: string }> => {
    const web = await loadDraftModel(bundle);
    const node = await loadTargetModel(bundle);
    const tjs = await transformersGenerate(dir);
    try {
      log(`${name}: decoding on onnxruntime-web, onnxruntime-node and transformers.js in turn…`);
      const [ort_web_ms_per_token, ort_node_ms_per_token, transformersjs_ms_per_token] = await perTokenMs([oursGenerate(web), oursGenerate(node), tjs.gen], prompts, n, rounds);
      log(`${name}: verify chunks of ${gamma}…`);
      const ort_web_chunk_ms = await chunkMs(web, prompts, gamma, rounds);
      const ort_node_chunk_ms = await chunkMs(node, prompts, gamma, rounds);
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
      await tjs.dispose();
    }
  };
  const draft = await times(draftDir, draftB, "draft");
  const target = await times(targetDir, targetB, "target");

  log("greedy agreement…");
  const alphaPrompts = SPANISH_PROMPTS.slice(0, o.alphaPrompts ?? 50).map((t) => tok.encode(t));
  const tLm = await loadTargetModel(targetB);
  const dLm = await loadTargetModel(draftB);
  let a: Awaited<ReturnType<typeof measureGreedyAgreement>>;
  try {
    a = await measureGreedyAgreement(tLm, dLm, alphaPrompts, 32, eosIds(targetB.config));
  } finally {
    await tLm.dispose();
    await dLm.dispose();
  }
  return {
    tokens: n,
    prompts: prompts.length,
    rounds,
    gamma,
    draft,
    target,
    alpha: { value: a.alpha, prompts: alphaPrompts.length, tokens_per_prompt: 32, positions: a.positions },
  };
}
