// Who runs what: code both sides use lives in src/common and imports nothing from the edge; the GPU backend
// imports only src/common; the Worker's module graph holds no Node-only module. Read from the sources'
// import statements (relative specifiers resolved), so a misplaced import fails here, not in production.
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "..");
const SPEC = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
    .map((f) => path.join(dir, f).split(path.sep).join("/"));
}

/** Import specifiers of a file: relative ones resolved to repository paths, packages as written. */
function imports(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(SPEC)) {
    const spec = m[1] ?? m[2];
    // `import type` never reaches run time; it cannot break a runtime either.
    if (/^\s*(?:import|export)\s+type\s/.test(m[0].trimStart())) continue;
    out.push(spec.startsWith(".") ? path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)) : spec);
  }
  return out;
}

/** Every repository file reachable from `entry` through runtime imports. */
function graph(entry: string): Set<string> {
  const seen = new Set<string>();
  const walk = (f: string) => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const i of imports(f)) if (i.startsWith("src/") || i.startsWith("gpu-backend/")) walk(i);
  };
  walk(entry);
  return seen;
}

describe("import boundaries", () => {
  it("src/common imports nothing from the edge or the GPU backend", () => {
    const bad = sources("src/common").flatMap((f) =>
      imports(f)
        .filter((i) => (i.startsWith("src/") && !i.startsWith("src/common/")) || i.startsWith("gpu-backend/"))
        .map((i) => `${f} → ${i}`),
    );
    expect(bad).toEqual([]);
  });

  it("gpu-backend imports only src/common from the edge's tree", () => {
    const bad = sources("gpu-backend").flatMap((f) =>
      imports(f)
        .filter((i) => i.startsWith("src/") && !i.startsWith("src/common/"))
        .map((i) => `${f} → ${i}`),
    );
    expect(bad).toEqual([]);
  });

  it("the edge never imports the GPU backend", () => {
    const bad = sources("src").flatMap((f) =>
      imports(f)
        .filter((i) => i.startsWith("gpu-backend/"))
        .map((i) => `${f} → ${i}`),
    );
    expect(bad).toEqual([]);
  });

  it("the Worker's module graph has no Node built-ins and no Node-only packages", () => {
    const files = [...graph("src/worker.ts"), ...graph("src/worker-suffix.ts")];
    expect(files).toContain("src/app.ts");
    const nodeOnly = /^(node:|fs$|path$|os$|crypto$|child_process$|@hono\/node-server|onnxruntime-node|prom-client|@aws-sdk\/)/;
    const bad = files.flatMap((f) =>
      imports(f)
        .filter((i) => nodeOnly.test(i))
        .map((i) => `${f} → ${i}`),
    );
    expect(bad).toEqual([]);
  });

  it("the suffix-drafting Worker carries no model runtime (its one WebAssembly module is the grammar engine's)", () => {
    const files = [...graph("src/worker-suffix.ts")];
    expect(files).toContain("src/app.ts");
    expect(files).toContain("src/speculative/suffix-proposer.ts");
    expect(files).toContain("src/structured/xgrammar-workerd.ts");
    const runtime = files.flatMap((f) =>
      imports(f)
        .filter((i) => /^onnxruntime|\.wasm$/.test(i) && i !== ".cache/xgrammar/xgrammar.wasm")
        .map((i) => `${f} → ${i}`),
    );
    expect(runtime).toEqual([]);
    expect([...graph("src/worker.ts")].flatMap(imports)).toContain("onnxruntime-web/wasm"); // the check can fail
  });

  it("the parser sees real imports (it would catch a violation)", () => {
    expect(imports("src/worker-app.ts")).toEqual(expect.arrayContaining(["hono", "src/app.ts", "src/model-pair/load-model-pair.ts"]));
    expect(imports("src/common/models/manifest.ts")).toContain("node:crypto");
  });
});
