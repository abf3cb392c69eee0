// A bundle in a local folder (Node): ModelStore.fetchBundle has verified every file's sha256 already, so
// reading checks sizes only.
import { stat } from "node:fs/promises";
import { MANIFEST_FILE, type Manifest } from "../common/models/bundle.ts";
import { bundleFilePath } from "../common/models/manifest.ts";
import { readLargeFile, readManifest } from "../common/models/model-store.ts";
import type { BundleReader } from "./bundle-reader.ts";

export class DirectoryBundleReader implements BundleReader {
  private cached?: Promise<Manifest>;

  constructor(readonly location: string) {}

  manifest(): Promise<Manifest> {
    this.cached ??= readManifest(this.location);
    return this.cached;
  }

  async read(file: string): Promise<Uint8Array> {
    const entry = (await this.manifest()).files.find((f) => f.path === file);
    if (!entry) throw new Error(`bundle ${this.location}: ${MANIFEST_FILE} does not list ${file}`);
    const full = bundleFilePath(this.location, file);
    const { size } = await stat(full);
    if (size !== entry.size) throw new Error(`bundle ${this.location}: ${file} is ${size} bytes, ${MANIFEST_FILE} says ${entry.size}`);
    return readLargeFile(full);
  }
}
