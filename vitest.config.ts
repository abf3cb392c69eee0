import { configDefaults, defineConfig } from "vitest/config";

// Two projects; `npm test` runs both (unit first, then e2e), `npm run test:unit` / `npm run test:e2e` one.
//
// unit: pure and fast — no child processes, no servers, no models (seconds). Listed by name; these files
// run in parallel, as none of them shares state with another.
const UNIT = [
  "test/admission.test.ts",
  "test/bench-report.test.ts",
  "test/chrf.test.ts",
  "test/company-wait.test.ts",
  "test/bpe.test.ts",
  "test/config.test.ts",
  "test/containers.test.ts",
  "test/decode-stats.test.ts",
  "test/draft-vocabulary.test.ts",
  "test/drafter-shapes-report.test.ts",
  "test/drafters-report.test.ts",
  "test/gamma-policy.test.ts",
  "test/generation-peek.test.ts",
  "test/import-boundaries.test.ts",
  "test/k8s-manifests.test.ts",
  "test/log-rate-limit.test.ts",
  "test/logprobs.test.ts",
  "test/metrics-registry.test.ts",
  "test/output-tracker.test.ts",
  "test/pass-accounting.test.ts",
  "test/pass-cost-model.test.ts",
  "test/pool-ranking.test.ts",
  "test/structured-report.test.ts",
  "test/prices.test.ts",
  "test/rate-limit.test.ts",
  "test/regimes-report.test.ts",
  "test/reliability-report.test.ts",
  "test/session-gamma.test.ts",
  "test/signed-url.test.ts",
  "test/speculation-prior.test.ts",
  "test/suffix-proposer.test.ts",
  "test/session-kv-store.test.ts",
  "test/stop-strings.test.ts",
  "test/token-mask.test.ts",
  "test/tokenizer-pair.test.ts",
  "test/tokenizer-pieces.test.ts",
  "test/training-docs.test.ts",
  "test/verification.test.ts",
];

// e2e: everything else — verifier and edge processes, loopback servers (s3rver, Miniflare, proxies) and
// models (the committed fixture pair, synthetic pairs). A new test file lands here unless listed above.
// Two cores: these files run one at a time so that model-heavy files do not starve each other, and
// their timeouts allow for a loaded machine (the speculative decoder's cells take about a minute each).

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 180_000,
    projects: [
      {
        extends: true,
        test: { name: "unit", include: UNIT, fileParallelism: true, maxWorkers: 2, testTimeout: 60_000 },
      },
      {
        extends: true,
        test: {
          name: "e2e",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, ...UNIT],
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
