// Bearer-token checks for the edge's API keys, the verifier's pool token and the metrics token: Hono's
// bearer-auth (constant-time comparison) with OpenAI-shaped 401 bodies, so clients see typed errors.
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { errorBody } from "./errors.ts";

/** What a bearer token may contain (RFC 6750's b64token); a configured token outside it could never match. */
export const BEARER_TOKEN = /^[A-Za-z0-9._~+/-]+=*$/;
export const BEARER_TOKEN_HINT = "letters, digits and . _ ~ + / - (optionally = at the end)";

export interface BearerMessages {
  /** No Authorization header. */
  missing: string;
  /** A header that is not `Bearer <token>`, or a token that is not accepted. */
  wrong: string;
  /** The error `code` in the body. */
  code: string;
}

export function requireBearer(tokens: readonly string[], m: BearerMessages): MiddlewareHandler {
  const reply = (message: string) => () => new Response(JSON.stringify(errorBody(message, "authentication_error", m.code)), { status: 401, headers: { "content-type": "application/json" } });
  return bearerAuth({
    token: [...tokens],
    noAuthenticationHeader: { message: reply(m.missing) },
    // A malformed header is a wrong key too: 401 (as OpenAI answers), not bearer-auth's default 400.
    invalidAuthenticationHeader: { message: reply(m.wrong) },
    invalidToken: { message: reply(m.wrong) },
  });
}

/** The bearer token a request carries ("" without one): whose request it is (the API key, once checked). */
export const bearerTokenOf = (c: Context): string => c.req.header("authorization")?.replace(/^Bearer\s+/i, "") ?? "";
