// Every wrangler.toml environment bundles as `wrangler deploy` would (`npm run deploy:edge -- --dry-run`'s
// check, offline): within Workers Paid's size limit (the suffix Worker within the free plan's too; each with
// xgrammar's WebAssembly for structured outputs), every
// var a configuration variable the edge knows, and the deployable environments' placeholders caught before
// a real deploy.
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { beforeAll, describe, expect, it } from "vitest";
import { ConfigSchema } from "../src/config.ts";
import { describeReport, dryRun, placeholdersOf, wranglerEnvironments } from "../scripts/deploy-edge.ts";

/** Worker bindings that are not configuration variables (src/worker-app.ts's Env). */
const WORKER_ONLY_VARS = new Set(["DRAFT_BUNDLE_PREFIX", "TARGET_BUNDLE_PREFIX", "ENABLE_TEST_ROUTES"]);

/** Vars of an environment that neither the edge's configuration schema nor the Worker knows (a typo deploys silently). */
function unknownVars(vars: Record<string, unknown>): string[] {
  return Object.keys(vars).filter((k) => !(k in ConfigSchema.shape) && !WORKER_ONLY_VARS.has(k));
}

let envs: string[];

beforeAll(async () => {
  envs = await wranglerEnvironments();
  // Reading a Hyperdrive binding's options locally needs a connection string; the dry run itself does not.
  process.env.CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_BILLING_DB = "postgres://postgres:local@127.0.0.1:5432/test";
});

describe("wrangler environments", () => {
  it("are development (the top level), staging, production and the model-free suffix Worker", () => {
    expect(envs).toEqual(expect.arrayContaining(["staging", "production", "suffix"]));
  });

  it("bundle within Workers' size limits: the suffix Worker within the free plan's 3 MiB, the others within Workers Paid's 10 MiB", async () => {
    for (const env of ["", ...envs]) {
      const r = await dryRun(env);
      console.log(`wrangler deploy --dry-run: ${describeReport({ ...r, env: env || "development" })}`);
      expect(r.fitsPaid, describeReport(r)).toBe(true);
      const wasm = r.modules.map((m) => m.name).filter((n) => n.endsWith(".wasm"));
      // Every Worker carries xgrammar's WebAssembly (structured outputs); the suffix Worker no model runtime.
      expect(wasm.filter((n) => n.endsWith("xgrammar.wasm"))).toHaveLength(1);
      if (env === "suffix") {
        expect(r.fitsFree).toBe(true);
        expect(wasm).toHaveLength(1);
      } else expect(wasm.length).toBeGreaterThan(1); // and onnxruntime-web's, for the draft model
    }
  }, 300_000);

  it("set only variables the edge knows, and bind billing through Hyperdrive where they deploy for real", () => {
    for (const env of [undefined, ...envs]) {
      const { workerOptions: w } = unstable_getMiniflareWorkerOptions("wrangler.toml", env);
      const vars = (w.bindings ?? {}) as Record<string, unknown>;
      expect(unknownVars(vars), env ?? "development").toEqual([]);
      expect(Object.keys(vars)).toEqual(expect.arrayContaining(["TARGET_BUNDLE_PREFIX", "POOL_NODES"]));
      if (env === "staging" || env === "production") expect(Object.keys(w.hyperdrives ?? {})).toEqual(["BILLING_DB"]);
    }
    // The check can fail: a misspelt variable is caught.
    expect(unknownVars({ POOL_NODES: "x", SPEC_GAMA: "4" })).toEqual(["SPEC_GAMA"]);
  });

  it("refuse a real deploy while staging or production still hold the file's placeholders", async () => {
    for (const env of ["staging", "production"]) {
      const found = await placeholdersOf(env);
      expect(
        found.some((l) => /example\.com/.test(l)),
        env,
      ).toBe(true);
      expect(
        found.some((l) => /id = "0{32}"/.test(l)),
        env,
      ).toBe(true);
    }
    expect(await placeholdersOf("suffix")).toEqual([]);
  });
});
