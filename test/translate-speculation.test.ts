// Translation speculates with the same settings as chat and completions: every SPEC_* variable reaches
// the translator's decoder (through speculationSettingsFromConfig), checked against what the decoder did
// on a real verifier process.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigSchema, loadConfig } from "../src/config.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import type { DecodeStats } from "../src/speculative/decode-stats.ts";
import { proposerFactoryFromConfig, speculationSettingsFromConfig } from "../src/speculative/settings.ts";
import type { TargetVerifier } from "../src/speculative/target-verifier.ts";
import { Translator } from "../src/translate/translator.ts";
import { loadDefaultPair, type DefaultPair } from "./harness/default-pair.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TEXT = "La vida es bella. El amor es ciego. Quien mucho abarca poco aprieta.";

let pair: DefaultPair;
let verifier: ListeningProcess;

beforeAll(async () => {
  [pair, verifier] = await Promise.all([loadDefaultPair(), startVerifierProcess({})]);
});
afterAll(async () => {
  await verifier?.stop();
});

/** Translates TEXT (no cache) with the settings `env` configures; the decoder statistics of each sentence. */
async function translateWith(env: Record<string, string>, promptTemplate?: string): Promise<DecodeStats[]> {
  const config = loadConfig({ POOL_NODES: verifier.url, ...env });
  const stats: DecodeStats[] = [];
  const translator = new Translator({
    model: pair.served,
    pool: new PoolClient({ nodes: config.POOL_NODES }),
    tiers: [],
    speculation: speculationSettingsFromConfig(config),
    proposers: proposerFactoryFromConfig(config, pair.served.draft),
    onGeneration: (s) => stats.push(s),
    promptTemplate,
  });
  const text = await translator.translate(TEXT, "es", "ca", { sentences: 0, computed: 0, hits: {} });
  expect(text.length).toBeGreaterThan(0);
  expect(stats).toHaveLength(3);
  return stats;
}

const drafted = (stats: DecodeStats[]) => stats.flatMap((s) => s.roundLog.map((r) => r.gamma));

