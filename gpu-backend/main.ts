// `npm run verifier`: the verifier service on the configured target bundle (default: the fixture target),
// on VERIFIER_PORT (default 8788). SIGTERM/SIGINT: stop admitting rounds, let in-flight ones finish, exit.
import { serve } from "@hono/node-server";
import { ConfigError, parseEnv } from "../src/common/env.ts";
import { bundleLabel } from "../src/common/models/bundle.ts";
import { loadBundle, progressReporter } from "../src/common/models/model-store.ts";
import { checkModelStoreConfig, ModelStoreConfigSchema } from "../src/common/models/model-store-config.ts";
import { openModelStore } from "../src/common/models/model-store-from-config.ts";
import { loadVerifierConfig, type VerifierConfig } from "./config.ts";
import type { TargetEngine } from "./engine.ts";
import { OnnxEngine } from "./onnx-engine.ts";
import { PassAccounting } from "./pass-accounting.ts";
import { passCostModel } from "../src/common/h200-alia-40b.ts";
import { createVerifierApp } from "./server.ts";
import { SglangEngine } from "./sglang-engine.ts";
import { loadTargetModel } from "./target-model.ts";
import { Verifier } from "./verifier.ts";

/** The configured engine, and a label for logs and /v1/info. */
async function openEngine(vc: VerifierConfig): Promise<{ engine: TargetEngine; label: string }> {
  const accounting = new PassAccounting({
    model: vc.VERIFIER_COST_MODEL === "none" ? undefined : passCostModel(vc.VERIFIER_COST_MODEL),
    pastOffset: vc.VERIFIER_SIMULATED_PAST,
  });
  if (vc.VERIFIER_ENGINE === "sglang") {
    const engine = new SglangEngine(
      {
        baseUrl: vc.VERIFIER_SGLANG_URL!.replace(/\/+$/, ""),
        apiKey: vc.VERIFIER_SGLANG_API_KEY,
        topLogprobs: vc.VERIFIER_SGLANG_TOP_LOGPROBS,
        timeoutMs: vc.VERIFIER_SGLANG_TIMEOUT_MS,
        vocab: vc.VERIFIER_SGLANG_VOCAB,
        maxPositions: vc.VERIFIER_SGLANG_MAX_POSITIONS,
      },
      accounting,
    );
    return { engine, label: `SGLang at ${vc.VERIFIER_SGLANG_URL}` };
  }
  const config = parseEnv(ModelStoreConfigSchema, process.env);
  checkModelStoreConfig(config);
  const store = openModelStore(config);
  const dir = await store.fetchBundle(config.TARGET_BUNDLE, { onProgress: progressReporter(`target bundle ${config.TARGET_BUNDLE}`) });
  const bundle = await loadBundle(dir, { verified: true });
  const batch = { windowMs: vc.VERIFIER_BATCH_WINDOW_MS, maxBatch: vc.VERIFIER_MAX_BATCH, maxQueue: vc.VERIFIER_MAX_QUEUE, holdToModel: vc.VERIFIER_SIMULATE_GPU, waitForCompany: vc.VERIFIER_WAIT_FOR_COMPANY };
  const engine = new OnnxEngine(await loadTargetModel(bundle, { device: vc.VERIFIER_DEVICE }), batch, accounting);
  return { engine, label: `${bundleLabel(bundle.manifest)}${vc.VERIFIER_SIMULATE_GPU ? ` (GPU simulated: ${vc.VERIFIER_COST_MODEL})` : ""}` };
}

async function main(): Promise<void> {
  const vc = loadVerifierConfig(process.env);
  const { engine, label } = await openEngine(vc);
  const verifier = new Verifier(engine, {
    maxBytes: vc.VERIFIER_KV_BYTES,
    maxSessions: vc.VERIFIER_MAX_SESSIONS,
    idleTtlMs: vc.VERIFIER_IDLE_TTL_S * 1000,
    maxGamma: vc.VERIFIER_MAX_GAMMA,
    maxContext: vc.VERIFIER_MAX_CONTEXT,
  });
  const sweeper = setInterval(() => verifier.sessions.sweep(), Math.min(vc.VERIFIER_IDLE_TTL_S * 1000, 30_000));
  sweeper.unref();
  let ready = true;
  const app = createVerifierApp(verifier, {
    tokens: [vc.VERIFIER_TOKEN, vc.VERIFIER_TOKEN_PREVIOUS].filter((t): t is string => !!t),
    maxBodyBytes: vc.VERIFIER_MAX_BODY_BYTES,
    info: { engine: engine.name, model: label, cost_model: vc.VERIFIER_COST_MODEL, max_context: verifier.maxContext, max_gamma: verifier.maxGamma, vocab: engine.vocab, exact_top: engine.exactTop },
    isReady: () => ready,
  });
  const server = serve({ fetch: app.fetch, port: vc.VERIFIER_PORT, hostname: vc.VERIFIER_HOST }, (info) => {
    console.log(`alia-edge verifier serving ${label} on http://${info.address}:${info.port}${vc.VERIFIER_TOKEN ? "" : " (no token: loopback only)"}`);
  });
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return; // a signal and the parent's exit (stdin closing) can both arrive
    stopping = true;
    console.log(`alia-edge verifier shutting down (${why}): finishing in-flight rounds`);
    ready = false; // new rounds get 503; server.close waits for in-flight requests
    const http = server as import("node:http").Server;
    // close() ends idle keep-alive connections only once; those that finish a request later are closed here.
    setInterval(() => http.closeIdleConnections(), 100);
    const exit = (note: string) => {
      console.log(`alia-edge verifier stopped${note}`);
      process.exit(0);
    };
    server.close(() => exit(""));
    setTimeout(() => exit(" (requests still running after 10 s were cut)"), 10_000).unref();
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  // Started by `npm start` (src/node.ts): leave with the parent, whose death closes our stdin.
  if (process.env.VERIFIER_EXIT_WITH_STDIN === "1") {
    const parentGone = () => stop("parent exited");
    process.stdin.on("end", parentGone).on("close", parentGone).resume();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof ConfigError ? e.message : `verifier failed to start: ${(e as Error).message}`);
  process.exit(1);
});
