// `npm run verifier`: the verifier service on the configured target bundle (default: the fixture target),
// on VERIFIER_PORT (default 8788). SIGTERM/SIGINT: stop admitting rounds, let in-flight ones finish, exit.
import { serve } from "@hono/node-server";
import { ConfigError, loadConfig } from "../src/config.ts";
import { bundleLabel } from "../src/models/bundle.ts";
import { loadBundle, progressReporter } from "../src/models/model-store.ts";
import { openModelStore } from "../src/models/open-store.ts";
import { loadVerifierConfig } from "./config.ts";
import { createVerifierApp } from "./server.ts";
import { loadTargetModel } from "./target-model.ts";
import { Verifier } from "./verifier.ts";

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const vc = loadVerifierConfig(process.env);
  const store = openModelStore(config);
  const dir = await store.fetchBundle(config.TARGET_BUNDLE, { onProgress: progressReporter(`target bundle ${config.TARGET_BUNDLE}`) });
  const bundle = await loadBundle(dir, { verified: true });
  const model = await loadTargetModel(bundle);
  const verifier = new Verifier(model, {
    maxBytes: vc.VERIFIER_KV_BYTES,
    maxSessions: vc.VERIFIER_MAX_SESSIONS,
    idleTtlMs: vc.VERIFIER_IDLE_TTL_S * 1000,
    batch: { windowMs: vc.VERIFIER_BATCH_WINDOW_MS, maxBatch: vc.VERIFIER_MAX_BATCH, maxQueue: vc.VERIFIER_MAX_QUEUE },
  });
  const sweeper = setInterval(() => verifier.sessions.sweep(), Math.min(vc.VERIFIER_IDLE_TTL_S * 1000, 30_000));
  sweeper.unref();
  let ready = true;
  const app = createVerifierApp(verifier, {
    token: vc.VERIFIER_TOKEN,
    maxBodyBytes: vc.VERIFIER_MAX_BODY_BYTES,
    info: { engine: "onnx", bundle: bundleLabel(bundle.manifest), max_positions: model.maxPositions, vocab: model.vocab },
    isReady: () => ready,
  });
  const server = serve({ fetch: app.fetch, port: vc.VERIFIER_PORT, hostname: vc.VERIFIER_HOST }, (info) => {
    console.log(`alia-edge verifier serving ${bundleLabel(bundle.manifest)} on http://${info.address}:${info.port}${vc.VERIFIER_TOKEN ? "" : " (no token: loopback only)"}`);
  });
  const stop = () => {
    ready = false; // new rounds get 503; server.close waits for in-flight requests
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 10_000).unref();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((e: unknown) => {
  console.error(e instanceof ConfigError ? e.message : `verifier failed to start: ${(e as Error).message}`);
  process.exit(1);
});
