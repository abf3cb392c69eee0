// /v1/completions and /v1/chat/completions: OpenAI's request and response shapes over speculative
// decoding. One code path for both: validate, build the prompt ids, run SpeculativeDecoder, answer JSON or
// Server-Sent Events (`data: {...}` chunks, then `data: [DONE]`). Text is streamed as soon as it is
// committed, minus what could still be part of a stop string or an incomplete UTF-8 character.
import type { Context } from "hono";
import { bearerTokenOf } from "../common/bearer-auth.ts";
import { streamSSE } from "hono/streaming";
import type { z } from "zod";
import { UNAVAILABLE, errorBody } from "../common/errors.ts";
import { AdmissionRefused, GenerationAdmission, type ReleaseSlot } from "./admission.ts";
import { QuotaRefused, RateLimitRefused, RequestMeter, accountOf, type BillingSettings, type MeteredCost } from "./billing.ts";
import { generationFromStats } from "../observability/edge-metrics.ts";
import { recordGeneration } from "../observability/request-observer.ts";
import { rateLimitedWriter } from "../observability/log.ts";
import { PoolError } from "../pool/pool-client.ts";
import type { Sampling } from "../common/protocol.ts";
import type { ProposerFactory } from "../speculative/proposer-factory.ts";
import type { SpeculationSettings } from "../speculative/settings.ts";
import { SpeculativeDecoder, type DecodeEvent, type DecodeStats, type FinishReason } from "../speculative/speculative-decoder.ts";
import type { TargetVerifier } from "../speculative/target-verifier.ts";
import {
  ChatRequestSchema,
  CompletionRequestSchema,
  describeIssue,
  messageText,
  promptOf,
  tokenIdProblem,
  vocabularySize,
  type AliaSpeculation,
  type ChatCompletion,
  type ChatLogprobs,
  type CompletionLogprobs,
  type ChatCompletionChunk,
  type ChatRequest,
  type Completion,
  type CompletionChunk,
  type CompletionRequest,
  type ErrorResponse,
} from "./schemas.ts";
import { continuationDecoder, replyDecoder, type ServedModel } from "../model-pair/served-model.ts";
import type { TextPart } from "../common/models/tokenizer.ts";
import { mergeDecodeStats } from "../speculative/decode-stats.ts";
import { type CompiledGrammar, type GrammarEngine, type GrammarSpec, UnsupportedGrammar } from "../structured/grammar.ts";
import { TokenBytes, chatLogprobContent, completionLogprobs } from "./logprob-format.ts";

export interface ApiDeps {
  model: ServedModel;
  pool: TargetVerifier;
  speculation: SpeculationSettings;
  /** Who drafts each generation. */
  proposers: ProposerFactory;
  /** Default completion budget of chat requests without max tokens (completions default to 16, as OpenAI). */
  defaultMaxTokens: number;
  /** Generations at once; beyond: wait up to maxQueueWaitMs, then 429 with Retry-After. */
  maxConcurrent: number;
  /** Longest wait for a generation slot (default 0: 429 at once when all are busy). */
  maxQueueWaitMs?: number;
  /** The slots, when shared with other handlers (translation); else the handlers' own from the two above. */
  admission?: GenerationAdmission;
  /** Pay-per-request: requests with an account key reserve their maximum cost and settle what they cost. */
  billing?: BillingSettings;
  /** Structured outputs (response_format json_object / json_schema): the grammar engine, made at first use. */
  grammar?: () => Promise<GrammarEngine>;
}

type Kind = "completion" | "chat";

/** Speculation statistics of one request (the `alia_speculation` extension field). */
export function speculationSummary(s: DecodeStats, completionTokens: number) {
  return {
    rounds: s.rounds,
    drafted_tokens: s.drafted,
    accepted_tokens: s.accepted,
    acceptance_rate: s.drafted ? s.accepted / s.drafted : null,
    tokens_per_round: s.rounds ? s.roundTokens / s.rounds : null,
    pool_generated_tokens: s.generatedTokens,
    resumed_tokens: s.resumedTokens,
    follow_passes: s.followPasses,
    target_passes: s.targetPasses,
    target_passes_saved: Math.max(0, completionTokens - s.targetPasses),
    draft_ms: round1(s.draftMs),
    verify_ms: round1(s.verifyMs),
    network_ms: round1(s.networkMs),
    by_proposer: Object.fromEntries(Object.entries(s.byProposer).map(([name, d]) => [name, { rounds: d.rounds, drafted_tokens: d.drafted, accepted_tokens: d.accepted }])),
  };
}
const round1 = (x: number) => Math.round(x * 10) / 10;

