// The Worker as deployed, run locally: bundled by `wrangler deploy --dry-run` (optionally for a wrangler.toml
// environment, or from another wrangler config) and run by Miniflare (workerd) on loopback, with files put
// into its MODELS R2 bucket.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

const root = fileURLToPath(new URL("../..", import.meta.url));
const wranglerBin = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");
const wranglerEnv = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" };

export interface WorkerdEdge {
  url: string;
  mf: Miniflare;
  /** Bytes of every module wrangler emitted (what a deploy uploads, before compression). */
  bundleBytes: number;
  /** Emitted module files. */
  modules: string[];
  stop(): Promise<void>;
}

interface BucketPut {
  put(key: string, value: Uint8Array): Promise<unknown>;
}

/** A Worker bundled by `wrangler deploy --dry-run`, ready to run in any number of Miniflare instances. */
export interface WorkerBundle {
  outdir: string;
  modules: string[];
  bundleBytes: number;
  options: ReturnType<typeof unstable_getMiniflareWorkerOptions>["workerOptions"];
  remove(): Promise<void>;
}

/** `config`: a wrangler.toml other than the project's (relative to the repository root). */
export async function bundleWorker(o: { env?: string; config?: string } = {}): Promise<WorkerBundle> {
  const outdir = await mkdtemp(path.join(os.tmpdir(), "alia-edge-workerd-"));
  const remove = () => rm(outdir, { recursive: true, force: true });
  try {
    const config = path.join(root, o.config ?? "wrangler.toml");
    await promisify(execFile)(process.execPath, [wranglerBin, "deploy", "--dry-run", "--outdir", outdir, "--config", config, ...(o.env ? ["--env", o.env] : [])], { cwd: root, env: wranglerEnv });
    const { workerOptions } = unstable_getMiniflareWorkerOptions(config, o.env);
    const emitted = await readdir(outdir);
    const modules = emitted.filter((f) => f.endsWith(".js") || f.endsWith(".wasm"));
    let bundleBytes = 0;
    for (const f of modules) bundleBytes += (await stat(path.join(outdir, f))).size;
    return { outdir, modules, bundleBytes, options: workerOptions, remove };
  } catch (e) {
    await remove();
    throw e;
  }
}

/**
 * Runs a bundled Worker in Miniflare on loopback, with files put into its MODELS R2 bucket. `hyperdrives`:
 * Hyperdrive bindings and the local PostgreSQL each points at (wrangler dev's localConnectionString).
 */
export async function runWorker(b: WorkerBundle, o: { bindings: Record<string, string>; models: Record<string, Uint8Array>; hyperdrives?: Record<string, string> }): Promise<{ url: string; mf: Miniflare }> {
  const main = b.modules.find((f) => f.endsWith(".js"));
  if (!main) throw new Error(`wrangler emitted no JavaScript module: ${b.modules.join(", ")}`);
  const w = b.options;
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    r2Persist: false,
    modulesRoot: b.outdir,
    modules: [{ type: "ESModule", path: path.join(b.outdir, main) }, ...b.modules.filter((f) => f.endsWith(".wasm")).map((f) => ({ type: "CompiledWasm" as const, path: path.join(b.outdir, f) }))],
    compatibilityDate: w.compatibilityDate,
    compatibilityFlags: w.compatibilityFlags,
    r2Buckets: w.r2Buckets,
    bindings: { ...w.bindings, ...o.bindings },
    ...(o.hyperdrives ? { hyperdrives: o.hyperdrives } : {}),
  });
  try {
    const url = (await mf.ready).origin;
    const bucket = (await mf.getR2Bucket("MODELS")) as unknown as BucketPut;
    for (const [key, bytes] of Object.entries(o.models)) await bucket.put(key, bytes);
    return { url, mf };
  } catch (e) {
    await mf.dispose();
    throw e;
  }
}

export async function startWorkerd(o: { env?: string; bindings: Record<string, string>; models: Record<string, Uint8Array>; hyperdrives?: Record<string, string> }): Promise<WorkerdEdge> {
  const b = await bundleWorker({ env: o.env });
  try {
    const { url, mf } = await runWorker(b, o);
    return {
      url,
      mf,
      bundleBytes: b.bundleBytes,
      modules: b.modules,
      stop: async () => {
        try {
          await mf.dispose();
        } finally {
          await b.remove();
        }
      },
    };
  } catch (e) {
    await b.remove();
    throw e;
  }
}

/** Every file of a bundle folder as R2 keys under `prefix`. */
export async function bundleObjects(dir: string, prefix: string, only?: readonly string[]): Promise<Record<string, Uint8Array>> {
  const { readFile } = await import("node:fs/promises");
  const out: Record<string, Uint8Array> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        const rel = path.relative(dir, p).split(path.sep).join("/");
        if (!only || only.includes(rel)) out[`${prefix}${rel}`] = new Uint8Array(await readFile(p));
      }
    }
  };
  await walk(dir);
  return out;
}
