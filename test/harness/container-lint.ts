// Lint of infra/docker/*.Dockerfile and infra/compose.yaml without a Docker daemon: the Dockerfiles are
// parsed with dockerfile-ast, the compose file with yaml, and both are checked against what the project
// really has (config schemas, served routes, package.json scripts, files). Each checker returns the
// problems it found, so a test can feed it a broken copy and see the problem named.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { DockerfileParser, type Instruction, JSONInstruction } from "dockerfile-ast";
import { parse as parseYaml } from "yaml";
import { ConfigSchema } from "../../src/config.ts";
import { VerifierConfigSchema } from "../../gpu-backend/config.ts";
import { ModelStoreConfigSchema } from "../../src/common/models/model-store-config.ts";

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const COMPOSE_FILE = "infra/compose.yaml";
const NODE_MAJOR = Number((JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { engines: { node: string } }).engines.node.match(/\d+/)![0]);

/** Environment the processes read outside the zod schemas: the AWS SDK's credential chain and Node's own. */
const OUTSIDE_SCHEMA = new Set(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "NODE_ENV"]);

export interface ServiceSpec {
  /** package.json script the image's CMD runs. */
  script: "start" | "verifier";
  /** Variable names the process accepts. */
  envKeys: Set<string>;
  /** Default port in its config schema, and the variable that sets it. */
  portVar: "PORT" | "VERIFIER_PORT";
  port: number;
  /** GET routes the server registers (read from its source). */
  routes: Set<string>;
}

/** The GET routes a Hono app file registers with app.get("/path", …). */
function getRoutes(file: string): Set<string> {
  const src = readFileSync(path.join(ROOT, file), "utf8");
  return new Set([...src.matchAll(/\bapp\.get\(\s*"(\/[^"]*)"/g)].map((m) => m[1]));
}

function schemaDefault(schema: { shape: Record<string, unknown> }, key: string): unknown {
  return (schema.shape[key] as { parse(v: unknown): unknown }).parse(undefined);
}

export function serviceSpecs(): Record<"edge" | "verifier", ServiceSpec> {
  return {
    edge: { script: "start", envKeys: new Set(Object.keys(ConfigSchema.shape)), portVar: "PORT", port: schemaDefault(ConfigSchema, "PORT") as number, routes: getRoutes("src/app.ts") },
    verifier: {
      script: "verifier",
      // The verifier reads the target bundle through the shared model-store settings.
      envKeys: new Set([...Object.keys(VerifierConfigSchema.shape), ...Object.keys(ModelStoreConfigSchema.shape)]),
      portVar: "VERIFIER_PORT",
      port: schemaDefault(VerifierConfigSchema, "VERIFIER_PORT") as number,
      routes: getRoutes("gpu-backend/server.ts"),
    },
  };
}

/** The command a package.json script runs, without the `exec` that replaces npm's shell. */
function scriptCommand(script: string): string[] {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
  const cmd = pkg.scripts[script];
  if (!cmd) return [];
  return cmd.replace(/^exec\s+/, "").split(/\s+/);
}

/** The path of an http://host:port/path URL in a healthcheck command. */
export function healthPath(command: string): string | undefined {
  // A whole URL, or (port from the environment: 'http://host:'+PORT+'/healthz') its quoted path part.
  return command.match(/https?:\/\/[^/'"\s]+(\/[\w/-]*)/)?.[1] ?? command.match(/['"](\/[\w/-]+)['"]/)?.[1];
}

function words(i: Instruction): string[] {
  return i instanceof JSONInstruction && i.getJSONStrings().length ? i.getJSONStrings().map((a) => a.getJSONValue()) : i.getArguments().map((a) => a.getValue());
}

/**
 * Files the relative imports of `entries` reach (static and literal dynamic imports, JSON included), as
 * repository paths. Packages are left out: they come from node_modules.
 */
export function importClosure(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = [...entries];
  while (todo.length) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    if (!/\.[cm]?[jt]s$/.test(file)) continue;
    const src = readFileSync(path.join(ROOT, file), "utf8");
    for (const m of src.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1]));
      if (existsSync(path.join(ROOT, target))) todo.push(target);
    }
  }
  return seen;
}

