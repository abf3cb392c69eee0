// CLI: write <bundle-dir>/manifest.json (sha256 + size of every file).
//   npm run bundle:manifest -- <bundle-dir> --id salamandra-2b-q4 --version 1 --role draft
import path from "node:path";
import { parseArgs } from "node:util";
import { MANIFEST_FILE } from "../src/shared/models/bundle.ts";
import { writeManifest } from "../src/shared/models/manifest.ts";
import { progressReporter } from "../src/shared/models/model-store.ts";
import { resolveMeta } from "../src/shared/models/s3-upload.ts";

const HELP = `Usage: npm run bundle:manifest -- <bundle-dir> [--id <id>] [--version <v>] [--role draft|target|any]

Hashes every file in <bundle-dir> (except manifest.json, dotfiles and *.partial) and writes
<bundle-dir>/manifest.json. Missing --id/--version/--role are taken from an existing manifest.json.
Fails if a required bundle file (config.json, generation_config.json, tokenizer.json,
tokenizer_config.json, onnx/model.onnx) is absent.
`;

function fail(msg: string): never {
  process.stderr.write(`write-manifest: ${msg}\n(see --help)\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        id: { type: "string" },
        version: { type: "string" },
        role: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    process.stdout.write(HELP);
    return;
  }
  if (positionals.length !== 1) fail("expected exactly one <bundle-dir>");
  const dir = positionals[0];
  if (v.role !== undefined && v.role !== "draft" && v.role !== "target" && v.role !== "any") fail(`--role must be draft, target or any`);

  const meta = await resolveMeta(dir, { id: v.id, version: v.version, role: v.role as "draft" | "target" | "any" | undefined });

  const report = progressReporter("manifest");
  let done = 0;
  const m = await writeManifest(
    dir,
    meta,
    {
      onBytes: (n, total) => {
        done += n;
        report({ phase: "hash", bytes: done, total });
      },
    },
  );
  const bytes = m.files.reduce((a, f) => a + f.size, 0);
  process.stdout.write(`wrote ${path.join(dir, MANIFEST_FILE)}: ${m.id}@${m.version} (${m.role}), ${m.files.length} files, ${bytes} bytes\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`write-manifest: ${e.message}\n`);
  process.exit(1);
});
