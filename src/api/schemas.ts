// The public API's bodies as zod schemas: OpenAI request bodies for /v1/completions and
// /v1/chat/completions (validated with OpenAI's ranges), and every response body the API sends (models,
// completions, chat completions, their streamed chunks, translations, translation statistics, errors).
// Handlers type the bodies they build with these schemas' types, and /openapi.json is generated from them.
//
// Refusals say what is wrong and what is allowed: every schema carries its own message (the value it got
// and what it accepts), unions are reported through the branch the value fits, and fields OpenAI has but
// alia-edge does not serve (tools, penalties, …) are refused by name rather than ignored; unknown
// fields are refused like OpenAI does.
import { z } from "zod";
import type { ErrorBody } from "../common/errors.ts";
import { issuePath } from "../common/zod-issues.ts";
import { LANGUAGES } from "../translate/languages.ts";
import { DEFAULT_EXPIRES_IN_S, MAX_EXPIRES_IN_S } from "../billing/signed-url.ts";
import { PROPOSER_KINDS } from "../speculative/proposer.ts";

// ---------------------------------------------------------------------------------------------------
// Messages

/** How a refusal names the value it got: `the number 5`, `the string "abc"`, `an array of 5 items`, `null`. */
export function got(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return v.length ? `an array of ${v.length} item${v.length === 1 ? "" : "s"}` : "an empty array";
  switch (typeof v) {
    case "string":
      return v.length > 40 ? `a string of ${v.length} characters` : `the string ${JSON.stringify(v)}`;
    case "number":
      return `the number ${v}`;
    case "boolean":
      return `the boolean ${v}`;
    case "object":
      return "an object";
    default:
      return typeof v;
  }
}

/** The issue shape an error function sees (zod passes the offending input). */
type Raw = { input?: unknown; code?: string };
type ErrorFn = (iss: Raw) => string;
const err = (fn: ErrorFn) => ({ error: fn });
/** `missing; expected X` or `expected X, got Y`. */
const expecting =
  (what: string): ErrorFn =>
  (iss) =>
    iss.input === undefined ? `missing; expected ${what}` : `expected ${what}, got ${got(iss.input)}`;
const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
const count = (v: unknown) => (Array.isArray(v) || typeof v === "string" ? v.length : 0);

/** A string of at most `max` characters (and at least `min`). */
function text(max: number, what = "a string", min = 0) {
  const s = z.string(err(expecting(what))).max(
    max,
    err((iss) => `at most ${plural(max, "character")} (got ${count(iss.input)})`),
  );
  if (!min) return s;
  return s.min(
    min,
    err((iss) => (min === 1 ? "must not be empty" : `at least ${plural(min, "character")} (got ${count(iss.input)})`)),
  );
}

/** An integer in [min, max]; every refusal states the range. */
function integer(min: number, max: number) {
  const e = err(expecting(`an integer from ${min} to ${max}`));
  return z.number(e).int(e).min(min, e).max(max, e);
}

/** A number in [min, max] (or (min, max] with `exclusiveMin`). */
function number(min: number, max: number, exclusiveMin = false) {
  const e = err(expecting(exclusiveMin ? `a number greater than ${min} and at most ${max}` : `a number from ${min} to ${max}`));
  return (exclusiveMin ? z.number(e).gt(min, e) : z.number(e).min(min, e)).max(max, e);
}

/** A strict object (`what`: how a refusal names it) whose refusals name unknown fields and list the allowed ones. */
function object<S extends z.core.$ZodLooseShape>(shape: S, what: string) {
  const fields = Object.keys(shape).join(", ");
  return z.strictObject(shape, {
    error: (iss: Raw & { keys?: string[] }) =>
      iss.code === "unrecognized_keys" ? `unknown field${iss.keys!.length === 1 ? "" : "s"} ${iss.keys!.map((k) => `'${k}'`).join(", ")} (allowed: ${fields})` : expecting(what)(iss),
  });
}

/** A field OpenAI defines that alia-edge only accepts with the value that means "off". */
const notServed = (allowed: string) => err((iss) => `not supported by alia-edge: only ${allowed} is accepted, got ${got(iss.input)}`);