/** Whether .dockerignore-style `patterns` leave `file` out of the build context (last match wins; `dir`, `dir/*` and `!` forms). */
export function dockerIgnored(file: string, patterns: string[]): boolean {
  let ignored = false;
  for (const raw of patterns) {
    const negated = raw.startsWith("!");
    const p = (negated ? raw.slice(1) : raw).replace(/\/$/, "");
    const hit = p.endsWith("/*") ? file.startsWith(p.slice(0, -1)) : file === p || file.startsWith(`${p}/`) || (p.startsWith("*.") && file.endsWith(p.slice(1)));
    if (hit) ignored = !negated;
  }
  return ignored;
}

function readDockerignore(): string[] {
  const f = path.join(ROOT, ".dockerignore");
  if (!existsSync(f)) return [];
  return readFileSync(f, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}

/** Problems with one Dockerfile's text, for the service `spec` describes. */
export function lintDockerfile(text: string, spec: ServiceSpec, ignore = readDockerignore()): string[] {
  const problems: string[] = [];
  const d = DockerfileParser.parse(text);
  const lines = text.split("\n");
  type Stage = { name: string | null; image: string; instructions: Instruction[] };
  const stages: Stage[] = [];
  for (const i of d.getInstructions()) {
    const k = i.getKeyword();
    if (k === "FROM") {
      const a = i.getArguments().map((x) => x.getValue());
      stages.push({ name: a[2] ?? null, image: a[0], instructions: [] });
    } else if (stages.length) stages.at(-1)!.instructions.push(i);
  }
  if (stages.length < 2) problems.push(`multi-stage: ${stages.length} FROM stage(s)`);
  // Base images: ${ARG} resolved from the ARG defaults; a node image must satisfy package.json's engines.
  const argDefaults = new Map(
    d
      .getInitialARGs()
      .map((a) => a.getArguments()[0]?.getValue().split("=") ?? [])
      .filter((kv) => kv.length === 2) as [string, string][],
  );
  const stageNames = new Set(stages.map((s) => s.name).filter(Boolean));
  for (const s of stages) {
    const image = s.image.replace(/^\$\{(\w+)\}$/, (_, k: string) => argDefaults.get(k) ?? `\${${k}}`);
    if (image.includes("${")) problems.push(`FROM ${s.image}: no ARG default`);
    const node = image.match(/^node:(\d+)/);
    if (node && Number(node[1]) < NODE_MAJOR) problems.push(`FROM ${image}: package.json's engines need node >= ${NODE_MAJOR}`);
    if (/:latest$|^[^:]+$/.test(image) && !stageNames.has(image)) problems.push(`FROM ${image}: no pinned tag`);
  }
  for (const m of text.matchAll(/--from=([\w.-]+)/g)) if (!stageNames.has(m[1])) problems.push(`COPY --from=${m[1]}: no such stage`);
  const final = stages.at(-1);
  if (!final) return [...problems, "no FROM"];
  const of = (k: string) => final.instructions.filter((i) => i.getKeyword() === k);

  // Production dependencies only: every install is `npm ci --omit=dev`, and there is one.
  const runs = stages.flatMap((s) => s.instructions.filter((i) => i.getKeyword() === "RUN").map((i) => i.getRawArgumentsContent() ?? ""));
  const installs = runs.filter((r) => /\bnpm (ci|install|i)\b(?! -g)/.test(r));
  if (!installs.some((r) => /\bnpm ci\b[^&;]*--omit=dev/.test(r))) problems.push("no `npm ci --omit=dev` (production dependencies only)");
  for (const r of installs) if (!/--omit=dev/.test(r)) problems.push(`an install without --omit=dev: ${r}`);

  const users = of("USER");
  const user = users.at(-1)?.getArguments()[0]?.getValue();
  if (!user) problems.push("final stage: no USER (runs as root)");
  else if (/^(root|0)(:|$)/.test(user)) problems.push(`final stage: USER ${user} is root`);

  const hcs = of("HEALTHCHECK");
  if (!hcs.length) problems.push("final stage: no HEALTHCHECK");
  for (const h of hcs) {
    const p = healthPath(h.getRawArgumentsContent() ?? "");
    if (!p) problems.push("HEALTHCHECK: no http URL");
    else if (!spec.routes.has(p)) problems.push(`HEALTHCHECK path ${p} is not a route the server serves (${[...spec.routes].join(", ")})`);
  }

  const exposed = of("EXPOSE").flatMap((e) => e.getArguments().map((a) => Number.parseInt(a.getValue(), 10)));
  if (!exposed.includes(spec.port)) problems.push(`EXPOSE ${exposed.join(" ") || "(none)"} does not include ${spec.portVar}'s default ${spec.port}`);
  const envPort = of("ENV")
    .flatMap((e) => e.getArguments().map((a) => a.getValue()))
    .find((a) => a.startsWith(`${spec.portVar}=`));
  if (envPort && Number(envPort.split("=")[1]) !== spec.port) problems.push(`ENV ${envPort} differs from EXPOSE ${spec.port}`);
  for (const e of of("ENV").flatMap((x) => x.getArguments().map((a) => a.getValue().split("=")[0]))) {
    if (!spec.envKeys.has(e) && !OUTSIDE_SCHEMA.has(e)) problems.push(`ENV ${e} is not a variable of the config schema`);
  }

  // Sources copied from the build context (not --from another stage) must exist in the repository and
  // not be left out of the context by .dockerignore.
  const finalCopies: string[] = [];
  for (const s of stages) {
    for (const c of s.instructions.filter((i) => i.getKeyword() === "COPY" || i.getKeyword() === "ADD")) {
      if (/--from=/.test(lines.slice(c.getRange().start.line, c.getRange().end.line + 1).join("\n"))) continue;
      const args = words(c);
      for (const src of args.slice(0, -1)) {
        if (!existsSync(path.join(ROOT, src))) problems.push(`COPY source ${src} does not exist in the repository`);
        else if (dockerIgnored(src, ignore)) problems.push(`COPY source ${src} is excluded by .dockerignore`);
        if (s === final) finalCopies.push(src);
      }
    }
  }

  const cmd = of("CMD").at(-1);
  const want = scriptCommand(spec.script);
  if (!cmd) problems.push("final stage: no CMD");
  else {
    const got = words(cmd);
    if (got.join(" ") !== want.join(" ")) problems.push(`CMD ${JSON.stringify(got)} is not \`npm run ${spec.script}\`'s command ${JSON.stringify(want)}`);
    const entry = got.find((w) => w.endsWith(".ts"));
    if (!entry || !existsSync(path.join(ROOT, entry))) problems.push(`CMD entry ${entry} does not exist`);
    else {
      // Every file the entry (and any script the image carries) imports must be in the image.
      const scripts = finalCopies.filter((f) => f.startsWith("scripts/") && f.endsWith(".ts"));
      const inImage = (f: string) => finalCopies.some((c) => f === c || f.startsWith(`${c}/`));
      for (const f of importClosure([entry, ...scripts])) if (!inImage(f)) problems.push(`${f} (imported from ${entry} or a copied script) is not copied into the final stage`);
    }
  }
  return problems;
}

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string | number | boolean | null>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[] | string; disable?: boolean };
  command?: string[] | string;
  volumes?: string[];
}
export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

