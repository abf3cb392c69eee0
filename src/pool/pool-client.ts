// The edge's client of the verifier pool (docs/ARCHITECTURE.md, "The verify protocol"): sessions stick to one node by rendezvous hashing
// (its KV cache lives there); nodes that fail are skipped by a circuit breaker and probed again on
// /readyz with exponential backoff (one probe in flight per node, ≤ 1 s apart unless POOL_BACKOFF_MS is
// higher); each node has a concurrency limit and every request a timeout. When a node fails or has lost
// the session, the round is re-sent to the next node with the session's full history and the same round
// number, and the verifier's exactly-once rounds and per-round seeded draws make the answer the one the
// first node would have given: no token is lost or repeated. Runs on Node and in workerd (fetch only, no
// timers left behind: probes happen when a request picks nodes).
import type { Config } from "../config.ts";
import { Ewma, RecentMin } from "../speculative/acceptance.ts";
import type { TargetVerifier, VerifiedRound } from "../speculative/target-verifier.ts";
import { GenerateRequestSchema, VerifyResponseSchema, type GenerateEvent, type GenerateRequest, type PoolLoad, type TokenLogprob, type VerifyRequest } from "../common/protocol.ts";

export interface PoolClientOptions {
  /** Verifier base URLs. */
  nodes: readonly string[];
  /** Shared bearer token (VERIFIER_TOKEN of the nodes). */
  token?: string;
  /** Timeout of one verify request, or of the wait for the next token of a generation (ms). */
  timeoutMs?: number;
  /** Requests in flight per node; further ones wait for a slot. */
  maxInFlightPerNode?: number;
  /** Consecutive failures that open a node's circuit. */
  failureThreshold?: number;
  /** First backoff before probing an open node again (doubles per failed probe, up to 1 s or this value if larger). */
  backoffMs?: number;
  fetch?: typeof fetch;
}

/** The pool cannot serve the request: `status` is what the API should answer (503, or a 4xx passed on). */
export class PoolError extends Error {
  override name = "PoolError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface RoundResult extends VerifiedRound {
  node: string;
}

interface Node {
  url: string;
  failures: number;
  /** Circuit open until then (ms epoch); 0 = closed. */
  openUntil: number;
  backoffMs: number;
  /** When the circuit last opened or the node was last probed (ms epoch). */
  checkedAt: number;
  /** The /readyz probe in flight: one per node, its result shared by every request that waits for it. */
  probe?: Probe;
  inFlight: number;
  waiters: (() => void)[];
}

/**
 * Longest wait between /readyz probes of a down node (unless POOL_BACKOFF_MS is set higher). A probe is a
 * small GET the verifier answers without touching the model, so probing once a second costs nothing
 * measurable; a longer interval is time a restarted verifier sits ready but unused (at 30 s it was ~30 s).
 */
const MAX_PROBE_INTERVAL_MS = 1000;

interface Probe {
  ready: Promise<boolean>;
  /**
   * Past this (ms epoch) the probe is abandoned: its own timeout has passed, so it can only be pending
   * because the request that started it ended first — in workerd a request's pending fetches go with it,
   * never settling, and requests awaiting them from other contexts are not resumed.
   */
  deadline: number;
}

/** Slack over a probe's own timeout before it counts as abandoned. */
const PROBE_GRACE_MS = 500;

/** FNV-1a, 32 bits: a stable hash for rendezvous ranking (same on every runtime). */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  // One extra avalanche round so that nearby keys spread.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}

/** The pool as the edge's configuration names it. */
export function poolClientFromConfig(c: Pick<Config, "POOL_NODES" | "POOL_TOKEN" | "POOL_TIMEOUT_MS" | "POOL_MAX_IN_FLIGHT" | "POOL_FAILURE_THRESHOLD" | "POOL_BACKOFF_MS">): PoolClient {
  return new PoolClient({
    nodes: c.POOL_NODES,
    token: c.POOL_TOKEN,
    timeoutMs: c.POOL_TIMEOUT_MS,
    maxInFlightPerNode: c.POOL_MAX_IN_FLIGHT,
    failureThreshold: c.POOL_FAILURE_THRESHOLD,
    backoffMs: c.POOL_BACKOFF_MS,
  });
}

