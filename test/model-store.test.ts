// Model store integration tests: a real s3rver on 127.0.0.1 (random port, temp folder) and the real
// @aws-sdk/client-s3; no mocked client. One bundle file is larger than the part size so the
// multipart path really runs.
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { type LocalS3, startS3rver } from "./harness/s3rver.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHATML_TEMPLATE, MANIFEST_FILE } from "../src/common/models/bundle.ts";
import { LocalModelStore } from "../src/common/models/local-model-store.ts";
import { buildManifest, verifyBundleDir, writeManifest } from "../src/common/models/manifest.ts";
import { loadBundle, progressReporter, readManifest, type Progress } from "../src/common/models/model-store.ts";
import { S3ModelStore, createS3Client, type S3Options } from "../src/common/models/s3-model-store.ts";
import { MIN_PART_SIZE, uploadBundle } from "../src/common/models/s3-upload.ts";

const BUCKET = "models";
const PREFIX = "bundles";
const ID = "fixture-target";
const PART = MIN_PART_SIZE; // 5 MiB: the smallest part S3 accepts
const ONNX_SIZE = 2 * PART + 123_457; // three parts, the last one short

let work: string;
let server: LocalS3;
let s3: S3Options;
/** "METHOD url" of every HTTP request s3rver received, in order. */
let requests: string[] = [];

function modelFiles(): Record<string, Uint8Array | string> {
  const json = (v: unknown) => JSON.stringify(v, null, 2);
  return {
    "config.json": json({
      model_type: "llama",
      architectures: ["LlamaForCausalLM"],
      vocab_size: 320,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 256,
      rms_norm_eps: 1e-5,
      bos_token_id: 1,
      eos_token_id: 2,
    }),
    "generation_config.json": json({ bos_token_id: 1, eos_token_id: 2, do_sample: false }),
    "tokenizer.json": json({ version: "1.0", model: { type: "BPE", vocab: { "<s>": 1, "</s>": 2 }, merges: [] } }),
    "tokenizer_config.json": json({ chat_template: CHATML_TEMPLATE, bos_token: "<s>", eos_token: "</s>" }),
    // Random bytes: nothing here runs the graph, and random data cannot hide a byte mix-up.
    "onnx/model.onnx": randomBytes(ONNX_SIZE),
    "onnx/model_q4.onnx": randomBytes(4096),
  };
}

/** Write a bundle folder (with manifest) and return its path. */
async function makeBundle(name: string, id = ID, version = "1"): Promise<string> {
  const dir = path.join(work, "src", name);
  for (const [rel, data] of Object.entries(modelFiles())) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), data);
  }
  await writeManifest(dir, { id, version, role: "target" });
  return dir;
}

async function flipByte(file: string, at = 0): Promise<void> {
  const b = await readFile(file);
  b[at] ^= 0xff;
  await writeFile(file, b);
}

async function getObject(key: string): Promise<Buffer> {
  const res = await createS3Client(s3).send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

async function putObject(key: string, body: Uint8Array | string): Promise<void> {
  await createS3Client(s3).send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
}

function store(cache: string, prefix = PREFIX): S3ModelStore {
  return new S3ModelStore({ ...s3, prefix, cacheDir: path.join(work, cache) });
}

const gets = () => requests.filter((r) => r.startsWith("GET "));

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "alia-model-store-"));
  server = await startS3rver(path.join(work, "s3rver"), [BUCKET]);
  server.httpServer.on("request", (req: IncomingMessage) => requests.push(`${req.method} ${req.url}`));
  s3 = { bucket: BUCKET, ...server.options };
});

