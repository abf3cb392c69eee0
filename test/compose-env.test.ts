// infra/compose.yaml's edge + verifier + PostgreSQL + MinIO, without Docker: the edge's, the verifier's and
// the bundle upload's environment are taken from the compose file, and only what names a container is
// rewritten to its loopback stand-in — hosts and ports (PostgreSQL: a fresh schema on 127.0.0.1:5432;
// MinIO: s3rver), the S3 credentials (s3rver's account), container paths (temp folders). The same entry
// points then start, and the edge serves a chat request, billed, through the official `openai` client.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { billingSchema, type BillingSchema } from "./harness/billing-schema.ts";
import { healthPath, readCompose, ROOT, serviceEnv } from "./harness/container-lint.ts";
import { startEdgeProcess, startVerifierProcess, type ListeningProcess } from "./harness/processes.ts";
import { startS3rver, type LocalS3 } from "./harness/s3rver.ts";

const compose = readCompose();

/** The compose environment with `overrides`; each override must replace a variable the file sets. */
function rewritten(service: string, overrides: Record<string, string>): Record<string, string> {
  const env = serviceEnv(compose, service);
  for (const k of Object.keys(overrides)) if (!(k in env)) throw new Error(`${service}: compose.yaml sets no ${k} to rewrite`);
  return { ...env, ...overrides };
}

describe("infra/compose.yaml's configuration on loopback", () => {
  let work: string;
  let s3: LocalS3;
  let billing: BillingSchema;
  let verifier: ListeningProcess;
  let edge: ListeningProcess;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "compose-env-"));
    const bucket = serviceEnv(compose, "edge").S3_BUCKET;
    // minio-init's bucket, on s3rver.
    s3 = await startS3rver(path.join(work, "s3"), [bucket]);
    const minio = { S3_ENDPOINT: s3.options.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };

    // The bundles service's own command, its container paths mapped: /fixtures is the read-only mount of
    // ../fixtures/default, /tmp/ a temp folder.
    const bundles = compose.services.bundles;
    const mount = bundles.volumes!.find((v) => v.endsWith(":/fixtures:ro"))!.split(":")[0];
    const fixtures = path.resolve(ROOT, "infra", mount);
    // One pass over the container paths (a path at a word start): the mapped folders may themselves lie
    // under /tmp, which a second replacement would rewrite again.
    const command = [bundles.command ?? ""].flat()[0].replace(/(?<![\w/.-])\/(fixtures|tmp)\//g, (_, dir: string) => `${dir === "fixtures" ? fixtures : work}/`);
    await promisify(execFile)("sh", ["-c", command], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`, ...rewritten("bundles", minio) },
      timeout: 120_000,
    });

    verifier = await startVerifierProcess(rewritten("verifier", { ...minio, VERIFIER_HOST: "127.0.0.1", VERIFIER_PORT: "0", MODEL_CACHE_DIR: path.join(work, "verifier-cache") }), 120_000);
    billing = await billingSchema("compose");
    edge = await startEdgeProcess(
      rewritten("edge", {
        ...minio,
        HOST: "127.0.0.1",
        PORT: "0",
        POOL_NODES: verifier.url,
        BILLING_DATABASE_URL: billing.url,
        MODEL_CACHE_DIR: path.join(work, "edge-cache"),
      }),
      180_000,
    );
  });

  afterAll(async () => {
    await edge?.stop("SIGKILL");
    await verifier?.stop("SIGKILL");
    await billing?.close();
    await s3?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("loads both bundles from the bucket and answers the compose health checks", async () => {
    expect(edge.output()).toMatch(/alia-edge serving .* from s3:\/\//);
    // Both fetched their bundles from the bucket into their (rewritten) cache volumes.
    for (const cache of ["edge-cache", "verifier-cache"]) expect((await readdir(path.join(work, cache), { recursive: true })).join("\n"), cache).toMatch(/manifest\.json/);
    for (const [service, url] of [
      ["edge", edge.url],
      ["verifier", verifier.url],
    ] as const) {
      const test = compose.services[service].healthcheck!.test as string[];
      const r = await fetch(`${url}${healthPath(test.join(" "))}`);
      expect(r.status, service).toBe(200);
    }
  });

  it("serves a chat request with a billing key (billing is on in the compose file)", async () => {
    const { key } = await billing.store.createKey({ name: "compose", scopes: ["chat"] });
    const client = new OpenAI({ baseURL: `${edge.url}/v1`, apiKey: key, maxRetries: 0 });
    const models = await client.models.list();
    const model = models.data[0].id;
    expect(model).toMatch(/target/);
    const chat = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Hola" }], max_tokens: 16, temperature: 0 });
    expect(typeof chat.choices[0].message.content).toBe("string");
    expect(chat.usage!.completion_tokens).toBeGreaterThan(0);
    expect((chat.usage as unknown as { cost: { total: number } }).cost.total).toBeGreaterThan(0);
    // Without a key the billed edge refuses.
    const anonymous = await fetch(`${edge.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model, messages: [{ role: "user", content: "Hola" }] }) });
    expect(anonymous.status).toBe(401);
  });
});