// ---------------------------------------------------------------------------------------------------
// Requests

const StopString = text(256, "a string").min(1, "a stop sequence must not be empty");
const Stop = z
  .union(
    [
      StopString,
      z.array(StopString, err(expecting("an array of strings"))).max(
        4,
        err((iss) => `at most 4 stop sequences (got ${count(iss.input)})`),
      ),
    ],
    err(expecting("a string or an array of up to 4 strings")),
  )
  .nullable()
  .meta({ description: "Up to 4 sequences where generation stops; the returned text does not contain them." });

/** Most choices per request (n). */
export const MAX_CHOICES = 8;
/** Most alternatives per token (top_logprobs; completions' logprobs). */
export const MAX_TOP_LOGPROBS = 20;

const JsonSchemaFormat = object(
  {
    name: z.string(err(expecting("a string"))).regex(/^[A-Za-z0-9_-]{1,64}$/, "1 to 64 letters, digits, '_' or '-'"),
    description: text(4096).optional(),
    schema: z
      .record(z.string(), z.unknown(), err(expecting("a JSON schema (an object)")))
      .optional()
      .meta({ description: "A JSON schema the output must validate against; absent: any JSON object." }),
    strict: z
      .boolean(err(expecting("a boolean")))
      .nullable()
      .optional(),
  },
  'an object {"name", "schema", "strict"}',
);
const ResponseFormat = z
  .discriminatedUnion(
    "type",
    [
      object({ type: z.literal("text") }, 'an object {"type": "text"}'),
      object({ type: z.literal("json_object") }, 'an object {"type": "json_object"}'),
      object({ type: z.literal("json_schema"), json_schema: JsonSchemaFormat }, 'an object {"type": "json_schema", "json_schema": {…}}'),
    ],
    {
      error: (iss: Raw) => {
        const t = (iss.input as { type?: unknown } | undefined)?.type;
        return typeof iss.input !== "object" || iss.input === null ? expecting('an object {"type": "text" | "json_object" | "json_schema"}')(iss) : `type must be "text", "json_object" or "json_schema", got ${got(t)}`;
      },
    },
  )
  .meta({ description: "json_object: the output is a JSON object; json_schema: JSON that validates against the schema (constrained decoding: exact under speculation)." });

const StreamOptions = object({ include_usage: z.boolean(err(expecting("a boolean"))).optional() }, 'an object {"include_usage": boolean}').nullable();

/** Sampling and limits common to both endpoints. */
const common = {
  model: text(256, "a string (the model id from GET /v1/models)", 1),
  max_tokens: integer(1, 1_000_000).nullable().optional(),
  temperature: number(0, 2).nullable().optional().meta({ description: "Default 1; 0 is greedy decoding." }),
  top_p: number(0, 1, true).nullable().optional(),
  seed: integer(0, Number.MAX_SAFE_INTEGER).nullable().optional().meta({ description: "The same seed gives the same text again." }),
  stop: Stop.optional(),
  stream: z
    .boolean(err(expecting("a boolean")))
    .nullable()
    .optional(),
  stream_options: StreamOptions.optional(),
  user: text(256).optional(),
  n: integer(1, MAX_CHOICES)
    .nullable()
    .optional()
    .meta({ description: `Choices to generate (1 to ${MAX_CHOICES}), each with its own seed derived from \`seed\`; usage counts the prompt once and every choice's tokens.` }),
  response_format: ResponseFormat.optional(),
  // Accepted only with the values that mean "off" (what alia-edge does); anything else is refused by name.
  presence_penalty: z.literal(0, notServed("0")).nullable().optional(),
  frequency_penalty: z.literal(0, notServed("0")).nullable().optional(),
  logit_bias: z.null(notServed("null")).optional(),
};

/** One token id; the vocabulary bound is the served model's, checked when the prompt is built. */
const TOKEN_ID = "a token id (an integer from 0 to the vocabulary size - 1)";
const tokenIdError = err(expecting(TOKEN_ID));
const TokenId = z.int(tokenIdError).min(0, tokenIdError);
const MAX_PROMPT = 1_000_000;
const TokenIds = z
  .array(TokenId)
  .min(1, "an empty array of token ids")
  .max(
    MAX_PROMPT,
    err((iss) => `at most ${MAX_PROMPT} token ids (got ${count(iss.input)})`),
  );
