// Loopback ports for tests and benchmarks. Prefer letting a process bind port 0 and report its port
// (every server in this project can); these two are for the cases where that is not possible.
import { once } from "node:events";
import net from "node:net";

/**
 * A port that was free a moment ago. Racy by nature: the port is released before the caller's process
 * binds it, and any other process may take it in between. Use it only where a port must be known in
 * advance (e.g. POOL_NODES for the verifier that `npm start` embeds), and retry the start when the bind
 * fails (startEdgeProcess does).
 */
export async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface DeadEndpoint {
  /** "http://127.0.0.1:PORT" */
  url: string;
  port: number;
  /** Release the port. */
  close(): Promise<void>;
}

/**
 * A loopback address where nothing can answer, for as long as it is open: the port is held by a listener
 * that resets every connection the moment it is accepted, so clients fail at once with a connection error
 * (ECONNRESET rather than ECONNREFUSED) and no other process can bind the port meanwhile. A fixed port
 * ("nothing listens on 9") or a port closed after use gives no such guarantee: another process may
 * listen there, or take it over between the close and the test.
 */
export async function deadEndpoint(): Promise<DeadEndpoint> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    s.on("error", () => undefined);
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
    s.resetAndDestroy();
  });
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as net.AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close() {
      closing ??= new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      });
      return closing;
    },
  };
}
