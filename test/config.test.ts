// The configuration schema: defaults, clear errors, and README's table kept in sync with it.
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { loadVerifierConfig, VerifierConfigSchema } from "../gpu-backend/config.ts";
import { ConfigSchema, loadConfig } from "../src/config.ts";

describe("loadConfig", () => {
  it("gives the embedded default (local fixture pair on 127.0.0.1:8787) with an empty environment", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ PORT: 8787, HOST: "127.0.0.1", MODEL_STORE: "local", MODEL_DIR: "fixtures/default", DRAFT_BUNDLE: "draft", TARGET_BUNDLE: "target" });
  });

  it("parses numbers and booleans from strings and ignores unrelated variables", () => {
    const c = loadConfig({ PORT: "9000", S3_FORCE_PATH_STYLE: "1", MODEL_STORE: "s3", S3_BUCKET: "models", PATH: "/usr/bin" });
    expect(c.PORT).toBe(9000);
    expect(c.S3_FORCE_PATH_STYLE).toBe(true);
    expect(c).not.toHaveProperty("PATH");
  });

  it("names the variable in errors", () => {
    expect(() => loadConfig({ PORT: "70000" })).toThrow(/invalid configuration: PORT:/);
    expect(() => loadConfig({ MODEL_STORE: "ftp" })).toThrow(/MODEL_STORE:/);
    expect(() => loadConfig({ S3_ENDPOINT: "not a url" })).toThrow(/S3_ENDPOINT:/);
    expect(() => loadConfig({ MODEL_STORE: "s3" })).toThrow(/S3_BUCKET is required when MODEL_STORE=s3/);
    expect(() => loadConfig({ POOL_NODES: "http://127.0.0.1:1, nope" })).toThrow(/POOL_NODES: not a URL: nope/);
    expect(() => loadConfig({ SPEC_GAMMA: "fast" })).toThrow(/SPEC_GAMMA:/);
    expect(loadConfig({ POOL_NODES: "http://a:1,http://b:2", SPEC_GAMMA: "3", SPEC_PROACTIVE: "false" })).toMatchObject({ POOL_NODES: ["http://a:1", "http://b:2"], SPEC_GAMMA: 3, SPEC_PROACTIVE: false });
    expect(() => loadVerifierConfig({ VERIFIER_HOST: "0.0.0.0" })).toThrow(/VERIFIER_TOKEN is required when VERIFIER_HOST \(0\.0\.0\.0\) is not loopback/);
    expect(() => loadVerifierConfig({ VERIFIER_TOKEN: "short" })).toThrow(/VERIFIER_TOKEN: at least 16 characters/);
    expect(() => loadVerifierConfig({ VERIFIER_ENGINE: "sglang" })).toThrow(/VERIFIER_SGLANG_URL is required when VERIFIER_ENGINE=sglang/);
    expect(() => loadVerifierConfig({ VERIFIER_MAX_GAMMA: "17" })).toThrow(/VERIFIER_MAX_GAMMA:/);
    expect(() => loadVerifierConfig({ VERIFIER_TOKEN_PREVIOUS: "previous-token-0123456789" })).toThrow(/VERIFIER_TOKEN_PREVIOUS needs VERIFIER_TOKEN/);
  });

  it("is documented in README: every variable with its default", async () => {
    const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
    const defaults = { ...loadConfig({}), ...loadVerifierConfig({}) };
    for (const key of [...Object.keys(ConfigSchema.shape), ...Object.keys(VerifierConfigSchema.shape)]) {
      const row = readme.split("\n").find((l) => l.startsWith(`| \`${key}\` |`));
      expect(row, `README lacks a row for ${key}`).toBeDefined();
      const value = (defaults as Record<string, unknown>)[key];
      expect(row).toContain(value === undefined ? "| — |" : `| \`${String(value)}\` |`);
    }
  });
});
