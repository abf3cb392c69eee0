// Human-readable zod validation errors: every message names where the problem is.
import type { z } from "zod";

/** A path as a reader writes it: `messages[0].content`. */
export function issuePath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i ? "." : ""}${String(p)}`)).join("");
}

/** All issues, `path: message` joined by "; " (`(root)` for the value itself). */
export function describeZodIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${issuePath(i.path) || "(root)"}: ${i.message}`).join("; ");
}
