// The public API inside workerd: the Worker bundled by wrangler exactly as for deploy, run by Miniflare
// with the fixture pair in its R2 binding and a real verifier process on loopback as its pool, queried
// with the official `openai` client — the same conformance checks as on Node.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Translator } from "../src/translate/translator.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { openAiConformance, type ConformanceContext } from "./harness/openai-conformance.ts";
import { startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { bundleObjects, startWorkerd, type WorkerdEdge } from "./harness/workerd.ts";

const TOKEN = "worker-test-token-0123456789";

let edge: WorkerdEdge;
let mf: WorkerdEdge["mf"];
let verifier: ListeningProcess;
let context: ConformanceContext;

beforeAll(async () => {
  const pair = await loadDefaultPair();
  verifier = await startVerifierProcess({ VERIFIER_TOKEN: TOKEN });
  const { draftDir, targetDir } = pair;
  edge = await startWorkerd({
    bindings: { DRAFT_BUNDLE_PREFIX: "bundles/draft/", TARGET_BUNDLE_PREFIX: "bundles/target/", POOL_NODES: verifier.url, POOL_TOKEN: TOKEN },
    // Only the target's manifest and config.json travel to the edge (the draft's tokenizer files are the same).
    models: { ...(await bundleObjects(draftDir, "bundles/draft/")), ...(await bundleObjects(targetDir, "bundles/target/", ["manifest.json", "config.json"])) },
  });
  mf = edge.mf;
  const { target, served, tok, modelId } = pair;
  context = { client: new OpenAI({ baseURL: `${edge.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 }), url: edge.url, modelId, target, served, tok };
});

afterAll(async () => {
  await verifier?.stop("SIGKILL");
  await edge?.stop();
});

describe("OpenAI-compatible API in workerd (official openai client)", () => {
  openAiConformance(() => context);
});

describe("structured outputs in workerd beside onnxruntime-web (both WebAssembly modules compiled at upload)", () => {
  it("json_schema: the draft model drafts under the grammar; a bounded schema ends in JSON that holds to it", async () => {
    const schema = {
      type: "object",
      properties: { nombre: { type: "string", maxLength: 12 }, edad: { type: "integer", minimum: 0, maximum: 120 } },
      required: ["nombre", "edad"],
      additionalProperties: false,
    };
    const res = await fetch(`${context.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: context.modelId,
        messages: [{ role: "user", content: "Háblame de ti." }],
        temperature: 0,
        max_tokens: 60,
        response_format: { type: "json_schema", json_schema: { name: "persona", schema } },
      }),
    });
    const body = (await res.json()) as { choices: { finish_reason: string; message: { content: string } }[]; alia_speculation: { drafted_tokens: number } };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.choices[0].finish_reason, body.choices[0].message.content).toBe("stop");
    const value = JSON.parse(body.choices[0].message.content) as { nombre: unknown; edad: unknown };
    expect(Object.keys(value).sort()).toEqual(["edad", "nombre"]);
    expect(typeof value.nombre === "string" && [...value.nombre].length <= 12).toBe(true);
    expect(Number.isInteger(value.edad) && (value.edad as number) >= 0 && (value.edad as number) <= 120).toBe(true);
    expect(body.alia_speculation.drafted_tokens).toBeGreaterThan(0);
  });
});

describe("/v1/translate in workerd (real Cache API, R2 behind it)", () => {
  const q = (text: string) => `${context.url}/v1/translate?${new URLSearchParams({ text, source: "es", target: "ca" })}`;

  it("MISS, then HIT from the Cache API with the same body and ETag, 304, and the R2 tier once the Cache API entry is gone", async () => {
    const first = await fetch(q("La vida es bella. El amor es ciego."));
    expect(first.status, await first.clone().text()).toBe(200);
    expect(first.headers.get("x-cache")).toBe("MISS");
    const body = await first.text();
    const etag = first.headers.get("etag")!;
    const second = await fetch(q("La vida es bella. El amor es ciego."));
    expect(second.headers.get("x-cache")).toBe("HIT cache-api");
    expect(second.headers.get("x-alia-sentences")).toBe("total=2, computed=0, cache-api=2");
    expect(second.headers.get("etag")).toBe(etag);
    expect(await second.text()).toBe(body);
    const cond = await fetch(q("La vida es bella. El amor es ciego."), { headers: { "If-None-Match": etag } });
    expect(cond.status).toBe(304);
    await cond.arrayBuffer();
    // Drop one sentence from this data centre's cache: it comes back from the shared R2 tier.
    const key = await new Translator({ model: context.served, pool: undefined as never, tiers: [], speculation: { gamma: 4 }, proposers: undefined as never }).key("es", "ca", "El amor es ciego.");
    const caches = (await mf.getCaches()) as unknown as { default: { delete(r: string): Promise<boolean> } };
    expect(await caches.default.delete(`https://translation-cache.alia-edge.invalid/${key}`)).toBe(true);
    const third = await fetch(q("La vida es bella. El amor es ciego."));
    expect(third.headers.get("x-cache")).toBe("HIT cache-api,r2");
    expect(third.headers.get("x-alia-sentences")).toBe("total=2, computed=0, cache-api=1, r2=1");
    expect(await third.text()).toBe(body);
  });
});
