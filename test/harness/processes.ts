// The project's entry points as real child processes, for tests and benchmarks. One starter,
// startProcess (a TypeScript entry point under tsx, output captured, bounded waits); on top of it the
// verifier (`npm run verifier`) and the edge (`npm start`), which bind port 0 and are found by the URL
// they print. A starter that fails kills its process before it throws.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { freePort } from "./ports.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartedProcess {
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** The first match of `re` in the output; rejects (with the output) if the process exits first or after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** How the process ended; after `timeoutMs` it is killed (SIGKILL) and this rejects. */
  exited(timeoutMs?: number): Promise<ExitStatus>;
  /** Sends `signal` and waits for the exit; a process still running after `timeoutMs` is killed (SIGKILL). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitStatus>;
}

export interface ListeningProcess extends StartedProcess {
  /** "http://127.0.0.1:PORT", as the process printed it. */
  url: string;
}

// Processes still running when the test worker exits (a failed test that never reached its cleanup) are
// killed with it. One registry per worker, whatever number of test files load this module.
const REGISTRY = Symbol.for("alia-edge.test.processes");
function registry(): Set<ChildProcess> {
  const g = globalThis as Record<symbol, Set<ChildProcess> | undefined>;
  let s = g[REGISTRY];
  if (!s) {
    const created = new Set<ChildProcess>();
    process.once("exit", () => {
      for (const c of created) c.kill("SIGKILL");
    });
    g[REGISTRY] = s = created;
  }
  return s;
}
const live = registry();

const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

/** Runs `script` (relative to the repository root) under tsx with `env` added to this process's environment. */
export function startProcess(script: string, env: Record<string, string> = {}): StartedProcess {
  const child = spawn(process.execPath, ["--import", "tsx", script], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exit = new Promise<ExitStatus>((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    // A process that cannot be spawned at all emits "error" and never "exit".
    child.once("error", (e) => {
      out += `\n[spawn error] ${e.message}`;
      live.delete(child);
      resolve({ code: null, signal: null });
    });
  });
  // Output written just before the exit may still be in the pipes; a grandchild that inherited them
  // (the verifier `npm start` embeds) may keep them open, so wait for "close" only briefly.
  const settled = exit.then(async (status) => {
    if (child.stdout!.readable || child.stderr!.readable) await Promise.race([new Promise((r) => child.once("close", r)), new Promise((r) => setTimeout(r, 300))]);
    return status;
  });

  const exited = async (timeoutMs = 30_000): Promise<ExitStatus> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`${script} did not exit within ${timeoutMs} ms (killed): ${out}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([settled, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    child,
    output: () => out,
    waitFor(re, timeoutMs = 60_000) {
      return new Promise<RegExpMatchArray>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          child.stdout!.off("data", check);
          child.stderr!.off("data", check);
        };
        const check = () => {
          const m = out.match(re);
          if (m) {
            done();
            resolve(m);
          }
          return m;
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${script}: no ${re} within ${timeoutMs} ms; output: ${out}`));
        }, timeoutMs);
        if (check()) return;
        // Listen after the capture listeners above, so `out` already holds the chunk when we look.
        child.stdout!.on("data", check);
        child.stderr!.on("data", check);
        void settled.then(() => {
          if (check()) return;
          done();
          reject(new Error(`${script} exited (${child.exitCode ?? child.signalCode}) before printing ${re}; output: ${out}`));
        });
      });
    },
    exited,
    async stop(signal = "SIGTERM", timeoutMs = 30_000) {
      if (running(child)) child.kill(signal);
      return exited(timeoutMs);
    },
  };
}

/** startProcess, then waits for the "… http://127.0.0.1:PORT" line `listening` captures; kills the process if it does not come. */
export async function startListening(script: string, env: Record<string, string>, listening: RegExp, timeoutMs: number): Promise<ListeningProcess> {
  const p = startProcess(script, env);
  try {
    const [, url] = await p.waitFor(listening, timeoutMs);
    return { ...p, url };
  } catch (e) {
    await p.stop("SIGKILL", 5000).catch(() => undefined);
    throw new Error(`${script} did not start: ${(e as Error).message}`);
  }
}

/** `npm run verifier`'s entry point on a port of its own choosing (VERIFIER_PORT=0). */
export function startVerifierProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<ListeningProcess> {
  return startListening("gpu-backend/main.ts", { VERIFIER_PORT: "0", ...env }, / on (http:\/\/127\.0\.0\.1:\d+)/, timeoutMs);
}

export interface EdgeProcess extends ListeningProcess {
  /** The verifier pool the edge uses (its POOL_NODES). */
  pool: string;
}

const EDGE_LISTENING = /listening on (http:\/\/127\.0\.0\.1:\d+)/;

/**
 * `npm start`'s entry point (src/node.ts) on a port of its own choosing (PORT=0). `pool` is the verifier
 * pool it uses: POOL_NODES when given; otherwise the verifier it starts itself, on a loopback port that
 * must be chosen before the start (`npm start` takes the verifier's address from POOL_NODES). That port
 * can be taken by another process before the verifier binds it: then the verifier fails (EADDRINUSE), or
 * something else answers there and the edge starts none of its own; either way the start is retried on a
 * fresh port.
 */
export async function startEdgeProcess(env: Record<string, string>, timeoutMs = 120_000): Promise<EdgeProcess> {
  if (env.POOL_NODES !== undefined || env.EMBEDDED_VERIFIER === "false") {
    const p = await startListening("src/node.ts", { PORT: "0", ...env }, EDGE_LISTENING, timeoutMs);
    return { ...p, pool: env.POOL_NODES ?? "" };
  }
  for (let attempt = 1; ; attempt++) {
    const pool = `http://127.0.0.1:${await freePort()}`;
    let p: ListeningProcess;
    try {
      p = await startListening("src/node.ts", { PORT: "0", POOL_NODES: pool, ...env }, EDGE_LISTENING, timeoutMs);
    } catch (e) {
      if (attempt < 3 && /EADDRINUSE/.test((e as Error).message)) continue;
      throw e;
    }
    if (p.output().includes(`verifier pool: ${pool} (started here)`)) return { ...p, pool };
    await p.stop("SIGKILL", 5000).catch(() => undefined);
    if (attempt >= 3) throw new Error(`src/node.ts did not start its own verifier on ${pool}: ${p.output()}`);
  }
}
