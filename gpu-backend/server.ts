// HTTP face of the verifier (one Hono app; gpu-backend/main.ts runs it on Node). Verify rounds and
// session closes need the shared bearer token when one is configured; health probes never do.
import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { z } from "zod";
import { streamSSE } from "hono/streaming";
import { bodyLimit } from "hono/body-limit";
import { requireBearer } from "../src/common/bearer-auth.ts";
import { errorBody } from "../src/common/errors.ts";
import { issuePath } from "../src/common/zod-issues.ts";
import { GenerateRequestSchema, VerifyError, VerifyRequestSchema } from "../src/common/protocol.ts";
import { createVerifierMetrics } from "./verifier-metrics.ts";
import type { Verifier } from "./verifier.ts";

export interface VerifierAppOptions {
  /** Bearer tokens accepted on /v1/* (the current one, and one being retired); none: open (loopback only). */
  tokens?: readonly string[];
  maxBodyBytes: number;
  info: Record<string, unknown>;
  /** False while draining for shutdown: /readyz says so and new rounds get 503. */
  isReady: () => boolean;
}

/** 400 body naming the first schema violation. */
function schemaError(error: z.ZodError): ReturnType<typeof errorBody> {
  const issue = error.issues[0];
  const where = issuePath(issue.path);
  return errorBody(`${where || "(body)"}: ${issue.message}`, "invalid_request_error", "invalid_request", where || null);
}

function verifyErrorResponse(c: Context, e: VerifyError): Response {
  const body = errorBody(e.message, e.status >= 500 ? "server_error" : "invalid_request_error", e.code);
  return c.json(body, e.status as 400, e.status === 503 ? { "Retry-After": "1" } : {});
}

export function createVerifierApp(verifier: Verifier, o: VerifierAppOptions): Hono {
  const app = new Hono();
  const metrics = createVerifierMetrics(verifier);
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/metrics", async (c) => c.text(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType }));
  app.get("/readyz", (c) => (o.isReady() ? c.json({ status: "ready" }) : c.json({ status: "draining" }, 503)));

  // Counted on arrival, before auth and parsing: when a node gets traffic again after a restart.
  const counted = new Set(["/v1/verify", "/v1/generate"]);
  app.use("/v1/*", async (c, next) => {
    if (c.req.method === "POST" && counted.has(c.req.path)) metrics.requests.inc({ route: c.req.path });
    await next();
  });
  if (o.tokens?.length) app.use("/v1/*", requireBearer(o.tokens, { missing: "missing bearer token", wrong: "wrong bearer token", code: "unauthorized" }));
  app.get("/v1/info", (c) => c.json({ ...o.info, sessions: verifier.sessions.stats() }));

  app.post(
    "/v1/verify",
    bodyLimit({
      maxSize: o.maxBodyBytes,
      onError: (c) => c.json(errorBody(`request body over ${o.maxBodyBytes} bytes`, "invalid_request_error", "context_too_long"), 413),
    }),
    async (c) => {
      if (!o.isReady()) return c.json(errorBody("verifier is draining", "server_error", "overloaded"), 503, { "Retry-After": "1" });
      const raw = await c.req.json().catch(() => undefined);
      if (raw === undefined) return c.json(errorBody("body must be JSON", "invalid_request_error", "invalid_request"), 400);
      const parsed = VerifyRequestSchema.safeParse(raw);
      if (!parsed.success) return c.json(schemaError(parsed.error), 400);
      const end = metrics.roundSeconds.startTimer();
      try {
        // The client's abort reaches the round: a session opened for a client gone is not kept.
        const res = await verifier.round(parsed.data, c.req.raw.signal);
        end();
        return c.json(res);
      } catch (e) {
        if (e instanceof VerifyError) return verifyErrorResponse(c, e);
        throw e;
      }
    },
  );

  app.post("/v1/generate", bodyLimit({ maxSize: o.maxBodyBytes }), async (c) => {
    if (!o.isReady()) return c.json(errorBody("verifier is draining", "server_error", "overloaded"), 503, { "Retry-After": "1" });
    const parsed = GenerateRequestSchema.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) return c.json(schemaError(parsed.error), 400);
    const events = verifier.generate(parsed.data, c.req.raw.signal);
    // Pull the first event before answering, so that a refused request is a 4xx, not a broken stream.
    let first: IteratorResult<unknown>;
    try {
      first = await events.next();
    } catch (e) {
      if (e instanceof VerifyError) return verifyErrorResponse(c, e);
      throw e;
    }
    // The client is already gone (it went during the first pass): no stream to start.
    if (c.req.raw.signal.aborted) {
      await events.return(undefined);
      return c.body(null, 204);
    }
    return streamSSE(c, async (sse) => {
      sse.onAbort(() => void events.return(undefined));
      try {
        if (!first.done) await sse.writeSSE({ data: JSON.stringify(first.value) });
        for await (const ev of events) await sse.writeSSE({ data: JSON.stringify(ev) });
      } catch (e) {
        // Headers are sent: a failure mid-stream becomes a last event the edge can act on.
        const known = e instanceof VerifyError;
        if (!known) console.error(e);
        await sse.writeSSE({ event: "error", data: JSON.stringify(errorBody(known ? e.message : "internal error", "server_error", known ? e.code : "internal")) });
      }
    });
  });

  // A session whose round is in flight is closed too (204): that round is answered, then its cache freed.
  app.delete("/v1/sessions/:id", (c) => (verifier.close(c.req.param("id")) ? c.body(null, 204) : c.json(errorBody("no such session", "invalid_request_error", "session_not_found"), 404)));

  app.notFound((c) => c.json(errorBody(`no route ${c.req.method} ${c.req.path}`, "invalid_request_error", "not_found"), 404));
  app.onError((e, c) => {
    if (e instanceof HTTPException) return e.getResponse();
    console.error(e);
    return c.json(errorBody("internal error", "server_error", "internal"), 500);
  });
  return app;
}