function randomId(prefix: string): string {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return prefix + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function randomSeed(): number {
  const b = new Uint32Array(2);
  crypto.getRandomValues(b);
  return (b[0] & 0x1fffff) * 2 ** 32 + b[1];
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ReturnType<typeof errorBody>,
    readonly headers: Record<string, string> = {},
  ) {
    super(body.error.message);
  }
}

const invalid = (message: string, param: string | null, code: string | null = null) => new ApiError(400, errorBody(message, "invalid_request_error", code, param));

export function createCompletionHandlers(deps: ApiDeps) {
  const admission = deps.admission ?? new GenerationAdmission({ slots: deps.maxConcurrent, maxWaitMs: deps.maxQueueWaitMs ?? 0 });
  const { model } = deps;

  /**
   * Prompt ids, budget, stop settings and sampling of a validated request. Text from the client is
   * encoded with special-token strings as plain text (special tokens come from the chat template only),
   * after a bound on its length alone (no tokenisation) and without holding the event loop for long.
   */
  async function prepare(kind: Kind, req: CompletionRequest | ChatRequest) {
    if (req.model !== model.id) throw new ApiError(404, errorBody(`The model '${req.model}' does not exist; this server serves '${model.id}'`, "invalid_request_error", "model_not_found", "model"));
    const param = kind === "chat" ? "messages" : "prompt";
    const tooLong = (n: number | string) => invalid(`This model's maximum context length is ${model.maxPositions} tokens; the ${param} has ${n}`, param, "context_length_exceeded");
    /** Encodes text parts, refusing them as soon as they certainly do not fit. */
    const encode = async (parts: TextPart[]) => {
      // A token stands for at most longestTokenChars characters: above this, the prompt cannot fit.
      const chars = parts.reduce((n, x) => n + x.text.length, 0);
      const atLeast = model.tokenizer.minTokens(chars);
      if (atLeast >= model.maxPositions) throw tooLong(`at least ${atLeast}`);
      const r = await model.tokenizer.encodeAsync(parts, { stopAfter: model.maxPositions - 1 });
      if (!r.complete) throw tooLong(`more than ${model.maxPositions - 1}`);
      return r.ids;
    };
    let prompt: number[];
    if (kind === "chat") {
      const r = req as ChatRequest;
      prompt = await encode(model.chatParts(r.messages.map((m) => ({ role: m.role === "developer" ? "system" : m.role, content: messageText(m.content) }))));
    } else {
      // Text is encoded (with BOS); token ids are used as they are, once known to be in the vocabulary.
      const p = promptOf((req as CompletionRequest).prompt);
      const outside = "ids" in p ? tokenIdProblem(p.ids, vocabularySize(model.tokenizer), p.at) : undefined;
      if (outside) throw invalid(outside.message, outside.param);
      prompt = "ids" in p ? p.ids : await encode([{ text: p.text, special: false }]);
    }
    const room = model.maxPositions - prompt.length;
    const asked = kind === "chat" ? ((req as ChatRequest).max_completion_tokens ?? req.max_tokens) : req.max_tokens;
    if (room < 1) throw tooLong(prompt.length);
    if (asked != null && asked > room)
      throw invalid(
        `This model's maximum context length is ${model.maxPositions} tokens: ${prompt.length} in the ${param} + ${asked} requested`,
        kind === "chat" && (req as ChatRequest).max_completion_tokens != null ? "max_completion_tokens" : "max_tokens",
        "context_length_exceeded",
      );
    const maxTokens = asked ?? Math.min(kind === "chat" ? deps.defaultMaxTokens : 16, room);
    const temperature = req.temperature ?? 1;
    const sampling: Sampling | undefined = temperature > 0 ? { temperature, top_p: req.top_p ?? 1, top_k: 0, seed: req.seed ?? randomSeed() } : undefined;
    const stop = req.stop == null ? [] : typeof req.stop === "string" ? [req.stop] : req.stop;
    const stopIds = kind === "chat" ? model.chatStopIds : model.stopIds;
    let logprobs: number | undefined;
    if (kind === "chat") {
      const r = req as ChatRequest;
      if (r.top_logprobs != null && r.logprobs !== true) throw invalid("top_logprobs: needs logprobs: true", "top_logprobs");
      if (r.logprobs) logprobs = r.top_logprobs ?? 0;
    } else logprobs = (req as CompletionRequest).logprobs ?? undefined;
    return { prompt, maxTokens, sampling, seeded: req.seed != null, stop, stopIds, logprobs, n: req.n ?? 1, grammar: await grammarOf(req.response_format) };
  }

  /** The compiled grammar a response_format asks for (none for text). */
  async function grammarOf(format: ChatRequest["response_format"]): Promise<CompiledGrammar | undefined> {
    if (!format || format.type === "text") return undefined;
    const param = format.type === "json_schema" ? "response_format.json_schema.schema" : "response_format";
    if (!deps.grammar) throw invalid(`response_format ${format.type} needs a grammar engine, which this edge runtime does not have; send it to a Node edge`, "response_format");
    const spec: GrammarSpec = format.type === "json_schema" && format.json_schema.schema ? { kind: "json_schema", schema: format.json_schema.schema } : { kind: "json_object" };
    try {
      return await (await deps.grammar()).compile(spec);
    } catch (e) {
      if (e instanceof UnsupportedGrammar) throw invalid(`${param}: ${e.message}`, param);
      throw e;
    }
  }

  async function handle(c: Context, kind: Kind): Promise<Response> {
    try {
      const raw = await c.req.json().catch(() => {
        throw invalid("We could not parse the JSON body of your request.", null, "invalid_json");
      });
      const parsed = (kind === "chat" ? ChatRequestSchema : CompletionRequestSchema).safeParse(raw);
      if (!parsed.success) {
        const { message, param } = describeIssue(parsed.error as z.ZodError);
        throw invalid(message, param);
      }
      const req = parsed.data;
      const p = await prepare(kind, req);
      const clientGone = c.req.raw.signal;
      // A slot, fairly among API keys: waits while all are busy, up to the queue's bounds (admission.ts).
      let release: ReleaseSlot;
      try {
        release = await admission.acquire(bearerTokenOf(c), clientGone);
      } catch (e) {
        if (e instanceof AdmissionRefused)
          throw new ApiError(429, errorBody(`too many generations at once (${deps.maxConcurrent}); retry shortly`, "rate_limit_error", "rate_limit_exceeded"), { "Retry-After": String(e.retryAfterS) });
        if (clientGone.aborted) throw new ApiError(499, errorBody("the client closed the request while it waited", "invalid_request_error", "client_closed_request")); // nobody reads it; logged as cancelled
        throw e;
      }
      // An account key's per-minute limits must admit the request, and its budget hold the request's maximum
      // cost, before a token is generated (429 rate_limit_exceeded / 402 insufficient_quota otherwise).
      const account = deps.billing && accountOf(c);
      let meter: RequestMeter | undefined;
      try {
        // n choices reserve n answers' worth.
        if (account) meter = await RequestMeter.start(deps.billing!, account, { model: model.id, promptTokens: p.prompt.length, maxTokens: p.maxTokens * p.n });
      } catch (e) {
        release();
        throw e;
      }
      const ctl = new AbortController();
      // The client leaving aborts every choice; so does a failing choice (the others then stop), which is not a cancellation.
      let clientLeft = false;
      const onGone = () => {
        clientLeft = true;
        ctl.abort();
      };
      clientGone.addEventListener("abort", onGone);
      const id = randomId(kind === "chat" ? "chatcmpl-" : "cmpl-");
      let choices: Choice[];
      try {
        choices = await Promise.all(
          Array.from({ length: p.n }, async (_, index): Promise<Choice> => {
            // Choice i draws from its own seed (choice 0 from the request's): seeded choices repeat, and differ.
            const sampling = p.sampling && { ...p.sampling, seed: choiceSeed(p.sampling.seed, index) };
            const grammar = p.grammar && { compiled: p.grammar, stopIds: p.stopIds };
            const decoder = new SpeculativeDecoder({
              proposer: deps.proposers.create({ promptLength: p.prompt.length, sampling, seeded: p.seeded, tenant: bearerTokenOf(c), grammar }),
              pool: deps.pool,
              maxTokens: p.maxTokens,
              stopIds: p.stopIds,
              stop: p.stop,
              decode: kind === "chat" ? replyDecoder(model.tokenizer) : continuationDecoder(model.tokenizer, p.prompt),
              sampling,
              seeded: p.seeded,
              ...deps.speculation,
              // One group of sessions (PoolClient ranks them alike): the choices share the prompt's prefill.
              session: p.n > 1 ? `${id.replace(/^\w+-/, "s-")}--${index}` : randomId("s-"),
              signal: ctl.signal,
              grammar: grammar && (await grammar.compiled.matcher(grammar.stopIds)),
              logprobs: p.logprobs,
            });
            return { index, decoder, events: decoder.run(p.prompt), text: "", sentLogprobs: 0 };
          }),
        );
      } catch (e) {
        release();
        void meter?.release();
        clientGone.removeEventListener("abort", onGone);
        throw e;
      }
      const outputTokens = () => choices.reduce((n, ch) => n + ch.decoder.output.length, 0);
      const stats = () => mergeDecodeStats(choices.map((ch) => ch.decoder.stats));
      const done = () => {
        release();
        clientGone.removeEventListener("abort", onGone);
        // Every generation's end (finished, failed, cancelled; JSON or end of stream): metrics and log line.
        recordGeneration(c, generationFromStats(stats(), { promptTokens: p.prompt.length, completionTokens: outputTokens(), finishReason: choices[0].decoder.finishReason, cancelled: clientLeft }));
      };
      const created = Math.floor(Date.now() / 1000);
      const base = { id, object: kind === "chat" ? "chat.completion" : "text_completion", created, model: model.id, system_fingerprint: model.fingerprint };
      const usage = (n: number, cost?: MeteredCost) => ({ prompt_tokens: p.prompt.length, completion_tokens: n, total_tokens: p.prompt.length + n, ...(cost ? { cost: cost.usage } : {}) });
      /** A finished request's cost, settled into the key's ledger; a failed or abandoned one is released. */
      const settle = async (): Promise<MeteredCost | undefined> => {
        if (!meter) return undefined;
        const n = outputTokens();
        const s = stats();
        const m = meter.cost(s, p.prompt.length, n);
        await meter.settle(id, s, m, { promptTokens: p.prompt.length, completionTokens: n });
        return m;
      };
      const tokenBytes = p.logprobs === undefined ? undefined : tokenBytesOf(model.tokenizer);
      /** The log-probs of a choice's output tokens not sent yet, in the endpoint's shape (null without logprobs). */
      const logprobsOf = (ch: Choice, all = false) => {
        if (!tokenBytes) return null;
        const out = ch.decoder.output;
        const lps = ch.decoder.logprobs;
        const from = all ? 0 : ch.sentLogprobs;
        const to = Math.min(out.length, lps.length);
        ch.sentLogprobs = to;
        const tokens = out.slice(from, to);
        if (kind === "chat") return { content: chatLogprobContent(tokenBytes, tokens, lps.slice(from, to)), refusal: null };
        // Offsets count from the start of the choice's text (what was sent before these tokens).
        const before = all ? 0 : ch.text.length;
        return completionLogprobs(tokenBytes, tokens, lps.slice(from, to), before);
      };

      if (!req.stream) {
        let cost: MeteredCost | undefined;
        try {
          await Promise.all(
            choices.map(async (ch) => {
              for await (const ev of ch.events) ch.text += ev.text;
            }),
          );
          if (ctl.signal.aborted)
            void meter?.release(); // the client left: nothing is charged
          else cost = await settle();
        } catch (e) {
          ctl.abort(); // one choice failed: the others stop too
          void meter?.release();
          done();
          throw e;
        }
        done();
        const n = outputTokens();
        const spec = speculationSummary(stats(), n);
        const finish = (ch: Choice): FinishReason => ch.decoder.finishReason ?? "length";
        const body: ChatCompletion | Completion =
          kind === "chat"
            ? {
                ...base,
                object: "chat.completion",
                choices: choices.map((ch) => ({
                  index: ch.index,
                  message: { role: "assistant" as const, content: ch.text, refusal: null },
                  logprobs: logprobsOf(ch, true) as ChatLogprobs | null,
                  finish_reason: finish(ch),
                })),
                usage: usage(n, cost),
                alia_speculation: spec,
              }
            : {
                ...base,
                object: "text_completion",
                choices: choices.map((ch) => ({ index: ch.index, text: ch.text, logprobs: logprobsOf(ch, true) as CompletionLogprobs | null, finish_reason: finish(ch) })),
                usage: usage(n, cost),
                alia_speculation: spec,
              };
        // Rates exist only once something was drafted: no header rather than a 0 that reads "all rejected".
        return c.json(body, 200, {
          ...(spec.tokens_per_round === null ? {} : { "x-alia-tokens-per-round": String(spec.tokens_per_round) }),
          ...(spec.acceptance_rate === null ? {} : { "x-alia-acceptance-rate": String(spec.acceptance_rate) }),
          "x-alia-target-passes-saved": String(spec.target_passes_saved),
          ...(cost ? { "x-alia-cost": cost.header } : {}),
          ...meter?.rateLimitHeaders,
        });
      }

      // Streaming: the choices' events interleaved as they come. The first event is pulled before answering
      // so that a refused request is an error status.
      const merged = interleave(choices);
      let first: IteratorResult<Tagged>;
      try {
        first = await merged.next();
      } catch (e) {
        ctl.abort();
        void meter?.release();
        done();
        throw e;
      }
      const chunkBase = { ...base, object: kind === "chat" ? ("chat.completion.chunk" as const) : ("text_completion" as const) };
      const includeUsage = req.stream_options?.include_usage === true;
      const event = (body: ChatCompletionChunk | CompletionChunk) => JSON.stringify(body);
      const chunk = (ch: Choice, delta: string | null, finish: FinishReason | null, extra: { alia_speculation?: AliaSpeculation; usage?: ReturnType<typeof usage> } = {}) => {
        const tail = { ...(includeUsage ? { usage: null } : {}), ...extra };
        const logprobs = logprobsOf(ch);
        return event(
          kind === "chat"
            ? {
                ...base,
                object: "chat.completion.chunk",
                choices: [{ index: ch.index, delta: delta === null ? {} : { content: delta }, logprobs: logprobs as ChatLogprobs | null, finish_reason: finish }],
                ...tail,
              }
            : { ...base, object: "text_completion", choices: [{ index: ch.index, text: delta ?? "", logprobs: logprobs as CompletionLogprobs | null, finish_reason: finish }], ...tail },
        );
      };
      // The key's x-ratelimit-* headers are known before the stream starts (its request was admitted).
      for (const [name, value] of Object.entries(meter?.rateLimitHeaders ?? {})) c.header(name, value);
      return streamSSE(c, async (sse) => {
        sse.onAbort(onGone);
        try {
          if (kind === "chat")
            for (const ch of choices)
              await sse.writeSSE({
                data: event({
                  ...base,
                  object: "chat.completion.chunk",
                  choices: [{ index: ch.index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
                  ...(includeUsage ? { usage: null } : {}),
                }),
              });
          let running = choices.length;
          let lastDone: Choice | undefined;
          for (let r = first; !r.done; r = await merged.next()) {
            const { choice, ev } = r.value;
            if (ev) {
              if (ev.text) await sse.writeSSE({ data: chunk(choice, ev.text, null) });
              choice.text += ev.text;
            } else if (--running > 0) await sse.writeSSE({ data: chunk(choice, null, choice.decoder.finishReason ?? "length") });
            else lastDone = choice; // its finish chunk waits for the statistics
          }
          if (ctl.signal.aborted || !lastDone) return;
          const n = outputTokens();
          const cost = await settle();
          // The statistics ride on the last chunk before [DONE]: the usage chunk when asked for, else the last
          // finish chunk — which also carries the usage when the request was metered (its cost is known only now).
          const spec = { alia_speculation: speculationSummary(stats(), n) };
          await sse.writeSSE({ data: chunk(lastDone, null, lastDone.decoder.finishReason ?? "length", includeUsage ? {} : { ...spec, ...(cost ? { usage: usage(n, cost) } : {}) }) });
          if (includeUsage) await sse.writeSSE({ data: event({ ...chunkBase, choices: [], usage: usage(n, cost), ...spec }) });
          await sse.writeSSE({ data: "[DONE]" });
        } catch (e) {
          ctl.abort();
          // Headers are out: the error becomes the last event, as OpenAI streams do.
          const { body } = toApiError(e);
          await sse.writeSSE({ data: JSON.stringify(body satisfies ErrorResponse) });
        } finally {
          void meter?.release(); // a no-op once settled: an abandoned or failed stream is not charged
          done();
        }
      });
    } catch (e) {
      const err = toApiError(e);
      return c.json(err.body, err.status as 400, err.headers);
    }
  }

  return {
    completions: (c: Context) => handle(c, "completion"),
    chat: (c: Context) => handle(c, "chat"),
    /** Generations holding a slot now (translation sentences included when the admission is shared). */
    get running() {
      return admission.running;
    },
    /** Generations waiting for a slot now, and requests refused one so far. */
    get waiting() {
      return admission.waiting;
    },
    get refused() {
      return admission.refused;
    },
  };
}

/** One choice of a request (n ≥ 1): its generation and what was sent of it. */
interface Choice {
  index: number;
  decoder: SpeculativeDecoder;
  events: AsyncGenerator<DecodeEvent>;
  /** Text so far (streamed: sent so far). */
  text: string;
  /** Output tokens whose log-probs were sent. */
  sentLogprobs: number;
}

/** An event of one choice, or (no `ev`) the end of that choice. */
interface Tagged {
  choice: Choice;
  ev?: DecodeEvent;
}

/** The choices' events as they come, each choice's end marked; a failing choice fails the whole. */
async function* interleave(choices: readonly Choice[]): AsyncGenerator<Tagged> {
  const next = (ch: Choice) => ch.events.next().then((r) => ({ ch, r }));
  const pending = new Map(choices.map((ch) => [ch, next(ch)]));
  while (pending.size) {
    const { ch, r } = await Promise.race(pending.values());
    if (r.done) {
      pending.delete(ch);
      yield { choice: ch };
    } else {
      pending.set(ch, next(ch));
      yield { choice: ch, ev: r.value };
    }
  }
}

/** Choice i's seed: the request's for choice 0, a SplitMix64-style mix of both for the others (53 bits). */
export function choiceSeed(seed: number, index: number): number {
  if (index === 0) return seed;
  let x = (BigInt(seed) + BigInt(index) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  return Number((x ^ (x >> 31n)) & 0x1fffffffffffffn);
}

const tokenBytesCache = new WeakMap<object, TokenBytes>();
function tokenBytesOf(tokenizer: ServedModel["tokenizer"]): TokenBytes {
  let t = tokenBytesCache.get(tokenizer);
  if (!t) {
    t = new TokenBytes(tokenizer);
    tokenBytesCache.set(tokenizer, t);
  }
  return t;
}

/** Error lines for the operator, one per distinct message every 10 s (with a count of those held back):
 * with the pool down every request fails the same way. */
const logError = rateLimitedWriter((line) => console.error(line));

function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof RateLimitRefused) return new ApiError(429, errorBody(e.message, "rate_limit_error", "rate_limit_exceeded"), e.headers);
  if (e instanceof QuotaRefused) return new ApiError(402, e.body);
  if (e instanceof PoolError) {
    logError(`pool: ${e.message}`); // the operator's view; clients get no internal addresses
    if (e.status === 503) return new ApiError(503, UNAVAILABLE.body, UNAVAILABLE.headers);
    return new ApiError(e.status, errorBody(e.message, e.status >= 500 ? "server_error" : "invalid_request_error", e.code));
  }
  logError(e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : `internal error: ${String(e)}`);
  return new ApiError(500, errorBody("internal error", "server_error", "internal_error"));
}