afterAll(async () => {
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("manifest", () => {
  it("lists every file with sorted '/' paths, skipping manifest.json, dotfiles and partials", async () => {
    const dir = await makeBundle("listing");
    await writeFile(path.join(dir, ".gitattributes"), "*.onnx filter=lfs");
    await writeFile(path.join(dir, "onnx", "model.onnx.abc.partial"), "half");
    const m = await buildManifest(dir, { id: "x", version: "2" });
    expect(m.files.map((f) => f.path)).toEqual(["config.json", "generation_config.json", "onnx/model.onnx", "onnx/model_q4.onnx", "tokenizer.json", "tokenizer_config.json"]);
    const onnx = m.files.find((f) => f.path === "onnx/model.onnx")!;
    expect(onnx.size).toBe(ONNX_SIZE);
    expect(onnx.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(m.role).toBe("any");
  });

  it("refuses to build a manifest for a folder without a required file", async () => {
    const dir = await makeBundle("incomplete");
    await rm(path.join(dir, "tokenizer.json"));
    await expect(buildManifest(dir, { id: "x", version: "1" })).rejects.toThrow(/lacks required file tokenizer\.json/);
  });
});

describe("S3 upload and S3ModelStore (s3rver)", () => {
  let srcDir: string;

  it("uploads with multipart and the manifest last, then fetches and loads identical bytes", async () => {
    srcDir = await makeBundle("roundtrip");
    requests = [];
    const log: string[] = [];
    const progress: Progress[] = [];
    const up = await uploadBundle(srcDir, {
      ...s3,
      prefix: PREFIX,
      partSize: PART,
      log: (l) => log.push(l),
      onProgress: (p) => progress.push(p),
    });
    expect(up.keyPrefix).toBe(`${PREFIX}/${ID}`);
    expect(up.uploaded).toContain("onnx/model.onnx");
    expect(up.skipped).toEqual([]);
    expect(log.some((l) => l.includes("onnx/model.onnx") && l.includes("multipart"))).toBe(true);

    // Multipart really ran: one initiate, three parts, one complete for the big file.
    const onnxKey = `/${BUCKET}/${PREFIX}/${ID}/onnx/model.onnx`;
    expect(requests.filter((r) => r.startsWith(`POST ${onnxKey}?uploads`))).toHaveLength(1);
    expect(requests.filter((r) => r.startsWith(`PUT ${onnxKey}?`) && r.includes("partNumber="))).toHaveLength(3);
    // The manifest is the last write.
    const writes = requests.filter((r) => r.startsWith("PUT ") || r.startsWith("POST "));
    expect(writes.at(-1)).toMatch(new RegExp(`^PUT /${BUCKET}/${PREFIX}/${ID}/manifest\\.json`));
    const lastUpload = progress.filter((p) => p.phase === "upload").at(-1)!;
    expect(lastUpload.bytes).toBe(lastUpload.total);

    const listed = await createS3Client(s3).send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${PREFIX}/${ID}/` }));
    expect(listed.Contents!.map((c) => c.Key).sort()).toEqual(
      [MANIFEST_FILE, "config.json", "generation_config.json", "onnx/model.onnx", "onnx/model_q4.onnx", "tokenizer.json", "tokenizer_config.json"].map((f) => `${PREFIX}/${ID}/${f}`).sort(),
    );
    expect((await getObject(`${PREFIX}/${ID}/onnx/model.onnx`)).equals(await readFile(path.join(srcDir, "onnx/model.onnx")))).toBe(true);

    const st = store("cache-a");
    const dl: Progress[] = [];
    const dir = await st.fetchBundle(ID, { onProgress: (p) => dl.push(p) });
    expect(path.relative(path.join(work, "cache-a"), dir)).toBe(path.join(ID, "1"));
    for (const f of up.manifest.files) {
      expect((await readFile(path.join(dir, f.path))).equals(await readFile(path.join(srcDir, f.path))), f.path).toBe(true);
    }
    const lastDl = dl.filter((p) => p.phase === "download").at(-1)!;
    expect(lastDl.bytes).toBe(lastDl.total);
    expect(lastDl.total).toBe(up.manifest.files.reduce((a, f) => a + f.size, 0));
    expect((await readdir(path.join(dir, "onnx"))).filter((n) => n.endsWith(".partial"))).toEqual([]);

    const b = await loadBundle(dir);
    expect(b.manifest.id).toBe(ID);
    expect(b.manifest.role).toBe("target");
    expect(b.config.num_key_value_heads).toBe(2);
    expect(b.config.rope_theta).toBe(10000); // schema default applied
    expect(b.tokenizerConfig.chat_template).toBe(CHATML_TEMPLATE);
    expect(Buffer.from(b.onnx).equals(await readFile(path.join(srcDir, "onnx/model.onnx")))).toBe(true);
    const q4 = await loadBundle(dir, { onnxFile: "onnx/model_q4.onnx" });
    expect(q4.onnx.length).toBe(4096);
    await expect(loadBundle(dir, { onnxFile: "onnx/model_fp16.onnx" })).rejects.toThrow(/onnx\/model_fp16\.onnx is not listed in manifest\.json/);
  });

  it("serves a second fetch from the cache (only the manifest is downloaded)", async () => {
    const st = store("cache-a");
    requests = [];
    const before = await stat(path.join(work, "cache-a", ID, "1", "onnx/model.onnx"));
    await st.fetchBundle(ID);
    expect(gets()).toEqual([expect.stringMatching(new RegExp(`^GET /${BUCKET}/${PREFIX}/${ID}/manifest\\.json`))]);
    const after = await stat(path.join(work, "cache-a", ID, "1", "onnx/model.onnx"));
    expect(after.mtimeMs).toBe(before.mtimeMs);
  });

  it("re-uploading an unchanged bundle skips every file (HEAD only) but rewrites the manifest", async () => {
    requests = [];
    const up = await uploadBundle(srcDir, { ...s3, prefix: PREFIX, partSize: PART });
    expect(up.uploaded).toEqual([]);
    expect(up.skipped).toHaveLength(6);
    const writes = requests.filter((r) => r.startsWith("PUT ") || r.startsWith("POST "));
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(/manifest\.json/);
  });

  it("re-downloads only a cached file that was corrupted on disk", async () => {
    const st = store("cache-a");
    const cached = path.join(work, "cache-a", ID, "1", "onnx/model.onnx");
    await flipByte(cached, 4321);
    // Loading the corrupted folder directly is refused, naming the file.
    await expect(loadBundle(path.dirname(path.dirname(cached)))).rejects.toThrow(new RegExp(`bundle ${ID}@1: onnx/model\\.onnx: sha256 mismatch \\(expected [0-9a-f]{64}, got [0-9a-f]{64}\\)`));
    await truncate(path.join(work, "cache-a", ID, "1", "tokenizer.json"), 10);
    requests = [];
    const dir = await st.fetchBundle(ID);
    expect(
      gets()
        .map((r) => r.split("?")[0])
        .sort(),
    ).toEqual([`GET /${BUCKET}/${PREFIX}/${ID}/${MANIFEST_FILE}`, `GET /${BUCKET}/${PREFIX}/${ID}/onnx/model.onnx`, `GET /${BUCKET}/${PREFIX}/${ID}/tokenizer.json`].sort());
    await verifyBundleDir(dir, await readManifest(dir));
    expect((await readFile(cached)).equals(await readFile(path.join(srcDir, "onnx/model.onnx")))).toBe(true);
  });

  it("refuses an object whose bytes were changed in the bucket, naming the file, and keeps nothing of it", async () => {
    const key = `${PREFIX}/${ID}/onnx/model_q4.onnx`;
    const good = await getObject(key);
    const bad = Buffer.from(good);
    bad[100] ^= 0x01;
    await putObject(key, bad);
    try {
      const cache = path.join(work, "cache-flip");
      await expect(store("cache-flip").fetchBundle(ID)).rejects.toThrow(new RegExp(`bundle ${ID}@1: onnx/model_q4\\.onnx: sha256 mismatch \\(expected [0-9a-f]{64}, got [0-9a-f]{64}\\) in s3://${BUCKET}/${key}`));
      const left = await readdir(path.join(cache, ID, "1", "onnx"));
      expect(left.filter((n) => n.startsWith("model_q4.onnx"))).toEqual([]);
      // No manifest.json: the cache folder is not a loadable bundle.
      await expect(stat(path.join(cache, ID, "1", MANIFEST_FILE))).rejects.toThrow(/ENOENT/);
    } finally {
      await putObject(key, good);
    }
  });

  it("refuses an object of the wrong size in the bucket", async () => {
    const key = `${PREFIX}/${ID}/config.json`;
    const good = await getObject(key);
    await putObject(key, Buffer.concat([good, Buffer.from("\n\n")]));
    try {
      await expect(store("cache-size").fetchBundle(ID)).rejects.toThrow(/config\.json: object in bucket is larger than \d+ bytes in manifest/);
      await putObject(key, good.subarray(0, 20));
      await expect(store("cache-size").fetchBundle(ID)).rejects.toThrow(/config\.json: size 20 != \d+ in manifest/);
    } finally {
      await putObject(key, good);
    }
  });

  it("names a file that is missing from the bucket", async () => {
    const key = `${PREFIX}/${ID}/generation_config.json`;
    const good = await getObject(key);
    await createS3Client(s3).send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
    try {
      await expect(store("cache-missing").fetchBundle(ID)).rejects.toThrow(`bundle ${ID}@1: generation_config.json: missing in bucket (s3://${BUCKET}/${key} does not exist)`);
    } finally {
      await putObject(key, good);
    }
  });

  it("explains an unknown bundle, a bad ref and an aborted fetch", async () => {
    await expect(store("cache-x").fetchBundle("no-such-bundle")).rejects.toThrow(`no bundle "no-such-bundle" (s3://${BUCKET}/${PREFIX}/no-such-bundle/manifest.json does not exist)`);
    await expect(store("cache-x").fetchBundle("../etc")).rejects.toThrow(/invalid bundle ref "\.\.\/etc"/);
    await expect(store("cache-x").fetchBundle("..")).rejects.toThrow(/invalid bundle ref/);
    await expect(store("cache-x").fetchBundle(ID, { signal: AbortSignal.abort() })).rejects.toThrow(/abort/i);
  });

  it("an abort in the middle of a download leaves no partial files behind", async () => {
    const ac = new AbortController();
    const cache = path.join(work, "cache-abort");
    await expect(
      store("cache-abort").fetchBundle(ID, {
        signal: ac.signal,
        onProgress: (p) => {
          if (p.phase === "download" && p.bytes > 1 << 20) ac.abort();
        },
      }),
    ).rejects.toThrow(/abort/i);
    const all = await readdir(cache, { recursive: true });
    expect(all.filter((n) => n.endsWith(".partial"))).toEqual([]);
    expect(all.some((n) => n.endsWith(MANIFEST_FILE))).toBe(false);
    // The next fetch completes from where the cache stands.
    await loadBundle(await store("cache-abort").fetchBundle(ID));
  });

  it("gives clear messages for manifests that break the schema", async () => {
    const good = JSON.parse((await getObject(`${PREFIX}/${ID}/${MANIFEST_FILE}`)).toString());
    const cases: [string, unknown, RegExp][] = [
      ["not-json", "{ nope", /invalid manifest s3:\/\/models\/bundles\/not-json\/manifest\.json: not valid JSON/],
      ["bad-format", { ...good, format: "other/2" }, /invalid manifest .*bad-format\/manifest\.json: format: /],
      ["bad-sha", { ...good, files: good.files.map((f: { path: string }, i: number) => (i === 0 ? { ...f, sha256: "ABC" } : f)) }, /files\[0\]\.sha256: sha256 must be 64 lowercase hex digits/],
      ["no-onnx", { ...good, files: good.files.filter((f: { path: string }) => f.path !== "onnx/model.onnx") }, /manifest lacks required file onnx\/model\.onnx/],
      ["neg-size", { ...good, files: good.files.map((f: { size: number }, i: number) => (i === 1 ? { ...f, size: -1 } : f)) }, /files\[1\]\.size: /],
      ["bad-version", { ...good, version: "1/../../x" }, /version: version: letters, digits/],
      ["dot-id", { ...good, id: ".." }, /id: bundle id: letters, digits.*\(not '\.' or '\.\.'\)/],
    ];
    for (const [ref, body, re] of cases) {
      await putObject(`${PREFIX}/${ref}/${MANIFEST_FILE}`, typeof body === "string" ? body : JSON.stringify(body));
      await expect(store("cache-schema").fetchBundle(ref), ref).rejects.toThrow(re);
    }
  });

  it("refuses path traversal in a manifest and writes nothing outside the cache", async () => {
    const good = JSON.parse((await getObject(`${PREFIX}/${ID}/${MANIFEST_FILE}`)).toString());
    const evil = [
      ["../escape.txt", /files\[\d+\]\.path: file paths must be relative, with no '\.\.'/],
      ["onnx/../../escape.txt", /file paths must be relative/],
      ["/etc/escape.txt", /file paths must be relative/],
      ["onnx\\..\\..\\escape.txt", /file paths must be relative/],
      ["onnx/./model.onnx", /unsafe file path in manifest: "onnx\/\.\/model\.onnx"/],
      ["manifest.json", /lists manifest\.json itself/],
    ] as const;
    // Validation happens before any download, so the evil objects need not exist in the bucket.
    for (const [i, [p, re]] of evil.entries()) {
      const ref = `traversal-${i}`;
      await putObject(`${PREFIX}/${ref}/${MANIFEST_FILE}`, JSON.stringify({ ...good, id: ref, files: [...good.files, { path: p, size: 3, sha256: "0".repeat(64) }] }));
      await expect(store("cache-evil").fetchBundle(ref), p).rejects.toThrow(re);
    }
    await expect(stat(path.join(work, "escape.txt"))).rejects.toThrow(/ENOENT/);
    await expect(stat(path.join(work, "cache-evil"))).rejects.toThrow(/ENOENT/);
  });

  it("upload CLI: --help, flag errors, and an upload configured from env vars", async () => {
    const run = promisify(execFile);
    const tsx = path.resolve("node_modules/.bin/tsx");
    const help = await run(tsx, ["scripts/upload-bundle.ts", "--help"]);
    expect(help.stdout).toMatch(/Usage: npm run bundle:upload/);
    await expect(run(tsx, ["scripts/upload-bundle.ts", srcDir, "--part-size-mib", "2"], { env: { ...process.env, S3_BUCKET: BUCKET } })).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--part-size-mib must be at least 5/),
    });
    const dir = await makeBundle("cli", "cli-bundle", "7");
    const env = {
      ...process.env,
      S3_BUCKET: BUCKET,
      S3_ENDPOINT: s3.endpoint,
      S3_REGION: "auto",
      S3_FORCE_PATH_STYLE: "1",
      AWS_ACCESS_KEY_ID: "S3RVER",
      AWS_SECRET_ACCESS_KEY: "S3RVER",
    };
    // No --id/--version: taken from the folder's existing manifest.json.
    const out = await run(tsx, ["scripts/upload-bundle.ts", dir, "--prefix", "cli", "--part-size-mib", "5"], { env });
    expect(out.stdout).toMatch(/uploaded bundle cli-bundle@7 \(target\) to s3:\/\/models\/cli\/cli-bundle: 6 file\(s\) sent, 0 already there/);
    // Not a TTY: a handful of progress lines, not one per chunk.
    expect(out.stderr.split("\n").filter((l) => l.startsWith("upload: upload")).length).toBeLessThanOrEqual(11);
    const fetched = await store("cache-cli", "cli").fetchBundle("cli-bundle");
    expect((await loadBundle(fetched)).manifest.version).toBe("7");
  });
});

