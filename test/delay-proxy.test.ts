// The loopback delay proxy: added round-trip latency (lower bounds only), byte-exact ordered transfer
// with and without jitter, run-time setDelay, half-close, upstream-down and close() teardown.
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startDelayProxy, type DelayProxy } from "./harness/delay-proxy.ts";

let upstream: http.Server;
let upstreamUrl: string;
const proxies: DelayProxy[] = [];

async function proxy(o: Parameters<typeof startDelayProxy>[0]): Promise<DelayProxy> {
  const p = await startDelayProxy(o);
  proxies.push(p);
  return p;
}

// Deterministic payload with no short period, so a reordered or dropped chunk cannot compare equal.
function payload(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 0x12345678;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

async function echo(base: string, body?: Buffer): Promise<{ ms: number; bytes: Buffer }> {
  const t0 = performance.now();
  const res = await fetch(`${base}/echo`, {
    method: body ? "POST" : "GET",
    body: body ? new Uint8Array(body) : undefined, // copy: fetch's BodyInit typing rejects Buffer
    signal: AbortSignal.timeout(30_000),
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  const ms = performance.now() - t0;
  expect(res.status).toBe(200);
  return { ms, bytes };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      const body = req.method === "GET" ? Buffer.from("hello from upstream") : Buffer.concat(parts);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
      res.end(body);
    });
  });
  upstream.listen(0, "127.0.0.1");
  await once(upstream, "listening");
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`;
});

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
});

describe("delay proxy", () => {
  it("adds at least 2×delay per round trip and forwards bodies unchanged", async () => {
    const p = await proxy({ target: upstreamUrl, delayMs: 30 });
    expect(p.url).toBe(`http://127.0.0.1:${p.port}`);

    const direct: number[] = [];
    const proxied: number[] = [];
    for (let i = 0; i < 5; i++) {
      const d = await echo(upstreamUrl);
      const v = await echo(p.url);
      expect(v.bytes.equals(d.bytes)).toBe(true);
      expect(v.ms).toBeGreaterThanOrEqual(2 * 30 - 1);
      direct.push(d.ms);
      proxied.push(v.ms);
    }
    expect(median(direct)).toBeLessThan(median(proxied));

    const big = payload(1 << 20);
    const d = await echo(upstreamUrl, big);
    const v = await echo(p.url, big);
    expect(Buffer.compare(d.bytes, big)).toBe(0);
    expect(Buffer.compare(v.bytes, big)).toBe(0);
    expect(v.ms).toBeGreaterThanOrEqual(2 * 30 - 1);
  });

  it("setDelay(0) makes later requests faster than with the delay", async () => {
    const p = await proxy({ target: upstreamUrl.replace("http://", ""), delayMs: 30 });
    const slow: number[] = [];
    for (let i = 0; i < 5; i++) slow.push((await echo(p.url)).ms);
    p.setDelay(0);
    const fast: number[] = [];
    for (let i = 0; i < 5; i++) fast.push((await echo(p.url)).ms);
    expect(median(fast)).toBeLessThan(median(slow));
    p.setDelay(20, 5);
    expect((await echo(p.url)).ms).toBeGreaterThanOrEqual(2 * 20 - 1);
    expect(() => p.setDelay(-1)).toThrow();
  });

  it("keeps a 1 MB echo byte-exact and ordered under jitter", async () => {
    const p = await proxy({ target: upstreamUrl, delayMs: 2, jitterMs: 25, seed: 7 });
    const big = payload(1 << 20);
    for (let i = 0; i < 2; i++) {
      const v = await echo(p.url, big);
      expect(v.bytes.length).toBe(big.length);
      expect(Buffer.compare(v.bytes, big)).toBe(0);
    }
  });

  it("preserves order of many small writes and forwards a half-close (raw TCP)", async () => {
    const tcpEcho = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s)); // pipe ends s after our FIN
    tcpEcho.listen(0, "127.0.0.1");
    await once(tcpEcho, "listening");
    try {
      const p = await proxy({
        target: `127.0.0.1:${(tcpEcho.address() as net.AddressInfo).port}`,
        delayMs: 1,
        jitterMs: 15,
        seed: 3,
      });
      const sock = net.connect({ host: "127.0.0.1", port: p.port, allowHalfOpen: true });
      sock.setNoDelay(true);
      await once(sock, "connect");
      const got: Buffer[] = [];
      sock.on("data", (c: Buffer) => got.push(c));
      const ended = once(sock, "end");
      const sent: string[] = [];
      for (let i = 0; i < 200; i++) {
        const line = `msg-${i};`;
        sent.push(line);
        sock.write(line);
        if (i % 20 === 0) await new Promise((r) => setTimeout(r, 1)); // spread writes over many chunks
      }
      sock.end();
      await ended; // the echo's FIN came back through the proxy after all data
      expect(Buffer.concat(got).toString()).toBe(sent.join(""));
      sock.destroy();
      for (let i = 0; i < 100 && p.connections > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(p.connections).toBe(0);
    } finally {
      await new Promise((r) => tcpEcho.close(r));
    }
  });

  it("rejects (does not hang) when the upstream is down", async () => {
    const tmp = net.createServer();
    tmp.listen(0, "127.0.0.1");
    await once(tmp, "listening");
    const deadPort = (tmp.address() as net.AddressInfo).port;
    await new Promise((r) => tmp.close(r));

    const p = await proxy({ target: `http://127.0.0.1:${deadPort}`, delayMs: 5 });
    const err = await fetch(`${p.url}/echo`, { signal: AbortSignal.timeout(5000) }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.name).not.toBe("TimeoutError"); // rejected because of the upstream, not the safety net
    for (let i = 0; i < 100 && p.connections > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(p.connections).toBe(0);
  });

  it("close() ends open keep-alive connections and stops accepting", async () => {
    const p = await startDelayProxy({ target: upstreamUrl, delayMs: 5 });
    const agent = new http.Agent({ keepAlive: true });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        http
          .get(`${p.url}/echo`, { agent }, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          })
          .on("error", reject);
      });
      expect(status).toBe(200);
      expect(p.connections).toBe(1); // the agent keeps the socket open after the response

      await p.close();
      expect(p.connections).toBe(0);
      await p.close(); // idempotent

      const c = net.connect({ host: "127.0.0.1", port: p.port });
      const [e] = (await once(c, "error")) as [NodeJS.ErrnoException];
      expect(e.code).toBe("ECONNREFUSED");
    } finally {
      agent.destroy();
    }
  });
});
