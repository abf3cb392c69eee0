// The one Hono app; runtimes (src/node.ts, src/worker.ts) only adapt it. The OpenAI-compatible API is
// filled in by later work; today it reports health and the served model pair.
import { Hono } from "hono";
import { errorBody } from "./errors.ts";
import type { Manifest, ModelConfig } from "./models/bundle.ts";

export interface ServedPair {
  draft: { manifest: Manifest; config: ModelConfig };
  target: { manifest: Manifest; config: ModelConfig };
}

export function createApp(pair: ServedPair): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/v1/models", (c) =>
    c.json({
      object: "list",
      data: [
        {
          id: pair.target.manifest.id,
          object: "model",
          created: Math.floor(Date.parse(pair.target.manifest.created ?? "1970-01-01") / 1000),
          owned_by: "alia-edge",
          bundle: `${pair.target.manifest.id}@${pair.target.manifest.version}`,
          draft_bundle: `${pair.draft.manifest.id}@${pair.draft.manifest.version}`,
        },
      ],
    }),
  );
  app.notFound((c) => c.json(errorBody(`no route ${c.req.method} ${c.req.path}`, "invalid_request_error", "not_found"), 404));
  return app;
}
