// Copies at one round trip less: a round's `resume` (after a broken copy the target goes on generating within
// the round until the copy can resume) and rounds sent ahead (pipelining: the next round of a strong copy
// sent while the one before it is in flight). In the verifier core: what resume generates and where it
// stops, retries, refusals; a round that overtakes its predecessor, a lost bet. Through the edge and a
// verifier process: greedy identity on the copy fixture's passages (where copies break at every spelling
// fix), and the sampling chi-square on a tiny pair with its power check.
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OnnxEngine } from "../gpu-backend/onnx-engine.ts";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { Verifier } from "../gpu-backend/verifier.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { VerifyRequestSchema, type VerifyRequest } from "../src/common/protocol.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import { SpeculationPriors } from "../src/speculative/speculation-prior.ts";
import { SpeculativeDecoder } from "../src/speculative/speculative-decoder.ts";
import { SuffixProposer } from "../src/speculative/suffix-proposer.ts";
import { TenantSuffixCache } from "../src/speculative/tenant-suffix-cache.ts";
import { EOS_ID, IM_END_ID } from "../fixtures/generate/bpe.ts";
import { readRewriteCases } from "../fixtures/generate/heldout.ts";
import { rewritePrompt } from "../fixtures/generate/quote-docs.ts";
import { countFirstTwo, firstTwoChiSquare } from "./harness/chi-square.ts";
import { DEFAULT_PAIR_DIR, loadDefaultPair } from "./harness/default-pair.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";
import { startDelayProxy } from "./harness/delay-proxy.ts";
import { withTinyPair } from "./harness/tiny-pair.ts";

const TOKEN = "resume-test-token-0123456789";
const COPY_DIR = path.join(DEFAULT_PAIR_DIR, "..", "copy");
const store = { maxBytes: 64 << 20, maxSessions: 64, idleTtlMs: 60_000 };
const req = (r: Partial<VerifyRequest> & Pick<VerifyRequest, "session" | "seq">): VerifyRequest => VerifyRequestSchema.parse({ drafts: [], ...r });

/** Where resume stops generating after `ref[from]`: the first k > from whose pair (ref[k−1], ref[k]) is in `window`, or a stop id, or `max` tokens. */
function expectedResume(ref: number[], from: number, window: number[], max: number, stopIds: number[] = []): number[] {
  const pairs = new Set(window.slice(1).map((t, i) => `${window[i]},${t}`));
  const out: number[] = [];
  for (let k = from; out.length < max && !stopIds.includes(ref[k]) && !pairs.has(`${ref[k - 1]},${ref[k]}`); k++) out.push(ref[k + 1]);
  return out;
}

/** The default target, a prompt and its target-only greedy continuation (`n` tokens), loaded before a describe's tests. */
function greedyCase(text: string, n: number) {
  const c = { target: undefined as unknown as CausalLM, prompt: [] as number[], ref: [] as number[] };
  beforeAll(async () => {
    const pair = await loadDefaultPair();
    c.target = pair.target;
    c.prompt = pair.tok.encode(text);
    c.ref = await pair.target.greedy(c.prompt, n);
  });
  return c;
}

