// `npm start`'s entry point on the default pair: starts its own verifier, answers the README's chat
// example, stops cleanly on SIGINT; refuses bad config.
import { afterEach, describe, expect, it } from "vitest";
import { startEdgeProcess, startProcess, type StartedProcess } from "./harness/processes.ts";

const started: StartedProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop("SIGKILL")));
});

/** src/node.ts with `env`, expected to refuse to start. */
function start(env: Record<string, string>): StartedProcess {
  const p = startProcess("src/node.ts", env);
  started.push(p);
  return p;
}

describe("src/node.ts (npm start)", () => {
  it("serves /healthz and /v1/models on the default pair and exits 0 on SIGINT", async () => {
    // The harness picks the loopback port of the verifier npm start starts itself (POOL_NODES).
    const edge = await startEdgeProcess({ HOST: "127.0.0.1" });
    started.push(edge);
    const { url, output } = edge;
    // The hint is the line after "listening on": the pipe may deliver it in a later chunk.
    await edge.waitFor(/try: curl http:\/\/127\.0\.0\.1:\d+\/v1\/models/, 10_000);
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { object: string; data: { id: string; bundle: string; draft_bundle: string }[] };
    expect(models.object).toBe("list");
    expect(models.data[0].id).toMatch(/target/);
    expect(models.data[0].draft_bundle).toMatch(/draft@/);
    // The README's chat example, on the verifier that npm start started itself.
    const chat = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: models.data[0].id, messages: [{ role: "user", content: "Hola" }], max_tokens: 32 }),
    });
    expect(chat.status).toBe(200);
    const body = (await chat.json()) as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
    expect(typeof body.choices[0].message.content).toBe("string");
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
    expect(output()).toMatch(/verifier pool: http:\/\/127\.0\.0\.1:\d+ \(started here\)/);
    const missing = await fetch(`${url}/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { type: string } }).error.type).toBe("invalid_request_error");
    expect(await edge.stop("SIGINT")).toEqual({ code: 0, signal: null });
  });

  it("refuses an invalid configuration with a message naming the variable", async () => {
    const { exited, output } = start({ PORT: "not-a-port" });
    expect((await exited()).code).toBe(1);
    expect(output()).toMatch(/invalid configuration: PORT:/);
  });

  it("refuses a missing bundle with a clear error", async () => {
    const { exited, output } = start({ PORT: "0", DRAFT_BUNDLE: "no-such-bundle" });
    expect((await exited()).code).toBe(1);
    expect(output()).toMatch(/alia-edge failed to start: .*no-such-bundle.*manifest\.json is missing/);
  });
});