const MULTIPLE_PROMPTS = (n: number) => `alia-edge generates one prompt per request (got ${n} prompts); send ${n} requests`;

/**
 * What is wrong with a `prompt` the schema refused (the union alone cannot tell which shape was meant). A
 * message about an element starts with its index (`[1]: …`), which `describeIssue` moves into the path.
 */
function promptProblem(p: unknown): string {
  const shapes = "a string, an array of token ids, or an array holding one string or one array of token ids";
  if (!Array.isArray(p)) return expecting(shapes)({ input: p });
  if (p.length === 0) return "the prompt is an empty array; send a string or a non-empty array of token ids";
  const ids = (a: unknown[], at: string) => {
    if (a.length === 0) return `${at}: an empty array of token ids`;
    if (a.length > MAX_PROMPT) return `${at}: at most ${MAX_PROMPT} token ids (got ${a.length})`;
    const i = a.findIndex((x) => !(typeof x === "number" && Number.isSafeInteger(x) && x >= 0));
    return `${at}[${i}]: ${expecting(TOKEN_ID)({ input: a[i] })}`;
  };
  const all = (kind: string) => p.every((x) => (kind === "array" ? Array.isArray(x) : typeof x === kind));
  if (all("string")) return p.length > 1 ? MULTIPLE_PROMPTS(p.length) : `[0]: at most ${MAX_PROMPT} characters (got ${(p[0] as string).length})`;
  if (all("number")) return ids(p, "").replace(/^: /, "");
  if (all("array")) return p.length > 1 ? MULTIPLE_PROMPTS(p.length) : ids(p[0] as unknown[], "[0]");
  const kinds = [...new Set(p.map((x) => (Array.isArray(x) ? "arrays" : x === null ? "null" : `${typeof x}s`)))].join(" and ");
  return `an array prompt holds strings only, token ids only, or arrays of token ids only; got ${kinds}`;
}

const Prompt = z.union([text(MAX_PROMPT), z.array(text(MAX_PROMPT)).length(1), TokenIds, z.array(TokenIds).length(1)], { error: (iss) => promptProblem(iss.input) }).meta({
  description:
    "A string; or token ids (integers from 0 to the vocabulary size - 1, used as they are: no BOS token is added); or an array holding exactly one of those. alia-edge generates one prompt per request: an array of several prompts is refused (send one request per prompt).",
});

export const CompletionRequestSchema = z.strictObject(
  {
    ...common,
    prompt: Prompt,
    logprobs: integer(0, MAX_TOP_LOGPROBS)
      .nullable()
      .optional()
      .meta({ description: `Return the log-probs of the output tokens and of this many most likely alternatives (0 to ${MAX_TOP_LOGPROBS}).` }),
    echo: z.literal(false, notServed("false")).nullable().optional(),
    best_of: z.literal(1, notServed("1")).nullable().optional(),
    suffix: z.null(notServed("null")).optional(),
  },
  err(expecting("a JSON object (the request body)")),
);
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

/** The one prompt of a validated completion request: its text, or its token ids and where they are in `prompt`. */
export function promptOf(prompt: CompletionRequest["prompt"]): { text: string } | { ids: number[]; at: string } {
  if (typeof prompt === "string") return { text: prompt };
  const [first] = prompt;
  if (typeof first === "string") return { text: first };
  return typeof first === "number" ? { ids: prompt as number[], at: "prompt" } : { ids: first, at: "prompt[0]" };
}

/** The size of a tokenizer's vocabulary (token ids are in [0, size): its largest id + 1), computed once per tokenizer. */
const vocabSizes = new WeakMap<object, number>();
export function vocabularySize(tokenizer: { vocab(): Map<string, number> }): number {
  let n = vocabSizes.get(tokenizer);
  if (n === undefined) {
    n = 0;
    for (const id of tokenizer.vocab().values()) n = Math.max(n, id + 1);
    vocabSizes.set(tokenizer, n);
  }
  return n;
}

