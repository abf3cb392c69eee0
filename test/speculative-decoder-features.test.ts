import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import type { Sampling } from "../src/common/protocol.ts";
import { SpeculativeDecoder, type SpeculativeDecoderOptions } from "../src/speculative/speculative-decoder.ts";
import { ProposerFactory } from "../src/speculative/proposer-factory.ts";
import type { Proposer } from "../src/speculative/proposer.ts";
import type { HybridProposer } from "../src/speculative/hybrid-proposer.ts";
import { readRewriteCases } from "../fixtures/generate/heldout.ts";
import { rewritePrompt } from "../fixtures/generate/quote-docs.ts";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";
import { countFirstTwo, firstTwoChiSquare } from "./harness/chi-square.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { withTinyPair } from "./harness/tiny-pair.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";

const TOKEN = "feature-test-token-0123456789";
let target: CausalLM;
let draft: CausalLM;
let tok: TextTokenizer;
let eos: number[];
let verifier: ListeningProcess;
let url: string;
let pool: PoolClient;

beforeAll(async () => {
  ({ target, draft, tok, eos } = await loadDefaultPair());
  verifier = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN });
  url = verifier.url;
  pool = new PoolClient({ nodes: [url], token: TOKEN });
});
afterAll(async () => {
  await verifier?.stop("SIGKILL");
});

let sessionNo = 0;
async function run(prompt: number[], o: Partial<SpeculativeDecoderOptions> = {}) {
  const d = new SpeculativeDecoder({ draft, pool, maxTokens: 32, gamma: 3, session: `x${sessionNo++}`, decode: (t) => tok.decode(t), ...o });
  const events = [];
  for await (const ev of d.run(prompt)) events.push(ev);
  return { d, tokens: events.flatMap((e) => e.tokens), text: events.map((e) => e.text).join(""), events };
}

