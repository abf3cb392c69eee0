// CLI: write <bundle-dir>/manifest.json (sha256 + size of every file).
//   npm run bundle:manifest -- <bundle-dir> --id salamandra-2b-q4 --version 1 --role draft
import path from "node:path";
import { MANIFEST_FILE } from "../src/common/models/bundle.ts";
import { writeManifest } from "../src/common/models/manifest.ts";
import { progressReporter } from "../src/common/models/model-store.ts";
import { resolveMeta } from "../src/common/models/s3-upload.ts";
import { choiceFlag, cliFail, parseCli } from "./cli.ts";

const HELP = `Usage: npm run bundle:manifest -- <bundle-dir> [--id <id>] [--version <v>] [--role draft|target|any]

Hashes every file in <bundle-dir> (except manifest.json, dotfiles and *.partial) and writes
<bundle-dir>/manifest.json. Missing --id/--version/--role are taken from an existing manifest.json.
Fails if a required bundle file (config.json, generation_config.json, tokenizer.json,
tokenizer_config.json, onnx/model.onnx) is absent.
`;

const SCRIPT = "write-manifest";

async function main(): Promise<void> {
  const { values: v, positionals } = parseCli(SCRIPT, HELP, {
    allowPositionals: true,
    options: { id: { type: "string" }, version: { type: "string" }, role: { type: "string" } },
  });
  if (positionals.length !== 1) cliFail(SCRIPT, "expected exactly one <bundle-dir>");
  const dir = positionals[0];
  const role = choiceFlag(SCRIPT, "role", v.role, ["draft", "target", "any"]);

  const meta = await resolveMeta(dir, { id: v.id, version: v.version, role });

  const report = progressReporter("manifest");
  let done = 0;
  const m = await writeManifest(dir, meta, {
    onBytes: (n, total) => {
      done += n;
      report({ phase: "hash", bytes: done, total });
    },
  });
  const bytes = m.files.reduce((a, f) => a + f.size, 0);
  process.stdout.write(`wrote ${path.join(dir, MANIFEST_FILE)}: ${m.id}@${m.version} (${m.role}), ${m.files.length} files, ${bytes} bytes\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`${SCRIPT}: ${e.message}\n`);
  process.exit(1);
});
