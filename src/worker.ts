// Cloudflare Worker entry that drafts with the draft model (onnxruntime-web on WASM). src/worker-app.ts
// builds everything; this adapter only brings the model runtime.
// wrangler's default rules turn a .wasm import into a WebAssembly.Module compiled at upload; Workers
// cannot compile WASM from bytes at run time (typed by src/wasm-modules.d.ts).
import ortWasmModule from "onnxruntime-web/ort-wasm-simd-threaded.wasm";
import { loadDraftModel } from "./model-pair/draft-model.ts";
import { installWorkerdWasm } from "./model-pair/ort-web-workerd.ts";
import { errorBody } from "./common/errors.ts";
import { createWorker } from "./worker-app.ts";

installWorkerdWasm(ortWasmModule);

export default createWorker({
  loadDraft: loadDraftModel,
  routes: (worker, built) => {
    // Test-only: logits of one chunk from a fresh draft sequence, to compare workerd with Node bit for bit.
    worker.post("/__test/logits", async (c) => {
      if (c.env.ENABLE_TEST_ROUTES !== "1") return c.notFound();
      const body = (await c.req.json().catch(() => null)) as { tokens?: unknown } | null;
      const tokens = body?.tokens;
      if (!Array.isArray(tokens) || tokens.length === 0 || !tokens.every((t) => Number.isInteger(t)))
        return c.json(errorBody('body must be {"tokens": [non-empty integer array]}', "invalid_request_error", null, "tokens"), 400);
      const { draftModel } = (await built(c.env)).pair;
      if (!draftModel) return c.json(errorBody("this Worker drafts without a model", "invalid_request_error", null), 400);
      const logits = await draftModel.forward(draftModel.newSequence(), tokens as number[]);
      return c.json({ rows: logits.rows, vocab: logits.vocab, logits: Array.from(logits.data) });
    });
  },
});