/** The refusal of token ids outside [0, vocabSize) (message and param), or undefined when all are in it. */
export function tokenIdProblem(ids: readonly number[], vocabSize: number, at = "prompt"): { message: string; param: string } | undefined {
  const i = ids.findIndex((id) => id >= vocabSize);
  if (i === -1) return undefined;
  const param = `${at}[${i}]`;
  return { message: `${param}: token id ${ids[i]} is outside the vocabulary; token ids are integers from 0 to ${vocabSize - 1}`, param };
}

const ROLES = ["system", "developer", "user", "assistant"] as const;
const TextPart = object({ type: z.literal("text"), text: text(1_000_000) }, "a text part");
const ContentPart = z.discriminatedUnion("type", [TextPart], {
  error: (iss: Raw) => {
    const part = iss.input;
    if (typeof part !== "object" || part === null || Array.isArray(part)) return `expected a content part {"type": "text", "text": …}, got ${got(part)}`;
    const type = (part as { type?: unknown }).type;
    if (type === undefined) return `a content part needs a type; alia-edge accepts text parts only ({"type": "text", "text": …})`;
    return `content parts of type ${typeof type === "string" ? `'${type}'` : got(type)} are not supported; alia-edge accepts text parts only`;
  },
});
const Message = object(
  {
    role: z.enum(ROLES, {
      error: (iss: Raw) =>
        iss.input === undefined
          ? `missing; expected one of ${ROLES.join(", ")}`
          : iss.input === "tool" || iss.input === "function"
            ? `role '${iss.input}' is not supported (alia-edge serves no tools); roles are ${ROLES.join(", ")}`
            : `expected one of ${ROLES.join(", ")}, got ${got(iss.input)}`,
    }),
    content: z.union(
      [
        text(1_000_000),
        z
          .array(ContentPart, err(expecting("an array of text parts")))
          .min(1, "the array of content parts is empty; send at least one text part")
          .max(
            1024,
            err((iss) => `at most 1024 content parts (got ${count(iss.input)}); join the texts`),
          ),
      ],
      err(expecting(`a string or an array of text parts ({"type": "text", "text": …})`)),
    ),
    name: text(64).optional(),
  },
  "a message",
);

export const ChatRequestSchema = z.strictObject(
  {
    ...common,
    messages: z
      .array(Message, err(expecting("an array of messages")))
      .min(1, "at least one message is required")
      .max(
        1024,
        err((iss) => `at most 1024 messages (got ${count(iss.input)})`),
      ),
    max_completion_tokens: integer(1, 1_000_000).nullable().optional(),
    logprobs: z
      .boolean(err(expecting("a boolean")))
      .nullable()
      .optional()
      .meta({ description: "Return the target's log-prob of each output token." }),
    top_logprobs: integer(0, MAX_TOP_LOGPROBS)
      .nullable()
      .optional()
      .meta({ description: `With logprobs: this many most likely alternatives per token (0 to ${MAX_TOP_LOGPROBS}).` }),
    tools: z
      .array(z.unknown(), err(expecting("an array")))
      .max(
        0,
        err((iss) => `not supported: the model's chat template has no tool calling, so alia-edge calls no tools (got ${plural(count(iss.input), "tool")}); send none`),
      )
      .optional(),
    tool_choice: z
      .literal(
        "none",
        err((iss) => `tools are not supported: only "none" is accepted, got ${got(iss.input)}`),
      )
      .optional(),
    parallel_tool_calls: z
      .boolean(err(expecting("a boolean")))
      .nullable()
      .optional(),
    store: z.literal(false, notServed("false")).nullable().optional(),
    // OpenAI's bounds: 16 pairs, keys of 64 and values of 512 characters.
    metadata: z
      .record(text(64, "a string"), text(512, "a string"), err(expecting("an object of up to 16 string values")))
      .refine((m) => Object.keys(m).length <= 16, { error: (iss) => `at most 16 key-value pairs (got ${Object.keys(iss.input as object).length})` })
      .nullable()
      .optional(),
  },
  err(expecting("a JSON object (the request body)")),
);
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

