// Node entry point (`npm start`): the embedded default. Loads and checks the model pair named by the
// configuration (by default the committed Spanish fixture pair), starts a local verifier when none is
// configured, and serves the OpenAI-compatible API on PORT (default 8787). Ctrl-C stops both.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { serve } from "@hono/node-server";
import { createAppFromConfig } from "./app.ts";
import { XgrammarEngine } from "./structured/xgrammar-engine.ts";
import { openAccountStore } from "./billing/open-account-store.ts";
import { loadConfig, type Config } from "./config.ts";
import { ConfigError, LOOPBACK_HOSTS } from "./common/env.ts";
import { DirectoryBundleReader } from "./model-pair/directory-bundle-reader.ts";
import { loadDraftModel } from "./model-pair/draft-model.ts";
import { TARGET_FACTS, loadModelPair } from "./model-pair/load-model-pair.ts";
import { progressReporter } from "./common/models/model-store.ts";
import { openModelStore } from "./common/models/model-store-from-config.ts";
import { nodeCacheTiers } from "./translate/cache-tiers/node-cache-tiers.ts";

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
    // Its own process group: Ctrl-C in a terminal reaches this process only, which drains its requests
    // (they still need the verifier) before it stops the verifier.
    detached: true,
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

/**
 * Refuses an open API on a reachable interface, as the verifier refuses a non-loopback host without a
 * token: anyone who can reach it could spend the pool's GPUs. ALLOW_UNAUTHENTICATED=true when something in
 * front authenticates.
 */
function checkExposure(config: Pick<Config, "HOST" | "API_KEYS" | "ALLOW_UNAUTHENTICATED" | "BILLING_DATABASE_URL">): void {
  if (LOOPBACK_HOSTS.has(config.HOST) || config.API_KEYS?.length || config.BILLING_DATABASE_URL || config.ALLOW_UNAUTHENTICATED) return;
  throw new ConfigError(
    `invalid configuration: HOST=${config.HOST} is not loopback and API_KEYS is not set, so anyone who can reach it could use the API; set API_KEYS (comma-separated keys), listen on HOST=127.0.0.1, or set ALLOW_UNAUTHENTICATED=true if something in front authenticates`,
  );
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  checkExposure(config);
  const store = openModelStore(config);
  // One after the other so that the two progress lines do not overwrite each other on a terminal. Suffix
  // drafting needs no draft bundle.
  const draftDir = config.SPEC_PROPOSER !== "suffix" ? await store.fetchBundle(config.DRAFT_BUNDLE, { onProgress: progressReporter(`draft bundle ${config.DRAFT_BUNDLE}`) }) : undefined;
  // The edge needs the target's facts, never its weights.
  const targetDir = await store.fetchBundle(config.TARGET_BUNDLE, { files: TARGET_FACTS, onProgress: progressReporter(`target bundle ${config.TARGET_BUNDLE}`) });
  const { served } = await loadModelPair(new DirectoryBundleReader(targetDir), draftDir ? { reader: new DirectoryBundleReader(draftDir), load: loadDraftModel } : undefined);
  const verifier = await startEmbeddedVerifier(config);

  // Pay-per-request keys, budgets and usage, when configured (a server, or PGlite in this process).
  const accounts = config.BILLING_DATABASE_URL ? await openAccountStore(config.BILLING_DATABASE_URL) : undefined;
  if (accounts) console.log(`billing: account keys, budgets and usage in ${accounts.label}`);
  const app = createAppFromConfig(config, served, nodeCacheTiers(config), accounts?.store, () => XgrammarEngine.create(served.tokenizer));
  const server = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, (info) => {
    const url = `http://${info.address.includes(":") ? `[${info.address}]` : info.address}:${info.port}`;
    console.log(`alia-edge serving ${served.bundle} (${served.draftBundle ? `draft ${served.draftBundle}` : "suffix drafting, no draft model"}) from ${store.name}`);
    console.log(`verifier pool: ${config.POOL_NODES.join(", ")}${verifier ? " (started here)" : ""}`);
    console.log(`listening on ${url}`);
    console.log(`try: curl ${url}/v1/models`);
    console.log(
      `     curl ${url}/v1/chat/completions -H 'content-type: application/json'${config.API_KEYS ? ' -H "authorization: Bearer $KEY"' : ""} -d '{"model": "${served.id}", "messages": [{"role": "user", "content": "Hola"}], "max_tokens": 32}'`,
    );
  });
  // SIGTERM/SIGINT: stop accepting connections, let in-flight requests finish (at most DRAIN_MS; they
  // still need the verifier), then stop the embedded verifier, wait for it to exit, and exit 0.
  const DRAIN_MS = 10_000;
  const VERIFIER_EXIT_MS = 12_000; // the verifier gives its own in-flight rounds 10 s
  let stopping = false;
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) return; // Ctrl-C reaches both npm (which forwards it) and node: one is enough
    stopping = true;
    console.log(`alia-edge shutting down (${signal}): no new connections, finishing in-flight requests`);
    const http = server as import("node:http").Server;
    const within = (ms: number, done: Promise<unknown>) => Promise.race([done.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    // close() ends idle keep-alive connections only once; those that finish a request later are closed here.
    const idle = setInterval(() => http.closeIdleConnections(), 100);
    const drained = await within(DRAIN_MS, new Promise<void>((r) => http.close(() => r())));
    clearInterval(idle);
    if (!drained) http.closeAllConnections();
    if (verifier && verifier.exitCode === null && verifier.signalCode === null) {
      const exited = new Promise<void>((r) => verifier.once("exit", () => r()));
      verifier.kill("SIGTERM");
      if (!(await within(VERIFIER_EXIT_MS, exited))) {
        verifier.kill("SIGKILL");
        await within(2000, exited);
      }
    }
    console.log(`alia-edge stopped${drained ? "" : ` (requests still running after ${DRAIN_MS / 1000} s were cut)`}`);
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((e: unknown) => {
  console.error(e instanceof ConfigError ? e.message : `alia-edge failed to start: ${(e as Error).message}`);
  process.exit(1);
});
