import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import type { Proposer } from "../src/speculative/proposer.ts";
import { ProposerFactory } from "../src/speculative/proposer-factory.ts";
import { SpeculativeDecoder, type SpeculativeDecoderOptions } from "../src/speculative/speculative-decoder.ts";
import { SuffixProposer } from "../src/speculative/suffix-proposer.ts";
import { countFirstTwo, firstTwoChiSquare } from "./harness/chi-square.ts";
import { DEFAULT_PAIR_DIR, loadDefaultBundles, loadDefaultPair } from "./harness/default-pair.ts";
import { reference, type ConformanceContext } from "./harness/openai-conformance.ts";
import { withTinyPair } from "./harness/tiny-pair.ts";
import { startEdgeProcess, startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { SPANISH_PROMPTS_AND_SHORTER } from "./harness/prompts.ts";
import { concurrently } from "./harness/concurrently.ts";

const TOKEN = "suffix-test-token-0123456789";
const TOKENS = 64;

let target: CausalLM;
let draft: CausalLM;
let prompts: number[][];
let greedyReference: number[][];
let verifier: ListeningProcess;
let pool: PoolClient;

beforeAll(async () => {
  const { tok } = await loadDefaultBundles();
  target = await loadTargetModel(await loadBundle(path.join(DEFAULT_PAIR_DIR, "target")));
  draft = await loadDraftModel(await loadBundle(path.join(DEFAULT_PAIR_DIR, "draft")));
  prompts = SPANISH_PROMPTS_AND_SHORTER.map((s) => tok.encode(s));
  greedyReference = [];
  for (const p of prompts) greedyReference.push(await target.greedy(p, TOKENS));
  verifier = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN });
  pool = new PoolClient({ nodes: [verifier.url], token: TOKEN });
});
afterAll(async () => {
  await verifier?.stop("SIGKILL");
});

let sessionNo = 0;
async function decode(prompt: number[], proposer: Proposer, o: Partial<SpeculativeDecoderOptions> = {}) {
  const d = new SpeculativeDecoder({ proposer, pool, maxTokens: TOKENS, gamma: 4, session: `sx${sessionNo++}`, ...o });
  const tokens: number[] = [];
  for await (const ev of d.run(prompt)) tokens.push(...ev.tokens);
  expect(tokens).toEqual(d.output);
  return { tokens, d };
}

const suffix = { maxOrder: 8, bytesPerTenant: 1 << 20, maxTenants: 4 };

describe("greedy speculation with the suffix proposer and the hybrid is token-identical to target-only greedy", () => {
  it.each([
    ["suffix", 1],
    ["suffix", 4],
    ["suffix", 8],
    ["suffix", "adaptive"],
    ["hybrid", 4],
    ["hybrid", "adaptive"],
  ] as const)("100 prompts × 64 tokens, %s, γ = %s (one tenant: later prompts draft from earlier outputs)", async (kind, gamma) => {
    const factory = new ProposerFactory({ kind, suffix, draft });
    let drafted = 0;
    await concurrently(prompts, 4, async (prompt, i) => {
      const { tokens, d } = await decode(prompt, factory.create({ promptLength: prompt.length, tenant: "t" }), { gamma });
      expect(tokens, `prompt ${i}`).toEqual(greedyReference[i]);
      drafted += d.stats.drafted;
    });
    expect(drafted).toBeGreaterThan(0); // it did propose
  });
});

describe("a tenant's cache of recent outputs", () => {
  it("drafts a repeated request from the cached output (most of it accepted); another tenant gets no such help", async () => {
    const factory = new ProposerFactory({ kind: "suffix", suffix });
    const chosen = prompts.slice(0, 8);
    const create = (prompt: number[], tenant: string) => factory.create({ promptLength: prompt.length, tenant });
    let [againRounds, otherRounds, drafted, accepted] = [0, 0, 0, 0];
    for (const [i, prompt] of chosen.entries()) {
      const first = await decode(prompt, create(prompt, "a"), { gamma: 8 });
      const again = await decode(prompt, create(prompt, "a"), { gamma: 8 });
      const other = await decode(prompt, create(prompt, "b"), { gamma: 8 });
      expect(again.tokens, `prompt ${i}`).toEqual(first.tokens);
      expect(other.tokens, `prompt ${i}`).toEqual(first.tokens);
      const s = again.d.stats;
      expect(s.accepted / s.drafted, `prompt ${i}`).toBeGreaterThan(0.5);
      drafted += s.drafted;
      accepted += s.accepted;
      expect(s.rounds, `prompt ${i}`).toBeLessThan(TOKENS / 4);
      againRounds += s.rounds;
      otherRounds += other.d.stats.rounds;
    }
    expect(accepted / drafted, `${accepted} of ${drafted}`).toBeGreaterThan(0.75);
    // Tenant b drafts only from each prompt and its own output so far.
    expect(otherRounds).toBeGreaterThan(1.5 * againRounds);
  });
});

