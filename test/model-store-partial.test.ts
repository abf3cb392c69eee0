// A partial fetch: the edge takes only the target bundle's facts (config and tokenizer) from the store,
// never its weights, and loads the model pair from them. Real s3rver on 127.0.0.1 and the real S3 client.
import { cp, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type LocalS3, startS3rver } from "./harness/s3rver.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";
import { DirectoryBundleReader } from "../src/model-pair/directory-bundle-reader.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { TARGET_FACTS, loadModelPair } from "../src/model-pair/load-model-pair.ts";
import { LocalModelStore } from "../src/common/models/local-model-store.ts";
import { readManifest } from "../src/common/models/model-store.ts";
import { S3ModelStore, type S3Options } from "../src/common/models/s3-model-store.ts";
import { uploadBundle } from "../src/common/models/s3-upload.ts";

let work: string;
let server: LocalS3;
let s3: S3Options;
let targetId: string;

const files = async (dir: string) =>
  (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join("/"))
    .sort();

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "alia-partial-"));
  server = await startS3rver(path.join(work, "s3rver"), ["models"]);
  s3 = { bucket: "models", ...server.options };
  // The uploader (re)writes the folder's manifest: upload a copy, not the committed fixture.
  const copy = path.join(work, "target");
  await cp(path.join(DEFAULT_PAIR_DIR, "target"), copy, { recursive: true });
  targetId = (await readManifest(copy)).id;
  await uploadBundle(copy, { ...s3, prefix: "bundles" });
});

afterAll(async () => {
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("partial bundle fetch", () => {
  it("downloads only the listed files (and the manifest), and the edge loads its pair from them", async () => {
    const store = new S3ModelStore({ ...s3, prefix: "bundles", cacheDir: path.join(work, "cache") });
    const dir = await store.fetchBundle(targetId, { files: TARGET_FACTS });
    expect(await files(dir)).toEqual([...TARGET_FACTS, "manifest.json"].sort());
    const { served } = await loadModelPair(new DirectoryBundleReader(dir), { reader: new DirectoryBundleReader(path.join(DEFAULT_PAIR_DIR, "draft")), load: loadDraftModel });
    expect(served.id).toBe(targetId);
    expect(served.tokenizer.encode("Hola").length).toBeGreaterThan(1);

    // A later full fetch into the same cache completes the bundle (the weights arrive, checked).
    const full = await store.fetchBundle(targetId);
    expect(await files(full)).toEqual((await files(path.join(DEFAULT_PAIR_DIR, "target"))).sort());
  });

  it("refuses a file the manifest does not list", async () => {
    const store = new S3ModelStore({ ...s3, prefix: "bundles", cacheDir: path.join(work, "cache-2") });
    await expect(store.fetchBundle(targetId, { files: ["config.json", "weights.bin"] })).rejects.toThrow(/does not list weights\.bin/);
  });

  it("a local store checks only the listed files", async () => {
    const root = path.join(work, "local");
    await cp(path.join(DEFAULT_PAIR_DIR, "target"), path.join(root, "target"), { recursive: true });
    await writeFile(path.join(root, "target", "onnx", "model.onnx"), "not the weights");
    const store = new LocalModelStore(root);
    await expect(store.fetchBundle("target", { files: TARGET_FACTS })).resolves.toBe(path.join(root, "target"));
    await expect(store.fetchBundle("target")).rejects.toThrow(/onnx\/model\.onnx/);
  });
});