describe("resume in the verifier core (greedy)", () => {
  const c = greedyCase("El que madruga", 24);
  /** A round whose third draft is wrong: it commits c.ref[0..2] (c.ref[2] the correction) and then resumes. */
  const broken = () => [c.ref[0], c.ref[1], (c.ref[2] + 1) % 1000, c.ref[3]];

  it("generates the target's own tokens after the correction until the copy's next pair, then the session continues", async () => {
    const v = new Verifier(new OnnxEngine(c.target), store);
    const window = [c.ref[6], c.ref[7], c.ref[8]];
    const opening = req({ session: "a", seq: 0, history: c.prompt, drafts: broken(), resume: { window, max_tokens: 16, stop_ids: [], pairs: [] }, logprobs: 1 });
    const r0 = await v.round(opening);
    expect([r0.accepted, r0.token]).toEqual([2, c.ref[2]]);
    const generated = expectedResume(c.ref, 2, window, 16);
    expect(generated.length).toBeGreaterThan(0);
    expect(r0.generated).toEqual(generated);
    expect(r0.logprobs).toHaveLength(3 + generated.length);
    expect(r0.generate_ms).toBeLessThanOrEqual(r0.server_ms);
    // A retry is answered from the stored result; another resume for the same seq is other content.
    expect(await v.round(opening)).toEqual(r0);
    await expect(v.round({ ...opening, history: undefined, committed: [], resume: { window, max_tokens: 2, stop_ids: [], pairs: [] } })).rejects.toMatchObject({ code: "seq_conflict" });
    // The next round reports every committed token, generated ones included, and continues identically.
    const at = 3 + generated.length;
    const r1 = await v.round(req({ session: "a", seq: 1, committed: [c.ref[0], c.ref[1], c.ref[2], ...generated], drafts: c.ref.slice(at, at + 3) }));
    expect([r1.accepted, r1.token]).toEqual([3, c.ref[at + 3]]);
    expect(r1.generated).toBeUndefined();
  });

  it("stops at max_tokens and after a stop id; a correction already in the window generates nothing", async () => {
    const v = new Verifier(new OnnxEngine(c.target), store);
    const window = [c.ref[20], c.ref[21]];
    const capped = await v.round(req({ session: "m", seq: 0, history: c.prompt, drafts: broken(), resume: { window, max_tokens: 3, stop_ids: [], pairs: [] } }));
    expect(capped.generated).toEqual(expectedResume(c.ref, 2, window, 3));
    expect(capped.generated).toHaveLength(3);
    const stop = await v.round(req({ session: "s", seq: 0, history: c.prompt, drafts: broken(), resume: { window, max_tokens: 16, stop_ids: [c.ref[4]], pairs: [] } }));
    expect(stop.generated).toEqual([c.ref[3], c.ref[4]]);
    const resumed = await v.round(req({ session: "r", seq: 0, history: c.prompt, drafts: broken(), resume: { window: [c.ref[1], c.ref[2], c.ref[3]], max_tokens: 16, stop_ids: [], pairs: [] } }));
    expect(resumed.generated).toEqual([]);
    // A branch pair stops it too: here the pair the third generated token makes.
    const branch = await v.round(req({ session: "b", seq: 0, history: c.prompt, drafts: broken(), resume: { window, pairs: [[c.ref[4], c.ref[5]]], max_tokens: 16, stop_ids: [] } }));
    expect(branch.generated).toEqual(expectedResume(c.ref, 2, [c.ref[4], c.ref[5]], 16));
    expect(branch.generated).toEqual([c.ref[3], c.ref[4], c.ref[5]]);
  });

  it("refuses resume with masks, a window token outside the vocabulary, and out-of-range max_tokens", async () => {
    const v = new Verifier(new OnnxEngine(c.target), store);
    const body = { session: "x", seq: 0, history: c.prompt, drafts: [c.ref[0]] };
    expect(VerifyRequestSchema.safeParse({ ...body, resume: { window: [1, 2], max_tokens: 2 }, masks: ["a", "a"] }).success).toBe(false);
    expect(VerifyRequestSchema.safeParse({ ...body, resume: { window: [1, 2], max_tokens: 17 } }).success).toBe(false);
    await expect(v.round({ ...body, resume: { window: [1, 2], max_tokens: 2, stop_ids: [], pairs: [] }, masks: [`a${c.ref[0]}`, `a${c.ref[1]}`] })).rejects.toMatchObject({ code: "invalid_request" });
    await expect(v.round({ ...body, resume: { window: [1, v.engine.vocab], max_tokens: 2, stop_ids: [], pairs: [] } })).rejects.toMatchObject({ code: "invalid_request" });
    await expect(v.round({ ...body, resume: { window: [1, 2], max_tokens: 0, stop_ids: [], pairs: [] } })).rejects.toMatchObject({ code: "invalid_request" });
    expect(v.sessions.stats().sessions).toBe(0);
  });
});

