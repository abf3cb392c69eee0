// Offline checks of the Kubernetes manifests (infra/k8s): a small kustomize renderer (resources, labels,
// JSON 6902 patches: the subset the manifests use) and a checker that validates the rendered objects
// against zod schemas of the kinds used and cross-checks them against this repository's code — the
// verifier's config schemas, the routes gpu-backend/server.ts serves, its drain timeout and metric names.
// No cluster and no kubectl: what the API server, the operators (KEDA, Prometheus Operator) and SGLang
// would do at run time is out of reach; see docs/KUBERNETES.md.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { loadVerifierConfig, VerifierConfigSchema } from "../../gpu-backend/config.ts";
import { ModelStoreConfigSchema } from "../../src/common/models/model-store-config.ts";

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const K8S_DIR = path.join(ROOT, "infra/k8s");

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; namespace?: string }; [k: string]: unknown };

// ---------------------------------------------------------------------------------------------- YAML

export function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(name)) out.push(p);
  }
  return out;
}

/** Every document of a (multi-document) YAML file; a syntax error throws with the file's name. */
export function loadYaml(file: string): unknown[] {
  return parseYaml(readFileSync(file, "utf8"), path.relative(ROOT, file));
}

export function parseYaml(text: string, where: string): unknown[] {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) return [];
  const out: unknown[] = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${where}: ${d.errors[0].message}`);
    const v = d.toJS();
    if (v != null) out.push(v);
  }
  return out;
}

// ------------------------------------------------------------------------------------- schemas (zod)

const Name = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "a DNS-1123 name");
const Labels = z.record(z.string(), z.string());
const Meta = z.looseObject({ name: Name, namespace: Name.optional(), labels: Labels.optional(), annotations: Labels.optional() });
const LabelSelector = z.looseObject({ matchLabels: Labels });
const PortRef = z.union([z.number().int().min(1).max(65535), z.string().min(1).max(15)]);
const EnvVar = z.strictObject({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
  // The API server takes strings only: an unquoted number here is rejected at apply time.
  value: z.string().optional(),
  valueFrom: z
    .looseObject({
      secretKeyRef: z.looseObject({ name: Name, key: z.string(), optional: z.boolean().optional() }).optional(),
      configMapKeyRef: z.looseObject({ name: Name, key: z.string() }).optional(),
      fieldRef: z.looseObject({ fieldPath: z.string() }).optional(),
    })
    .optional(),
});
const Probe = z.looseObject({
  httpGet: z.looseObject({ path: z.string().startsWith("/"), port: PortRef }).optional(),
  exec: z.looseObject({ command: z.array(z.string()) }).optional(),
  periodSeconds: z.number().int().positive().optional(),
  failureThreshold: z.number().int().positive().optional(),
});
const Quantity = z.union([z.string(), z.number()]);
const Container = z.looseObject({
  name: Name,
  image: z.string().min(1),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  env: z.array(EnvVar).optional(),
  envFrom: z.array(z.looseObject({ configMapRef: z.looseObject({ name: Name }).optional(), secretRef: z.looseObject({ name: Name }).optional() })).optional(),
  ports: z.array(z.looseObject({ name: z.string().max(15).optional(), containerPort: z.number().int().min(1).max(65535) })).optional(),
  resources: z.looseObject({ limits: z.record(z.string(), Quantity).optional(), requests: z.record(z.string(), Quantity).optional() }).optional(),
  readinessProbe: Probe.optional(),
  livenessProbe: Probe.optional(),
  startupProbe: Probe.optional(),
  lifecycle: z.looseObject({ preStop: z.looseObject({ exec: z.looseObject({ command: z.array(z.string()) }).optional() }).optional() }).optional(),
});
const PodTemplate = z.looseObject({
  metadata: z.looseObject({ labels: Labels }),
  spec: z.looseObject({
    containers: z.array(Container).min(1),
    terminationGracePeriodSeconds: z.number().int().min(0).optional(),
    nodeSelector: Labels.optional(),
  }),
});
type PodTemplate = z.infer<typeof PodTemplate>;
type Container = z.infer<typeof Container>;
const PromRule = z.looseObject({ alert: z.string().optional(), record: z.string().optional(), expr: z.string().min(1), for: z.string().optional(), labels: Labels.optional(), annotations: Labels.optional() });

/** The kinds used under infra/k8s, by apiVersion and kind, with the fields the checks rely on. */
export const KINDS: Record<string, z.ZodType> = {
  "v1/ConfigMap": z.looseObject({ metadata: Meta, data: z.record(z.string(), z.string()) }),
  "v1/Service": z.looseObject({
    metadata: Meta,
    spec: z.looseObject({
      clusterIP: z.string().optional(),
      selector: Labels,
      ports: z.array(z.looseObject({ name: z.string().optional(), port: z.number().int().min(1).max(65535), targetPort: PortRef.optional() })).min(1),
    }),
  }),
  "apps/v1/StatefulSet": z.looseObject({
    metadata: Meta,
    spec: z.looseObject({ serviceName: Name, replicas: z.number().int().min(0).optional(), podManagementPolicy: z.enum(["OrderedReady", "Parallel"]).optional(), selector: LabelSelector, template: PodTemplate }),
  }),
  "apps/v1/Deployment": z.looseObject({ metadata: Meta, spec: z.looseObject({ replicas: z.number().int().min(0).optional(), selector: LabelSelector, template: PodTemplate }) }),
  "leaderworkerset.x-k8s.io/v1/LeaderWorkerSet": z.looseObject({
    metadata: Meta,
    spec: z.looseObject({ replicas: z.number().int().min(0).optional(), leaderWorkerTemplate: z.looseObject({ size: z.number().int().min(1), leaderTemplate: PodTemplate.optional(), workerTemplate: PodTemplate }) }),
  }),
  "policy/v1/PodDisruptionBudget": z.looseObject({
    metadata: Meta,
    spec: z
      .looseObject({ selector: LabelSelector, minAvailable: PortRef.optional(), maxUnavailable: PortRef.optional() })
      .refine((s) => (s.minAvailable === undefined) !== (s.maxUnavailable === undefined), "exactly one of minAvailable and maxUnavailable"),
  }),
  "keda.sh/v1alpha1/ScaledObject": z.looseObject({
    metadata: Meta,
    spec: z.looseObject({
      scaleTargetRef: z.looseObject({ apiVersion: z.string().optional(), kind: z.string().optional(), name: Name }),
      minReplicaCount: z.number().int().min(0).optional(),
      maxReplicaCount: z.number().int().min(1).optional(),
      pollingInterval: z.number().int().positive().optional(),
      cooldownPeriod: z.number().int().positive().optional(),
      // KEDA reads trigger metadata as strings only.
      triggers: z.array(z.looseObject({ type: z.string(), metadata: z.record(z.string(), z.string()) })).min(1),
    }),
  }),
  "monitoring.coreos.com/v1/PrometheusRule": z.looseObject({ metadata: Meta, spec: z.looseObject({ groups: z.array(z.looseObject({ name: z.string(), rules: z.array(PromRule).min(1) })).min(1) }) }),
  "monitoring.coreos.com/v1/ServiceMonitor": z.looseObject({
    metadata: Meta,
    spec: z.looseObject({ selector: LabelSelector, endpoints: z.array(z.looseObject({ port: z.string().optional(), path: z.string().optional(), interval: z.string().optional() })).min(1) }),
  }),
  "monitoring.coreos.com/v1/PodMonitor": z.looseObject({
    metadata: Meta,
    spec: z.looseObject({ selector: LabelSelector, podMetricsEndpoints: z.array(z.looseObject({ port: z.string().optional(), path: z.string().optional() })).min(1) }),
  }),
};

// Strict: a misspelt field (patchesJson6902 for patches, say) is an error, not silently ignored.
export const KustomizationSchema = z.strictObject({
  apiVersion: z.literal("kustomize.config.k8s.io/v1beta1"),
  kind: z.literal("Kustomization"),
  namespace: Name.optional(),
  resources: z.array(z.string()).optional(),
  labels: z.array(z.strictObject({ pairs: Labels, includeSelectors: z.boolean().optional(), includeTemplates: z.boolean().optional() })).optional(),
  patches: z.array(z.strictObject({ path: z.string().optional(), patch: z.string().optional(), target: z.looseObject({ kind: z.string().optional(), name: z.string().optional() }).optional() })).optional(),
  images: z.array(z.strictObject({ name: z.string(), newName: z.string().optional(), newTag: z.string().optional() })).optional(),
});

function issue(e: z.ZodError): string {
  const i = e.issues[0];
  return `${i.path.join(".") || "(root)"}: ${i.message}`;
}

// ------------------------------------------------------------------------------- kustomize (subset)

const JsonPatchOp = z.strictObject({ op: z.enum(["add", "replace", "remove", "test"]), path: z.string().startsWith("/"), value: z.unknown().optional() });

/** RFC 6902 on a plain JSON value (in place); a failed `test` or a missing path throws, as kustomize does. */
export function applyJsonPatch(target: unknown, ops: unknown): void {
  for (const raw of z.array(JsonPatchOp).parse(ops)) {
    const keys = raw.path
      .slice(1)
      .split("/")
      .map((k) => k.replaceAll("~1", "/").replaceAll("~0", "~"));
    const last = keys.pop()!;
    let parent = target as Record<string, unknown>;
    for (const k of keys) {
      const next = (parent as Record<string, unknown>)[k];
      if (next === null || typeof next !== "object") throw new Error(`patch ${raw.op} ${raw.path}: no ${k}`);
      parent = next as Record<string, unknown>;
    }
    const isArray = Array.isArray(parent);
    const index = isArray ? (last === "-" ? (parent as unknown as unknown[]).length : Number(last)) : -1;
    const exists = isArray ? index < (parent as unknown as unknown[]).length : Object.hasOwn(parent, last);
    if (raw.op !== "add" && !exists) throw new Error(`patch ${raw.op} ${raw.path}: nothing there`);
    if (raw.op === "test") {
      if (!isDeepStrictEqual(isArray ? (parent as unknown as unknown[])[index] : parent[last], raw.value)) throw new Error(`patch test ${raw.path} failed`);
    } else if (raw.op === "remove") {
      if (isArray) (parent as unknown as unknown[]).splice(index, 1);
      else delete parent[last];
    } else if (isArray && raw.op === "add") (parent as unknown as unknown[]).splice(index, 0, raw.value);
    else if (isArray) (parent as unknown as unknown[])[index] = raw.value;
    else parent[last] = raw.value;
  }
}

/** The objects `kubectl apply -k dir` would send (the features the manifests use; others throw). */
export function renderKustomization(dir: string): K8sObject[] {
  const file = path.join(dir, "kustomization.yaml");
  if (!existsSync(file)) throw new Error(`${path.relative(ROOT, dir)}: no kustomization.yaml`);
  const parsed = KustomizationSchema.safeParse(loadYaml(file)[0]);
  if (!parsed.success) throw new Error(`${path.relative(ROOT, file)}: ${issue(parsed.error)}`);
  const k = parsed.data;
  const objects: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const p = path.resolve(dir, r);
    if (!existsSync(p)) throw new Error(`${path.relative(ROOT, file)}: resource ${r} does not exist`);
    if (statSync(p).isDirectory()) objects.push(...renderKustomization(p));
    else objects.push(...(loadYaml(p) as K8sObject[]));
  }
  for (const { pairs } of k.labels ?? []) for (const o of objects) o.metadata.labels = { ...o.metadata.labels, ...pairs };
  for (const p of k.patches ?? []) {
    if (p.path && !existsSync(path.resolve(dir, p.path))) throw new Error(`${path.relative(ROOT, file)}: patch ${p.path} does not exist`);
    const body = p.path ? loadYaml(path.resolve(dir, p.path))[0] : parseYaml(p.patch ?? "", `${path.relative(ROOT, file)} inline patch`)[0];
    if (!Array.isArray(body)) {
      // Of strategic merge patches, only the deletion of a whole object (`$patch: delete`) is rendered here.
      const del = z.looseObject({ $patch: z.literal("delete"), apiVersion: z.string(), kind: z.string(), metadata: z.looseObject({ name: z.string() }) }).safeParse(body);
      if (!del.success) throw new Error(`${path.relative(ROOT, file)}: only JSON 6902 patches and $patch: delete are rendered here`);
      const i = objects.findIndex((o) => o.apiVersion === del.data.apiVersion && o.kind === del.data.kind && o.metadata.name === del.data.metadata.name);
      if (i < 0) throw new Error(`${path.relative(ROOT, file)}: $patch: delete of ${del.data.kind}/${del.data.metadata.name} matches nothing`);
      objects.splice(i, 1);
      continue;
    }
    if (!p.target) throw new Error(`${path.relative(ROOT, file)}: a JSON 6902 patch needs a target`);
    const { kind, name } = p.target;
    const hits = objects.filter((o) => (!kind || o.kind === kind) && (!name || o.metadata.name === name));
    if (!hits.length) throw new Error(`${path.relative(ROOT, file)}: patch target ${kind}/${name} matches nothing`);
    for (const o of hits) applyJsonPatch(o, body);
  }
  for (const im of k.images ?? [])
    for (const c of objects.flatMap((o) => podTemplates(o).flatMap((t) => t.spec.containers as Container[])))
      if (c.image.split(":")[0] === im.name) c.image = `${im.newName ?? im.name}:${im.newTag ?? c.image.split(":")[1] ?? "latest"}`;
  if (k.namespace) for (const o of objects) o.metadata.namespace = k.namespace;
  return objects;
}

/** Every file a kustomization under `dir` reaches (resources, patches), for the "no orphan file" check. */
export function referencedFiles(dir: string, seen = new Set<string>()): Set<string> {
  const file = path.join(dir, "kustomization.yaml");
  seen.add(file);
  const k = KustomizationSchema.parse(loadYaml(file)[0]);
  for (const r of k.resources ?? []) {
    const p = path.resolve(dir, r);
    if (existsSync(p) && statSync(p).isDirectory()) referencedFiles(p, seen);
    else seen.add(p);
  }
  for (const p of k.patches ?? []) if (p.path) seen.add(path.resolve(dir, p.path));
  return seen;
}

// ---------------------------------------------------------------------------- facts from the code

const read = (rel: string) => readFileSync(path.join(ROOT, rel), "utf8");

/** GET routes of the verifier's app (gpu-backend/server.ts). */
export function verifierGetRoutes(source = read("gpu-backend/server.ts")): Set<string> {
  return new Set([...source.matchAll(/app\.get\("([^"]+)"/g)].map((m) => m[1]));
}

/** Seconds after SIGTERM at which the verifier cuts rounds still running (gpu-backend/main.ts). */
export function verifierDrainSeconds(source = read("gpu-backend/main.ts")): number {
  const m = /setTimeout\(\(\) => exit\(.*\), ([\d_]+)\)\.unref\(\)/.exec(source);
  if (!m) throw new Error("gpu-backend/main.ts: the drain timeout (setTimeout … exit) is not where the test looks");
  return Number(m[1].replaceAll("_", "")) / 1000;
}

/** The command `npm run verifier` runs (package.json), which the verifier container must run too. */
export function verifierCommand(): string[] {
  const script = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts.verifier;
  return script.replace(/^exec /, "").split(/\s+/);
}

/** Metric names the verifier and the edge register (with a histogram's _bucket/_sum/_count series). */
export function exportedMetrics(): Set<string> {
  const names = new Set<string>();
  for (const f of ["gpu-backend/verifier-metrics.ts", "src/observability/edge-metrics.ts"]) for (const m of read(f).matchAll(/"(alia_[a-z0-9_]+)"/g)) names.add(m[1]);
  for (const n of [...names]) for (const s of ["_bucket", "_sum", "_count"]) names.add(n + s);
  return names;
}

/** Env names the verifier reads: its own schema and the model store's (gpu-backend/main.ts). */
export const VERIFIER_ENV = new Set([...Object.keys(VerifierConfigSchema.shape), ...Object.keys(ModelStoreConfigSchema.shape)]);

// SGLang's own health routes (not in this repository: sglang/srt/entrypoints/http_server.py).
const SGLANG_HEALTH_PATHS = new Set(["/health", "/health_generate"]);
const SECRET_NAME = /TOKEN|KEY|SECRET|PASSWORD/;
const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

// ------------------------------------------------------------------------------------------ checks

function podTemplates(o: K8sObject): PodTemplate[] {
  const spec = o.spec as Record<string, unknown> | undefined;
  if (!spec) return [];
  if (o.kind === "Deployment" || o.kind === "StatefulSet") return [spec.template as PodTemplate];
  if (o.kind === "LeaderWorkerSet") {
    const t = spec.leaderWorkerTemplate as { leaderTemplate?: PodTemplate; workerTemplate: PodTemplate };
    return [t.leaderTemplate, t.workerTemplate].filter((x): x is PodTemplate => !!x);
  }
  return [];
}

const subset = (sel: Record<string, string>, labels: Record<string, string> | undefined) => Object.entries(sel).every(([k, v]) => labels?.[k] === v);

function argValue(c: Container, flag: string): string | undefined {
  const args = [...(c.command ?? []), ...(c.args ?? [])];
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

function resolvePort(c: Container, port: number | string): number | undefined {
  return (c.ports ?? []).find((p) => (typeof port === "number" ? p.containerPort === port : p.name === port))?.containerPort;
}

/** Problems of one rendered set of objects (an overlay); empty when it passes. */
export function checkObjects(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const at = (o: K8sObject) => `${o.kind}/${o.metadata?.name}`;
  for (const o of objects) {
    const schema = KINDS[`${o.apiVersion}/${o.kind}`];
    if (!schema) {
      problems.push(`${at(o)}: ${o.apiVersion} ${o.kind} is not a kind the pool uses (add it to KINDS with its schema)`);
      continue;
    }
    const r = schema.safeParse(o);
    if (!r.success) problems.push(`${at(o)}: ${issue(r.error)}`);
  }
  if (problems.length) return problems; // the cross-checks below rely on the schemas
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const workloads = objects.filter((o) => podTemplates(o).length);
  const configMaps = new Map(byKind("ConfigMap").map((o) => [o.metadata.name, (o as unknown as { data: Record<string, string> }).data]));
  const services = byKind("Service") as unknown as {
    metadata: K8sObject["metadata"];
    spec: { clusterIP?: string; selector: Record<string, string>; ports: { name?: string; port: number; targetPort?: number | string }[] };
  }[];
  const drain = verifierDrainSeconds();
  const routes = verifierGetRoutes();
  if (!workloads.length) problems.push("no workload (StatefulSet, Deployment or LeaderWorkerSet)");

  for (const w of workloads) {
    const spec = w.spec as { selector?: { matchLabels: Record<string, string> }; serviceName?: string; leaderWorkerTemplate?: { size: number } };
    // Pods of one SGLang instance: an LWS group spans `size` pods (--tp counts the GPUs of all of them).
    const groupSize = spec.leaderWorkerTemplate?.size ?? 1;
    if (!podTemplates(w).some((t) => t.spec.containers.some((c) => c.name === "verifier"))) problems.push(`${at(w)}: no container named verifier`);
    for (const t of podTemplates(w)) {
      if (spec.selector && !subset(spec.selector.matchLabels, t.metadata.labels)) problems.push(`${at(w)}: selector does not match the pod labels`);
      const verifier = t.spec.containers.find((c) => c.name === "verifier");
      const sglang = t.spec.containers.find((c) => c.name === "sglang");
      const grace = t.spec.terminationGracePeriodSeconds ?? 30;
      if (sglang) {
        const stop = sglang.lifecycle?.preStop?.exec?.command ?? [];
        const sleep = stop[0] === "sleep" ? Number(stop[1]) : 0;
        if (!(sleep >= drain && sleep < grace)) problems.push(`${at(w)}: sglang preStop sleep ${sleep} s must cover the verifier's drain (${drain} s) within the grace period (${grace} s)`);
        for (const kind of ["readinessProbe", "livenessProbe", "startupProbe"] as const) {
          const get = sglang[kind]?.httpGet;
          if (get && !SGLANG_HEALTH_PATHS.has(get.path)) problems.push(`${at(w)}: sglang ${kind} path ${get.path} is not an SGLang health route`);
          if (get && resolvePort(sglang, get.port) === undefined) problems.push(`${at(w)}: sglang ${kind} port ${get.port} is not a containerPort`);
        }
        if (argValue(sglang, "--model-path") !== "BSC-LT/ALIA-40b") problems.push(`${at(w)}: sglang --model-path is not BSC-LT/ALIA-40b`);
        const tp = Number(argValue(sglang, "--tp") ?? 1);
        const gpus = Number(sglang.resources?.limits?.["nvidia.com/gpu"] ?? 0);
        if (tp !== gpus * groupSize) problems.push(`${at(w)}: sglang --tp ${tp} ≠ its nvidia.com/gpu limit ${gpus}${groupSize > 1 ? ` × ${groupSize} pods` : ""}`);
        const req = sglang.resources?.requests?.["nvidia.com/gpu"];
        if (req !== undefined && Number(req) !== gpus) problems.push(`${at(w)}: sglang nvidia.com/gpu request ≠ limit`);
        if (groupSize > 1 && argValue(sglang, "--nnodes") !== "$(LWS_GROUP_SIZE)") problems.push(`${at(w)}: sglang --nnodes must be $(LWS_GROUP_SIZE) in a group of ${groupSize}`);
      }
      if (!verifier) continue;
      const command = [...(verifier.command ?? []), ...(verifier.args ?? [])];
      if (!isDeepStrictEqual(command, verifierCommand())) problems.push(`${at(w)}: verifier command ${command.join(" ")} is not npm run verifier's (${verifierCommand().join(" ")})`);
      // The verifier's environment, resolved as the kubelet would (secrets as placeholders).
      const env: Record<string, string> = {};
      for (const f of verifier.envFrom ?? []) {
        if (f.secretRef) problems.push(`${at(w)}: verifier envFrom secretRef ${f.secretRef.name}: its names cannot be checked; use env secretKeyRef`);
        if (f.configMapRef) {
          const data = configMaps.get(f.configMapRef.name);
          if (!data) problems.push(`${at(w)}: verifier envFrom ConfigMap ${f.configMapRef.name} is not in the manifests`);
          for (const [k, v] of Object.entries(data ?? {})) {
            if (SECRET_NAME.test(k)) problems.push(`ConfigMap/${f.configMapRef.name}: ${k} looks like a secret: use a Secret reference`);
            env[k] = v;
          }
        }
      }
      for (const e of verifier.env ?? []) {
        if (e.value !== undefined && SECRET_NAME.test(e.name)) problems.push(`${at(w)}: verifier env ${e.name} is a literal: use valueFrom.secretKeyRef`);
        if (e.value !== undefined) env[e.name] = e.value;
        else if (e.valueFrom?.secretKeyRef) env[e.name] = "k8s-secret-placeholder-0123456789";
        else if (e.valueFrom?.configMapKeyRef) env[e.name] = configMaps.get(e.valueFrom.configMapKeyRef.name)?.[e.valueFrom.configMapKeyRef.key] ?? "";
      }
      for (const name of Object.keys(env)) if (!VERIFIER_ENV.has(name)) problems.push(`${at(w)}: verifier env ${name} is not a key of VerifierConfigSchema or ModelStoreConfigSchema`);
      let config: ReturnType<typeof loadVerifierConfig> | undefined;
      try {
        config = loadVerifierConfig(env);
      } catch (e) {
        problems.push(`${at(w)}: verifier config: ${(e as Error).message}`);
      }
      if (config) {
        const port = verifier.ports?.find((p) => p.containerPort === config.VERIFIER_PORT);
        if (!port) problems.push(`${at(w)}: verifier has no containerPort ${config.VERIFIER_PORT} (VERIFIER_PORT)`);
        if (LOOPBACK.has(config.VERIFIER_HOST)) problems.push(`${at(w)}: VERIFIER_HOST ${config.VERIFIER_HOST} is loopback: probes and the edge cannot reach it`);
        if (config.VERIFIER_ENGINE === "sglang") {
          const url = new URL(config.VERIFIER_SGLANG_URL!);
          if (!sglang) problems.push(`${at(w)}: VERIFIER_ENGINE=sglang without an sglang container`);
          else {
            const sgPort = argValue(sglang, "--port");
            if (url.port !== sgPort || resolvePort(sglang, Number(sgPort)) === undefined) problems.push(`${at(w)}: VERIFIER_SGLANG_URL port ${url.port} is not SGLang's --port ${sgPort} / containerPort`);
            if (!LOOPBACK.has(url.hostname.replace(/^\[|\]$/g, ""))) problems.push(`${at(w)}: VERIFIER_SGLANG_URL should be loopback (same pod)`);
            if (argValue(sglang, "--context-length") !== String(config.VERIFIER_SGLANG_MAX_POSITIONS))
              problems.push(`${at(w)}: SGLang --context-length ${argValue(sglang, "--context-length")} ≠ VERIFIER_SGLANG_MAX_POSITIONS ${config.VERIFIER_SGLANG_MAX_POSITIONS}`);
          }
        }
      }
      // Probes: the verifier's on routes server.ts serves without a token; the drain contract on /readyz.
      for (const kind of ["readinessProbe", "livenessProbe", "startupProbe"] as const) {
        const get = verifier[kind]?.httpGet;
        if (!get) continue;
        if (!routes.has(get.path) || get.path.startsWith("/v1/")) problems.push(`${at(w)}: verifier ${kind} path ${get.path} is not a route gpu-backend/server.ts serves without a token`);
        if (resolvePort(verifier, get.port) === undefined) problems.push(`${at(w)}: verifier ${kind} port ${get.port} is not a containerPort`);
      }
      if (verifier.readinessProbe?.httpGet?.path !== "/readyz") problems.push(`${at(w)}: verifier readinessProbe must be GET /readyz (503 while draining)`);
      if (verifier.livenessProbe?.httpGet?.path !== "/healthz") problems.push(`${at(w)}: verifier livenessProbe must be GET /healthz`);
      // Drain: in-flight rounds get `drain` seconds after SIGTERM; SGLang (above) must serve them until then.
      if (grace <= drain) problems.push(`${at(w)}: terminationGracePeriodSeconds ${grace} ≤ the verifier's drain (${drain} s)`);
    }
    if (w.kind === "StatefulSet") {
      const svc = services.find((s) => s.metadata.name === spec.serviceName);
      if (svc?.spec.clusterIP !== "None") problems.push(`${at(w)}: serviceName ${spec.serviceName} is not a headless Service of the manifests (pods need their DNS names for POOL_NODES)`);
    }
  }

  const podsMatching = (sel: Record<string, string>) => workloads.flatMap(podTemplates).filter((t) => subset(sel, t.metadata.labels));
  for (const s of services) {
    const pods = podsMatching(s.spec.selector);
    if (!pods.length) problems.push(`Service/${s.metadata.name}: selector matches no pod template`);
    for (const p of s.spec.ports)
      for (const t of pods)
        if (!t.spec.containers.some((c) => resolvePort(c, p.targetPort ?? p.port) !== undefined)) problems.push(`Service/${s.metadata.name}: port ${p.port} targetPort ${p.targetPort} is no containerPort of its pods`);
  }
  for (const pdb of byKind("PodDisruptionBudget")) {
    const sel = (pdb.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
    if (!podsMatching(sel).length) problems.push(`${at(pdb)}: selector matches no pod template`);
  }
  if (workloads.length && !byKind("PodDisruptionBudget").length) problems.push("no PodDisruptionBudget");

  // Prometheus: scraped Services give the job label; queries name exported metrics and scraped jobs.
  const jobs = new Set<string>();
  for (const m of byKind("ServiceMonitor")) {
    const spec = m.spec as { selector: { matchLabels: Record<string, string> }; endpoints: { port?: string; path?: string }[] };
    const svcs = services.filter((s) => subset(spec.selector.matchLabels, s.metadata.labels));
    if (!svcs.length) problems.push(`${at(m)}: selector matches no Service's labels`);
    for (const s of svcs) jobs.add(s.metadata.name);
    for (const e of spec.endpoints) {
      if (e.port && !svcs.every((s) => s.spec.ports.some((p) => p.name === e.port))) problems.push(`${at(m)}: endpoint port ${e.port} is not a named port of the Service`);
      if (e.path && !routes.has(e.path)) problems.push(`${at(m)}: path ${e.path} is not a route of gpu-backend/server.ts`);
    }
  }
  for (const m of byKind("PodMonitor")) {
    const spec = m.spec as { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port?: string; path?: string }[] };
    const pods = podsMatching(spec.selector.matchLabels);
    if (!pods.length) problems.push(`${at(m)}: selector matches no pod template`);
    for (const e of spec.podMetricsEndpoints)
      if (e.port && !pods.every((t) => t.spec.containers.some((c) => resolvePort(c, e.port!) !== undefined))) problems.push(`${at(m)}: port ${e.port} is not a named containerPort`);
  }
  const metrics = exportedMetrics();
  const checkQuery = (where: string, q: string) => {
    for (const [name] of q.matchAll(/\balia_[a-z0-9_]+/g)) if (!metrics.has(name)) problems.push(`${where}: metric ${name} is not exported by the verifier or the edge`);
    for (const [, job] of q.matchAll(/\bjob="([^"]+)"/g)) if (!jobs.has(job)) problems.push(`${where}: job="${job}" is not a Service a ServiceMonitor scrapes`);
  };
  for (const r of byKind("PrometheusRule")) {
    for (const g of (r.spec as { groups: { rules: z.infer<typeof PromRule>[] }[] }).groups)
      for (const rule of g.rules) {
        checkQuery(`${at(r)} ${rule.alert ?? rule.record}`, rule.expr);
        if (rule.alert && (!rule.labels?.severity || !rule.annotations?.summary)) problems.push(`${at(r)} ${rule.alert}: needs labels.severity and annotations.summary`);
      }
  }
  for (const so of byKind("ScaledObject")) {
    const spec = so.spec as { scaleTargetRef: { kind?: string; name: string }; minReplicaCount?: number; maxReplicaCount?: number; triggers: { type: string; metadata: Record<string, string> }[] };
    const target = workloads.find((w) => w.kind === (spec.scaleTargetRef.kind ?? "Deployment") && w.metadata.name === spec.scaleTargetRef.name);
    if (!target) problems.push(`${at(so)}: scaleTargetRef ${spec.scaleTargetRef.kind ?? "Deployment"}/${spec.scaleTargetRef.name} is not in the manifests`);
    if ((spec.minReplicaCount ?? 0) > (spec.maxReplicaCount ?? 100)) problems.push(`${at(so)}: minReplicaCount > maxReplicaCount`);
    for (const t of spec.triggers) {
      if (t.type !== "prometheus") continue;
      if (!t.metadata.serverAddress || !t.metadata.query || !(Number(t.metadata.threshold) > 0)) problems.push(`${at(so)}: prometheus trigger needs serverAddress, query and a positive threshold`);
      checkQuery(at(so), t.metadata.query ?? "");
    }
  }
  return problems;
}
