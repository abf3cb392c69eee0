// Lint of the container files without Docker (no daemon here): infra/docker/*.Dockerfile parsed with
// dockerfile-ast, infra/compose.yaml with yaml, both checked against the config schemas, the routes the
// servers register, package.json's scripts and the repository's files. Broken copies go through the same
// checkers to show that a wrong name, path or port fails.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadVerifierConfig } from "../gpu-backend/config.ts";
import { loadConfig } from "../src/config.ts";
import { lintCompose, lintDockerfile, readCompose, ROOT, serviceEnv, serviceSpecs } from "./harness/container-lint.ts";

const read = (f: string) => readFileSync(path.join(ROOT, f), "utf8");
const DOCKERFILES = { edge: "infra/docker/edge.Dockerfile", verifier: "infra/docker/verifier.Dockerfile" } as const;

describe("Dockerfiles", () => {
  const specs = serviceSpecs();
  for (const [name, file] of Object.entries(DOCKERFILES) as ["edge" | "verifier", string][]) {
    it(`${file}: multi-stage, non-root, production deps, health check, port, start command`, () => {
      expect(lintDockerfile(read(file), specs[name])).toEqual([]);
    });
  }

  it("names what is wrong in a broken copy", () => {
    const good = read(DOCKERFILES.edge);
    const broken = good
      .replace("USER node", "USER root")
      .replace("/healthz", "/health")
      .replace("EXPOSE 8787", "EXPOSE 8080")
      .replace("npm ci --omit=dev", "npm ci")
      .replace("COPY src ./src", "COPY source ./src")
      .replace('"src/node.ts"]', '"src/main.ts"]')
      .replace("EMBEDDED_VERIFIER=false", "EMBEDED_VERIFIER=false");
    const problems = lintDockerfile(broken, specs.edge).join("\n");
    expect(problems).toMatch(/USER root is root/);
    expect(problems).toMatch(/HEALTHCHECK path \/health is not a route/);
    expect(problems).toMatch(/EXPOSE 8080 does not include PORT's default 8787/);
    expect(problems).toMatch(/no `npm ci --omit=dev`/);
    expect(problems).toMatch(/an install without --omit=dev/);
    expect(problems).toMatch(/COPY source source does not exist/);
    expect(problems).toMatch(/CMD .* is not `npm run start`'s command/);
    expect(problems).toMatch(/CMD entry src\/main\.ts does not exist/);
    expect(problems).toMatch(/ENV EMBEDED_VERIFIER is not a variable/);
    expect(lintDockerfile(good.replace(/^USER .*$/m, ""), specs.edge).join("\n")).toMatch(/no USER/);
    // A file the sources import but the image lacks (the cost model's measurements), and a context that leaves a copied file out.
    expect(lintDockerfile(good.replace(/^COPY measurements\/.*$/m, ""), specs.edge).join("\n")).toMatch(/measurements\/h200-pass-times\.json \(imported from src\/node\.ts or a copied script\) is not copied/);
    expect(lintDockerfile(good, specs.edge, ["measurements"]).join("\n")).toMatch(/COPY source measurements\/h200-pass-times\.json is excluded by \.dockerignore/);
    expect(lintDockerfile("FROM node:20-bookworm-slim\nCMD node\n", specs.edge).join("\n")).toMatch(/multi-stage: 1 FROM/);
    const oldBase = lintDockerfile(good.replace("ARG NODE_IMAGE=node:20-bookworm-slim", "ARG NODE_IMAGE=node:18-bookworm-slim").replace("--from=deps", "--from=dependencies"), specs.edge).join("\n");
    expect(oldBase).toMatch(/FROM node:18-bookworm-slim: package.json's engines need node >= 20/);
    expect(oldBase).toMatch(/COPY --from=dependencies: no such stage/);
  });
});

describe("infra/compose.yaml", () => {
  const text = read("infra/compose.yaml");

  it("env names are schema keys, ports and health paths are real, dependencies exist", () => {
    expect(lintCompose(readCompose(text))).toEqual([]);
  });

  it("the edge's and the verifier's environment pass their config validation", () => {
    const compose = readCompose(text);
    const edge = loadConfig(serviceEnv(compose, "edge"));
    expect(edge).toMatchObject({ MODEL_STORE: "s3", EMBEDDED_VERIFIER: "false", POOL_NODES: ["http://verifier:8788"] });
    expect(edge.BILLING_DATABASE_URL).toMatch(/^postgres:\/\/.*@postgres:5432\//);
    const verifier = loadVerifierConfig(serviceEnv(compose, "verifier"));
    expect(verifier).toMatchObject({ VERIFIER_HOST: "0.0.0.0", VERIFIER_PORT: 8788 });
    expect(verifier.VERIFIER_TOKEN).toBe(edge.POOL_TOKEN);
  });

  it("names what is wrong in a broken copy", () => {
    const broken = text
      .replace("POOL_TOKEN:", "POOL_TOKN:")
      .replace("      VERIFIER_PORT:", "      VERIFIER_PROT:")
      .replace("8788/readyz", "8788/ready")
      .replace('"127.0.0.1:8787:8787"', '"127.0.0.1:8787:8080"')
      .replace("      postgres:\n        condition: service_healthy", "      postgresql:\n        condition: service_healthy")
      .replace("../fixtures/default:/fixtures:ro", "../fixtures/nowhere:/fixtures:ro");
    const problems = lintCompose(readCompose(broken)).join("\n");
    expect(problems).toMatch(/edge: environment POOL_TOKN is not a variable of its config schema/);
    expect(problems).toMatch(/verifier: environment VERIFIER_PROT is not a variable/);
    expect(problems).toMatch(/verifier: healthcheck path \/ready is not a route it serves/);
    expect(problems).toMatch(/edge: ports 127\.0\.0\.1:8787:8080 does not publish its PORT 8787/);
    expect(problems).toMatch(/edge: depends_on postgresql, which is no service/);
    expect(problems).toMatch(/bundles: volume source \.\.\/fixtures\/nowhere does not exist/);
    expect(problems).toMatch(/POOL_TOKEN differs from verifier VERIFIER_TOKEN/);
  });
});
