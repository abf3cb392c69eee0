// The GPU pool's Kubernetes manifests (infra/k8s): every YAML file parses, every file is reached from a
// kustomization, each overlay renders and passes the checker (schemas of the kinds used; env names against
// the verifier's zod schemas; probe paths against gpu-backend/server.ts; ports, selectors, drain timing,
// metric names). The negative cases run the same checker on broken copies: each break must be reported.
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  applyJsonPatch,
  checkObjects,
  exportedMetrics,
  K8S_DIR,
  type K8sObject,
  loadYaml,
  referencedFiles,
  renderKustomization,
  VERIFIER_ENV,
  verifierDrainSeconds,
  verifierGetRoutes,
  yamlFiles,
} from "./harness/k8s-manifests.ts";

const OVERLAYS = ["h200", "h100-tp2", "h100-2node-lws"];
const render = (overlay: string) => renderKustomization(path.join(K8S_DIR, "overlays", overlay));

describe("infra/k8s manifests", () => {
  it("parses every YAML file (all documents)", () => {
    const files = yamlFiles(K8S_DIR);
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const f of files) expect(() => loadYaml(f), f).not.toThrow();
  });

  it("reaches every YAML file from an overlay's kustomization (no orphan manifest)", () => {
    const reached = new Set<string>();
    for (const o of OVERLAYS) for (const f of referencedFiles(path.join(K8S_DIR, "overlays", o))) reached.add(f);
    expect(yamlFiles(K8S_DIR).filter((f) => !reached.has(f))).toEqual([]);
  });

  it("reads the facts it checks against from the code", () => {
    expect([...verifierGetRoutes()]).toEqual(expect.arrayContaining(["/healthz", "/readyz", "/metrics"]));
    expect(verifierDrainSeconds()).toBeGreaterThan(0);
    expect(exportedMetrics()).toContain("alia_verifier_queue_depth");
    expect(VERIFIER_ENV).toContain("VERIFIER_SGLANG_URL");
  });

  for (const overlay of OVERLAYS)
    it(`overlay ${overlay}: renders and passes every check`, () => {
      const objects = render(overlay);
      const workload = overlay.endsWith("-lws") ? "LeaderWorkerSet" : "StatefulSet";
      expect(objects.map((o) => o.kind).sort()).toEqual(["ConfigMap", "PodDisruptionBudget", "PrometheusRule", "ScaledObject", "Service", "ServiceMonitor", workload].sort());
      expect(checkObjects(objects)).toEqual([]);
    });

  it("pins the GPU shape per overlay: one H200 at --tp 1, two H100 at --tp 2", () => {
    const sglang = (overlay: string) => {
      const ss = render(overlay).find((o) => o.kind === "StatefulSet") as unknown as {
        spec: { template: { spec: { nodeSelector: Record<string, string>; containers: { name: string; args: string[]; resources: { limits: Record<string, unknown> } }[] } } };
      };
      const c = ss.spec.template.spec.containers.find((x) => x.name === "sglang")!;
      return { tp: c.args[c.args.indexOf("--tp") + 1], gpus: c.resources.limits["nvidia.com/gpu"], dtype: c.args[c.args.indexOf("--dtype") + 1], node: ss.spec.template.spec.nodeSelector["nvidia.com/gpu.product"] };
    };
    expect(sglang("h200")).toEqual({ tp: "1", gpus: 1, dtype: "bfloat16", node: "NVIDIA-H200" });
    expect(sglang("h100-tp2")).toEqual({ tp: "2", gpus: 2, dtype: "bfloat16", node: "NVIDIA-H100-80GB-HBM3" });
  });

  it("multi-node: a LeaderWorkerSet of two one-H100 pods, --tp 2 over --nnodes 2, the verifier on the leader only; KEDA scales it", () => {
    const objects = render("h100-2node-lws");
    const lws = objects.find((o) => o.kind === "LeaderWorkerSet") as Loose;
    const { size, leaderTemplate, workerTemplate } = lws.spec.leaderWorkerTemplate;
    expect(size).toBe(2);
    const names = (t: Loose) => t.spec.containers.map((c: { name: string }) => c.name);
    expect(names(leaderTemplate)).toEqual(["sglang", "verifier"]);
    expect(names(workerTemplate)).toEqual(["sglang"]);
    expect((objects.find((o) => o.kind === "ScaledObject") as Loose).spec.scaleTargetRef).toMatchObject({ kind: "LeaderWorkerSet", name: lws.metadata.name });
    // The Service, PDB and monitors select leaders only: workers serve no HTTP.
    const svc = objects.find((o) => o.kind === "Service") as Loose;
    expect(Object.entries(svc.spec.selector).every(([k, v]) => leaderTemplate.metadata.labels[k] === v && workerTemplate.metadata.labels[k] !== v)).toBe(true);
  });

  it("alerts on error rate, p99 round latency, KV evictions and pool unavailability; KEDA scales on queue depth", () => {
    const objects = render("h200");
    const rules = objects.find((o) => o.kind === "PrometheusRule") as unknown as { spec: { groups: { rules: { alert: string; expr: string }[] }[] } };
    const exprs = Object.fromEntries(rules.spec.groups.flatMap((g) => g.rules).map((r) => [r.alert, r.expr]));
    expect(exprs.AliaVerifierErrorRate).toContain("alia_verifier_requests_total");
    expect(exprs.AliaVerifierRoundLatencyP99).toMatch(/histogram_quantile\(0\.99,.*alia_verifier_round_seconds_bucket/);
    expect(exprs.AliaVerifierKvEvictions).toContain("alia_verifier_sessions_evicted_lru_total");
    expect(exprs.AliaPoolUnavailable).toContain('up{job="alia-verifier"}');
    const so = objects.find((o) => o.kind === "ScaledObject") as unknown as { spec: { triggers: { metadata: { query: string } }[] } };
    expect(so.spec.triggers[0].metadata.query).toContain("alia_verifier_queue_depth");
  });
});