export class PoolClient implements TargetVerifier {
  private readonly nodes: Node[];
  private readonly affinity = new Map<string, Node>();
  private readonly f: typeof fetch;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly threshold: number;
  private readonly backoff0: number;
  private readonly maxBackoff: number;
  private readonly probeTimeoutMs: number;
  /** Re-opens, failovers, probes and calls no node could serve (`errors`: 503 pool_unavailable) so far, for metrics and tests. */
  readonly counters = { reopened: 0, failovers: 0, probes: 0, errors: 0 };
  /** Network time of recent calls (elapsed minus the verifier's server_ms), all sessions together. */
  private readonly network = new RecentMin(64);
  /**
   * The same, averaged over continuing verify rounds (not openings, which carry whole histories): what a
   * round costs beyond the pool now, the edge's own queueing under load included, which the minimum leaves out.
   */
  private readonly roundNetwork = new Ewma(0.1);

  constructor(private readonly o: PoolClientOptions) {
    if (o.nodes.length === 0) throw new RangeError("the pool needs at least one verifier node");
    this.nodes = o.nodes.map((url) => ({ url: url.replace(/\/+$/, ""), failures: 0, openUntil: 0, backoffMs: o.backoffMs ?? 500, checkedAt: 0, inFlight: 0, waiters: [] }));
    // Called unbound: Workers refuse a fetch whose `this` is not the global scope.
    this.f = o.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.maxInFlight = o.maxInFlightPerNode ?? 64;
    this.threshold = o.failureThreshold ?? 3;
    this.backoff0 = o.backoffMs ?? 500;
    this.maxBackoff = Math.max(this.backoff0, MAX_PROBE_INTERVAL_MS);
    this.probeTimeoutMs = Math.min(this.timeoutMs, 2000);
  }

  /** The node holding a session's KV cache, if any. */
  nodeOf(session: string): string | undefined {
    return this.affinity.get(session)?.url;
  }

  /** Nodes in rendezvous order for a session: the first usable one serves it. */
  ranking(session: string): string[] {
    return this.rank(session).map((n) => n.url);
  }

  /**
   * Sessions named `<group>--<i>` rank alike: the n choices of one request go to one node, where they
   * share the prompt's prefill.
   */
  private rank(session: string): Node[] {
    const key = session.split("--")[0];
    return [...this.nodes].sort((a, b) => fnv1a(`${b.url}|${key}`) - fnv1a(`${a.url}|${key}`));
  }

