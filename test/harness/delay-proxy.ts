// Loopback TCP delay proxy for tests and benchmarks: listens on 127.0.0.1, forwards every connection
// to an upstream and holds each chunk for a configurable one-way delay (plus seeded jitter) in both
// directions, to simulate edge↔GPU round trips without touching real networks.
import net from "node:net";
import { seededRandom } from "../../fixtures/generate/random-weights.ts";

export interface DelayProxyOptions {
  /** Upstream to forward to, e.g. "127.0.0.1:8788" or a URL like "http://127.0.0.1:8788". */
  target: string;
  /** One-way delay added to every chunk in each direction (ms). RTT grows by 2×. */
  delayMs: number;
  /** Uniform extra delay in [0, jitterMs) per chunk; order within a connection is always preserved. */
  jitterMs?: number;
  /** Seed for the jitter (deterministic); default 1. */
  seed?: number;
  /** Listen port (0 = any free port); host is always 127.0.0.1. */
  port?: number;
}

export interface DelayProxy {
  /** "http://127.0.0.1:PORT" */
  url: string;
  port: number;
  /** Change the delay at run time (affects chunks arriving afterwards). An omitted jitterMs means 0. */
  setDelay(delayMs: number, jitterMs?: number): void;
  /** Close the listener and destroy every open connection (both sides). */
  close(): Promise<void>;
  /** Number of currently open client connections. */
  readonly connections: number;
}

function parseTarget(target: string): { host: string; port: number } {
  let host: string;
  let portText: string;
  if (target.includes("://")) {
    const u = new URL(target);
    host = u.hostname;
    portText = u.port || (u.protocol === "https:" ? "443" : "80");
  } else {
    const i = target.lastIndexOf(":");
    if (i <= 0) throw new Error(`delay proxy: target must be host:port or a URL, got ${JSON.stringify(target)}`);
    host = target.slice(0, i);
    portText = target.slice(i + 1);
  }
  host = host.replace(/^\[(.*)\]$/, "$1"); // "[::1]" → "::1" for net.connect
  const port = Number(portText);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`delay proxy: bad port in target ${JSON.stringify(target)}`);
  }
  return { host, port };
}

function checkDelay(name: string, v: number): number {
  if (!Number.isFinite(v) || v < 0) throw new Error(`delay proxy: ${name} must be a finite number ≥ 0, got ${v}`);
  return v;
}

/**
 * One direction of a connection. Chunks are queued with a due time that never decreases, and a single
 * timer serves the queue head: relying on many independent setTimeouts could reorder chunks whose due
 * times tie or cross after setDelay, so delivery order is enforced here instead.
 */
class DelayedPipe {
  private queue: { due: number; chunk: Buffer }[] = [];
  private last = 0;
  private timer: NodeJS.Timeout | undefined;
  private srcEnded = false;
  private destroyAfterEnd = false;
  private finished = false;
  private stopped = false;

  constructor(
    private readonly dest: net.Socket,
    private readonly nextDelay: () => number,
  ) {}

  push(chunk: Buffer): void {
    if (this.stopped) return;
    const due = Math.max(this.last, performance.now() + this.nextDelay());
    this.last = due;
    this.queue.push({ due, chunk });
    this.arm();
  }

  /** The source ended: end dest once everything already queued is delivered (and destroy it if asked,
   *  because the source is gone entirely and nothing dest sends could be forwarded). */
  end(destroyDest: boolean): void {
    if (this.stopped) return;
    this.srcEnded = true;
    if (destroyDest) this.destroyAfterEnd = true;
    if (this.finished && destroyDest) this.closeDest();
    else this.arm();
  }

  /** Drop everything (error / teardown). */
  stop(): void {
    this.stopped = true;
    this.queue = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.timer || this.stopped) return;
    const head = this.queue[0];
    if (!head) {
      if (this.srcEnded && !this.finished) {
        this.finished = true;
        this.closeDest();
      }
      return;
    }
    const wait = head.due - performance.now();
    if (wait <= 0) {
      this.flush(); // zero delay stays zero: no extra event-loop turn
      return;
    }
    // Timers may fire a little early relative to performance.now(); flush() re-arms for the rest, so the
    // added latency is never below the configured delay.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, Math.ceil(wait));
  }

  private flush(): void {
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0].due <= now) {
      const { chunk } = this.queue.shift()!;
      // Backpressure is deliberately ignored (tests/benchmarks move little data); a destroyed dest is
      // skipped so a late chunk cannot raise ERR_STREAM_DESTROYED.
      if (!this.dest.destroyed) this.dest.write(chunk);
    }
    this.arm();
  }

  private closeDest(): void {
    const d = this.dest;
    if (d.destroyed) return;
    if (!this.destroyAfterEnd) {
      if (!d.writableEnded) d.end();
    } else if (d.writableFinished) {
      d.destroy();
    } else if (d.writableEnded) {
      d.once("finish", () => d.destroy());
    } else {
      d.end(() => d.destroy());
    }
  }
}

export async function startDelayProxy(o: DelayProxyOptions): Promise<DelayProxy> {
  const { host, port: targetPort } = parseTarget(o.target);
  let delayMs = checkDelay("delayMs", o.delayMs);
  let jitterMs = checkDelay("jitterMs", o.jitterMs ?? 0);
  const rng = seededRandom(o.seed ?? 1); // seeded so jittered runs are reproducible
  const nextDelay = () => (jitterMs > 0 ? delayMs + rng() * jitterMs : delayMs);

  const clients = new Set<net.Socket>();
  const live = new Set<{ kill: () => void; closed: Promise<unknown> }>();
  let closing: Promise<void> | undefined;

  // allowHalfOpen on both sides: a FIN from one peer must not end the other direction before the data
  // still held in the delay queue has been delivered.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    if (closing) {
      client.destroy();
      return;
    }
    const upstream = net.connect({ host, port: targetPort, allowHalfOpen: true });
    // Nagle would coalesce our re-timed writes and add its own latency on top of the simulated one.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const toUpstream = new DelayedPipe(upstream, nextDelay);
    const toClient = new DelayedPipe(client, nextDelay);
    const kill = () => {
      toUpstream.stop();
      toClient.stop();
      client.destroy();
      upstream.destroy();
    };
    const entry = {
      kill,
      closed: Promise.all([new Promise((r) => client.once("close", r)), new Promise((r) => upstream.once("close", r))]),
    };
    clients.add(client);
    live.add(entry);
    void entry.closed.then(() => live.delete(entry));

    client.on("data", (c: Buffer) => toUpstream.push(c));
    upstream.on("data", (c: Buffer) => toClient.push(c));
    client.on("end", () => toUpstream.end(false));
    upstream.on("end", () => toClient.end(false));
    // Any error (including upstream ECONNREFUSED) tears down both sides; the listeners also keep the
    // errors from being unhandled.
    client.on("error", kill);
    upstream.on("error", kill);
    client.on("close", () => {
      clients.delete(client);
      toClient.stop();
      toUpstream.end(true);
    });
    upstream.on("close", () => {
      toUpstream.stop();
      toClient.end(true);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    setDelay(d: number, j?: number) {
      delayMs = checkDelay("delayMs", d);
      jitterMs = checkDelay("jitterMs", j ?? 0);
    },
    close() {
      closing ??= (async () => {
        const listenerClosed = new Promise<void>((r) => server.close(() => r()));
        const all = [...live];
        for (const e of all) e.kill();
        await Promise.all([listenerClosed, ...all.map((e) => e.closed)]);
      })();
      return closing;
    },
    get connections() {
      return clients.size;
    },
  };
}