/** Plain text of a chat message (text parts joined). */
export function messageText(content: z.infer<typeof Message>["content"]): string {
  return typeof content === "string" ? content : content.map((p) => p.text).join("");
}

// ---------------------------------------------------------------------------------------------------
// Responses (strict: a field the schemas do not document is a bug the API tests catch)

export const ModelSchema = z.strictObject({
  id: z.string(),
  object: z.literal("model"),
  created: z.int().meta({ description: "Unix seconds: when the target bundle was created." }),
  owned_by: z.string(),
  bundle: z.string().optional().meta({ description: "The served target bundle (id@version); in the model list." }),
  draft_bundle: z.string().optional().meta({ description: "The draft bundle (id@version) that drafts for it at the edge; in the model list." }),
});
export type Model = z.infer<typeof ModelSchema>;

export const ModelListSchema = z.strictObject({ object: z.literal("list"), data: z.array(ModelSchema) });
export type ModelList = z.infer<typeof ModelListSchema>;

export const FinishReasonSchema = z.enum(["stop", "length"]).meta({ description: "stop: EOS or a stop sequence; length: max tokens or the context." });

/** What a request cost, in euros (pay-per-request keys only): the charge, and what it would have been without speculation. */
export const UsageCostSchema = z.strictObject({
  currency: z.literal("EUR"),
  total: z.number().min(0),
  input: z.number().min(0),
  output: z.number().min(0),
  without_speculation: z.number().min(0),
  saving: z.number().min(0),
});
export const UsageSchema = z.strictObject({
  prompt_tokens: z.int().min(0),
  completion_tokens: z.int().min(0),
  total_tokens: z.int().min(0),
  cost: UsageCostSchema.optional().meta({ description: "With a pay-per-request key: the request's cost in euros and the saving from speculation (docs/BILLING.md)" }),
});
export type Usage = z.infer<typeof UsageSchema>;

const count0 = () => z.int().min(0);
const ms = () => z.number().min(0);
export const AliaSpeculationSchema = z
  .strictObject({
    rounds: count0(),
    drafted_tokens: count0(),
    accepted_tokens: count0(),
    acceptance_rate: z.number().min(0).max(1).nullable().meta({ description: "accepted / drafted tokens; null when nothing was drafted." }),
    tokens_per_round: z.number().min(0).nullable().meta({ description: "τ: tokens committed per target pass in speculative rounds; null without rounds." }),
    pool_generated_tokens: count0().meta({ description: "Tokens the pool generated itself (γ = 0, or within a round until a broken copy could resume)." }),
    resumed_tokens: count0().meta({ description: "Of pool_generated_tokens, those generated within a round after a copy (suffix match) broke, until it could resume." }),
    follow_passes: count0().meta({ description: "Of rounds, verify passes a round ran on its own after its copy resumed, following the copied text (no round trip of their own)." }),
    target_passes: count0(),
    target_passes_saved: count0().meta({ description: "Completion tokens minus target passes." }),
    draft_ms: ms(),
    verify_ms: ms(),
    network_ms: ms(),
    by_proposer: z
      .record(z.string(), z.strictObject({ rounds: count0(), drafted_tokens: count0(), accepted_tokens: count0() }))
      .meta({ description: "Rounds, drafted and accepted tokens per drafter (`model`, `suffix`; both when the hybrid drafted)." }),
  })
  .meta({ description: "alia-edge's extension: speculation statistics of the request." });
export type AliaSpeculation = z.infer<typeof AliaSpeculationSchema>;

const responseBase = {
  id: z.string(),
  created: z.int().meta({ description: "Unix seconds." }),
  model: z.string(),
  system_fingerprint: z.string().meta({ description: "The target and draft bundles (target@version+draft@version)." }),
};