// biome-ignore lint/suspicious/noExplicitAny: the edits reach into arbitrary manifest fields
type Loose = any;

/** A rendered h200 overlay with one thing broken; the checker must name it. */
function broken(edit: (objects: K8sObject[], get: (kind: string) => Loose) => void): string[] {
  const objects = render("h200");
  edit(objects, (kind) => objects.find((o) => o.kind === kind));
  return checkObjects(objects);
}
const container = (ss: Loose, name: string): Loose => ss.spec.template.spec.containers.find((c: { name: string }) => c.name === name);

describe("the checker catches broken manifests", () => {
  it("a verifier env name that is not in the zod schemas", () => {
    const p = broken((_, get) => {
      container(get("StatefulSet"), "verifier").env.find((e: { name: string }) => e.name === "VERIFIER_PORT").name = "VERIFIER_PROT";
    });
    expect(p.join("\n")).toMatch(/verifier env VERIFIER_PROT is not a key of VerifierConfigSchema/);
  });

  it("a ConfigMap key that is not in the zod schemas, and a bad value", () => {
    expect(
      broken((_, get) => {
        get("ConfigMap").data.VERIFIER_SGLANG_TIMEOUT = "30000";
      }).join("\n"),
    ).toMatch(/VERIFIER_SGLANG_TIMEOUT is not a key/);
    expect(
      broken((_, get) => {
        get("ConfigMap").data.VERIFIER_ENGINE = "vllm";
      }).join("\n"),
    ).toMatch(/verifier config: .*VERIFIER_ENGINE/);
  });

  it("a readiness or liveness path the verifier does not serve", () => {
    expect(
      broken((_, get) => {
        container(get("StatefulSet"), "verifier").readinessProbe.httpGet.path = "/ready";
      }).join("\n"),
    ).toMatch(/readinessProbe path \/ready is not a route/);
    expect(
      broken((_, get) => {
        container(get("StatefulSet"), "verifier").livenessProbe.httpGet.path = "/health";
      }).join("\n"),
    ).toMatch(/livenessProbe path \/health is not a route/);
    // Served, but not the one that turns 503 while draining.
    expect(
      broken((_, get) => {
        container(get("StatefulSet"), "verifier").readinessProbe.httpGet.path = "/healthz";
      }).join("\n"),
    ).toMatch(/readinessProbe must be GET \/readyz/);
  });

  it("ports that do not line up", () => {
    expect(
      broken((_, get) => {
        get("Service").spec.ports[0].targetPort = "verifer";
      }).join("\n"),
    ).toMatch(/Service\/alia-verifier: port 8788 targetPort verifer/);
    expect(
      broken((_, get) => {
        container(get("StatefulSet"), "verifier").ports[0].containerPort = 8789;
      }).join("\n"),
    ).toMatch(/no containerPort 8788 \(VERIFIER_PORT\)/);
    expect(
      broken((_, get) => {
        get("ConfigMap").data.VERIFIER_SGLANG_URL = "http://127.0.0.1:30001";
      }).join("\n"),
    ).toMatch(/VERIFIER_SGLANG_URL port 30001/);
    expect(
      broken((_, get) => {
        get("ServiceMonitor").spec.endpoints[0].port = "metrics";
      }).join("\n"),
    ).toMatch(/endpoint port metrics/);
  });

  it("selectors that match no pod", () => {
    expect(
      broken((_, get) => {
        get("PodDisruptionBudget").spec.selector.matchLabels = { "app.kubernetes.io/name": "verifier" };
      }).join("\n"),
    ).toMatch(/PodDisruptionBudget\/alia-verifier: selector matches no pod/);
    expect(
      broken((_, get) => {
        get("Service").spec.selector = { app: "alia" };
      }).join("\n"),
    ).toMatch(/Service\/alia-verifier: selector matches no pod/);
    expect(
      broken((_, get) => {
        get("StatefulSet").spec.selector.matchLabels = { app: "x" };
      }).join("\n"),
    ).toMatch(/selector does not match the pod labels/);
  });

  it("metric names and jobs that do not exist", () => {
    expect(
      broken((_, get) => {
        get("PrometheusRule").spec.groups[0].rules[0].expr = "rate(alia_verifier_round_total[5m]) > 0";
      }).join("\n"),
    ).toMatch(/metric alia_verifier_round_total is not exported/);
    expect(
      broken((_, get) => {
        get("ScaledObject").spec.triggers[0].metadata.query = "sum(alia_verifier_queue_length)";
      }).join("\n"),
    ).toMatch(/metric alia_verifier_queue_length/);
    expect(
      broken((_, get) => {
        get("ScaledObject").spec.triggers[0].metadata.query = 'sum(alia_verifier_queue_depth{job="verifier"})';
      }).join("\n"),
    ).toMatch(/job="verifier" is not a Service/);
  });

  it("a literal secret, a drain shorter than the verifier's, GPUs that do not match --tp", () => {
    expect(
      broken((_, get) => {
        const token = container(get("StatefulSet"), "verifier").env.find((e: { name: string }) => e.name === "VERIFIER_TOKEN");
        delete token.valueFrom;
        token.value = "0123456789abcdef0123";
      }).join("\n"),
    ).toMatch(/VERIFIER_TOKEN is a literal/);
    expect(
      broken((_, get) => {
        get("StatefulSet").spec.template.spec.terminationGracePeriodSeconds = 5;
      }).join("\n"),
    ).toMatch(/terminationGracePeriodSeconds 5/);
    expect(
      broken((_, get) => {
        container(get("StatefulSet"), "sglang").lifecycle.preStop.exec.command = ["sleep", "2"];
      }).join("\n"),
    ).toMatch(/preStop sleep 2 s/);
    expect(
      broken((_, get) => {
        container(get("StatefulSet"), "sglang").resources.limits["nvidia.com/gpu"] = 2;
      }).join("\n"),
    ).toMatch(/--tp 1 ≠ its nvidia.com\/gpu limit 2/);
  });

  it("schema violations: an unquoted env value, an unknown kind, a PDB with both bounds", () => {
    expect(
      broken((_, get) => {
        container(get("StatefulSet"), "verifier").env[1].value = 8788;
      }).join("\n"),
    ).toMatch(/StatefulSet\/alia-verifier: spec.template.spec.containers.1.env.1.value/);
    expect(broken((objects) => void objects.push({ apiVersion: "apps/v1", kind: "DaemonSet", metadata: { name: "x" } })).join("\n")).toMatch(/DaemonSet is not a kind the pool uses/);
    expect(
      broken((_, get) => {
        get("PodDisruptionBudget").spec.minAvailable = 1;
      }).join("\n"),
    ).toMatch(/exactly one of minAvailable and maxUnavailable/);
  });

  it("multi-node: --tp that ignores the group size, a Service that also selects workers", () => {
    const lwsBroken = (edit: (lws: Loose, objects: K8sObject[]) => void) => {
      const objects = render("h100-2node-lws");
      edit(
        objects.find((o) => o.kind === "LeaderWorkerSet"),
        objects,
      );
      return checkObjects(objects).join("\n");
    };
    expect(
      lwsBroken((lws) => {
        const args = lws.spec.leaderWorkerTemplate.workerTemplate.spec.containers[0].args;
        args[args.indexOf("--tp") + 1] = "1";
      }),
    ).toMatch(/--tp 1 ≠ its nvidia.com\/gpu limit 1 × 2 pods/);
    expect(
      lwsBroken((lws) => {
        lws.spec.leaderWorkerTemplate.workerTemplate.metadata.labels["app.kubernetes.io/name"] = "alia-verifier";
      }),
    ).toMatch(/Service\/alia-verifier: port 8788 targetPort verifier is no containerPort/);
  });

  it("a verifier command that is not npm run verifier's", () => {
    expect(
      broken((_, get) => {
        container(get("StatefulSet"), "verifier").command = ["node", "gpu-backend/main.ts"];
      }).join("\n"),
    ).toMatch(/verifier command node gpu-backend\/main.ts is not npm run verifier's/);
  });

  it("JSON patches whose test op fails are refused (as kustomize does)", () => {
    const obj = { spec: { args: ["--tp", "1"] } };
    expect(() => applyJsonPatch(obj, [{ op: "test", path: "/spec/args/0", value: "--dtype" }])).toThrow(/test \/spec\/args\/0 failed/);
    expect(() => applyJsonPatch(obj, [{ op: "replace", path: "/spec/nope/0", value: 1 }])).toThrow(/no nope/);
    applyJsonPatch(obj, [{ op: "replace", path: "/spec/args/1", value: "2" }]);
    expect(obj.spec.args).toEqual(["--tp", "2"]);
  });
});
