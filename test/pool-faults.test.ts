// Fault tolerance of the edge ⇄ pool path with three real verifier processes on loopback: the node
// serving a session is killed mid-generation, sessions are evicted, a node is delayed past the client's
// timeout — every output stays identical to the fault-free run; with no healthy node the request fails
// with a 503-class PoolError quickly instead of hanging.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import type { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { PoolClient, PoolError } from "../src/pool/pool-client.ts";
import { SpeculativeDecoder, type SpeculativeDecoderOptions } from "../src/speculative/speculative-decoder.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { startDelayProxy, type DelayProxy } from "./harness/delay-proxy.ts";
import { deadEndpoint } from "./harness/ports.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";

const TOKEN = "fault-test-token-0123456789ab";
let target: CausalLM;
let draft: CausalLM;
let tok: TextTokenizer;
const nodes = new Map<string, ListeningProcess>();
let proxy: DelayProxy | undefined;

async function startNode(env: Record<string, string> = {}): Promise<string> {
  const node = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN, ...env });
  nodes.set(node.url, node);
  return node.url;
}

async function kill(url: string): Promise<void> {
  await nodes.get(url)!.stop("SIGKILL");
  nodes.delete(url);
}

beforeAll(async () => {
  ({ target, draft, tok } = await loadDefaultPair());
});
afterAll(async () => {
  await Promise.all([...nodes.values()].map((n) => n.stop("SIGKILL")));
  await proxy?.close();
});

async function generatedTokens(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(text.match(/^alia_verifier_generated_tokens_total (\S+)$/m)?.[1] ?? NaN);
}

let sessionNo = 0;
/** Decodes `prompt`; `onTokens(count, decoder)` runs after every event and may inject a fault. */
async function decode(pool: PoolClient, prompt: number[], o: Partial<SpeculativeDecoderOptions> = {}, onTokens?: (n: number, session: string) => Promise<void>) {
  const session = `f${sessionNo++}`;
  const d = new SpeculativeDecoder({ draft, pool, maxTokens: 48, gamma: 3, session, ...o });
  const out: number[] = [];
  for await (const ev of d.run(prompt)) {
    out.push(...ev.tokens);
    await onTokens?.(out.length, session);
  }
  return { out, d };
}