async function sessions(): Promise<number> {
  const info = (await (await fetch(`${url}/v1/info`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { sessions: { sessions: number } };
  return info.sessions.sessions;
}

describe("SpeculativeDecoder: ends, stop strings, cancellation, statistics", () => {
  it("stops at EOS (not part of the output) and at max tokens", async () => {
    let stopped = 0;
    for (const text of SPANISH_PROMPTS.slice(0, 20)) {
      const prompt = tok.encode(text);
      const ref = await target.greedy(prompt, 32, eos);
      const r = await run(prompt, { stopIds: eos });
      if (eos.includes(ref.at(-1)!)) {
        stopped++;
        expect(r.d.finishReason).toBe("stop");
        expect(r.tokens).toEqual(ref.slice(0, -1));
      } else {
        expect(r.d.finishReason).toBe("length");
        expect(r.tokens).toEqual(ref);
      }
    }
    expect(stopped).toBeGreaterThan(0); // the fixture's fortunes are short: EOS does come
    const short = await run(tok.encode("La vida es"), { maxTokens: 5, gamma: 6 });
    expect(short.tokens.length).toBe(5);
    expect(short.d.finishReason).toBe("length");
    expect(await sessions()).toBe(0); // every finished generation closed its verifier session
  });

  it("ends before a stop string that spans token boundaries, never streaming any part of it", async () => {
    let checked = 0;
    for (const text of SPANISH_PROMPTS.slice(20, 35)) {
      const prompt = tok.encode(text);
      const ref = await target.greedy(prompt, 32);
      // A stop string made of the end of token 6 and the start of token 7 (when both are long enough).
      const a = tok.decode(ref.slice(0, 6));
      const b = tok.decode(ref.slice(0, 7));
      if (b.length - a.length < 2 || a.length < 8) continue;
      const stop = b.slice(a.length - 2, a.length + 1);
      const full = tok.decode(ref);
      const r = await run(prompt, { stop: ["@@never@@", stop], gamma: 4 });
      expect(r.d.finishReason).toBe("stop");
      expect(r.text).toBe(full.slice(0, full.indexOf(stop)));
      for (const ev of r.events) expect(ev.text).not.toContain(stop);
      // Tokens end with the one that completed the stop string.
      expect(r.tokens).toEqual(ref.slice(0, r.tokens.length));
      expect(tok.decode(r.tokens)).toContain(stop);
      expect(tok.decode(r.tokens.slice(0, -1))).not.toContain(stop);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(3);
  });

  it("cancels on abort: the stream ends and the verifier's session is closed", async () => {
    const ctl = new AbortController();
    const d = new SpeculativeDecoder({ draft, pool, maxTokens: 200, gamma: 2, session: "cancel-me", signal: ctl.signal });
    let n = 0;
    for await (const ev of d.run(tok.encode("El tiempo es"))) {
      n += ev.tokens.length;
      if (n >= 6) ctl.abort();
    }
    expect(n).toBeLessThan(200);
    expect(d.output.length).toBeLessThan(200);
    expect(d.finishReason).toBeUndefined();
    const del = await fetch(`${url}/v1/sessions/cancel-me`, { method: "DELETE", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(del.status).toBe(404); // already closed by the decoder
  });

  it("reports per-request statistics that add up", async () => {
    const { d, tokens } = await run(tok.encode("Más vale pájaro en mano"), { gamma: 4, proactive: true });
    const s = d.stats;
    expect(s.rounds).toBeGreaterThan(0);
    // γ = 4 every round; a round with four tokens or fewer left drafts only what can still be output
    // (the tokens left fall every round, so at most four rounds are cut).
    expect(s.gammas.every((g) => g === 4)).toBe(true);
    expect(s.drafted).toBeLessThanOrEqual(4 * s.rounds);
    expect(s.drafted).toBeGreaterThanOrEqual(4 * (s.rounds - 4));
    expect(s.accepted).toBeLessThanOrEqual(s.drafted);
    expect(s.roundTokens).toBe(s.accepted + s.rounds);
    expect(tokens.length).toBeLessThanOrEqual(s.roundTokens);
    expect(s.targetPasses).toBe(s.rounds);
    expect(s.targetPasses / tokens.length).toBeLessThan(1); // speculation saved target passes
    expect(s.draftMs).toBeGreaterThan(0);
    expect(s.verifyMs).toBeGreaterThan(0);
    expect(s.networkMs).toBeGreaterThan(0);
  });
});

describe("SpeculativeDecoder: sampling", () => {
  const sampling: Sampling = { temperature: 0.8, top_p: 0.95, top_k: 0, seed: 4242 };

  it("a seeded request gives the same text twice, with proactive drafting on or off, fixed or adaptive γ", async () => {
    const prompt = tok.encode("Un hombre sabio");
    const a = await run(prompt, { sampling, seeded: true, gamma: 3 });
    const b = await run(prompt, { sampling, seeded: true, gamma: 3 });
    const c = await run(prompt, { sampling, seeded: true, gamma: 3, proactive: true });
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).toEqual(a.tokens);
    const x = await run(prompt, { sampling, seeded: true, gamma: "adaptive", proactive: true });
    const y = await run(prompt, { sampling, seeded: true, gamma: "adaptive", proactive: true });
    expect(y.text).toBe(x.text);
    const other = await run(prompt, { sampling: { ...sampling, seed: 4243 }, seeded: true, gamma: 3 });
    expect(other.tokens).not.toEqual(a.tokens);
  });

  // The γ policy of a seeded request must decide from its tokens alone. While the pool generates, the
  // proposer checks each token against what it would have drafted, and its answers move the acceptance
  // estimate that decides when to speculate again. A proposer that was busy (a slow draft step, a loaded
  // machine) used to skip the tokens arriving meanwhile, so the rounds, and with them the sampled text,
  // depended on its speed: 16 concurrent seeded clients saw another text now and then. Here the same
  // proposer checks tokens fast and slowly: it must check the same tokens and give the same text.
  it("a seeded adaptive request checks the same tokens and gives the same text however fast its proposer is", async () => {
    const factory = new ProposerFactory({ kind: "hybrid", draft });
    /** The hybrid proposer, each check of a pool-generated token `ms` slower, its checks counted. */
    const timedChecks = (p: HybridProposer, ms: number) => {
      const checked: number[] = [];
      const proposer: Proposer = {
        name: p.name,
        draftsBeyondPeek: p.draftsBeyondPeek,
        get proposeMs() {
          return p.proposeMs;
        },
        get aheadUsed() {
          return p.aheadUsed;
        },
        get aheadDiscarded() {
          return p.aheadDiscarded;
        },
        peek: (h, max) => p.peek(h, max),
        propose: (h, g) => p.propose(h, g),
        proposeAhead: (h, pr, g) => p.proposeAhead(h, pr, g),
        observe: async (h, t) => {
          checked.push(h.length);
          await new Promise((r) => setTimeout(r, ms));
          return p.observe(h, t);
        },
        reset: () => p.reset(),
      };
      return { proposer, checked };
    };
    // Rewriting prompts: the answer copies the prompt's text, so the proposers' checks hit and matter.
    const cases = (await readRewriteCases(DEFAULT_PAIR_DIR)).slice(0, 6);
    let checks = 0;
    for (const [i, c] of cases.entries()) {
      const prompt = tok.encode(rewritePrompt(c.slipped));
      const s = { ...sampling, seed: 100 + i };
      const make = () => factory.create({ promptLength: prompt.length, sampling: s, seeded: true, tenant: "" }) as HybridProposer;
      const opts = { sampling: s, seeded: true, gamma: "adaptive" as const, maxTokens: 48 };
      const fast = timedChecks(make(), 0);
      const slow = timedChecks(make(), 10);
      const a = await run(prompt, { ...opts, proposer: fast.proposer });
      const b = await run(prompt, { ...opts, proposer: slow.proposer });
      expect(slow.checked, `case ${i}: tokens checked`).toEqual(fast.checked);
      expect(b.text, `case ${i}`).toBe(a.text);
      checks += fast.checked.length;
    }
    expect(checks).toBeGreaterThan(0); // pool generation happened, and was followed
  });

  // Seeded trials through SpeculativeDecoder → PoolClient → verifier process on a tiny-vocabulary pair (8 tokens,
  // random target, noisy draft): the first two tokens after a fixed prompt, sampled from the whole
  // vocabulary (no top-k), drafts drawn from the draft's full q̃. The reference is target-only sampling
  // p(a)·p(b|a) from the target's own logits over all 64 pairs. Accept at chi-square p ≥ 0.001.
  it("commits pairs distributed as target-only sampling (tiny vocabulary, chi-square through edge + verifier)", async () => {
    await withTinyPair(3, TOKEN, async ({ target: tinyTarget, draftDir, pool: tinyPool }) => {
      const tinyDraft = await loadDraftModel(await loadBundle(draftDir));
      const prompt = [1, 6, 7, 6];
      const params = { temperature: 2 }; // flattens the random target so that most of the 64 cells fill
      const counts = await countFirstTwo(2000, async (t) => {
        const d = new SpeculativeDecoder({
          draft: tinyDraft,
          pool: tinyPool,
          maxTokens: 2,
          gamma: 2,
          support: 8,
          session: `tiny${t}`,
          sampling: { temperature: params.temperature, top_p: 1, top_k: 0, seed: 10_000 + t },
          seeded: true,
        });
        const out: number[] = [];
        for await (const ev of d.run(prompt)) out.push(...ev.tokens);
        return out;
      });
      const r = await firstTwoChiSquare(tinyTarget, prompt, params, counts);
      expect(r.unseen).toEqual([]);
      expect(r.pValue, `chi2 ${r.statistic.toFixed(1)} on ${r.dof} dof`).toBeGreaterThanOrEqual(0.001);
    });
  });
});