const TopLogprob = z.strictObject({
  token: z.string(),
  logprob: z.number(),
  bytes: z.array(z.int().min(0).max(255)).nullable().meta({ description: "The token's UTF-8 bytes (a token may hold part of a character)." }),
});
export const ChatLogprobsSchema = z
  .strictObject({
    content: z.array(TopLogprob.extend({ top_logprobs: z.array(TopLogprob) })).nullable(),
    refusal: z.null(),
  })
  .meta({ description: "The target's log-prob of each output token (ln p at temperature 1, before any response_format mask) and its top_logprobs most likely alternatives." });
export type ChatLogprobs = z.infer<typeof ChatLogprobsSchema>;
export const CompletionLogprobsSchema = z
  .strictObject({
    tokens: z.array(z.string()),
    token_logprobs: z.array(z.number().nullable()),
    top_logprobs: z.array(z.record(z.string(), z.number())).nullable(),
    text_offset: z.array(z.int().min(0)),
  })
  .meta({ description: "The target's log-prob of each output token and its most likely alternatives (legacy completions shape)." });
export type CompletionLogprobs = z.infer<typeof CompletionLogprobsSchema>;

export const CompletionSchema = z.strictObject({
  ...responseBase,
  object: z.literal("text_completion"),
  choices: z.array(z.strictObject({ index: z.int().min(0), text: z.string(), logprobs: CompletionLogprobsSchema.nullable(), finish_reason: FinishReasonSchema })),
  usage: UsageSchema,
  alia_speculation: AliaSpeculationSchema,
});
export type Completion = z.infer<typeof CompletionSchema>;

export const ChatCompletionSchema = z.strictObject({
  ...responseBase,
  object: z.literal("chat.completion"),
  choices: z.array(
    z.strictObject({
      index: z.int().min(0),
      message: z.strictObject({ role: z.literal("assistant"), content: z.string(), refusal: z.null() }),
      logprobs: ChatLogprobsSchema.nullable(),
      finish_reason: FinishReasonSchema,
    }),
  ),
  usage: UsageSchema,
  alia_speculation: AliaSpeculationSchema,
});
export type ChatCompletion = z.infer<typeof ChatCompletionSchema>;

const chunkTail = {
  usage: UsageSchema.nullable().optional().meta({ description: "With stream_options.include_usage: null on every chunk but the last, which has no choices and the usage." }),
  alia_speculation: AliaSpeculationSchema.optional().meta({ description: "On the last chunk before [DONE]: the usage chunk with stream_options.include_usage, else the chunk with the finish_reason." }),
};

export const CompletionChunkSchema = z
  .strictObject({
    ...responseBase,
    object: z.literal("text_completion"),
    choices: z.array(z.strictObject({ index: z.int().min(0), text: z.string(), logprobs: CompletionLogprobsSchema.nullable(), finish_reason: FinishReasonSchema.nullable() })),
    ...chunkTail,
  })
  .meta({ description: "One `data:` event of a streamed completion." });
export type CompletionChunk = z.infer<typeof CompletionChunkSchema>;

export const ChatCompletionChunkSchema = z
  .strictObject({
    ...responseBase,
    object: z.literal("chat.completion.chunk"),
    choices: z.array(
      z.strictObject({
        index: z.int().min(0),
        delta: z.strictObject({ role: z.literal("assistant").optional(), content: z.string().optional() }),
        logprobs: ChatLogprobsSchema.nullable(),
        finish_reason: FinishReasonSchema.nullable(),
      }),
    ),
    ...chunkTail,
  })
  .meta({ description: "One `data:` event of a streamed chat completion (the first carries the role)." });
export type ChatCompletionChunk = z.infer<typeof ChatCompletionChunkSchema>;

export const LanguageSchema = z.enum(Object.keys(LANGUAGES) as [string, ...string[]]).meta({ description: "A language code." });

export const TranslationSchema = z.strictObject({ translation: z.string(), source: LanguageSchema, target: LanguageSchema });
export type Translation = z.infer<typeof TranslationSchema>;

export const TranslationBatchSchema = z.strictObject({ translations: z.array(z.string()).meta({ description: "In the order of the texts." }), source: LanguageSchema, target: LanguageSchema });
export type TranslationBatch = z.infer<typeof TranslationBatchSchema>;

