// The Worker drafting with the trimmed-vocabulary draft (fixtures/default/draft-trimmed): bundled by
// wrangler as for deploy, run by Miniflare with that draft bundle and the target's facts in R2 and a real
// verifier process as its pool. Chat and completions at temperature 0 answer exactly as the target alone.
import OpenAI from "openai";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TARGET_FACTS } from "../src/model-pair/load-model-pair.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { reference, type ConformanceContext } from "./harness/openai-conformance.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { SPANISH_PROMPTS } from "./harness/prompts.ts";
import { bundleObjects, startWorkerd, type WorkerdEdge } from "./harness/workerd.ts";

const TOKEN = "worker-trimmed-token-0123456789";

let edge: WorkerdEdge;
let verifier: ListeningProcess;
let context: ConformanceContext;

beforeAll(async () => {
  const pair = await loadDefaultPair();
  verifier = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN });
  edge = await startWorkerd({
    // The model drafts every round (a fixed γ: on loopback the adaptive policy rightly prefers pool generation).
    bindings: { DRAFT_BUNDLE_PREFIX: "bundles/draft-trimmed/", TARGET_BUNDLE_PREFIX: "bundles/target/", POOL_NODES: verifier.url, POOL_TOKEN: TOKEN, SPEC_PROPOSER: "model", SPEC_GAMMA: "4" },
    models: { ...(await bundleObjects(path.join(pair.dir, "draft-trimmed"), "bundles/draft-trimmed/")), ...(await bundleObjects(pair.targetDir, "bundles/target/", ["manifest.json", ...TARGET_FACTS])) },
  });
  const { target, served, tok, modelId } = pair;
  context = { client: new OpenAI({ baseURL: `${edge.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 }), url: edge.url, modelId, target, served, tok };
});

afterAll(async () => {
  await verifier?.stop("SIGKILL");
  await edge?.stop();
});

describe("the Worker with the trimmed-vocabulary draft", () => {
  it("says which draft it runs: fewer rows than the target's vocabulary", async () => {
    const ready = (await (await fetch(`${edge.url}/readyz`)).json()) as { proposer: string; draft?: { id: string; vocab: number; trimmed_from?: number } };
    expect(ready.proposer).toBe("model");
    expect(ready.draft?.id).toBe("alia-fixture-es-draft-trimmed");
    expect(ready.draft?.trimmed_from).toBe((await loadDefaultPair()).targetBundle.config.vocab_size);
    expect(ready.draft!.vocab).toBeLessThan(ready.draft!.trimmed_from!);
  });

  it("answers chat and completions at temperature 0 exactly as the target alone, drafting every round", async () => {
    const x = context;
    let drafted = 0;
    let accepted = 0;
    for (const text of SPANISH_PROMPTS.slice(0, 4)) {
      const c = await x.client.completions.create({ model: x.modelId, prompt: text, max_tokens: 32, temperature: 0 });
      expect(c.choices[0].text).toBe((await reference(x, x.tok.encode(text), 32, x.served.stopIds)).text);
      const s = (c as unknown as { alia_speculation: { drafted_tokens: number; accepted_tokens: number } }).alia_speculation;
      drafted += s.drafted_tokens;
      accepted += s.accepted_tokens;
      const messages = [{ role: "user" as const, content: text }];
      const chat = await x.client.chat.completions.create({ model: x.modelId, messages, max_tokens: 32, temperature: 0 });
      const ref = await reference(x, x.tok.encode(x.served.renderChat(messages)), 32, x.served.chatStopIds, "chat");
      expect(chat.choices[0].message.content).toBe(ref.text);
    }
    expect(drafted).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThan(0);
  });
});
