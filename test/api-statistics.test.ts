// The speculation statistics a client sees (`alia_speculation`, x-alia-* headers) on a real edge process
// with its own verifier: rates only once something was drafted, pool-generated tokens that add up to the
// completion, and the statistics on the last chunk of a stream.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDefaultBundles } from "./harness/default-pair.ts";
import { startEdgeProcess, type EdgeProcess } from "./harness/processes.ts";

interface Spec {
  rounds: number;
  drafted_tokens: number;
  accepted_tokens: number;
  acceptance_rate: number | null;
  tokens_per_round: number | null;
  pool_generated_tokens: number;
  target_passes: number;
}

let generating: EdgeProcess; // SPEC_GAMMA=0: the pool generates every token
let speculating: EdgeProcess; // SPEC_GAMMA=3: every token comes from verify rounds
let model: string;

beforeAll(async () => {
  model = (await loadDefaultBundles()).modelId;
  generating = await startEdgeProcess({ SPEC_GAMMA: "0" });
  speculating = await startEdgeProcess({ SPEC_GAMMA: "3" });
});
afterAll(async () => {
  await Promise.all([generating?.stop(), speculating?.stop()]);
});

async function complete(edge: EdgeProcess, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${edge.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, temperature: 0, ...body }) });
}

/** The data of every SSE event, [DONE] included. */
async function events(res: Response): Promise<string[]> {
  const text = await res.text();
  return text
    .split(/\r?\n\r?\n/)
    .map((b) =>
      b
        .split(/\r?\n/)
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trim())
        .join("\n"),
    )
    .filter(Boolean);
}

describe("speculation statistics", () => {
  it("without drafts: rates are null and their headers absent (not a 0 that reads 'all rejected'); pool tokens add up", async () => {
    for (const prompt of ["La vida es", "El que madruga"]) {
      const res = await complete(generating, { prompt, max_tokens: 40 });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { usage: { completion_tokens: number }; alia_speculation: Spec; choices: { finish_reason: string }[] };
      const s = body.alia_speculation;
      expect(s).toMatchObject({ rounds: 0, drafted_tokens: 0, acceptance_rate: null, tokens_per_round: null });
      expect(res.headers.has("x-alia-acceptance-rate")).toBe(false);
      expect(res.headers.has("x-alia-tokens-per-round")).toBe(false);
      expect(res.headers.get("x-alia-target-passes-saved")).toBe("0");
      // Every output token came from pool generation; an EOS, if any, was one more pass but not output.
      expect(s.pool_generated_tokens).toBe(body.usage.completion_tokens);
      expect(s.target_passes).toBe(body.usage.completion_tokens + (body.choices[0].finish_reason === "stop" ? 1 : 0));
    }
  });

  it("with drafts: rates and headers agree with the counts", async () => {
    const res = await complete(speculating, { prompt: "La vida es", max_tokens: 40 });
    const s = ((await res.json()) as { alia_speculation: Spec }).alia_speculation;
    expect(s.rounds).toBeGreaterThan(0);
    expect(s.pool_generated_tokens).toBe(0);
    expect(s.acceptance_rate).toBeCloseTo(s.accepted_tokens / s.drafted_tokens, 12);
    expect(Number(res.headers.get("x-alia-acceptance-rate"))).toBeCloseTo(s.acceptance_rate!, 12);
    expect(Number(res.headers.get("x-alia-tokens-per-round"))).toBeCloseTo(s.tokens_per_round!, 12);
  });

  it("streams carry the statistics on the last chunk before [DONE]: the usage chunk when asked for, else the finish chunk", async () => {
    for (const includeUsage of [true, false]) {
      const res = await complete(speculating, { prompt: "El amor es", max_tokens: 24, stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}) });
      const data = await events(res);
      expect(data.at(-1)).toBe("[DONE]");
      const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { choices: { finish_reason: string | null }[]; usage?: unknown; alia_speculation?: Spec });
      const withStats = chunks.map((c, i) => (c.alia_speculation ? i : -1)).filter((i) => i !== -1);
      expect(withStats).toEqual([chunks.length - 1]);
      const last = chunks.at(-1)!;
      if (includeUsage) {
        expect(last.choices).toEqual([]);
        expect(last.usage).toBeTruthy();
      } else {
        expect(last.choices[0].finish_reason).not.toBeNull();
      }
      expect(last.alia_speculation!.rounds).toBeGreaterThan(0);
    }
  });
});
