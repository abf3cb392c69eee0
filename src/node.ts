// Node entry point (`npm start`): the embedded default. Loads and checks the model pair named by the
// configuration (by default the committed Spanish fixture pair), starts a local verifier when none is
// configured, and serves the OpenAI-compatible API on PORT (default 8787). Ctrl-C stops both.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { serve } from "@hono/node-server";
import { servedModel } from "./model-pair/served-model.ts";
import { createAppFromConfig } from "./app.ts";
import { loadConfig, type Config } from "./config.ts";
import { ConfigError, LOOPBACK_HOSTS } from "./shared/env.ts";
import { loadDraftModel } from "./model-pair/draft-model.ts";
import { loadBundle, progressReporter } from "./shared/models/model-store.ts";
import { openModelStore } from "./shared/models/model-store-from-config.ts";
import { assertTokenizerPair } from "./shared/models/tokenizer.ts";
import { nodeCacheTiers } from "./translate/node-cache-tiers.ts";

async function answers(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
    await r.body?.cancel();
    return r.ok;
  } catch {
    return false;
  }
}

/** Starts `gpu-backend/main.ts` on the port of the single loopback pool node, if that is wanted. */
async function startEmbeddedVerifier(config: Config): Promise<ChildProcess | undefined> {
  if (config.EMBEDDED_VERIFIER === "false") return undefined;
  const url = new URL(config.POOL_NODES[0]);
  const local = config.POOL_NODES.length === 1 && LOOPBACK_HOSTS.has(url.hostname);
  if (config.EMBEDDED_VERIFIER === "auto" && (!local || (await answers(url.origin)))) return undefined;
  if (!local) throw new ConfigError("invalid configuration: EMBEDDED_VERIFIER=true needs POOL_NODES to be one loopback URL");
  const child = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "..", "gpu-backend", "main.ts")], {
    env: { ...process.env, VERIFIER_HOST: "127.0.0.1", VERIFIER_PORT: url.port || "80", VERIFIER_EXIT_WITH_STDIN: "1", ...(config.POOL_TOKEN ? { VERIFIER_TOKEN: config.POOL_TOKEN } : {}) },
    // A pipe on stdin: if this process dies, even by SIGKILL, the pipe closes and the verifier exits.
    stdio: ["pipe", "inherit", "inherit"],
  });
  const deadline = Date.now() + 120_000;
  while (!(await answers(url.origin))) {
    if (child.exitCode !== null) throw new Error(`the local verifier exited with code ${child.exitCode}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`the local verifier did not become ready at ${url.origin}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return child;
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const store = openModelStore(config);
  // One after the other so that the two progress lines do not overwrite each other on a terminal.
  const draftDir = await store.fetchBundle(config.DRAFT_BUNDLE, { onProgress: progressReporter(`draft bundle ${config.DRAFT_BUNDLE}`) });
  const targetDir = await store.fetchBundle(config.TARGET_BUNDLE, { onProgress: progressReporter(`target bundle ${config.TARGET_BUNDLE}`) });
  // fetchBundle has just hashed every file; loading re-checks sizes only.
  const [draft, target] = await Promise.all([loadBundle(draftDir, { verified: true }), loadBundle(targetDir, { verified: true })]);
  const tokenizer = assertTokenizerPair(draft, target);
  const draftModel = await loadDraftModel(draft);
  // A one-token smoke run: a model that loads but cannot run should fail here, not on the first request.
  await draftModel.forward(draftModel.newSequence(), tokenizer.encode("Hola"));
  const verifier = await startEmbeddedVerifier(config);

  const app = createAppFromConfig(config, servedModel({ target, draft, draftModel, tokenizer }), nodeCacheTiers(config));
  const server = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, (info) => {
    const url = `http://${info.address.includes(":") ? `[${info.address}]` : info.address}:${info.port}`;
    console.log(`alia-edge serving ${target.manifest.id}@${target.manifest.version} (draft ${draft.manifest.id}@${draft.manifest.version}) from ${store.name}`);
    console.log(`verifier pool: ${config.POOL_NODES.join(", ")}${verifier ? " (started here)" : ""}`);
    console.log(`listening on ${url}`);
    console.log(`try: curl ${url}/v1/models`);
    console.log(
      `     curl ${url}/v1/chat/completions -H 'content-type: application/json'${config.API_KEYS ? " -H 'authorization: Bearer $KEY'" : ""} -d '{"model": "${target.manifest.id}", "messages": [{"role": "user", "content": "Hola"}], "max_tokens": 32}'`,
    );
  });
  const stop = () => {
    verifier?.kill("SIGTERM");
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((e: unknown) => {
  console.error(e instanceof ConfigError ? e.message : `alia-edge failed to start: ${(e as Error).message}`);
  process.exit(1);
});
