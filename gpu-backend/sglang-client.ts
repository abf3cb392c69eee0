// Scoring drafts on SGLang's native /generate API (production ALIA-40b), as DESIGN §6 describes: one
// request per round with input_ids = prefix + drafts, logprob_start_len = P − 1 so that SGLang's radix
// cache serves the prefix, top logprobs at every draft position, and max_new_tokens 1 whose output
// distribution is the bonus position. Only top-k logprobs come back: greedy verification is exact (it
// needs the argmax alone); sampling verification would need the full distribution — see PROTOCOL.md.
import { z } from "zod";

/** SGLang's logprob entries are [logprob, token_id, text|null]. */
const Entry = z.tuple([z.number().nullable(), z.number().int(), z.string().nullable()]);
const SglangResponseSchema = z.object({
  meta_info: z.object({
    input_token_logprobs: z.array(Entry),
    input_top_logprobs: z.array(z.array(Entry).nullable()),
    output_top_logprobs: z.array(z.array(Entry)),
    cached_tokens: z.number().int().min(0),
  }),
});

export interface TopToken {
  id: number;
  logprob: number;
}

export interface SglangScore {
  /** γ+1 rows: the target's top tokens before each draft, then at the bonus position (best first). */
  tops: TopToken[][];
  /** Target log-prob of each draft. */
  draftLogprobs: number[];
  /** Prefix tokens SGLang served from its radix cache (expect ≈ P − 1 after the first round). */
  cachedTokens: number;
}

export interface SglangClientOptions {
  baseUrl: string;
  topLogprobs?: number;
  timeoutMs?: number;
  apiKey?: string;
}

export class SglangClient {
  constructor(private readonly o: SglangClientOptions) {}

  async score(prefix: readonly number[], drafts: readonly number[]): Promise<SglangScore> {
    if (prefix.length === 0) throw new RangeError("score() needs a non-empty prefix");
    const P = prefix.length;
    const body = {
      input_ids: [...prefix, ...drafts],
      sampling_params: { max_new_tokens: 1, temperature: 0 },
      return_logprob: true,
      logprob_start_len: P - 1,
      top_logprobs_num: this.o.topLogprobs ?? 20,
      token_ids_logprob: [...new Set(drafts)],
    };
    const res = await fetch(`${this.o.baseUrl}/generate`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(this.o.apiKey ? { authorization: `Bearer ${this.o.apiKey}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.o.timeoutMs ?? 30_000),
    });
    if (!res.ok) throw new Error(`SGLang /generate answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    const m = SglangResponseSchema.parse(await res.json()).meta_info;
    // Index 0 is the last prefix token (no logprob: nothing before the range predicts it); 1..γ score the drafts.
    if (m.input_token_logprobs.length !== drafts.length + 1 || m.input_top_logprobs.length !== drafts.length + 1)
      throw new Error(`SGLang returned ${m.input_token_logprobs.length} input logprobs for ${drafts.length} drafts (expected ${drafts.length + 1})`);
    const top = (entries: z.infer<typeof Entry>[]): TopToken[] => entries.map(([lp, id]) => ({ id, logprob: lp ?? -Infinity }));
    const tops = [...m.input_top_logprobs.slice(1).map((e) => top(e ?? [])), top(m.output_top_logprobs[0] ?? [])];
    const draftLogprobs = m.input_token_logprobs.slice(1).map(([lp]) => lp ?? -Infinity);
    return { tops, draftLogprobs, cachedTokens: m.cached_tokens };
  }
}

/** Greedy verification on top-k lists: accept while each draft is the target's top token. */
export function verifyGreedyTop(drafts: readonly number[], tops: readonly TopToken[][]): { accepted: number; token: number } {
  let accepted = 0;
  while (accepted < drafts.length && tops[accepted][0]?.id === drafts[accepted]) accepted++;
  const best = tops[accepted][0];
  if (!best) throw new Error("SGLang returned no top logprobs");
  return { accepted, token: best.id };
}
