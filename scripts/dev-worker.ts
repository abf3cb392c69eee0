// `npm run dev:worker`: the Worker in local workerd (`wrangler dev`, offline) against a local verifier.
// Copies the fixture pair into wrangler's local R2 (draft bundle whole, target manifest + config.json),
// then runs `wrangler dev` with the prefixes and POOL_NODES pointing at the verifier that `npm start` or
// `npm run verifier` serves (default http://127.0.0.1:8788). Extra arguments go to `wrangler dev`.
import { spawn, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";

const root = path.resolve(import.meta.dirname, "..");
const wrangler = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");
const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" };
const BUCKET = "alia-edge-models";
const pool = process.env.POOL_NODES ?? "http://127.0.0.1:8788";

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

const uploads: [string, string][] = [
  ...files(path.join(DEFAULT_PAIR_DIR, "draft")).map((f): [string, string] => [`bundles/fixture-draft/${path.relative(path.join(DEFAULT_PAIR_DIR, "draft"), f).split(path.sep).join("/")}`, f]),
  ...["manifest.json", "config.json"].map((f): [string, string] => [`bundles/fixture-target/${f}`, path.join(DEFAULT_PAIR_DIR, "target", f)]),
];
for (const [key, file] of uploads) {
  process.stderr.write(`local R2: ${key}\n`);
  const r = spawnSync(process.execPath, [wrangler, "r2", "object", "put", `${BUCKET}/${key}`, "--file", file, "--local"], { cwd: root, env, stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const ready = await fetch(`${pool.split(",")[0]}/readyz`).then(
  (r) => r.ok,
  () => false,
);
if (!ready) console.error(`note: no verifier answers at ${pool} yet; start one with \`npm run verifier\` (or \`npm start\`)`);

const vars = { DRAFT_BUNDLE_PREFIX: "bundles/fixture-draft/", TARGET_BUNDLE_PREFIX: "bundles/fixture-target/", POOL_NODES: pool };
const child = spawn(process.execPath, [wrangler, "dev", "--local", ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]), ...process.argv.slice(2)], { cwd: root, env, stdio: "inherit" });
child.on("exit", (code) => process.exit(code ?? 0));
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => child.kill(sig));
