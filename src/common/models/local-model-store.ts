// Bundles already on disk (fixtures, a mounted volume, a container image): nothing to download,
// but every file is still checked against the manifest before anyone loads it.
import path from "node:path";
import { verifyBundleDir } from "./manifest.ts";
import { filesToFetch, readManifest, type FetchOptions, type ModelStore } from "./model-store.ts";

export class LocalModelStore implements ModelStore {
  readonly name: string;
  private readonly root: string;

  /** `root`: folder holding one sub-folder per bundle. */
  constructor(root: string) {
    this.root = path.resolve(root);
    this.name = `local:${root}`;
  }

  /** `ref`: a sub-folder name of the root, a path relative to it, or an absolute path. */
  async fetchBundle(ref: string, opts: FetchOptions = {}): Promise<string> {
    if (!ref) throw new Error(`${this.name}: empty bundle ref`);
    const dir = path.resolve(this.root, ref);
    const manifest = await readManifest(dir);
    let done = 0;
    await verifyBundleDir(
      dir,
      { ...manifest, files: filesToFetch(manifest, opts.files) },
      {
        signal: opts.signal,
        onBytes:
          opts.onProgress &&
          ((n, total) => {
            done += n;
            opts.onProgress!({ phase: "verify", bytes: done, total });
          }),
      },
    ).catch((e: Error) => {
      if (e.name === "AbortError") throw e;
      throw new Error(`${this.name}: ${e.message}`, { cause: e });
    });
    return dir;
  }
}
