// Where the edge reads a bundle's files from: one implementation per source (a local folder on Node, an
// R2 bucket in Workers). Every file a reader returns has been checked against the bundle's manifest.
import type { Manifest } from "../common/models/bundle.ts";

export interface BundleReader {
  /** Where the bundle is, for messages ("fixtures/default/draft", "r2://bucket/bundles/x/"). */
  readonly location: string;
  manifest(): Promise<Manifest>;
  /** One file's bytes, checked against the manifest's size and sha256 (or known verified already). */
  read(file: string): Promise<Uint8Array>;
}