/** POST /v1/translate/sign: the translation a signed URL is made for (the parameters of GET /v1/translate), and its life. */
export const SignTranslationRequestSchema = z
  .strictObject({
    text: z.string().meta({ description: "The text (one; a batch has no GET form)." }),
    source: z.string().min(1).max(32).meta({ description: "The language of the text (required: alia-edge does not guess)." }),
    target: z.string().min(1).max(32).meta({ description: "The language to translate into." }),
    expires_in: z
      .int()
      .min(1)
      .max(MAX_EXPIRES_IN_S)
      .default(DEFAULT_EXPIRES_IN_S)
      .meta({ description: `Seconds the URL stays valid (and cacheable): 1 to ${MAX_EXPIRES_IN_S} (30 days); default ${DEFAULT_EXPIRES_IN_S}.` }),
  })
  .meta({ description: "A translation to sign a public URL for; its key pays for it." });

export const SignedTranslationUrlSchema = z
  .strictObject({
    object: z.literal("translate.signed_url"),
    url: z.string().meta({ description: "Path and query (`/v1/translate?exp=…&kid=…&sig=…&source=…&target=…&text=…`), to be used exactly as it is: put the edge's public origin (or its CDN's) in front." }),
    expires_at: z.int().meta({ description: "Unix seconds after which the URL is refused; caches keep its answer no longer." }),
    key_id: z.string().meta({ description: "The key that pays (`kid` in the URL)." }),
  })
  .meta({ description: "A signed translation URL: anyone may fetch it without a key, and any CDN may cache the answer, until expires_at." });
export type SignedTranslationUrl = z.infer<typeof SignedTranslationUrlSchema>;

export const TranslateStatsSchema = z
  .strictObject({
    computed: count0().meta({ description: "Sentences translated by the model." }),
    coalesced: count0().meta({ description: "Requests for a sentence that joined its computation already in flight." }),
    hits: count0().meta({ description: "Sentences served from a cache tier." }),
    tier_errors: z.record(z.string(), count0()).meta({ description: "Errors each cache tier swallowed (a failing tier is a miss)." }),
  })
  .meta({ description: "Counters since the process started." });
export type TranslateStats = z.infer<typeof TranslateStatsSchema>;

export const HealthSchema = z.strictObject({ status: z.literal("ok") });
export type Health = z.infer<typeof HealthSchema>;

export const ReadySchema = z.strictObject({
  status: z.literal("ready"),
  model: z.string().meta({ description: "The served model id." }),
  bundle: z.string().meta({ description: "The target bundle (id@version)." }),
  proposer: z.enum(PROPOSER_KINDS).meta({ description: "Who drafts: the draft model, or suffix matching (no model)." }),
  draft: z
    .strictObject({
      id: z.string(),
      version: z.string(),
      vocab: z.int().min(1).meta({ description: "The draft model's vocabulary rows." }),
      layers: z.int().min(1),
      trimmed_from: z.int().min(1).optional().meta({ description: "A trimmed draft vocabulary: the target's vocabulary size its rows are a subset of (plus one fallback row)." }),
    })
    .optional()
    .meta({ description: "The draft bundle and its model (absent when drafting needs no model)." }),
});
export type Ready = z.infer<typeof ReadySchema>;

export const ErrorResponseSchema = z
  .strictObject({
    error: z.strictObject({
      message: z.string(),
      type: z.enum(["invalid_request_error", "authentication_error", "permission_error", "insufficient_quota", "rate_limit_error", "server_error"]),
      param: z.string().nullable().meta({ description: "The request parameter at fault, when there is one." }),
      code: z.string().nullable(),
      limit_source: z.enum(["key", "org"]).optional().meta({ description: "402 insufficient_quota: whose budget refused the request" }),
    }),
  })
  .meta({ description: "OpenAI's error shape; in a stream that already started, the last event." });
export type ErrorResponse = z.infer<typeof ErrorResponseSchema>;
/** Compile-time check: `errorBody` (src/common/errors.ts) builds exactly this schema's type. */
export type ErrorBodyMatchesSchema = [ErrorBody, ErrorResponse] extends [ErrorResponse, ErrorBody] ? true : never;
const errorBodyMatchesSchema: ErrorBodyMatchesSchema = true;
void errorBodyMatchesSchema;

