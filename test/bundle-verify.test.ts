// `npm run bundle:verify` against a real S3 server (s3rver on loopback) holding bundles uploaded by the
// project's own `uploadBundle`: the committed pair and its trimmed draft pass; a draft with another
// tokenizer, a file changed in the bucket after upload, and a draft named as the target each fail, exit 1,
// and say why.
import { execFile } from "node:child_process";
import { cp, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createS3Client } from "../src/common/models/s3-model-store.ts";
import { uploadBundle } from "../src/common/models/s3-upload.ts";
import { ortNode } from "../gpu-backend/target-model.ts";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";
import { writeSyntheticPairBundles } from "../fixtures/generate/synthetic-bundles.ts";
import { startS3rver, type LocalS3 } from "./harness/s3rver.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const BUCKET = "models";
let tmp: string;
let s3: LocalS3;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "alia-edge-bundle-verify-"));
  s3 = await startS3rver(path.join(tmp, "s3"), [BUCKET]);
  // Copies: uploadBundle refreshes the folder's manifest.json.
  for (const name of ["target", "draft", "draft-trimmed"]) await cp(path.join(DEFAULT_PAIR_DIR, name), path.join(tmp, name), { recursive: true });
  await writeSyntheticPairBundles({ outDir: path.join(tmp, "word"), alpha: 0.6, seed: 3, vocabSize: 64, ort: ortNode });
  const up = (dir: string, id: string) => uploadBundle(dir, { ...s3.options, bucket: BUCKET, prefix: "bundles", id });
  await up(path.join(tmp, "target"), "alia-fixture");
  await up(path.join(tmp, "target"), "alia-fixture-tampered");
  await up(path.join(tmp, "draft"), "salamandra-fixture");
  await up(path.join(tmp, "draft-trimmed"), "salamandra-fixture-trimmed");
  await up(path.join(tmp, "word", "draft"), "word-level-draft");
  // Changed in the bucket after its manifest was written: one byte more in config.json.
  const client = createS3Client({ ...s3.options, bucket: BUCKET });
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "bundles/alia-fixture-tampered/config.json", Body: `${JSON.stringify({ tampered: true })} ` }));
}, 120_000);

afterAll(async () => {
  await s3?.close();
  await rm(tmp, { recursive: true, force: true });
});

function verify(...refs: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    ...process.env,
    MODEL_STORE: "s3",
    S3_BUCKET: BUCKET,
    S3_PREFIX: "bundles",
    S3_ENDPOINT: s3.options.endpoint,
    S3_FORCE_PATH_STYLE: "true",
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
  };
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", "scripts/verify-bundle.ts", ...refs], { cwd: ROOT, env, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe("npm run bundle:verify", () => {
  it("passes the committed pair read back from the bucket: files, roles, both models run, one tokenizer", async () => {
    const r = await verify("alia-fixture", "salamandra-fixture");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/✓ target alia-fixture@1 from s3:\/\/models\/bundles: \d+ files match the manifest/);
    expect(r.stdout).toMatch(/✓ target loads on onnxruntime-node and runs \(vocab 2048/);
    expect(r.stdout).toMatch(/✓ pair: the draft tokenizes as the target does, and loads and runs on onnxruntime-web/);
    expect(r.stdout).toContain("all checks passed");
  }, 120_000);

  it("passes the trimmed-vocabulary draft and says so", async () => {
    const r = await verify("alia-fixture", "salamandra-fixture-trimmed");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/trimmed vocabulary of 1024 ids/);
  }, 120_000);

  it("fails a draft with another tokenizer, a file changed in the bucket, and a draft named as the target", async () => {
    const mismatch = await verify("alia-fixture", "word-level-draft");
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/tokenizer/i);
    const tampered = await verify("alia-fixture-tampered");
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toMatch(/config\.json/);
    const role = await verify("salamandra-fixture");
    expect(role.code).toBe(1);
    expect(role.stderr).toMatch(/is a draft bundle/);
    expect((await verify()).code).toBe(2);
  }, 240_000);
});