describe("LocalModelStore", () => {
  it("returns a verified bundle folder and reports progress", async () => {
    const dir = await makeBundle("local-ok", "local-ok", "3");
    const st = new LocalModelStore(path.dirname(dir));
    const seen: Progress[] = [];
    expect(await st.fetchBundle("local-ok", { onProgress: (p) => seen.push(p) })).toBe(dir);
    expect(seen.at(-1)!.bytes).toBe(seen.at(-1)!.total);
    expect(await st.fetchBundle(dir)).toBe(dir); // absolute path works too
  });

  it("refuses a flipped byte and a truncated file, naming the file", async () => {
    const dir = await makeBundle("local-bad", "local-bad", "1");
    const st = new LocalModelStore(path.dirname(dir));
    await flipByte(path.join(dir, "tokenizer_config.json"), 5);
    await expect(st.fetchBundle("local-bad")).rejects.toThrow(/bundle local-bad@1: tokenizer_config\.json: sha256 mismatch \(expected [0-9a-f]{64}, got [0-9a-f]{64}\)/);
    await flipByte(path.join(dir, "tokenizer_config.json"), 5);
    await truncate(path.join(dir, "onnx/model.onnx"), 1000);
    await expect(st.fetchBundle("local-bad")).rejects.toThrow(`bundle local-bad@1: onnx/model.onnx: size 1000 != ${ONNX_SIZE} in manifest (truncated or partial download?)`);
    await rm(path.join(dir, "config.json"));
    await expect(st.fetchBundle("local-bad")).rejects.toThrow(/config\.json: missing; onnx\/model\.onnx: size 1000/);
  });

  it("explains a folder without a manifest, a broken manifest and traversal", async () => {
    const dir = await makeBundle("local-schema", "local-schema", "1");
    const st = new LocalModelStore(path.dirname(dir));
    await expect(st.fetchBundle("nowhere")).rejects.toThrow(/no bundle at .*nowhere: manifest\.json is missing/);
    const m = JSON.parse(await readFile(path.join(dir, MANIFEST_FILE), "utf8"));
    await writeFile(path.join(dir, MANIFEST_FILE), JSON.stringify({ ...m, files: [...m.files, m.files[0]] }));
    await expect(st.fetchBundle("local-schema")).rejects.toThrow(/invalid manifest .*manifest\.json: \(root\): duplicate file path in manifest/);
    await writeFile(path.join(dir, MANIFEST_FILE), JSON.stringify({ ...m, files: [...m.files, { path: "../local-ok/config.json", size: 1, sha256: "0".repeat(64) }] }));
    await expect(st.fetchBundle("local-schema")).rejects.toThrow(/file paths must be relative, with no '\.\.'/);
    const { role: _role, ...noRole } = m;
    await writeFile(path.join(dir, MANIFEST_FILE), JSON.stringify({ ...noRole, id: "has space" }));
    await expect(st.fetchBundle("local-schema")).rejects.toThrow(/id: bundle id: letters, digits/);
  });

  it("loadBundle names a JSON file that breaks its schema", async () => {
    const dir = await makeBundle("local-config", "local-config", "1");
    const cfg = JSON.parse(await readFile(path.join(dir, "config.json"), "utf8"));
    await writeFile(path.join(dir, "config.json"), JSON.stringify({ ...cfg, num_key_value_heads: 3 }));
    await writeManifest(dir, { id: "local-config", version: "1" });
    await expect(loadBundle(dir)).rejects.toThrow(/bundle local-config@1: config\.json: .*num_attention_heads must be a multiple of num_key_value_heads/);
  });
});

