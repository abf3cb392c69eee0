// The speculative decoder end to end: the edge's SpecDecoder (drafting with the draft model) against
// real verifier processes on loopback through PoolClient. Greedy output must be token-identical to
// target-only greedy decoding for every γ, adaptive or fixed, with proactive drafting on and off, on
// the fixture pair and on a synthetic high-agreement pair.
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SPANISH_PROMPTS } from "../bench/prompts.ts";
import { loadTargetModel, ortNode } from "../gpu-backend/target-model.ts";
import type { CausalLM } from "../src/shared/models/causal-lm.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { loadBundle } from "../src/shared/models/model-store.ts";
import { TextTokenizer } from "../src/shared/models/tokenizer.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import { SpecDecoder, type SpecDecoderOptions } from "../src/speculative/speculative-decoder.ts";
import { randomPrompts } from "../fixtures/generate/synthetic-pair.ts";
import { DEFAULT_PAIR_DIR, writeSyntheticPairBundles } from "../fixtures/generate/synthetic-bundles.ts";
import { startVerifierProcess } from "./harness/processes.ts";

const TOKEN = "decoder-test-token-0123456789";
const TOKENS = 64;

interface Pair {
  name: string;
  target: CausalLM;
  draft: CausalLM;
  prompts: number[][];
  reference: number[][];
  child: ChildProcess;
  pool: PoolClient;
}
const pairs: Pair[] = [];
let tmp: string;
let tok: TextTokenizer;

async function openPair(name: string, dir: string, prompts: number[][]): Promise<Pair> {
  const target = await loadTargetModel(await loadBundle(path.join(dir, "target")));
  const draft = await loadDraftModel(await loadBundle(path.join(dir, "draft")));
  const reference = [];
  for (const p of prompts) reference.push(await target.greedy(p, TOKENS));
  const { child, url } = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN, MODEL_DIR: dir });
  return { name, target, draft, prompts, reference, child, pool: new PoolClient({ nodes: [url], token: TOKEN }) };
}

beforeAll(async () => {
  const t = await loadBundle(path.join(DEFAULT_PAIR_DIR, "target"));
  tok = TextTokenizer.fromBundle(t);
  // 100 prompts: the 50 openings and their first words (distinct, shorter contexts).
  const texts = [...SPANISH_PROMPTS, ...SPANISH_PROMPTS.map((s) => s.split(" ").slice(0, Math.max(1, s.split(" ").length - 1)).join(" ") + " y")];
  pairs.push(await openPair("fixture pair", DEFAULT_PAIR_DIR, texts.map((s) => tok.encode(s))));
  tmp = await mkdtemp(path.join(os.tmpdir(), "alia-synth-"));
  const synth = await writeSyntheticPairBundles({ outDir: tmp, alpha: 0.9, seed: 11, ort: ortNode });
  pairs.push(await openPair(`synthetic pair (α ${synth.alpha.toFixed(2)})`, tmp, randomPrompts(100, 8, synth.target.arch.vocabSize, 12)));
});
afterAll(async () => {
  for (const p of pairs) p.child.kill("SIGKILL");
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

let sessionNo = 0;
async function decode(pair: Pair, prompt: number[], o: Partial<SpecDecoderOptions>): Promise<{ tokens: number[]; d: SpecDecoder }> {
  const d = new SpecDecoder({ draft: pair.draft, pool: pair.pool, maxTokens: TOKENS, gamma: 3, session: `t${sessionNo++}`, ...o });
  const tokens: number[] = [];
  for await (const ev of d.run(prompt)) tokens.push(...ev.tokens);
  expect(tokens).toEqual(d.output);
  return { tokens, d };
}

/** Runs `f` over items with `n` in flight (concurrent sessions share the verifier's batches). */
async function concurrently<T>(items: T[], n: number, f: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    for (let i = next++; i < items.length; i = next++) await f(items[i], i);
  }));
}

describe.each([0, 1])("greedy speculation is token-identical to target-only greedy (pair %i)", (pairIndex) => {
  it.each([
    [1, false], [1, true], [3, false], [3, true], [6, false], [6, true], ["adaptive", false], ["adaptive", true],
  ] as const)("100 prompts × 64 tokens, γ = %s, proactive %s", async (gamma, proactive) => {
    const pair = pairs[pairIndex];
    let rounds = 0;
    let tokens = 0;
    let generated = 0;
    let modeChanges = 0;
    await concurrently(pair.prompts, 4, async (prompt, i) => {
      const { tokens: out, d } = await decode(pair, prompt, { gamma, proactive });
      expect(out, `${pair.name}, prompt ${i}`).toEqual(pair.reference[i]);
      rounds += d.stats.rounds;
      tokens += d.stats.roundTokens;
      generated += d.stats.generatedTokens;
      modeChanges += d.stats.modeChanges;
    });
    // Adaptive used both paths here (rounds and pool generation) and switched between them.
    if (gamma === "adaptive") expect([rounds > 0, generated > 0, modeChanges > 0]).toEqual([true, true, true]);
    // Speculation really happened where it was asked for: rounds committed more than one token each.
    if (gamma !== "adaptive" && gamma > 1) expect(tokens / rounds).toBeGreaterThan(1.3);
  });
});
