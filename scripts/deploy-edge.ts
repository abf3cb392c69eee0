// `npm run deploy:edge -- --env staging|production|suffix [--dry-run]`: deploys the Worker of one wrangler.toml
// environment. Always bundles it first (`wrangler deploy --dry-run`) and checks the bundle against Workers'
// size limits; a real deploy then also refuses the file's placeholders (example.com routes and pool nodes, the
// all-zero Hyperdrive id) and an environment whose required secrets are not set (`wrangler secret list`).
// `--dry-run` stops after the bundle check (no account needed: what `npm test` runs for every environment).
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { parseCli, cliFail } from "./cli.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const WRANGLER = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");
const WRANGLER_ENV = { ...process.env, WRANGLER_SEND_METRICS: "false" };

/** Workers' limits on a script's size after compression (the free plan's, and Workers Paid's). */
export const WORKER_SIZE_LIMITS = { freeGzipBytes: 3 * 1024 * 1024, paidGzipBytes: 10 * 1024 * 1024 } as const;

/** Secrets every deployed environment needs (`wrangler secret put NAME --env <env>`). */
export const REQUIRED_SECRETS = ["POOL_TOKEN"] as const;

/** The environments wrangler.toml names (`[env.<name>]`), read from the file. */
export async function wranglerEnvironments(file = path.join(ROOT, "wrangler.toml")): Promise<string[]> {
  const text = await readFile(file, "utf8");
  return [...new Set([...text.matchAll(/^\[env\.([A-Za-z0-9_-]+)\]$/gm)].map((m) => m[1]))];
}

export interface BundleReport {
  env: string;
  modules: { name: string; bytes: number; gzipBytes: number }[];
  bytes: number;
  gzipBytes: number;
  /** Under Workers Paid's limit (what these Workers need: cpu_ms beyond the free plan's anyway). */
  fitsPaid: boolean;
  fitsFree: boolean;
}

/** `wrangler deploy --dry-run --env <env>` into a temporary folder: the modules a deploy would upload, and their sizes. */
export async function dryRun(env: string): Promise<BundleReport> {
  const outdir = await mkdtemp(path.join(os.tmpdir(), "alia-edge-deploy-"));
  try {
    await promisify(execFile)(process.execPath, [WRANGLER, "deploy", "--dry-run", "--outdir", outdir, ...(env ? ["--env", env] : [])], {
      cwd: ROOT,
      env: { ...WRANGLER_ENV, CLOUDFLARE_CF_FETCH_ENABLED: "false" },
      maxBuffer: 16 << 20,
    });
    const modules = [];
    for (const name of (await readdir(outdir)).filter((f) => f.endsWith(".js") || f.endsWith(".wasm"))) {
      const bytes = await readFile(path.join(outdir, name));
      modules.push({ name, bytes: bytes.length, gzipBytes: gzipSync(bytes).length });
    }
    if (!modules.length) throw new Error(`wrangler emitted no module for --env ${env}`);
    const bytes = modules.reduce((n, m) => n + m.bytes, 0);
    const gzipBytes = modules.reduce((n, m) => n + m.gzipBytes, 0);
    return { env, modules, bytes, gzipBytes, fitsPaid: gzipBytes <= WORKER_SIZE_LIMITS.paidGzipBytes, fitsFree: gzipBytes <= WORKER_SIZE_LIMITS.freeGzipBytes };
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

/** Values in an environment's sections of wrangler.toml that must be replaced before it is deployed. */
export async function placeholdersOf(env: string, file = path.join(ROOT, "wrangler.toml")): Promise<string[]> {
  let current = "";
  const found: string[] = [];
  for (const line of (await readFile(file, "utf8")).split("\n")) {
    const header = /^\[\[?([^\]]+)\]\]?\s*$/.exec(line);
    if (header) current = /^env\.([^.]+)/.exec(header[1])?.[1] ?? "";
    else if (current === env && !/^\s*#/.test(line) && (/example\.com/.test(line) || /id\s*=\s*"0{32}"/.test(line))) found.push(line.trim());
  }
  return found;
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(2)} MiB`;

export function describeReport(r: BundleReport): string {
  const verdict = r.fitsFree ? "fits the free plan's 3 MiB" : r.fitsPaid ? "over the free plan's 3 MiB, within Workers Paid's 10 MiB" : "OVER Workers Paid's 10 MiB";
  return `${r.env}: ${mb(r.bytes)} (${mb(r.gzipBytes)} gzipped) in ${r.modules.length} module(s): ${verdict}`;
}

async function main(): Promise<void> {
  const USAGE = "usage: npm run deploy:edge -- --env <staging|production|suffix> [--dry-run]";
  const { values } = parseCli("deploy-edge", USAGE, { options: { env: { type: "string" }, "dry-run": { type: "boolean", default: false } } });
  const envs = await wranglerEnvironments();
  const env = values.env;
  if (!env || !envs.includes(env)) cliFail("deploy-edge", `--env must be one of ${envs.join(", ")}, got ${JSON.stringify(env)}`);
  console.error(`[deploy-edge] bundling ${env} (wrangler deploy --dry-run)…`);
  const report = await dryRun(env);
  console.error(`[deploy-edge] ${describeReport(report)}`);
  if (!report.fitsPaid) throw new Error(`the ${env} bundle is over Workers' 10 MiB limit`);
  if (values["dry-run"]) return;
  const placeholders = await placeholdersOf(env);
  if (placeholders.length) throw new Error(`wrangler.toml's [env.${env}] still has placeholders; replace them first:\n  ${placeholders.join("\n  ")}`);
  const { stdout } = await promisify(execFile)(process.execPath, [WRANGLER, "secret", "list", "--env", env, "--format", "json"], { cwd: ROOT, env: WRANGLER_ENV });
  const set = new Set((JSON.parse(stdout) as { name: string }[]).map((s) => s.name));
  const missing = REQUIRED_SECRETS.filter((s) => !set.has(s));
  if (missing.length) throw new Error(`[env.${env}] lacks the secret(s) ${missing.join(", ")}: npx wrangler secret put NAME --env ${env}`);
  console.error(`[deploy-edge] deploying ${env}…`);
  const code = await new Promise<number>((resolve) => spawn(process.execPath, [WRANGLER, "deploy", "--env", env], { cwd: ROOT, env: WRANGLER_ENV, stdio: "inherit" }).on("exit", (c) => resolve(c ?? 1)));
  if (code !== 0) throw new Error(`wrangler deploy --env ${env} exited with ${code}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  main().catch((e: unknown) => {
    console.error(`[deploy-edge] ${(e as Error).message}`);
    process.exit(1);
  });
