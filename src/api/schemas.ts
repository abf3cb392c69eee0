// OpenAI request bodies for /v1/completions and /v1/chat/completions (zod): the fields OpenAI defines,
// validated with its ranges. Fields OpenAI has but alia-edge does not serve (n > 1, tools, logprobs, …)
// are refused by name rather than ignored; unknown fields are refused like OpenAI does.
import { z } from "zod";
import { issuePath } from "../shared/zod-issues.ts";

const Stop = z.union([z.string().min(1).max(256), z.array(z.string().min(1).max(256)).max(4)]).nullable();

const StreamOptions = z.strictObject({ include_usage: z.boolean().optional() }).nullable();

/** Sampling and limits common to both endpoints. */
const common = {
  model: z.string().min(1).max(256),
  max_tokens: z.number().int().min(1).max(1_000_000).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional(),
  stop: Stop.optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: StreamOptions.optional(),
  user: z.string().max(256).optional(),
  // Accepted only with the values that mean "off" (what alia-edge does); anything else is refused by name.
  n: z.literal(1, "only n = 1 is supported").nullable().optional(),
  presence_penalty: z.literal(0, "presence_penalty is not supported (only 0)").nullable().optional(),
  frequency_penalty: z.literal(0, "frequency_penalty is not supported (only 0)").nullable().optional(),
  logit_bias: z.null("logit_bias is not supported").optional(),
  logprobs: z.union([z.literal(false), z.null()], "logprobs are not supported").optional(),
};

export const CompletionRequestSchema = z.strictObject({
  ...common,
  prompt: z.union([z.string().max(1_000_000), z.array(z.string().max(1_000_000)).length(1, "only one prompt per request is supported")]),
  echo: z.literal(false, "echo is not supported").nullable().optional(),
  best_of: z.literal(1, "only best_of = 1 is supported").nullable().optional(),
  suffix: z.null("suffix is not supported").optional(),
});
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

const TextPart = z.strictObject({ type: z.literal("text"), text: z.string().max(1_000_000) });
const Message = z.strictObject({
  role: z.enum(["system", "developer", "user", "assistant"]),
  content: z.union([z.string().max(1_000_000), z.array(TextPart).min(1)]),
  name: z.string().max(64).optional(),
});

export const ChatRequestSchema = z.strictObject({
  ...common,
  messages: z.array(Message).min(1).max(1024),
  max_completion_tokens: z.number().int().min(1).max(1_000_000).nullable().optional(),
  top_logprobs: z.null("top_logprobs is not supported").optional(),
  response_format: z.strictObject({ type: z.literal("text", "only response_format {type: text} is supported") }).optional(),
  tools: z.array(z.unknown()).max(0, "tools are not supported").optional(),
  tool_choice: z.literal("none", "tools are not supported").optional(),
  parallel_tool_calls: z.unknown().optional(),
  store: z.literal(false, "store is not supported").nullable().optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
});
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

/** Plain text of a chat message (text parts joined). */
export function messageText(content: z.infer<typeof Message>["content"]): string {
  return typeof content === "string" ? content : content.map((p) => p.text).join("");
}

/** OpenAI-style 400 body naming the offending parameter. */
export function describeIssue(error: z.ZodError): { message: string; param: string | null } {
  const issue = error.issues[0];
  if (issue.code === "unrecognized_keys") return { message: `Unrecognized request argument supplied: ${issue.keys.join(", ")}`, param: issue.keys[0] ?? null };
  const param = issuePath(issue.path) || null;
  return { message: param ? `${param}: ${issue.message}` : issue.message, param };
}
