// A bundle in an R2 bucket (Workers' binding): files are read whole and checked against the manifest's
// size and sha256 before use, so a corrupt or half-uploaded bundle is refused with the file named.
import { sha256Hex } from "../common/hash.ts";
import { MANIFEST_FILE, ManifestSchema, parseJsonFile, type Manifest } from "../common/models/bundle.ts";
import type { BundleReader } from "./bundle-reader.ts";

/** The slice of the R2 binding used here (no @cloudflare/workers-types in this project). */
export interface R2BucketLike {
  get(key: string): Promise<{ arrayBuffer(): Promise<ArrayBuffer> } | null>;
}

export class R2BundleReader implements BundleReader {
  readonly location: string;
  private readonly prefix: string;
  private cached?: Promise<Manifest>;

  /** `prefix`: the bundle's key prefix, with or without its trailing "/". */
  constructor(
    private readonly bucket: R2BucketLike,
    prefix: string,
  ) {
    this.prefix = prefix.endsWith("/") ? prefix : `${prefix}/`;
    this.location = `R2 ${this.prefix}`;
  }

  private async object(file: string): Promise<Uint8Array<ArrayBuffer>> {
    const obj = await this.bucket.get(this.prefix + file);
    if (!obj) throw new Error(`bundle ${this.location}: ${file} is missing from R2`);
    return new Uint8Array(await obj.arrayBuffer());
  }

  manifest(): Promise<Manifest> {
    if (!this.cached) {
      this.cached = this.object(MANIFEST_FILE).then((b) => parseJsonFile(ManifestSchema, b, `${this.location}${MANIFEST_FILE}`));
      this.cached.catch(() => (this.cached = undefined));
    }
    return this.cached;
  }

  async read(file: string): Promise<Uint8Array> {
    const entry = (await this.manifest()).files.find((f) => f.path === file);
    if (!entry) throw new Error(`bundle ${this.location}: ${MANIFEST_FILE} does not list ${file}`);
    const bytes = await this.object(file);
    if (bytes.byteLength !== entry.size) throw new Error(`bundle ${this.location}: ${file} is ${bytes.byteLength} bytes, ${MANIFEST_FILE} says ${entry.size}`);
    const got = await sha256Hex(bytes);
    if (got !== entry.sha256) throw new Error(`bundle ${this.location}: ${file} sha256 ${got} does not match ${MANIFEST_FILE} (${entry.sha256})`);
    return bytes;
  }
}
