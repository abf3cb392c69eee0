// Starts `npm start`'s entry point (src/node.ts) as a real child process on a free port (tests and
// benchmarks), and finds free loopback ports for the verifier it starts.
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { startListening } from "./processes.ts";

export async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export function startEdgeProcess(env: Record<string, string>, timeoutMs = 120_000): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  return startListening("src/node.ts", { PORT: "0", ...env }, /listening on (http:\/\/127\.0\.0\.1:\d+)/, timeoutMs);
}
