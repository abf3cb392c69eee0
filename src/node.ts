// Node entry point (`npm start`): loads and checks the model pair named by the configuration (by default
// the committed Spanish fixture pair), then serves the app on PORT (default 8787).
import { serve } from "@hono/node-server";
import { createApp } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { loadDraftModel } from "./models/draft-model.ts";
import { loadBundle, progressReporter } from "./models/model-store.ts";
import { openModelStore } from "./models/open-store.ts";
import { assertTokenizerPair } from "./models/tokenizer.ts";

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const store = openModelStore(config);
  // One after the other so that the two progress lines do not overwrite each other on a terminal.
  const draftDir = await store.fetchBundle(config.DRAFT_BUNDLE, { onProgress: progressReporter(`draft bundle ${config.DRAFT_BUNDLE}`) });
  const targetDir = await store.fetchBundle(config.TARGET_BUNDLE, { onProgress: progressReporter(`target bundle ${config.TARGET_BUNDLE}`) });
  // fetchBundle has just hashed every file; loading re-checks sizes only.
  const [draft, target] = await Promise.all([loadBundle(draftDir, { verified: true }), loadBundle(targetDir, { verified: true })]);
  const tokenizer = assertTokenizerPair(draft, target);
  const drafter = await loadDraftModel(draft);
  // A one-token smoke run: a model that loads but cannot run should fail here, not on the first request.
  await drafter.forward(drafter.newSequence(), tokenizer.encode("Hola"));

  const app = createApp({ draft, target });
  const server = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, (info) => {
    const url = `http://${info.address.includes(":") ? `[${info.address}]` : info.address}:${info.port}`;
    console.log(`alia-edge serving ${target.manifest.id}@${target.manifest.version} (draft ${draft.manifest.id}@${draft.manifest.version}) from ${store.name}`);
    console.log(`listening on ${url}`);
    console.log(`try: curl ${url}/v1/models`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((e: unknown) => {
  console.error(e instanceof ConfigError ? e.message : `alia-edge failed to start: ${(e as Error).message}`);
  process.exit(1);
});