export function readCompose(text = readFileSync(path.join(ROOT, COMPOSE_FILE), "utf8")): ComposeFile {
  return parseYaml(text) as ComposeFile;
}

/** A service's environment as the process sees it: every value a string. */
export function serviceEnv(compose: ComposeFile, service: string): Record<string, string> {
  const env = compose.services[service]?.environment ?? {};
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? "" : String(v)]));
}

/** Problems with the compose file: env names, ports, health checks, dependencies, Dockerfiles, volumes. */
export function lintCompose(compose: ComposeFile): string[] {
  const problems: string[] = [];
  const specs = serviceSpecs();
  const services = compose.services ?? {};
  for (const name of ["edge", "verifier", "postgres", "minio"]) if (!services[name]) problems.push(`no service ${name}`);
  for (const [name, svc] of Object.entries(services)) {
    for (const dep of Object.keys(svc.depends_on ?? {})) if (!services[dep]) problems.push(`${name}: depends_on ${dep}, which is no service`);
    for (const [dep, { condition }] of Object.entries(svc.depends_on ?? {})) {
      if (!["service_started", "service_healthy", "service_completed_successfully"].includes(condition)) problems.push(`${name}: depends_on ${dep}: unknown condition ${condition}`);
      if (condition === "service_healthy" && services[dep] && !services[dep].healthcheck?.test) problems.push(`${name}: waits for ${dep} to be healthy, which has no healthcheck`);
    }
    if (svc.build) {
      const file = path.join(ROOT, path.dirname(COMPOSE_FILE), svc.build.context, svc.build.dockerfile);
      if (!existsSync(file)) problems.push(`${name}: build.dockerfile ${svc.build.dockerfile} does not exist`);
    }
    for (const v of svc.volumes ?? []) {
      const src = v.split(":")[0];
      if (src.startsWith(".")) {
        if (!existsSync(path.join(ROOT, path.dirname(COMPOSE_FILE), src))) problems.push(`${name}: volume source ${src} does not exist`);
      } else if (!(src in (compose.volumes ?? {}))) problems.push(`${name}: named volume ${src} is not declared`);
    }
  }
  for (const name of ["edge", "verifier"] as const) {
    const svc = services[name];
    if (!svc) continue;
    const spec = specs[name];
    const env = serviceEnv(compose, name);
    for (const k of Object.keys(env)) if (!spec.envKeys.has(k) && !OUTSIDE_SCHEMA.has(k)) problems.push(`${name}: environment ${k} is not a variable of its config schema`);
    const port = Number(env[spec.portVar] ?? spec.port);
    for (const p of svc.ports ?? []) {
      const container = Number(String(p).split(":").at(-1));
      if (container !== port) problems.push(`${name}: ports ${p} does not publish its ${spec.portVar} ${port}`);
    }
    const test = svc.healthcheck?.test;
    const hc = Array.isArray(test) ? test.join(" ") : (test ?? "");
    const p = healthPath(hc);
    if (!p) problems.push(`${name}: no HTTP healthcheck`);
    else {
      if (!spec.routes.has(p)) problems.push(`${name}: healthcheck path ${p} is not a route it serves`);
      const hcPort = Number(hc.match(/https?:\/\/[^/:'"\s]+:(\d+)/)?.[1]);
      if (hcPort !== port) problems.push(`${name}: healthcheck asks port ${hcPort}, it listens on ${port}`);
    }
  }
  // The edge must reach the verifier where it listens, with the token it expects.
  const edge = serviceEnv(compose, "edge");
  const verifier = serviceEnv(compose, "verifier");
  if (edge.POOL_NODES) {
    for (const u of edge.POOL_NODES.split(",")) {
      const url = URL.canParse(u) ? new URL(u) : undefined;
      if (!url || !services[url.hostname]) problems.push(`edge: POOL_NODES ${u} is no service of this file`);
      else if (url.hostname === "verifier" && Number(url.port) !== Number(verifier.VERIFIER_PORT ?? specs.verifier.port)) problems.push(`edge: POOL_NODES ${u} is not the verifier's port`);
    }
  }
  if ((edge.POOL_TOKEN ?? "") !== (verifier.VERIFIER_TOKEN ?? "")) problems.push("edge POOL_TOKEN differs from verifier VERIFIER_TOKEN");
  return problems;
}