// ---------------------------------------------------------------------------------------------------
// Refusals

type Issue = z.core.$ZodIssue;
/** A branch the value does not fit: wrong type or wrong literal at the union's own level. */
const misfit = (branch: Issue[]) => branch.some((i) => i.path.length === 0 && (i.code === "invalid_type" || i.code === "invalid_value"));

/** The issue to report: through a union, the issue of the one branch the value fits (if exactly one). */
function reported(issue: Issue): Issue {
  while (issue.code === "invalid_union") {
    // A discriminated union with no matching discriminator: the message is about the object, not its tag.
    if (issue.errors.length === 0) return issue.discriminator && issue.path.at(-1) === issue.discriminator ? { ...issue, path: issue.path.slice(0, -1) } : issue;
    const fitting = issue.errors.filter((b) => !misfit(b));
    if (fitting.length !== 1 || fitting[0].length === 0) return issue;
    issue = { ...fitting[0][0], path: [...issue.path, ...fitting[0][0].path] } as Issue;
  }
  return issue;
}

const article = (t: string) => (t === "int" ? "an integer" : t === "null" || t === "undefined" ? t : /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);
/** zod's default messages (schemas without their own) rewritten to say what is allowed. */
function plain(issue: Issue): string {
  const m = issue.message;
  const received = /received (\w+)/.exec(m)?.[1];
  switch (issue.code) {
    case "invalid_type":
      if (!m.startsWith("Invalid input")) return m;
      return received === "undefined" ? `missing; expected ${article(issue.expected)}` : `expected ${article(issue.expected)}${received ? `, got ${article(received)}` : ""}`;
    case "invalid_union": {
      if (m !== "Invalid input") return m;
      const kinds = [...new Set(issue.errors.flatMap((b) => b.filter((i) => i.path.length === 0 && i.code === "invalid_type").map((i) => article((i as { expected: string }).expected))))];
      const got = issue.errors
        .flat()
        .map((i) => /received (\w+)/.exec(i.message)?.[1])
        .find(Boolean);
      return kinds.length ? `expected ${kinds.join(" or ")}${got ? `, got ${article(got)}` : ""}` : "does not match any accepted shape";
    }
    case "invalid_value":
      return m.startsWith("Invalid") ? `expected ${issue.values.length > 1 ? "one of " : ""}${issue.values.map((v) => JSON.stringify(v)).join(", ")}` : m;
    case "too_big":
    case "too_small": {
      if (!m.startsWith("Too")) return m;
      const bound = issue.code === "too_big" ? issue.maximum : issue.minimum;
      const side = issue.code === "too_big" ? (issue.inclusive ? "at most" : "less than") : issue.inclusive ? "at least" : "more than";
      const unit = issue.origin === "string" ? " character" : issue.origin === "array" || issue.origin === "set" ? " item" : "";
      return `${side} ${String(bound)}${unit}${unit && Number(bound) !== 1 ? "s" : ""}`;
    }
    case "unrecognized_keys":
      return m.startsWith("Unrecognized key") ? `unknown field${issue.keys.length === 1 ? "" : "s"} ${issue.keys.map((k) => `'${k}'`).join(", ")}` : m;
    default:
      return m;
  }
}

/** OpenAI-style 400 body naming the offending parameter: `param: what is wrong; what is allowed`. */
export function describeIssue(error: z.ZodError): { message: string; param: string | null } {
  const issue = reported(error.issues[0] as Issue);
  if (issue.code === "unrecognized_keys" && issue.path.length === 0) return { message: `Unrecognized request argument supplied: ${issue.keys.join(", ")}`, param: issue.keys[0] ?? null };
  let param = issuePath(issue.path) || null;
  let message = plain(issue);
  const element = /^((?:\[\d+\])+): ([\s\S]*)$/.exec(message); // `[1]: …`: about an element of the value
  if (element && param) [param, message] = [param + element[1], element[2]];
  return { message: param ? `${param}: ${message}` : message, param };
}