describe("translation honours the SPEC_* settings", () => {
  it("passes every SPEC_* variable into the speculation settings or the proposer factory", () => {
    const settings = (env: Record<string, string>) => {
      const c = loadConfig(env);
      return { speculation: speculationSettingsFromConfig(c), proposers: proposerFactoryFromConfig(c, pair.served.draft).o };
    };
    const base = settings({});
    const changed: Record<string, string> = {
      SPEC_GAMMA: "2",
      SPEC_MAX_GAMMA: "3",
      SPEC_OBJECTIVE: "gpu",
      SPEC_PROACTIVE: "true",
      SPEC_PIPELINE: "false",
      SPEC_Q_SUPPORT: "5",
      SPEC_PROPOSER: "suffix",
      SPEC_SUFFIX_MAX_ORDER: "4",
      SPEC_SUFFIX_TENANT_BYTES: "1024",
      SPEC_SUFFIX_TENANTS: "2",
    };
    // A new SPEC_* variable must be listed here, and so must reach the settings.
    expect(
      Object.keys(ConfigSchema.shape)
        .filter((k) => k.startsWith("SPEC_"))
        .sort(),
    ).toEqual(Object.keys(changed).sort());
    for (const [k, v] of Object.entries(changed)) expect(settings({ [k]: v }), k).not.toEqual(base);
  });

  it("SPEC_GAMMA fixed: every round drafts that many (fewer only when the budget ends)", async () => {
    const stats = await translateWith({ SPEC_GAMMA: "3" });
    expect(stats.every((s) => s.generatedTokens === 0 && s.rounds > 0)).toBe(true);
    const gammas = drafted(stats);
    expect(gammas.filter((g) => g === 3).length).toBeGreaterThan(gammas.length / 2);
    expect(Math.max(...gammas)).toBe(3);
  });

  it("SPEC_GAMMA=0: the pool generates alone", async () => {
    const stats = await translateWith({ SPEC_GAMMA: "0" });
    expect(stats.every((s) => s.rounds === 0 && s.generatedTokens > 0)).toBe(true);
  });

  it("SPEC_PROACTIVE: drafts ahead while rounds are in flight", async () => {
    const off = await translateWith({ SPEC_GAMMA: "2" });
    const on = await translateWith({ SPEC_GAMMA: "2", SPEC_PROACTIVE: "true" });
    expect(off.every((s) => s.aheadUsed + s.aheadDiscarded === 0)).toBe(true);
    expect(on.reduce((n, s) => n + s.aheadUsed + s.aheadDiscarded, 0)).toBeGreaterThan(0);
    // Greedy output does not depend on how the drafts came about (sentences finish in any order).
    const sorted = (stats: DecodeStats[]) => stats.map((s) => s.roundTokens).sort((a, b) => a - b);
    expect(sorted(on)).toEqual(sorted(off));
  });

  it("SPEC_MAX_GAMMA and SPEC_OBJECTIVE bound and steer the adaptive policy", async () => {
    // The fixture target ends its translations after a token or two, too soon for the adaptive policy to
    // decide anything; this target (in-process, behind the decoder's verifier port) writes on to the
    // budget at a steady 10 ms per pass, accepting every draft.
    const filler = pair.tok.encode(" de", { addSpecialTokens: false }).at(-1)!;
    const roundSizes: number[] = [];
    const endless: TargetVerifier = {
      async round(session, build) {
        const req = build(false);
        roundSizes.push(req.drafts.length);
        await sleep(10);
        return { session, seq: req.seq, accepted: req.drafts.length, token: filler, draft_logprobs: req.drafts.map(() => 0), load: { queue_depth: 0, sessions: 1 }, server_ms: 10, elapsedMs: 10 };
      },
      async *generate(req) {
        for (let i = 0; i < req.max_tokens; i++) {
          await sleep(10);
          yield filler;
        }
      },
      async close() {},
    };
    const run = async (env: Record<string, string>) => {
      roundSizes.length = 0;
      const stats: DecodeStats[] = [];
      const config = loadConfig(env);
      const speculation = speculationSettingsFromConfig(config);
      await new Translator({ model: pair.served, pool: endless, tiers: [], speculation, proposers: proposerFactoryFromConfig(config, pair.served.draft), onGeneration: (s) => stats.push(s) }).translate(
        "Quien mucho abarca poco aprieta.",
        "es",
        "ca",
        {
          sentences: 0,
          computed: 0,
          hits: {},
        },
      );
      return { stats: stats[0], roundSizes: [...roundSizes] };
    };
    // Per GPU-second, one pass for several tokens beats one pass per token: the policy leaves pool
    // generation after its first chunk and speculates, never beyond SPEC_MAX_GAMMA.
    const gpu = await run({ SPEC_GAMMA: "adaptive", SPEC_OBJECTIVE: "gpu", SPEC_MAX_GAMMA: "2" });
    expect(gpu.stats.rounds).toBeGreaterThan(0);
    expect(gpu.roundSizes.length).toBe(gpu.stats.rounds);
    expect(Math.max(...gpu.roundSizes)).toBe(2);
    const wider = await run({ SPEC_GAMMA: "adaptive", SPEC_OBJECTIVE: "gpu", SPEC_MAX_GAMMA: "6" });
    expect(Math.max(...wider.roundSizes)).toBeGreaterThan(2);
    expect(Math.max(...wider.roundSizes)).toBeLessThanOrEqual(6);
  });

  it("refuses SPEC_GAMMA above SPEC_MAX_GAMMA at start-up", () => {
    expect(() => loadConfig({ SPEC_GAMMA: "6", SPEC_MAX_GAMMA: "4" })).toThrow(/SPEC_GAMMA \(6\) is above SPEC_MAX_GAMMA \(4\)/);
  });
});