describe("follow passes in the verifier core (greedy)", () => {
  const c = greedyCase("El que madruga", 32);
  const resume = (window: number[], follow: number, max_tokens = 16) => ({ window, follow, max_tokens, stop_ids: [], pairs: [] });
  /** Drafts whose third is wrong: the round commits c.ref[0..2], c.ref[2] the correction. */
  const broken = () => [c.ref[0], c.ref[1], (c.ref[2] + 1) % 1000, c.ref[3]];

  it("once the copy resumes in the window, the window's next tokens are verified in the same round", async () => {
    const v = new Verifier(new OnnxEngine(c.target), store);
    // The correction already continues the window: no token generated alone, one follow pass of 5 drafts.
    const r = await v.round(req({ session: "f", seq: 0, history: c.prompt, drafts: broken(), resume: resume(c.ref.slice(1, 12), 5), logprobs: 0 }));
    expect([r.accepted, r.token]).toEqual([2, c.ref[2]]);
    expect(r.followed).toEqual([{ drafted: 5, accepted: 5 }]);
    expect(r.generated).toEqual(c.ref.slice(3, 9));
    expect(r.logprobs).toHaveLength(3 + 6);
    // The session holds every committed token: the next round continues from c.ref[9].
    const next = await v.round(req({ session: "f", seq: 1, committed: [...c.ref.slice(0, 3), ...r.generated!], drafts: c.ref.slice(9, 12) }));
    expect([next.accepted, next.token]).toEqual([3, c.ref[12]]);
  });

  it("a follow pass that breaks generates on until the copy resumes again, then follows it again", async () => {
    const v = new Verifier(new OnnxEngine(c.target), store);
    const wrong = (c.ref[4] + 1) % 1000;
    // The window has a wrong token for c.ref[4] and lacks c.ref[5]: the first pass accepts one draft and
    // corrects to c.ref[4]; the target writes c.ref[5], c.ref[6] and c.ref[7] alone, when (c.ref[6], c.ref[7])
    // is a pair of the window: a second pass follows c.ref[8..9], and c.ref[10] is its own token.
    const window = [c.ref[1], c.ref[2], c.ref[3], wrong, c.ref[6], c.ref[7], c.ref[8], c.ref[9]];
    const r = await v.round(req({ session: "g", seq: 0, history: c.prompt, drafts: broken(), resume: resume(window, 5) }));
    expect(r.generated).toEqual(c.ref.slice(3, 11));
    expect(r.followed).toEqual([
      { drafted: 5, accepted: 1 },
      { drafted: 2, accepted: 2 },
    ]);
    expect(v.counters).toMatchObject({ followed: 3, generated: 3 });
  });

  it("no follow pass after a round that accepted every draft, nor without follow; follow is part of the round's content", async () => {
    const v = new Verifier(new OnnxEngine(c.target), store);
    const held = await v.round(req({ session: "h", seq: 0, history: c.prompt, drafts: c.ref.slice(0, 4), resume: resume(c.ref.slice(3, 14), 8) }));
    expect([held.accepted, held.generated, held.followed]).toEqual([4, [], undefined]);
    const body = req({ session: "n", seq: 0, history: c.prompt, drafts: broken(), resume: resume(c.ref.slice(1, 12), 0) });
    const none = await v.round(body);
    expect([none.generated, none.followed]).toEqual([[], undefined]);
    await expect(v.round({ ...body, history: undefined, committed: [], resume: resume(c.ref.slice(1, 12), 4) })).rejects.toMatchObject({ code: "seq_conflict" });
    expect(VerifyRequestSchema.safeParse({ ...body, resume: resume([1, 2], 17) }).success).toBe(false);
    await expect(v.round({ ...body, session: "m", resume: resume([1, 2], 17) })).rejects.toMatchObject({ code: "invalid_request" });
  });

  it("an opening round without drafts finds where the answer joins the window and follows it", async () => {
    const v = new Verifier(new OnnxEngine(c.target), store);
    // (last prompt token, c.ref[0]) is not in the window: c.ref[1] is generated, then (c.ref[0], c.ref[1]) is.
    const r = await v.round(req({ session: "o", seq: 0, history: c.prompt, drafts: [], resume: resume(c.ref.slice(0, 20), 8, 3) }));
    expect(r.token).toBe(c.ref[0]);
    expect(r.generated).toEqual(c.ref.slice(1, 11));
    expect(r.followed).toEqual([{ drafted: 8, accepted: 8 }]);
  });
});

