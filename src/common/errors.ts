// Error bodies in OpenAI's shape, so that OpenAI clients surface them as typed errors.
export type ErrorType = "invalid_request_error" | "authentication_error" | "permission_error" | "insufficient_quota" | "rate_limit_error" | "server_error";

export interface ErrorBody {
  /** `limit_source`: on 402 insufficient_quota, whose budget refused (OpenRouter's field). */
  error: { message: string; type: ErrorType; param: string | null; code: string | null; limit_source?: "key" | "org" };
}

export function errorBody(message: string, type: ErrorType, code: string | null = null, param: string | null = null): ErrorBody {
  return { error: { message, type, param, code } };
}

/** 503 when no verifier can serve: clients retry after `Retry-After`; internal addresses stay in the logs. */
export const UNAVAILABLE = {
  body: errorBody("the model is temporarily unavailable; retry shortly", "server_error", "service_unavailable"),
  headers: { "Retry-After": "2" },
} as const;
