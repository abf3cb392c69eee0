// The speculative decoder end to end: the edge's SpeculativeDecoder (drafting with the draft model) against
// real verifier processes on loopback through PoolClient. Greedy output must be token-identical to
// target-only greedy decoding for every γ, adaptive or fixed, with proactive drafting on and off, on
// the fixture pair and on a synthetic high-agreement pair.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTargetModel, ortNode } from "../gpu-backend/target-model.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import { SpeculativeDecoder, type SpeculativeDecoderOptions } from "../src/speculative/speculative-decoder.ts";
import { randomPrompts } from "../fixtures/generate/synthetic-pair.ts";
import { writeSyntheticPairBundles } from "../fixtures/generate/synthetic-bundles.ts";
import { DEFAULT_PAIR_DIR, loadDefaultBundles } from "./harness/default-pair.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { SPANISH_PROMPTS_AND_SHORTER } from "./harness/prompts.ts";
import { concurrently } from "./harness/concurrently.ts";

const TOKEN = "decoder-test-token-0123456789";
const TOKENS = 64;

interface Pair {
  name: string;
  target: CausalLM;
  draft: CausalLM;
  prompts: number[][];
  reference: number[][];
  verifier: ListeningProcess;
  pool: PoolClient;
}
const pairs: Pair[] = [];
let tmp: string;

async function openPair(name: string, dir: string, prompts: number[][]): Promise<Pair> {
  const target = await loadTargetModel(await loadBundle(path.join(dir, "target")));
  const draft = await loadDraftModel(await loadBundle(path.join(dir, "draft")));
  const reference = [];
  for (const p of prompts) reference.push(await target.greedy(p, TOKENS));
  const verifier = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN, MODEL_DIR: dir });
  return { name, target, draft, prompts, reference, verifier, pool: new PoolClient({ nodes: [verifier.url], token: TOKEN }) };
}

beforeAll(async () => {
  const { tok } = await loadDefaultBundles();
  // 100 prompts: the 50 openings and shorter versions of them (distinct, shorter contexts).
  pairs.push(
    await openPair(
      "fixture pair",
      DEFAULT_PAIR_DIR,
      SPANISH_PROMPTS_AND_SHORTER.map((s) => tok.encode(s)),
    ),
  );
  tmp = await mkdtemp(path.join(os.tmpdir(), "alia-synth-"));
  const synth = await writeSyntheticPairBundles({ outDir: tmp, alpha: 0.9, seed: 11, ort: ortNode });
  pairs.push(await openPair(`synthetic pair (α ${synth.alpha.toFixed(2)})`, tmp, randomPrompts(100, 8, synth.target.arch.vocabSize, 12)));
});
afterAll(async () => {
  await Promise.all(pairs.map((p) => p.verifier.stop("SIGKILL")));
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

let sessionNo = 0;
async function decode(pair: Pair, prompt: number[], o: Partial<SpeculativeDecoderOptions>): Promise<{ tokens: number[]; d: SpeculativeDecoder }> {
  const d = new SpeculativeDecoder({ draft: pair.draft, pool: pair.pool, maxTokens: TOKENS, gamma: 3, session: `t${sessionNo++}`, ...o });
  const tokens: number[] = [];
  for await (const ev of d.run(prompt)) tokens.push(...ev.tokens);
  expect(tokens).toEqual(d.output);
  return { tokens, d };
}

// Adaptive γ on a greedy request decides from measured timings (nominal timings serve seeded sampling
// only), so whether the default latency objective leaves pool generation for rounds depends on the
// machine and its load: on a loaded two-core machine most such runs never switch. The gpu objective
// decides from acceptance alone: when the first chunk (4 tokens) has been generated, one γ = 8 round is
// worth 1 + α + … + α⁸ tokens per target pass against pool generation's 1, and α cannot fall below
// 0.3 by then (prior 0.6 counted as 4 observations, at most 4 misses), so that is ≥ 1.43, past the 1.1
// switching margin: every such run switches, whatever the timings. Each adaptive cell checks
// that switch, and token identity across it, on its first prompts.
const SWITCH_PROMPTS = 8;

describe.each([0, 1])("greedy speculation is token-identical to target-only greedy (pair %i)", (pairIndex) => {
  it.each([
    [1, false],
    [1, true],
    [3, false],
    [3, true],
    [6, false],
    [6, true],
    ["adaptive", false],
    ["adaptive", true],
  ] as const)("100 prompts × 64 tokens, γ = %s, proactive %s", async (gamma, proactive) => {
    const pair = pairs[pairIndex];
    let rounds = 0;
    let tokens = 0;
    let generated = 0;
    await concurrently(pair.prompts, 4, async (prompt, i) => {
      const { tokens: out, d } = await decode(pair, prompt, { gamma, proactive });
      expect(out, `${pair.name}, prompt ${i}`).toEqual(pair.reference[i]);
      rounds += d.stats.rounds;
      tokens += d.stats.roundTokens;
      generated += d.stats.generatedTokens;
    });
    if (gamma === "adaptive") {
      // With nothing measured yet, adaptive begins with pool generation.
      expect(generated).toBeGreaterThan(0);
      // Used both paths (pool generation and rounds) and switched between them, deterministically.
      await concurrently(pair.prompts.slice(0, SWITCH_PROMPTS), 4, async (prompt, i) => {
        const { tokens: out, d } = await decode(pair, prompt, { gamma, proactive, objective: "gpu" });
        expect(out, `${pair.name}, prompt ${i}, gpu objective`).toEqual(pair.reference[i]);
        expect([d.stats.generatedTokens > 0, d.stats.rounds > 0, d.stats.modeChanges > 0], `${pair.name}, prompt ${i}, gpu objective`).toEqual([true, true, true]);
      });
    }
    // Speculation really happened where it was asked for: rounds committed more than one token each.
    if (gamma !== "adaptive" && gamma > 1) expect(tokens / rounds).toBeGreaterThan(1.3);
  });
});
