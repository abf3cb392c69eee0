// Request observation for the one Hono app (src/app.ts), on Node and Workers alike: a request id (a sane
// incoming `x-request-id`, else a new one; always echoed in the response header), one JSON log line per
// finished request, request metrics, and GET /metrics.
//
// A streamed response is finished when its body ends, not when the handler returns (Hono's middleware
// resumes as soon as the handler hands back the Response, long before the last SSE event): the middleware
// wraps an event-stream body and finishes the request's record when the body ends or the client cancels
// it. Handlers add what they know about the request to that record with `recordGeneration(c, …)`; the SSE
// handler calls it before it closes its stream, so the line carries the stream's usage and speculation.
import type { Context, Hono } from "hono";
import { matchedRoutes } from "hono/route";
import { requireBearer } from "../common/bearer-auth.ts";
import { EdgeMetrics, type GenerationRecord, type MetricSources } from "./edge-metrics.ts";
import { createLogger, type LogFields, type LogLevel } from "./log.ts";

export interface ObservabilitySettings {
  /** One JSON line per finished request (default: true). */
  logRequests?: boolean;
  /** Least level written (default: info). Request lines are info, 4xx warn, 5xx error; probes and scrapes debug. */
  logLevel?: LogLevel;
  /** When set, GET /metrics needs `Authorization: Bearer <metricsToken>`. */
  metricsToken?: string;
  /** Where log lines go (default: console.log, i.e. stdout). */
  write?: (line: string) => void;
}

/** The app's parts whose numbers /metrics reads at scrape time (duck-typed: any of them may be absent). */
export interface ObservedParts {
  api?: { readonly running: number; readonly waiting?: number; readonly refused?: number };
  pool?: object;
  translator?: { readonly counters: Partial<Record<"computed" | "coalesced" | "hits", number>> };
}

/** Incoming ids kept as they are: what proxies and tracers send (UUIDs, hex, `Root=1-…`), nothing else. */
const SANE_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:=+/-]{0,127}$/;
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** Paths polled by machines: logged at debug level, so that the default level does not log every scrape. */
const QUIET_PATHS = new Set(["/metrics", "/healthz", "/readyz"]);
const MAX_LOGGED_PATH = 256;

interface RequestRecord {
  metrics: EdgeMetrics;
  fields: LogFields;
}

const records = new WeakMap<Context, RequestRecord>();

/**
 * Called by the decoding code when a generation ends (finished, failed or cancelled): counts it in the
 * app's metrics and adds its numbers to the request's log line. A no-op when the app is not observed.
 */
export function recordGeneration(c: Context, g: GenerationRecord): void {
  const rec = records.get(c);
  if (!rec) return;
  rec.metrics.recordGeneration(g);
  const f = rec.fields;
  const add = (k: string, v: number) => (f[k] = ((f[k] as number | undefined) ?? 0) + v);
  add("prompt_tokens", g.promptTokens);
  add("completion_tokens", g.completionTokens);
  f.finish_reason = g.finishReason ?? null;
  f.proposer = g.proposer;
  add("rounds", g.rounds);
  add("drafted_tokens", g.drafted);
  add("accepted_tokens", g.accepted);
  add("pool_generated_tokens", g.poolGeneratedTokens);
  add("target_passes", g.targetPasses);
}

/** The route pattern that answered (`/v1/models/:id`), or "unmatched": a bounded label, never raw paths. */
function routeOf(c: Context): string {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) if (routes[i].method !== "ALL") return routes[i].path;
  return "unmatched";
}

/** The body, passed through; `end(cancelled)` once, when it ends, fails or the client cancels it. */
function watchBody(body: ReadableStream<Uint8Array>, end: (cancelled: boolean) => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        end(true);
        ctl.error(e);
        return;
      }
      if (r.done) {
        end(false);
        ctl.close();
      } else ctl.enqueue(r.value);
    },
    async cancel(reason) {
      end(true);
      await reader.cancel(reason);
    },
  });
}

/**
 * Installs request ids, request logs and metrics on every route of `app`, and GET /metrics. Call it before
 * any route is added. Without settings (an app built in a test) requests are not logged.
 */
export function observe(app: Hono, settings: ObservabilitySettings | undefined, parts: ObservedParts = {}): EdgeMetrics {
  const sources: MetricSources = {
    generationsInFlight: parts.api ? () => parts.api!.running : undefined,
    generationsWaiting: parts.api ? () => parts.api!.waiting ?? 0 : undefined,
    admissionRefused: parts.api ? () => parts.api!.refused ?? 0 : undefined,
    poolCounters: () => (parts.pool as { counters?: Record<string, number> } | undefined)?.counters ?? {},
    translatorCounters: parts.translator ? () => parts.translator!.counters : undefined,
  };
  const metrics = new EdgeMetrics(sources);
  const logger = settings && settings.logRequests !== false ? createLogger({ level: settings.logLevel, write: settings.write }) : undefined;
  const token = settings?.metricsToken;

  app.use("*", async (c, next) => {
    const t0 = performance.now();
    // The client's connection: aborted when it goes away (kept before any middleware replaces c.req.raw).
    const clientGone = c.req.raw.signal;
    const incoming = c.req.header("x-request-id");
    const id = incoming && SANE_REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    const method = METHODS.has(c.req.method) ? c.req.method : "OTHER";
    const rec: RequestRecord = { metrics, fields: {} };
    records.set(c, rec);
    c.header("x-request-id", id);
    metrics.requestStarted();

    let finished = false;
    const finish = (status: number, stream: boolean, cancelled = false) => {
      if (finished) return;
      finished = true;
      const ms = performance.now() - t0;
      metrics.requestFinished(routeOf(c), method, status, ms / 1000);
      if (!logger) return;
      // The path only: a query string can hold text (GET /v1/translate?text=…).
      const path = c.req.path.length > MAX_LOGGED_PATH ? `${c.req.path.slice(0, MAX_LOGGED_PATH)}…` : c.req.path;
      const level: LogLevel = status >= 500 ? "error" : status >= 400 ? "warn" : QUIET_PATHS.has(c.req.path) ? "debug" : "info";
      logger.log(level, "request", {
        request_id: id,
        method,
        path,
        status,
        duration_ms: Math.round(ms * 10) / 10,
        stream,
        // A stream can also end "normally" after a disconnect: its handler saw the abort first and closed it.
        ...(cancelled || clientGone.aborted ? { cancelled: true } : {}),
        ...rec.fields,
      });
    };

    try {
      await next();
    } catch (e) {
      finish(500, false);
      throw e;
    }
    // Answers built outside the context (a middleware's HTTPException, e.g. a 401) lack the header set above.
    if (c.res.headers.get("x-request-id") !== id) {
      try {
        c.res.headers.set("x-request-id", id);
      } catch {
        c.res = new Response(c.res.body, c.res); // immutable headers (a fetched response): copy
        c.res.headers.set("x-request-id", id);
      }
    }
    const res = c.res;
    if (res.body && res.headers.get("content-type")?.startsWith("text/event-stream")) {
      c.res = new Response(
        watchBody(res.body, (cancelled) => finish(res.status, true, cancelled)),
        res,
      );
      return;
    }
    finish(res.status, false);
  });

  if (token) {
    const message = "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>.";
    app.get("/metrics", requireBearer([token], { missing: message, wrong: message, code: "invalid_metrics_token" }));
  }
  app.get("/metrics", (c) => c.body(metrics.render(), 200, { "Content-Type": metrics.contentType, "Cache-Control": "no-store" }));
  return metrics;
}
