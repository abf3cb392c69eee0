// Starts the project's entry points as real child processes on free loopback ports (tests and
// benchmarks): each waits until the process says where it listens.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** Runs `script` under tsx and waits for its "… on http://127.0.0.1:PORT" line. */
export async function startListening(script: string, env: Record<string, string>, listening: RegExp, timeoutMs: number): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, ["--import", "tsx", script], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const deadline = Date.now() + timeoutMs;
  while (!listening.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${script} did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url: out.match(listening)![1], output: () => out };
}

/** `npm run verifier`'s entry point. */
export async function startVerifierProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<{ child: ChildProcess; url: string }> {
  const { child, url } = await startListening("gpu-backend/main.ts", { VERIFIER_PORT: "0", ...env }, /on (http:\/\/127\.0\.0\.1:\d+)/, timeoutMs);
  return { child, url };
}