  private headers(json = true): Record<string, string> {
    return { ...(json ? { "content-type": "application/json" } : {}), ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}) };
  }

  /**
   * Probes an open node's /readyz, or joins the probe already in flight: concurrent requests share one
   * probe and its result, so one outage costs one probe, and one doubling of the backoff, per interval.
   */
  private probe(n: Node): Promise<boolean> {
    const inFlight = this.probeInFlight(n);
    if (inFlight) return this.awaitShared(inFlight);
    const probe: Probe = { ready: Promise.resolve(false), deadline: Date.now() + this.probeTimeoutMs + PROBE_GRACE_MS };
    n.probe = probe;
    probe.ready = this.runProbe(n, probe);
    return probe.ready;
  }

  private probeInFlight(n: Node): Probe | undefined {
    return n.probe && Date.now() < n.probe.deadline ? n.probe : undefined;
  }

  /** Another request's probe, given up on (as failed) at its deadline; the timer is cleared either way. */
  private async awaitShared(p: Probe): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const abandoned = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), Math.max(0, p.deadline - Date.now()));
    });
    try {
      return await Promise.race([p.ready, abandoned]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async runProbe(n: Node, probe: Probe): Promise<boolean> {
    this.counters.probes++;
    let ready = false;
    try {
      const r = await this.f(`${n.url}/readyz`, { signal: AbortSignal.timeout(this.probeTimeoutMs) });
      await r.body?.cancel();
      ready = r.ok;
    } catch {
      // still down
    }
    if (n.probe !== probe) return ready; // abandoned and replaced by a newer probe, which decides
    n.probe = undefined;
    n.checkedAt = Date.now();
    if (ready) {
      n.openUntil = 0;
      n.failures = 0;
      n.backoffMs = this.backoff0;
    } else {
      n.backoffMs = Math.min(n.backoffMs * 2, this.maxBackoff);
      n.openUntil = n.checkedAt + n.backoffMs;
    }
    return ready;
  }

  /**
   * Counts a failed request. Only closed circuits count: failures of requests that were already under
   * way when the circuit opened (a killed node fails all of them at once) say nothing new, and neither
   * they nor a failure in the meantime move the next probe or grow the backoff — only a failed probe does.
   */
  private failed(n: Node): void {
    if (n.openUntil > 0) return;
    n.failures++;
    if (n.failures >= this.threshold) {
      n.checkedAt = Date.now();
      n.openUntil = n.checkedAt + n.backoffMs;
    }
  }

  /** `n` failed this request: count it, skip it from now on, forget it as the session's home. */
  private failOver(n: Node, tried: Set<Node>, why: string, session?: string): string {
    this.failed(n);
    tried.add(n);
    if (session !== undefined) this.affinity.delete(session);
    this.counters.failovers++;
    return `${n.url}: ${why}`;
  }

  private succeeded(n: Node): void {
    n.failures = 0;
  }

  private async acquire(n: Node): Promise<void> {
    while (n.inFlight >= this.maxInFlight) await new Promise<void>((r) => n.waiters.push(r));
    n.inFlight++;
  }

  private release(n: Node): void {
    n.inFlight--;
    n.waiters.shift()?.();
  }

  /**
   * The caller left while a round was at `node`: the node may have opened (or already answered) the
   * session anyway, so it becomes the session's home and the caller's close() reaches it — the verifier
   * closes what it holds, or remembers a close that overtook the opening round.
   */
  private abandoned(session: string, node: Node, reason: unknown): unknown {
    this.affinity.set(session, node);
    return reason;
  }

  /**
   * Next node for a session, skipping `tried`: the affine node first, then rendezvous order; the first
   * closed circuit wins. An open node due for a probe is probed (and waited for) by the request that finds
   * it due; a node whose probe another request has in flight is passed over while a later node is up.
   * With every node down, the request waits for the probes in flight and, if none of them was due, still
   * probes the least recently checked node once MAX_PROBE_INTERVAL_MS has passed (a backoff set higher
   * must not keep a restarted node unused while no other node can serve).
   */
  private async pick(session: string, tried: Set<Node>): Promise<Node | undefined> {
    const home = this.affinity.get(session);
    const order = home && !tried.has(home) ? [home, ...this.rank(session).filter((n) => n !== home && !tried.has(n))] : this.rank(session).filter((n) => !tried.has(n));
    const othersProbing: { node: Node; probe: Probe }[] = [];
    for (const n of order) {
      if (n.openUntil === 0) return n;
      const inFlight = this.probeInFlight(n);
      if (inFlight) othersProbing.push({ node: n, probe: inFlight });
      else if (Date.now() >= n.openUntil && (await this.probe(n))) return n;
    }
    // No candidate is up: the probes in flight decide, their results shared.
    for (const { node, probe } of othersProbing) if (await this.awaitShared(probe)) return node;
    if (othersProbing.length === 0) {
      const stalest = order.filter((n) => n.openUntil > 0 && !this.probeInFlight(n)).sort((a, b) => a.checkedAt - b.checkedAt)[0];
      if (stalest && Date.now() >= stalest.checkedAt + MAX_PROBE_INTERVAL_MS && (await this.probe(stalest))) return stalest;
    }
    // Closed by another request while this one waited.
    return order.find((n) => n.openUntil === 0);
  }

  /**
   * One verify round. `build(reopen)` makes the body: with `reopen` it must carry the full `history`
   * (prompt + everything committed) instead of `committed`, and the same `seq`.
   */
  async round(session: string, build: (reopen: boolean) => VerifyRequest, signal?: AbortSignal): Promise<RoundResult> {
    const tried = new Set<Node>();
    let reopen = !this.affinity.has(session);
    let lastError = "no verifier node is available";
    for (let attempt = 0; attempt < 2 * this.nodes.length + 2; attempt++) {
      const node = await this.pick(session, tried);
      if (!node) break;
      if (this.affinity.get(session) !== node) reopen = true;
      const body = build(reopen);
      if (reopen && !body.history) throw new Error("build(true) must return a request with the full history");
      await this.acquire(node);
      const t0 = performance.now();
      let res: Response;
      try {
        res = await this.postVerify(node, body, signal);
      } catch (e) {
        this.release(node);
        if (signal?.aborted) throw this.abandoned(session, node, e);
        lastError = this.failOver(node, tried, (e as Error).message, session);
        continue;
      }
      let json: unknown;
      try {
        json = await res.json().catch(() => undefined);
      } finally {
        this.release(node);
      }
      if (signal?.aborted) throw this.abandoned(session, node, signal.reason);
      if (res.ok) {
        const parsed = VerifyResponseSchema.safeParse(json);
        if (!parsed.success) {
          lastError = this.failOver(node, tried, "malformed verify response", session);
          continue;
        }
        this.succeeded(node);
        this.affinity.set(session, node);
        if (reopen && attempt > 0) this.counters.reopened++;
        const elapsedMs = performance.now() - t0;
        this.network.observe(elapsedMs - parsed.data.server_ms);
        if (!body.history) this.roundNetwork.observe(elapsedMs - parsed.data.server_ms);
        return { ...parsed.data, elapsedMs, node: node.url };
      }
      const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      const code = err?.code ?? `http_${res.status}`;
      const why = `${res.status} ${code}: ${err?.message ?? ""}`;
      lastError = `${node.url}: ${why}`;
      if (["session_not_found", "history_mismatch", "seq_out_of_order"].includes(code) && !reopen) {
        reopen = true; // evicted or out of step: the same node rebuilds it from history
        this.affinity.set(session, node);
        continue;
      }
      if (res.status === 503 || res.status >= 500) {
        lastError = this.failOver(node, tried, why, session);
        continue;
      }
      // 400/401/413 and the like: the request itself is refused; another node would refuse it too.
      throw new PoolError(res.status, code, err?.message ?? `verifier answered ${res.status}`);
    }
    this.counters.errors++;
    throw new PoolError(503, "pool_unavailable", `no healthy verifier node could serve the round (${lastError})`);
  }

  private postVerify(node: Node, body: VerifyRequest, signal: AbortSignal | undefined): Promise<Response> {
    return this.f(`${node.url}/v1/verify`, {
      method: "POST",
      headers: this.headers(),
      body: JSON.stringify(body),
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]) : AbortSignal.timeout(this.timeoutMs),
    });
  }

  /**
   * A round sent on a bet while the round before it is still in flight (pipelining), once, to the session's
   * node: undefined when it is refused or fails for any reason — nothing is re-opened and no node is marked
   * down. A lost bet costs the verifier no pass: it refuses a round whose `committed` is not what the round
   * before it committed (409) before running anything.
   */
  async roundAhead(session: string, body: VerifyRequest, signal?: AbortSignal): Promise<RoundResult | undefined> {
    // The session's node; while its opening round is on the way, the node that round goes to.
    const node = this.affinity.get(session) ?? this.rank(session).find((n) => n.openUntil === 0);
    if (!node || node.openUntil > 0 || body.history) return undefined;
    await this.acquire(node);
    const t0 = performance.now();
    try {
      const res = await this.postVerify(node, body, signal);
      const json = await res.json().catch(() => undefined);
      const parsed = res.ok ? VerifyResponseSchema.safeParse(json) : undefined;
      return parsed?.success ? { ...parsed.data, elapsedMs: performance.now() - t0, node: node.url } : undefined;
    } catch {
      return undefined;
    } finally {
      this.release(node);
    }
  }

  /**
   * Pool generation (γ = 0), token by token. A node failing mid-stream is replaced by the next one,
   * resumed from the history plus the tokens already received; seeded draws are per position, so the
   * continuation is the same.
   */
  /**
   * Network time of a verify round now (ms): the recent average over continuing rounds of all sessions;
   * before any, the recent minimum over all calls; undefined before any call.
   */
  get roundTripMs(): number | undefined {
    return this.roundNetwork.value ?? this.network.value;
  }

  async *generate(req: GenerateRequest, signal?: AbortSignal, onLoad?: (load: PoolLoad, serverMs?: number) => void, onLogprob?: (lp: TokenLogprob) => void): AsyncGenerator<number, "stop" | "length"> {
    const tried = new Set<Node>();
    const got: number[] = [];
    let lastError = "no verifier node is available";
    const key = `gen:${req.history.length}:${req.history.slice(-8).join(",")}`;
    for (let attempt = 0; attempt < 2 * this.nodes.length + 2; attempt++) {
      const node = await this.pick(key, tried);
      if (!node) break;
      const body = GenerateRequestSchema.parse({ ...req, history: [...req.history, ...got], max_tokens: req.max_tokens - got.length });
      const ctl = new AbortController();
      const onAbort = () => ctl.abort();
      signal?.addEventListener("abort", onAbort);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => ctl.abort(new Error(`no token within ${this.timeoutMs} ms`)), this.timeoutMs);
      };
      await this.acquire(node);
      try {
        arm();
        const t0 = performance.now();
        const res = await this.f(`${node.url}/v1/generate`, { method: "POST", headers: this.headers(), body: JSON.stringify(body), signal: ctl.signal });
        if (!res.ok) {
          const err = ((await res.json().catch(() => undefined)) as { error?: { code?: string; message?: string } } | undefined)?.error;
          if (res.status < 500) throw new PoolError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? `verifier answered ${res.status}`);
          throw new Error(`${res.status} ${err?.code ?? ""}`);
        }
        for await (const ev of sseEvents(res.body!)) {
          arm();
          if (ev.event === "error") throw new Error(`stream error: ${ev.data}`);
          const e = JSON.parse(ev.data) as GenerateEvent;
          if ("token" in e) {
            if (e.server_ms !== undefined) this.network.observe(performance.now() - t0 - e.server_ms);
            if (e.load) onLoad?.(e.load, e.server_ms);
            got.push(e.token);
            if (e.logprob) onLogprob?.(e.logprob);
            yield e.token;
          } else {
            this.succeeded(node);
            return e.finish_reason;
          }
        }
        throw new Error("stream ended without a done event");
      } catch (e) {
        if (e instanceof PoolError || signal?.aborted) throw e;
        lastError = this.failOver(node, tried, (e as Error).message);
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        ctl.abort();
        this.release(node);
      }
    }
    this.counters.errors++;
    throw new PoolError(503, "pool_unavailable", `no healthy verifier node could generate (${lastError})`);
  }

  /** Ends a session on its node (best effort: an unreachable node drops it by idle TTL anyway). */
  async close(session: string): Promise<void> {
    const node = this.affinity.get(session);
    this.affinity.delete(session);
    if (!node) return;
    try {
      const r = await this.f(`${node.url}/v1/sessions/${encodeURIComponent(session)}`, { method: "DELETE", headers: this.headers(false), signal: AbortSignal.timeout(2000) });
      await r.body?.cancel();
    } catch {
      // best effort
    }
  }
}

/** Server-Sent Events from a fetch body: `{event, data}` per blank-line-terminated block. */
async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    for (let end = buf.search(/\r?\n\r?\n/); end !== -1; end = buf.search(/\r?\n\r?\n/)) {
      const block = buf.slice(0, end);
      buf = buf.slice(end).replace(/^\r?\n\r?\n/, "");
      let event = "message";
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}
