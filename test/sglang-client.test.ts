// SglangClient against a CONTRACT SERVER: SGLang cannot run here, so this test serves SGLang's documented
// /generate request and response shapes (meta_info.input_token_logprobs / input_top_logprobs with index 0
// null, output_top_logprobs, cached_tokens from a simulated radix cache), computed by our own target.
// It checks the adapter's requests and alignment, not SGLang itself.
import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SPANISH_PROMPTS } from "../bench/prompts.ts";
import { SglangClient, verifyGreedyTop } from "../gpu-backend/sglang-client.ts";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import type { CausalLM } from "../src/models/causal-lm.ts";
import { loadDraftModel } from "../src/models/draft-model.ts";
import { loadBundle } from "../src/models/model-store.ts";
import { TextTokenizer } from "../src/models/tokenizer.ts";
import { logSoftmaxAt } from "../src/spec/verify.ts";
import { DEFAULT_PAIR_DIR } from "../tools/fixtures/synthetic-bundles.ts";

let target: CausalLM;
let draft: CausalLM;
let tok: TextTokenizer;
let server: ServerType;
let url: string;
const seen: number[][] = [];
const requests: Record<string, unknown>[] = [];

function topK(row: Float32Array, k: number): [number, number, null][] {
  const ids = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
  return ids.map((id) => [logSoftmaxAt(row, id), id, null]);
}

beforeAll(async () => {
  const t = await loadBundle(path.join(DEFAULT_PAIR_DIR, "target"));
  target = await loadTargetModel(t);
  draft = await loadDraftModel(await loadBundle(path.join(DEFAULT_PAIR_DIR, "draft")));
  tok = TextTokenizer.fromBundle(t);
  const app = new Hono();
  app.post("/generate", async (c) => {
    const b = (await c.req.json()) as {
      input_ids: number[];
      sampling_params: { max_new_tokens: number };
      return_logprob: boolean;
      logprob_start_len: number;
      top_logprobs_num: number;
    };
    requests.push(b);
    const n = b.input_ids.length;
    if (b.sampling_params?.max_new_tokens !== 1 || b.return_logprob !== true || !(b.logprob_start_len >= 0 && b.logprob_start_len < n))
      return c.json({ error: "contract: expected max_new_tokens 1, return_logprob, 0 ≤ logprob_start_len < len" }, 400);
    const logits = await target.forward(target.newSequence(), b.input_ids);
    const start = b.logprob_start_len;
    const input_token_logprobs = b.input_ids.slice(start).map((id, k) => [k === 0 ? null : logSoftmaxAt(logits.row(start + k - 1), id), id, null]);
    const input_top_logprobs = b.input_ids.slice(start).map((_, k) => (k === 0 ? null : topK(logits.row(start + k - 1), b.top_logprobs_num)));
    const last = logits.row(n - 1);
    const out = topK(last, b.top_logprobs_num);
    // Radix cache: the longest prefix shared with an earlier request (never the whole input).
    const cached = Math.max(0, ...seen.map((s) => { let i = 0; while (i < s.length && i < n - 1 && s[i] === b.input_ids[i]) i++; return i; }));
    seen.push(b.input_ids);
    return c.json({
      text: "",
      output_ids: [out[0][1]],
      meta_info: { prompt_tokens: n, completion_tokens: 1, cached_tokens: cached, input_token_logprobs, input_top_logprobs, output_token_logprobs: [out[0]], output_top_logprobs: [out] },
    });
  });
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) => {
      url = `http://127.0.0.1:${info.port}`;
      resolve();
    });
  });
});
afterAll(() => server?.close());

describe("SglangClient (against a contract server)", () => {
  it("greedy verification through SGLang's API reproduces target-only greedy output, reusing the prefix cache", async () => {
    const client = new SglangClient({ baseUrl: url, topLogprobs: 5 });
    for (const text of SPANISH_PROMPTS.slice(0, 8)) {
      const prompt = tok.encode(text);
      const out: number[] = [];
      let rounds = 0;
      while (out.length < 24) {
        const prefix = [...prompt, ...out];
        const drafts = await draft.greedy(prefix, 4);
        const s = await client.score(prefix, drafts);
        expect(s.tops.length).toBe(drafts.length + 1);
        expect(s.draftLogprobs.length).toBe(drafts.length);
        if (rounds > 0) expect(s.cachedTokens).toBeGreaterThanOrEqual(prefix.length - 1 - 4); // earlier rounds' prefix
        const r = verifyGreedyTop(drafts, s.tops);
        out.push(...drafts.slice(0, r.accepted), r.token);
        rounds++;
      }
      expect(out.slice(0, 24)).toEqual(await target.greedy(prompt, 24));
    }
    const last = requests.at(-1)!;
    expect(last).toMatchObject({ return_logprob: true, sampling_params: { max_new_tokens: 1 } });
    expect(last.logprob_start_len).toBe((last.input_ids as number[]).length - 5);
  });

  it("draft log-probs are aligned with the drafts (index 0 is the last prefix token)", async () => {
    const client = new SglangClient({ baseUrl: url });
    const prefix = tok.encode("La vida es");
    const drafts = await draft.greedy(prefix, 3);
    const s = await client.score(prefix, drafts);
    const logits = await target.forward(target.newSequence(), [...prefix, ...drafts]);
    drafts.forEach((d, i) => expect(s.draftLogprobs[i]).toBeCloseTo(logSoftmaxAt(logits.row(prefix.length - 1 + i), d), 5));
  });

  it("surfaces a refused request with its status", async () => {
    const client = new SglangClient({ baseUrl: `${url}/nope` });
    await expect(client.score([1, 2], [3])).rejects.toThrow(/answered 404/);
  });
});
