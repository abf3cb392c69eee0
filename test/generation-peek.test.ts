// While the pool generates, the decoder asks a proposer that knows its odds for a proposal at each token
// it is free for, and at every chunk's end it waits for it: a proposer that takes longer to check a token
// than a token takes to arrive (the hybrid's draft model) is still priced, and a strong match ends the
// stream. In-process: a target that emits a fixed sequence every few ms, and a proposer whose match
// appears after the first tokens.
import { describe, expect, it } from "vitest";
import type { PeekedProposal, Proposal, Proposer } from "../src/speculative/proposer.ts";
import { SpeculativeDecoder } from "../src/speculative/speculative-decoder.ts";
import type { TargetVerifier } from "../src/speculative/target-verifier.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PROMPT = [1, 2, 3];
/** The target's output: token i is 100 + i. */
const next = (history: readonly number[]) => 100 + (history.length - PROMPT.length);

/** History length the target's session has verified up to (rounds continue from it unless re-opened). */
let verifiedUpTo = 0;

/** A target that generates a token every 5 ms and verifies a round in 5 ms, as the sequence above. */
const target: TargetVerifier = {
  async round(session, build) {
    const req = build(false);
    await sleep(5);
    // Greedy verification against the fixed sequence.
    const base = req.history ? req.history.length : verifiedUpTo;
    let accepted = 0;
    while (accepted < req.drafts.length && req.drafts[accepted] === 100 + (base - PROMPT.length) + accepted) accepted++;
    const token = 100 + (base - PROMPT.length) + accepted;
    verifiedUpTo = base + accepted + 1;
    return { session, seq: req.seq, accepted, token, draft_logprobs: req.drafts.map(() => 0), load: { queue_depth: 0, sessions: 1 }, server_ms: 5, elapsedMs: 5 };
  },
  async *generate(req) {
    const history = [...req.history];
    for (let i = 0; i < req.max_tokens; i++) {
      await sleep(5);
      const t = next(history);
      history.push(t);
      yield t;
    }
  },
  async close() {},
};

/** Proposes the target's next tokens, sure of them, once 2 tokens are out; checking a token takes 20 ms. */
class SlowCheckingMatcher implements Proposer {
  readonly name = "matcher";
  readonly draftsBeyondPeek = true;
  proposeMs = 0;
  aheadUsed = 0;
  aheadDiscarded = 0;
  peek(history: readonly number[], max: number): PeekedProposal {
    if (history.length < PROMPT.length + 2) return { tokens: [], confidence: [], run: 1 };
    const tokens = Array.from({ length: max }, (_, k) => next(history) + k);
    return { tokens, confidence: tokens.map(() => 0.98), run: 30 };
  }
  async propose(history: readonly number[], gamma: number): Promise<Proposal> {
    return { tokens: this.peek(history, gamma).tokens };
  }
  async observe(): Promise<boolean> {
    await sleep(20);
    return false; // its fresh drafts would never do: only its peeked proposals can pay
  }
  async reset(): Promise<void> {}
}

describe("peeking while the pool generates", () => {
  it("a proposer slower to check a token than tokens arrive still ends the stream at a chunk's end for a strong match", async () => {
    const d = new SpeculativeDecoder({ proposer: new SlowCheckingMatcher(), pool: target, gamma: "adaptive", maxGamma: 8, maxTokens: 48, session: "s" });
    const out: number[] = [];
    for await (const ev of d.run(PROMPT)) out.push(...ev.tokens);
    // The output is the target's, whoever produced it.
    expect(out).toEqual(Array.from({ length: 48 }, (_, i) => 100 + i));
    // The first chunk (4 tokens) was generated; from its end on, rounds carried the proposals.
    expect(d.stats.generatedTokens).toBeLessThanOrEqual(4);
    expect(d.stats.rounds).toBeGreaterThan(0);
    expect(d.stats.accepted).toBeGreaterThan(30);
  });
});