describe("rounds sent ahead (pipelining) in the verifier core", () => {
  const c = greedyCase("Quien mucho abarca", 16);

  it("a round that overtakes the round before it waits for it, then runs after it", async () => {
    const v = new Verifier(new OnnxEngine(c.target), store);
    await v.round(req({ session: "p", seq: 0, history: c.prompt, drafts: c.ref.slice(0, 2) }));
    const r1 = req({ session: "p", seq: 1, committed: c.ref.slice(0, 3), drafts: c.ref.slice(3, 6) });
    // The bet: round 1 accepts its three drafts and its token is c.ref[6].
    const r2 = req({ session: "p", seq: 2, committed: c.ref.slice(3, 7), drafts: c.ref.slice(7, 10) });
    const second = v.round(r2); // arrives first
    await new Promise((r) => setTimeout(r, 20));
    const [a1, a2] = await Promise.all([v.round(r1), second]);
    expect([a1.accepted, a1.token]).toEqual([3, c.ref[6]]);
    expect([a2.accepted, a2.token]).toEqual([3, c.ref[10]]);
  });

  it("a round sent ahead of the round opening its session waits for that opening (its prefill) and runs after it", async () => {
    const v = new Verifier(new OnnxEngine(c.target), store);
    const opening = v.round(req({ session: "o", seq: 0, history: c.prompt, drafts: c.ref.slice(0, 3) }));
    const ahead = v.round(req({ session: "o", seq: 1, committed: c.ref.slice(0, 4), drafts: c.ref.slice(4, 6) }));
    const [a0, a1] = await Promise.all([opening, ahead]);
    expect([a0.accepted, a0.token]).toEqual([3, c.ref[3]]);
    expect([a1.accepted, a1.token]).toEqual([2, c.ref[6]]);
  });

  it("a lost bet is refused before any pass; one whose predecessor never comes is refused after a while", async () => {
    const v = new Verifier(new OnnxEngine(c.target), store);
    await v.round(req({ session: "q", seq: 0, history: c.prompt, drafts: c.ref.slice(0, 2) }));
    const passes = v.engine.accounting.totals.passes;
    // Round 1 commits c.ref[3] as its correction, not the draft the bet assumed.
    const r1 = req({ session: "q", seq: 1, committed: c.ref.slice(0, 3), drafts: [c.ref[3] + 1] });
    const bet = req({ session: "q", seq: 2, committed: [c.ref[3] + 1, c.ref[4]], drafts: c.ref.slice(5, 7) });
    const [a1, lost] = await Promise.allSettled([v.round(r1), v.round(bet)]);
    expect(a1.status === "fulfilled" && [a1.value.accepted, a1.value.token]).toEqual([0, c.ref[3]]);
    expect(lost.status === "rejected" && lost.reason).toMatchObject({ code: "history_mismatch" });
    expect(v.engine.accounting.totals.passes).toBe(passes + 1);
    const t0 = performance.now();
    await expect(v.round(req({ session: "q", seq: 3, committed: [c.ref[3]], drafts: [] }))).rejects.toMatchObject({ code: "seq_out_of_order" });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(900); // it waited for round 2
  });
});

/**
 * `counts` of the first two tokens match target-only sampling at `params` (chi-square p ≥ 0.001), and — the
 * test's power — are rejected against the target at temperature 1 (what a pass ignoring the session's
 * sampling settings would draw from).
 */
