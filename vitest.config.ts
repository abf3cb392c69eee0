import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Two cores: model-heavy test files run one at a time so they do not starve each other.
    fileParallelism: false,
  },
});