describe("PoolClient + SpeculativeDecoder under faults", () => {
  const poolOf = (urls: string[], o: Partial<ConstructorParameters<typeof PoolClient>[0]> = {}) => new PoolClient({ nodes: urls, token: TOKEN, timeoutMs: 10_000, backoffMs: 200, ...o });

  it("survives killing the node that serves the session, mid-generation (greedy and seeded sampling)", async () => {
    const urls = [await startNode(), await startNode(), await startNode()];
    const sampling = { temperature: 0.8, top_p: 0.95, top_k: 0, seed: 99 };
    let failovers = 0;
    for (const [i, text] of SPANISH_PROMPTS.slice(0, 4).entries()) {
      const prompt = tok.encode(text);
      const opts = i % 2 ? { sampling, seeded: true, proactive: true } : { proactive: i === 2 };
      const clean = await decode(poolOf(urls), prompt, opts);
      if (!(i % 2)) expect(clean.out).toEqual(await target.greedy(prompt, 48));
      const pool = poolOf(urls);
      let killed = "";
      const faulty = await decode(pool, prompt, opts, async (n, session) => {
        if (!killed && n >= 12) {
          killed = pool.nodeOf(session)!;
          await kill(killed); // the session's KV cache dies with it
        }
      });
      expect(killed).not.toBe("");
      expect(faulty.out).toEqual(clean.out);
      failovers += pool.counters.failovers;
      urls.splice(urls.indexOf(killed), 1, await startNode()); // three nodes again for the next prompt
    }
    expect(failovers).toBeGreaterThanOrEqual(4);
    for (const u of urls) await kill(u);
  });

  it("resumes pool generation (γ = 0) on another node when the streaming node dies (greedy and seeded sampling)", async () => {
    const urls = [await startNode(), await startNode()];
    const prompt = tok.encode("Nunca es tarde");
    for (const opts of [{}, { sampling: { temperature: 0.9, top_p: 1, top_k: 20, seed: 5 }, seeded: true }]) {
      const clean = await decode(poolOf(urls), prompt, { gamma: 0, ...opts });
      const pool = poolOf(urls);
      const before = await Promise.all(urls.map(generatedTokens));
      let killed = false;
      const faulty = await decode(pool, prompt, { gamma: 0, generateChunk: 48, ...opts }, async (n) => {
        if (!killed && n >= 12) {
          killed = true;
          // The streaming node is the one whose generated-token counter moved.
          const after = await Promise.all(urls.map(generatedTokens));
          const streaming = urls.find((_, i) => after[i] > before[i])!;
          await kill(streaming);
          urls.splice(urls.indexOf(streaming), 1);
        }
      });
      expect(killed).toBe(true);
      expect(pool.counters.failovers).toBe(1);
      expect(faulty.out).toEqual(clean.out);
      if (!("sampling" in opts)) expect(clean.out).toEqual(await target.greedy(prompt, 48));
      urls.push(await startNode());
    }
    for (const u of urls) await kill(u);
  });

  it("rebuilds evicted sessions from history on the same node, identically", async () => {
    const url = await startNode({ VERIFIER_MAX_SESSIONS: "1" }); // 4 concurrent sessions keep evicting each other
    const pool = poolOf([url]);
    const prompts = SPANISH_PROMPTS.slice(10, 14).map((t) => tok.encode(t));
    const outs = await Promise.all(prompts.map((p) => decode(pool, p, { gamma: 2 })));
    for (const [i, p] of prompts.entries()) expect(outs[i].out).toEqual(await target.greedy(p, 48));
    expect(pool.counters.reopened).toBeGreaterThan(0);
    await kill(url);
  });

  it("fails over from a node delayed past the timeout, identically, and returns to it when it recovers", async () => {
    const a = await startNode();
    const b = await startNode();
    proxy = await startDelayProxy({ target: a, delayMs: 0 });
    const pool = poolOf([proxy.url, b], { timeoutMs: 800, backoffMs: 100 });
    // A session whose rendezvous home is the delayed node.
    let n = 0;
    while (pool.ranking(`f${sessionNo}`)[0] !== proxy.url && n++ < 100) sessionNo++;
    const prompt = tok.encode("Quien mucho abarca");
    let delayed = false;
    const { out } = await decode(pool, prompt, {}, async (count) => {
      if (!delayed && count >= 10) {
        proxy!.setDelay(1500); // one way: every round now takes > 3 s, past the 800 ms timeout
        delayed = true;
      }
    });
    expect(delayed).toBe(true);
    expect(out).toEqual(await target.greedy(prompt, 48));
    expect(pool.counters.failovers).toBeGreaterThanOrEqual(1);
    // Recovered: one timeout stays under the breaker's threshold, so new sessions homed there use it again.
    proxy.setDelay(0);
    while (pool.ranking(`f${sessionNo}`)[0] !== proxy.url && n++ < 200) sessionNo++;
    const again = await decode(pool, prompt, { maxTokens: 8 }, async (_count, session) => {
      expect(pool.nodeOf(session)).toBe(proxy!.url);
    });
    expect(again.out).toEqual(out.slice(0, 8));
    await proxy.close();
    proxy = undefined;
    await kill(a);
    await kill(b);
  });

  it("with no healthy node, fails fast with a 503 PoolError instead of hanging", async () => {
    const url = await startNode();
    await kill(url); // nothing listens there any more
    // A second node that is certainly down: a port held by a listener that resets every connection
    // (a fixed port such as 9 may have a listener on some machines).
    const unreachable = await deadEndpoint();
    let calls = 0;
    const counting: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    try {
      const pool = poolOf([url, unreachable.url], { timeoutMs: 2000, backoffMs: 60_000, failureThreshold: 3, fetch: counting });
      const t0 = Date.now();
      for (let i = 0; i < 3; i++) {
        const err = await decode(pool, tok.encode("La vida es")).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(PoolError);
        expect(err).toMatchObject({ status: 503, code: "pool_unavailable" });
      }
      expect(Date.now() - t0).toBeLessThan(60_000); // bounded: refused or reset connects, no retry loop
      // Three failures each opened both circuits: the next request is refused without a connection attempt.
      calls = 0;
      const again = await decode(pool, tok.encode("El amor es")).catch((e: unknown) => e);
      expect(again).toMatchObject({ status: 503 });
      expect(calls).toBe(0);
    } finally {
      await unreachable.close();
    }
  });
});