async function expectTargetOnlySampling(target: CausalLM, prompt: number[], params: { temperature: number }, counts: Map<string, number>): Promise<void> {
  const r = await firstTwoChiSquare(target, prompt, params, counts);
  expect(r.unseen).toEqual([]);
  expect(r.pValue, `chi2 ${r.statistic.toFixed(1)} on ${r.dof} dof`).toBeGreaterThanOrEqual(0.001);
  const wrong = await firstTwoChiSquare(target, prompt, { temperature: 1 }, counts);
  expect(wrong.pValue, `temperature 1: chi2 ${wrong.statistic.toFixed(1)} on ${wrong.dof} dof`).toBeLessThan(1e-6);
}

describe("resume through the edge", () => {
  let verifier: ListeningProcess;
  afterAll(async () => {
    await verifier?.stop("SIGKILL");
  });

  it("passage rewriting with the suffix proposer (adaptive γ) equals the copy fixture's greedy output, and resumes and follows the copy within rounds", async () => {
    const bundle = await loadBundle(path.join(COPY_DIR, "target"));
    const tok = TextTokenizer.fromBundle(bundle);
    const copyTarget = await loadTargetModel(bundle);
    // The measured H200 cost model behind a 20 ms round trip, where copying in rounds pays (on bare loopback
    // the policy may find pool generation cheaper and never open a round).
    verifier = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN, MODEL_DIR: COPY_DIR, VERIFIER_COST_MODEL: "h200-alia-40b", VERIFIER_SIMULATE_GPU: "true" });
    const proxy = await startDelayProxy({ target: verifier.url, delayMs: 10 });
    const pool = new PoolClient({ nodes: [proxy.url], token: TOKEN });
    let [resumed, followPasses, openings] = [0, 0, 0];
    try {
      // As on an edge in service, each generation starts from what the earlier ones measured (here also that
      // answers open by copying their prompt: later ones start with a round that finds the copy and follows it).
      const priors = new SpeculationPriors();
      for (const [i, r] of (await readRewriteCases(COPY_DIR)).slice(0, 12).entries()) {
        const prompt = tok.encode(rewritePrompt(r.slipped));
        const stopIds = [EOS_ID, IM_END_ID];
        const reference = (await copyTarget.greedy(prompt, 96, stopIds)).filter((t) => !stopIds.includes(t));
        const d = new SpeculativeDecoder({ proposer: new SuffixProposer({ promptLength: prompt.length }), pool, gamma: "adaptive", maxGamma: 16, maxTokens: 96, stopIds, priors, session: `p${i}` });
        for await (const _ of d.run(prompt));
        expect(d.output, `passage ${i}`).toEqual(reference);
        resumed += d.stats.resumedTokens;
        followPasses += d.stats.followPasses;
        if (d.stats.roundLog[0]?.gamma === 0) openings++;
      }
    } finally {
      await proxy.close();
      await copyTarget.dispose();
    }
    expect(resumed).toBeGreaterThan(0);
    expect(followPasses).toBeGreaterThan(0);
    expect(openings).toBeGreaterThan(0);
  });

  it("a repeated request (drafted from the key's earlier answer) sends rounds ahead, and the output stays target-only greedy", async () => {
    const { target, tok } = await loadDefaultPair();
    // The measured H200 cost model behind a 20 ms round trip, where copying in rounds pays.
    const v2 = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN, VERIFIER_COST_MODEL: "h200-alia-40b", VERIFIER_SIMULATE_GPU: "true" });
    const proxy = await startDelayProxy({ target: v2.url, delayMs: 10 });
    const pool = new PoolClient({ nodes: [proxy.url], token: TOKEN });
    const tenant = new TenantSuffixCache({ bytesPerTenant: 1 << 20, maxTenants: 1, maxOrder: 8 }).tenant("k");
    let [pipelined, rounds] = [0, 0];
    try {
      const priors = new SpeculationPriors();
      for (const [i, text] of SPANISH_PROMPTS.slice(0, 6).entries()) {
        const prompt = tok.encode(text);
        const reference = await target.greedy(prompt, 64);
        for (const asking of [0, 1]) {
          const d = new SpeculativeDecoder({ proposer: new SuffixProposer({ promptLength: prompt.length, tenant }), pool, gamma: "adaptive", maxGamma: 16, maxTokens: 64, priors, session: `c${i}-${asking}` });
          for await (const _ of d.run(prompt));
          expect(d.output, `prompt ${i}, asking ${asking}`).toEqual(reference);
          pipelined += d.stats.pipelinedRounds;
          rounds += d.stats.rounds;
        }
      }
    } finally {
      await proxy.close();
      await v2.stop("SIGKILL");
    }
    expect(pipelined, `${pipelined} of ${rounds} rounds`).toBeGreaterThan(0);
  });

  it("sampling: the first two tokens keep target-only sampling's distribution when the second comes from resume", async () => {
    await withTinyPair(5, TOKEN, async ({ target, pool }) => {
      // The suffix proposer drafts 2 (then 1, 6, …); the target rarely follows it: the first token is mostly
      // its correction, and with γ at most 2 the budget of 4 tokens leaves room to resume.
      const prompt = [1, 6, 7, 2, 1, 6, 7, 2, 1, 6, 7];
      const params = { temperature: 2 };
      let resumed = 0;
      const counts = await countFirstTwo(1500, async (t) => {
        const d = new SpeculativeDecoder({
          proposer: new SuffixProposer({ sampling: true, promptLength: prompt.length }),
          pool,
          maxTokens: 4,
          maxGamma: 2,
          gamma: "adaptive",
          session: `tiny-resume-${t}`,
          sampling: { temperature: params.temperature, top_p: 1, top_k: 0, seed: 40_000 + t },
          seeded: true,
        });
        for await (const _ of d.run(prompt));
        if (d.stats.roundLog[0]?.accepted === 0 && d.stats.resumedTokens > 0) resumed++;
        return d.output.slice(0, 2);
      });
      // A good share of the trials drew their second token in resume (the draft rejected, then generated).
      expect(resumed).toBeGreaterThan(150);
      await expectTargetOnlySampling(target, prompt, params, counts);
    });
  });
  it("sampling: the first two tokens keep target-only sampling's distribution when an opening round's follow pass draws the second", async () => {
    await withTinyPair(6, TOKEN, async ({ target, pool }) => {
      // Every token follows a 7 somewhere in the prompt, which ends with a 7: whatever the opening round's
      // token, the copy resumes at once and a follow pass verifies the prompt's next token there as a draft.
      const prompt = [1, 7, 0, 3, 7, 1, 4, 7, 2, 5, 7, 3, 6, 7, 4, 1, 7, 5, 2, 7, 6, 3, 7, 7, 4, 7];
      const params = { temperature: 2 };
      let followed = 0;
      const counts = await countFirstTwo(1500, async (t) => {
        // An edge whose recent answers opened by copying their prompts: the answer starts with such a round.
        const priors = new SpeculationPriors();
        priors.for("suffix").learn({ alpha: [], seen: [], copiedOpening: true });
        const d = new SpeculativeDecoder({
          proposer: new SuffixProposer({ sampling: true, promptLength: prompt.length }),
          pool,
          maxTokens: 8,
          maxGamma: 2,
          gamma: "adaptive",
          priors,
          session: `tiny-follow-${t}`,
          sampling: { temperature: params.temperature, top_p: 1, top_k: 0, seed: 50_000 + t },
          seeded: true,
        });
        for await (const _ of d.run(prompt));
        if (d.stats.roundLog[0]?.gamma === 0 && d.stats.followPasses > 0) followed++;
        return d.output.slice(0, 2);
      });
      // Nearly every trial drew its second token in the opening round's follow pass.
      expect(followed).toBeGreaterThan(1400);
      await expectTargetOnlySampling(target, prompt, params, counts);
    });
  });
});