describe("progressReporter", () => {
  it("prints at most one line per 10% when stderr is not a TTY", () => {
    const lines: string[] = [];
    const fake = { isTTY: false, write: (s: string) => lines.push(s) } as unknown as NodeJS.WriteStream;
    const report = progressReporter("draft", fake, 0);
    for (let b = 0; b <= 1000; b += 1) report({ phase: "download", bytes: b * 1000, total: 1_000_000 });
    expect(lines.length).toBe(11);
    expect(lines.at(-1)).toMatch(/^draft: download 976\.6 KiB \/ 976\.6 KiB \(100\.0%\) [\d.]+ MB\/s\n$/);
  });

  it("rewrites one line with \\r on a TTY and ends it with a newline", () => {
    const out: string[] = [];
    const fake = { isTTY: true, write: (s: string) => out.push(s) } as unknown as NodeJS.WriteStream;
    const report = progressReporter("target", fake, 0);
    for (let b = 0; b <= 100; b++) report({ phase: "verify", bytes: b, total: 100 });
    expect(out.length).toBeLessThan(5);
    expect(out.every((s) => s.startsWith("\r"))).toBe(true);
    expect(out.at(-1)!.endsWith("\n")).toBe(true);
  });

  it("stays silent for phases smaller than its threshold", () => {
    const out: string[] = [];
    const fake = { isTTY: false, write: (s: string) => out.push(s) } as unknown as NodeJS.WriteStream;
    const report = progressReporter("small", fake, 1000);
    for (let b = 0; b <= 999; b += 100) report({ phase: "verify", bytes: b, total: 999 });
    expect(out).toEqual([]);
    report({ phase: "download", bytes: 1000, total: 1000 });
    expect(out.length).toBe(1);
  });
});
