// Refusals that say what is wrong and what is allowed, and token-id prompts — against `npm start`'s entry
// (src/node.ts with its own local verifier) as a real process: each refused request answers a 400 whose
// message and param name the offending value; a prompt of token ids (or one prompt in an array) completes
// exactly like the same prompt as text, and several prompts are refused with the reason.
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompletionSchema, ErrorResponseSchema } from "../src/api/schemas.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";
import { startEdgeProcess } from "./harness/processes.ts";

let edge: ChildProcess;
let url: string;
let modelId: string;
let tok: TextTokenizer;

beforeAll(async () => {
  const target = await loadBundle(path.join(DEFAULT_PAIR_DIR, "target"));
  tok = TextTokenizer.fromBundle(target);
  modelId = target.manifest.id;
  ({ child: edge, url } = await startEdgeProcess({ LOG_REQUESTS: "false" }));
});
afterAll(async () => {
  if (edge && edge.exitCode === null) {
    edge.kill("SIGINT");
    await once(edge, "exit");
  }
});

const post = (p: string, body: unknown) => fetch(`${url}${p}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/** The 400's error (validated against the error schema). */
async function refusal(res: Response): Promise<{ message: string; param: string | null; type: string }> {
  const text = await res.text();
  expect(res.status, text).toBe(400);
  return ErrorResponseSchema.parse(JSON.parse(text)).error;
}
const chat = async (extra: Record<string, unknown>) => refusal(await post("/v1/chat/completions", { model: modelId, messages: [{ role: "user", content: "Hola" }], ...extra }));
const completion = async (extra: Record<string, unknown>) => refusal(await post("/v1/completions", { model: modelId, prompt: "Hola", ...extra }));

describe("a refused request says exactly what is wrong and what is allowed", () => {
  it("content parts other than text", async () => {
    const e = await chat({
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "¿Qué es esto?" },
            { type: "image_url", image_url: { url: "https://example.com/a.png" } },
          ],
        },
      ],
    });
    expect(e).toMatchObject({
      message: "messages[0].content[1]: content parts of type 'image_url' are not supported; alia-edge accepts text parts only",
      param: "messages[0].content[1]",
      type: "invalid_request_error",
    });
    expect((await chat({ messages: [{ role: "user", content: [{ type: "input_audio", input_audio: {} }] }] })).message).toBe(
      "messages[0].content[0]: content parts of type 'input_audio' are not supported; alia-edge accepts text parts only",
    );
    expect((await chat({ messages: [{ role: "user", content: [{ text: "sin tipo" }] }] })).message).toMatch(/^messages\[0\]\.content\[0\]: a content part needs a type; alia-edge accepts text parts only/);
    expect((await chat({ messages: [{ role: "user", content: [] }] })).message).toBe("messages[0].content: the array of content parts is empty; send at least one text part");
    expect((await chat({ messages: [{ role: "user", content: [{ type: "text", text: "a", cache_control: {} }] }] })).message).toBe("messages[0].content[0]: unknown field 'cache_control' (allowed: type, text)");
  });

  it("stop sequences: how many, which one, what type", async () => {
    expect(await chat({ stop: ["a", "b", "c", "d", "e"] })).toMatchObject({ message: "stop: at most 4 stop sequences (got 5)", param: "stop" });
    expect(await chat({ stop: ["a", 7] })).toMatchObject({ message: "stop[1]: expected a string, got the number 7", param: "stop[1]" });
    expect((await chat({ stop: 7 })).message).toBe("stop: expected a string or an array of up to 4 strings, got the number 7");
    expect((await chat({ stop: "" })).message).toBe("stop: a stop sequence must not be empty");
    expect((await chat({ stop: "x".repeat(300) })).message).toBe("stop: at most 256 characters (got 300)");
  });

  it("wrong types and ranges name the value they got and the range allowed", async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ max_tokens: "5" }, "max_tokens", 'max_tokens: expected an integer from 1 to 1000000, got the string "5"'],
      [{ max_tokens: 2.5 }, "max_tokens", "max_tokens: expected an integer from 1 to 1000000, got the number 2.5"],
      [{ max_completion_tokens: 0 }, "max_completion_tokens", "max_completion_tokens: expected an integer from 1 to 1000000, got the number 0"],
      [{ temperature: 3 }, "temperature", "temperature: expected a number from 0 to 2, got the number 3"],
      [{ top_p: 0 }, "top_p", "top_p: expected a number greater than 0 and at most 1, got the number 0"],
      [{ seed: -1 }, "seed", "seed: expected an integer from 0 to 9007199254740991, got the number -1"],
      [{ stream: "yes" }, "stream", 'stream: expected a boolean, got the string "yes"'],
      [{ stream_options: { include_usage: true, chunk_size: 3 } }, "stream_options", "stream_options: unknown field 'chunk_size' (allowed: include_usage)"],
      [{ model: 42 }, "model", "model: expected a string (the model id from GET /v1/models), got the number 42"],
      [{ user: ["x"] }, "user", "user: expected a string, got an array of 1 item"],
      [{ metadata: { team: 7 } }, "metadata.team", "metadata.team: expected a string, got the number 7"],
      [{ messages: "Hola" }, "messages", 'messages: expected an array of messages, got the string "Hola"'],
      [{ messages: [] }, "messages", "messages: at least one message is required"],
      [{ messages: [{ role: "user", content: 5 }] }, "messages[0].content", 'messages[0].content: expected a string or an array of text parts ({"type": "text", "text": …}), got the number 5'],
      [{ messages: [{ role: "assistant", content: null }] }, "messages[0].content", 'messages[0].content: expected a string or an array of text parts ({"type": "text", "text": …}), got null'],
      [{ messages: [{ role: "tool", content: "42" }] }, "messages[0].role", "messages[0].role: role 'tool' is not supported (alia-edge serves no tools); roles are system, developer, user, assistant"],
      [{ messages: [{ role: "robot", content: "x" }] }, "messages[0].role", 'messages[0].role: expected one of system, developer, user, assistant, got the string "robot"'],
      [{ messages: [{ content: "x" }] }, "messages[0].role", "messages[0].role: missing; expected one of system, developer, user, assistant"],
      [{ messages: [{ role: "user", content: "x", tool_calls: [] }] }, "messages[0]", "messages[0]: unknown field 'tool_calls' (allowed: role, content, name)"],
    ];
    for (const [extra, param, message] of cases) expect(await chat(extra), JSON.stringify(extra)).toMatchObject({ param, message });
  });

  it("fields alia-edge does not serve are refused by name with the value accepted", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ n: 9 }, "n: expected an integer from 1 to 8, got the number 9"],
      [{ presence_penalty: 0.5 }, "presence_penalty: not supported by alia-edge: only 0 is accepted, got the number 0.5"],
      [{ logprobs: "yes" }, 'logprobs: expected a boolean, got the string "yes"'],
      [{ top_logprobs: 2 }, "top_logprobs: needs logprobs: true"],
      [{ logprobs: true, top_logprobs: 21 }, "top_logprobs: expected an integer from 0 to 20, got the number 21"],
      [{ logit_bias: { "15": 5 } }, "logit_bias: not supported by alia-edge: only null is accepted, got an object"],
      [{ response_format: { type: "xml" } }, 'response_format: type must be "text", "json_object" or "json_schema", got the string "xml"'],
      [{ response_format: { type: "json_schema", json_schema: { name: "a b" } } }, "response_format.json_schema.name: 1 to 64 letters, digits, '_' or '-'"],
      [
        { response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { a: { oneOf: [{ type: "string" }] } } } } } },
        "response_format.json_schema.schema: schema.properties.a.oneOf: the keyword 'oneOf' is not supported in response_format schemas (use anyOf: the grammar cannot tell that exactly one branch matches)",
      ],
      [{ tools: [{ type: "function", function: { name: "f" } }] }, "tools: not supported: the model's chat template has no tool calling, so alia-edge calls no tools (got 1 tool); send none"],
      [{ tool_choice: "auto" }, 'tool_choice: tools are not supported: only "none" is accepted, got the string "auto"'],
    ];
    for (const [extra, message] of cases) expect((await chat(extra)).message, JSON.stringify(extra)).toBe(message);
    expect((await completion({ logprobs: 21 })).message).toBe("logprobs: expected an integer from 0 to 20, got the number 21");
    expect((await completion({ echo: true })).message).toBe("echo: not supported by alia-edge: only false is accepted, got the boolean true");
    expect((await completion({ suffix: "fin" })).message).toBe('suffix: not supported by alia-edge: only null is accepted, got the string "fin"');
    // Unknown fields keep OpenAI's own wording; a body that is not an object says so.
    expect(await completion({ frobnicate: 1 })).toMatchObject({ message: "Unrecognized request argument supplied: frobnicate", param: "frobnicate" });
    expect(await refusal(await post("/v1/completions", ["Hola"]))).toMatchObject({ message: "expected a JSON object (the request body), got an array of 1 item", param: null });
  });

  it("translation refusals name the parameter and the accepted shape", async () => {
    const get = async (q: Record<string, string>) => refusal(await fetch(`${url}/v1/translate?${new URLSearchParams(q)}`));
    expect(await get({ source: "es", target: "ca" })).toMatchObject({ message: "text: missing; expected a string", param: "text" });
    expect(await get({ text: "Hola", source: "es", target: "ca", format: "html" })).toMatchObject({ message: "Unrecognized request argument supplied: format" });
    expect((await get({ text: "Hola", source: "es", target: "xx" })).message).toMatch(/^unknown target language 'xx' \(known: es, ca, /);
    const e = await refusal(await post("/v1/translate", { text: 5, source: "es", target: "ca" }));
    expect(e).toMatchObject({ message: "text: expected a string or an array, got a number", param: "text" });
    expect((await refusal(await post("/v1/translate", { text: [], source: "es", target: "ca" }))).message).toBe("text: at least 1 item");
    expect(await refusal(await post("/v1/translate", { text: ["Hola", 5], source: "es", target: "ca" }))).toMatchObject({ message: "text[1]: expected a string, got a number", param: "text[1]" });
  });
});

describe("prompt shapes on /v1/completions", () => {
  const complete = async (prompt: unknown, extra: Record<string, unknown> = {}) => {
    const res = await post("/v1/completions", { model: modelId, prompt, max_tokens: 20, temperature: 0, ...extra });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    return CompletionSchema.parse(JSON.parse(text));
  };

  it("a prompt of token ids completes exactly like the same prompt as text (temperature 0)", async () => {
    for (const text of ["La vida es", "El Gobierno de España presentó ayer", "Bon dia! Com estàs?"]) {
      const ids = tok.encode(text);
      const fromText = await complete(text);
      expect(fromText.usage.prompt_tokens).toBe(ids.length);
      for (const prompt of [ids, [ids], [text]]) {
        const r = await complete(prompt);
        expect(r.choices[0].text, JSON.stringify(prompt)).toBe(fromText.choices[0].text);
        expect(r.choices[0].finish_reason).toBe(fromText.choices[0].finish_reason);
        expect(r.usage).toEqual(fromText.usage);
      }
      // Streamed too.
      const res = await post("/v1/completions", { model: modelId, prompt: ids, max_tokens: 20, temperature: 0, stream: true });
      const streamed = (await res.text())
        .split("\n")
        .filter((l) => l.startsWith("data: {"))
        .map((l) => (JSON.parse(l.slice(6)) as { choices: { text: string }[] }).choices[0]?.text ?? "")
        .join("");
      expect(streamed).toBe(fromText.choices[0].text);
    }
  });

  it("token ids outside the vocabulary, not integers, or empty are refused with the allowed range", async () => {
    const vocab = tok.vocab().size;
    const ids = tok.encode("La vida es");
    expect(await completion({ prompt: [...ids, vocab] })).toMatchObject({
      message: `prompt[${ids.length}]: token id ${vocab} is outside the vocabulary; token ids are integers from 0 to ${vocab - 1}`,
      param: `prompt[${ids.length}]`,
    });
    expect((await completion({ prompt: [[5, vocab + 10]] })).message).toBe(`prompt[0][1]: token id ${vocab + 10} is outside the vocabulary; token ids are integers from 0 to ${vocab - 1}`);
    expect(await completion({ prompt: [5, 2.5] })).toMatchObject({ message: "prompt[1]: expected a token id (an integer from 0 to the vocabulary size - 1), got the number 2.5", param: "prompt[1]" });
    expect((await completion({ prompt: [5, -1] })).message).toBe("prompt[1]: expected a token id (an integer from 0 to the vocabulary size - 1), got the number -1");
    expect((await completion({ prompt: [[5, "x"]] })).message).toBe('prompt[0][1]: expected a token id (an integer from 0 to the vocabulary size - 1), got the string "x"');
    expect((await completion({ prompt: [] })).message).toBe("prompt: the prompt is an empty array; send a string or a non-empty array of token ids");
    expect((await completion({ prompt: [[]] })).message).toBe("prompt[0]: an empty array of token ids");
    expect((await completion({ prompt: [5, "x"] })).message).toBe("prompt: an array prompt holds strings only, token ids only, or arrays of token ids only; got numbers and strings");
    expect((await completion({ prompt: 5 })).message).toBe("prompt: expected a string, an array of token ids, or an array holding one string or one array of token ids, got the number 5");
    expect((await completion({ prompt: undefined })).message).toBe("prompt: missing; expected a string, an array of token ids, or an array holding one string or one array of token ids");
  });

  it("several prompts are refused with the reason and what to do instead", async () => {
    expect(await completion({ prompt: ["Hola", "Adiós", "Buenos días"] })).toMatchObject({ message: "prompt: alia-edge generates one prompt per request (got 3 prompts); send 3 requests", param: "prompt" });
    expect((await completion({ prompt: [tok.encode("Hola"), tok.encode("Adiós")] })).message).toBe("prompt: alia-edge generates one prompt per request (got 2 prompts); send 2 requests");
  });

  it("a token-id prompt longer than the context is refused like a long text", async () => {
    const e = await completion({ prompt: Array.from({ length: 5000 }, () => 10), max_tokens: 4 });
    expect(e.message).toMatch(/^This model's maximum context length is \d+ tokens; the prompt has 5000$/);
  });
});