describe("sampling with the suffix proposer and the hybrid keeps the target's distribution", () => {
  // Seeded trials through SpeculativeDecoder → PoolClient → verifier process on a tiny-vocabulary pair (8
  // tokens): the first two tokens after a prompt whose repeats make the suffix proposer draft two tokens
  // every time (one-hot q̃). Reference: target-only sampling p(a)·p(b|a) over all 64 pairs.
  it("commits pairs distributed as target-only sampling (suffix, hybrid), and the test catches a proposer whose q̃ lies", async () => {
    await withTinyPair(5, TOKEN, async ({ target: tinyTarget, draftDir, pool: tinyPool }) => {
      const prompt = [1, 6, 7, 2, 1, 6, 7, 2, 1, 6];
      const params = { temperature: 2 };
      const trials = 2000;
      const tinyDraft = await loadDraftModel(await loadBundle(draftDir));
      /** Counts of the first two committed tokens, drafted by `make`'s proposers, and who drafted. */
      const sample = async (label: string, make: () => Proposer, gamma: number | "adaptive") => {
        const drafters = new Set<string>();
        const counts = await countFirstTwo(trials, async (t) => {
          const d = new SpeculativeDecoder({
            proposer: make(),
            pool: tinyPool,
            maxTokens: 2,
            gamma,
            session: `tiny-${label}-${t}`,
            sampling: { temperature: params.temperature, top_p: 1, top_k: 0, seed: 20_000 + t },
            seeded: true,
          });
          const out: number[] = [];
          for await (const ev of d.run(prompt)) out.push(...ev.tokens);
          for (const [name, x] of Object.entries(d.stats.byProposer)) if (x.drafted) drafters.add(name);
          return out;
        });
        return { counts, drafters };
      };
      const sampling = { temperature: params.temperature, top_p: 1, top_k: 0, seed: 1 };
      const hybrid = () => new ProposerFactory({ kind: "hybrid", draft: tinyDraft, support: 8, suffix }).create({ promptLength: prompt.length, sampling, tenant: "" });
      /** A suffix proposer whose q̃ claims `lie` instead of 1 for the token it proposes. */
      const lying = (lie: number): Proposer => {
        const honest = new SuffixProposer({ sampling: true });
        return {
          name: "lying",
          aheadUsed: 0,
          aheadDiscarded: 0,
          get proposeMs() {
            return honest.proposeMs;
          },
          propose: async (h, g) => {
            const p = await honest.propose(h, g);
            // A valid q̃ that puts `lie` on the proposed token (the rest on another), while it is always proposed.
            return { ...p, q: p.tokens.map((t) => ({ ids: [t, t === 0 ? 1 : 0], probs: [lie, 1 - lie] })) };
          },
          observe: (h, token) => honest.observe(h, token),
          reset: () => honest.reset(),
        };
      };
      const test = (counts: Map<string, number>) => firstTwoChiSquare(tinyTarget, prompt, params, counts);
      const bySuffix = await sample("suffix", () => new SuffixProposer({ sampling: true }), 2);
      expect([...bySuffix.drafters]).toEqual(["suffix"]);
      const r = await test(bySuffix.counts);
      expect(r.pValue, `suffix: chi2 ${r.statistic.toFixed(1)} on ${r.dof} dof`).toBeGreaterThanOrEqual(0.001);
      // The hybrid, adaptive (nominal timings: a seeded request), choosing per round.
      const byHybrid = await sample("hybrid", hybrid, "adaptive");
      expect(byHybrid.drafters.size).toBeGreaterThan(0);
      const h = await test(byHybrid.counts);
      expect(h.pValue, `hybrid: chi2 ${h.statistic.toFixed(1)} on ${h.dof} dof`).toBeGreaterThanOrEqual(0.001);
      // q̃ claimed at 0.3 instead of 1: drafts accepted with min(1, p/0.3), far too often.
      const wrong = await test((await sample("lying", () => lying(0.3), 2)).counts);
      expect(wrong.pValue, `lying: chi2 ${wrong.statistic.toFixed(1)} on ${wrong.dof} dof`).toBeLessThan(1e-6);
    });
  });
});

describe("a Node edge drafting by suffix matching", () => {
  it("starts without any draft bundle and answers as the target alone would", async () => {
    const { tok } = await loadDefaultBundles();
    const edge = await startEdgeProcess({ SPEC_PROPOSER: "suffix", DRAFT_BUNDLE: "no-such-draft-bundle" });
    try {
      expect(edge.output()).toContain("suffix drafting, no draft model");
      const ready = (await (await fetch(`${edge.url}/readyz`)).json()) as { proposer: string; draft?: unknown };
      expect(ready).toMatchObject({ proposer: "suffix" });
      expect(ready.draft).toBeUndefined();
      const models = (await (await fetch(`${edge.url}/v1/models`)).json()) as { data: { id: string; draft_bundle?: string }[] };
      expect(models.data[0].draft_bundle).toBeUndefined();
      const res = await fetch(`${edge.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: models.data[0].id, prompt: SPANISH_PROMPTS_AND_SHORTER[0], max_tokens: 32, temperature: 0 }),
      });
      const body = (await res.json()) as { choices: { text: string }[] };
      expect(res.status).toBe(200);
      const { served } = await loadDefaultPair();
      const ref = await reference({ target, tok } as ConformanceContext, tok.encode(SPANISH_PROMPTS_AND_SHORTER[0]), 32, served.stopIds);
      expect(body.choices[0].text).toBe(ref.text);
    } finally {
      await edge.stop();
    }
  });
});
