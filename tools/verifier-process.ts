// Starts `npm run verifier`'s entry point as a real child process on a free loopback port (tests and
// benchmarks), and waits until it says where it listens.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

export async function startVerifierProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<{ child: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ["--import", "tsx", "gpu-backend/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, VERIFIER_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const listening = /on (http:\/\/127\.0\.0\.1:\d+)/;
  const deadline = Date.now() + timeoutMs;
  while (!listening.test(out)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`verifier did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child: proc, url: out.match(listening)![1] };
}
