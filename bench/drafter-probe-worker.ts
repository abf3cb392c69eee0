// Benchmarks only: a Worker that runs a draft model as the edge does (onnxruntime-web on WASM, one thread)
// and nothing else, so that the drafter-shape benchmark (bench/drafter-shapes.ts) can time its steps and
// read workerd's memory. GET /?model=KEY&context=N&steps=M loads MODELS/KEY/{config.json, model.onnx.0…}
// once per isolate, prefills N tokens and drafts M greedily; the caller times requests from outside (inside a
// Worker the clock only moves on I/O).
import ortWasmModule from "onnxruntime-web/ort-wasm-simd-threaded.wasm";
import { ModelConfigSchema } from "../src/common/models/bundle.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { argmax } from "../src/common/sampling.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { installWorkerdWasm } from "../src/model-pair/ort-web-workerd.ts";

installWorkerdWasm(ortWasmModule);

interface Env {
  MODELS: { get(key: string): Promise<{ arrayBuffer(): Promise<ArrayBuffer>; text(): Promise<string> } | null> };
}

let loaded: { key: string; model: CausalLM } | undefined;

export default {
  async fetch(req: Request, env: Env): Promise<Response> {
    const u = new URL(req.url);
    const key = u.searchParams.get("model") ?? "";
    const int = (name: string) => Math.max(0, Math.floor(Number(u.searchParams.get(name) ?? 0)) || 0);
    if (!key) return new Response("ok"); // the baseline request: no model runtime started
    if (loaded?.key !== key) {
      const configObject = await env.MODELS.get(`${key}/config.json`);
      if (!configObject) return new Response(`no model ${key}`, { status: 404 });
      const config = JSON.parse(await configObject.text()) as { alia_edge_probe_parts: number; alia_edge_probe_bytes: number };
      await loaded?.model.dispose();
      loaded = undefined;
      // The graph is stored in parts (the local R2 refuses very large puts), joined as one buffer.
      const onnx = new Uint8Array(config.alia_edge_probe_bytes);
      for (let i = 0, at = 0; i < config.alia_edge_probe_parts; i++) {
        const part = await env.MODELS.get(`${key}/model.onnx.${i}`);
        if (!part) return new Response(`model ${key}: part ${i} missing`, { status: 404 });
        const bytes = new Uint8Array(await part.arrayBuffer());
        onnx.set(bytes, at);
        at += bytes.length;
      }
      const model = await loadDraftModel({ onnx, config: ModelConfigSchema.parse(config) });
      loaded = { key, model };
    }
    const m = loaded.model;
    const seq = m.newSequence();
    const context = Array.from({ length: int("context") }, (_, i) => 6 + ((i * 7919) % (m.vocab - 6)));
    if (context.length) await m.forward(seq, context);
    let token = context.at(-1) ?? 1;
    for (let i = 0; i < int("steps"); i++) token = argmax((await m.forward(seq, [token])).last());
    return Response.json({ vocab: m.vocab, tokens: seq.length, last: token });
  },
};
