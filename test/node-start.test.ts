// `npm start`'s entry point on the default pair: starts its own verifier, answers the README's chat
// example, stops cleanly on SIGINT; refuses bad config.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "./harness/edge-process.ts";

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

function start(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ["--import", "tsx", "src/node.ts"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  return { child, output: () => out };
}

async function waitFor(re: RegExp, output: () => string, child: ChildProcess, ms = 60_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const m = output().match(re);
    if (m) return m;
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${re}: ${output()}`);
}

describe("src/node.ts (npm start)", () => {
  it("serves /healthz and /v1/models on the default pair and exits 0 on SIGINT", async () => {
    const { child, output } = start({ PORT: "0", HOST: "127.0.0.1", POOL_NODES: `http://127.0.0.1:${await freePort()}` });
    const [, url] = await waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/, output, child);
    expect(output()).toMatch(/try: curl http:\/\/127\.0\.0\.1:\d+\/v1\/models/);
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
    child.kill("SIGINT");
    const [code] = await once(child, "exit");
    expect(code).toBe(0);
  });

  it("refuses an invalid configuration with a message naming the variable", async () => {
    const { child, output } = start({ PORT: "not-a-port" });
    const [code] = await once(child, "exit");
    expect(code).toBe(1);
    expect(output()).toMatch(/invalid configuration: PORT:/);
  });

  it("refuses a missing bundle with a clear error", async () => {
    const { child, output } = start({ PORT: "0", DRAFT_BUNDLE: "no-such-bundle" });
    const [code] = await once(child, "exit");
    expect(code).toBe(1);
    expect(output()).toMatch(/alia-edge failed to start: .*no-such-bundle.*manifest\.json is missing/);
  });
});
