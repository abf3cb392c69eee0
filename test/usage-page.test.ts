// The key holder's usage page (GET /usage) in headless Chromium: `npm start`'s entry with BILLING_DATABASE_URL
// on the real PostgreSQL server (a fresh schema, as billing-api.test.ts), a key with some completions, then
// Debian's chromium through playwright-core types the key and waits for the SVG charts. Chromium is
// installed by `npm test`'s pretest (scripts/ensure-chromium.sh, apt); without it this test fails — it never skips.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountStore } from "../src/billing/account-store.ts";
import { billingSchema, type BillingSchema } from "./harness/billing-schema.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { startEdgeProcess, type EdgeProcess } from "./harness/processes.ts";

const CHROMIUM = "/usr/bin/chromium";
const SENT = 3;
let billing: BillingSchema;
let store: AccountStore;
let edge: EdgeProcess;
let browser: Browser;
let shots: string;
let key: string;
let quietKey: string;
let modelId: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: npm test's pretest (scripts/ensure-chromium.sh) installs Debian's chromium`);
  ({ modelId } = await loadDefaultPair());
  billing = await billingSchema("usage");
  store = billing.store;
  edge = await startEdgeProcess({ BILLING_DATABASE_URL: billing.url, LOG_REQUESTS: "false" });
  ({ key } = await store.createKey({ name: "charts", scopes: ["chat"], budgetMicroEur: 5_000_000, budgetPeriod: "month" }));
  ({ key: quietKey } = await store.createKey({ name: "quiet", scopes: ["chat"] }));
  for (let i = 0; i < SENT; i++) {
    const r = await fetch(`${edge.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: modelId, messages: [{ role: "user", content: ["Hola", "Buenos días", "¿Qué tal?"][i] }], max_tokens: 48, temperature: 0 }),
    });
    expect(r.status).toBe(200);
    await r.body?.cancel();
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  shots = mkdtempSync(path.join(tmpdir(), "usage-page-"));
});
afterAll(async () => {
  await browser?.close();
  await edge?.stop("SIGKILL");
  await billing?.close();
  if (shots) rmSync(shots, { recursive: true, force: true });
});

/** A fresh page recording console errors, page errors and CSP violations. */
async function open(): Promise<{ page: Page; errors: string[]; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("request", (r) => requests.push(r.url()));
  // Runs before the page's own script (injected by the browser, not subject to the page's CSP).
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
  const r = await page.goto(`${edge.url}/usage`);
  expect(r?.status()).toBe(200);
  const csp = r?.headers()["content-security-policy"] ?? "";
  expect(csp).toContain("default-src 'none'");
  expect(csp).toMatch(/script-src 'nonce-[^']+'/);
  expect(csp).not.toContain("unsafe-inline");
  return { page, errors, requests };
}

async function submit(page: Page, k: string): Promise<void> {
  await page.fill("#key", k);
  await page.click("#show");
}

describe("the usage page (GET /usage) in headless Chromium", () => {
  it("charts spend, requests, tokens and savings by day for a key with traffic, with totals and budget", async () => {
    const { page, errors, requests } = await open();
    expect(await page.getAttribute("#key", "type")).toBe("password");
    await submit(page, key);
    await page.waitForSelector("body[data-state=loaded]");
    await page.waitForSelector("#chart-spend svg rect.bar");

    for (const chart of ["spend", "requests", "tokens"]) {
      const bars = await page.locator(`#chart-${chart} svg rect.bar`).count();
      expect(bars, chart).toBeGreaterThan(0);
    }
    // Savings: a bar on each day speculation saved anything (the API's own figures).
    const usage = (await (await fetch(`${edge.url}/v1/usage`, { headers: { authorization: `Bearer ${key}` } })).json()) as { data: { day: string; saving: number }[] };
    const savedDays = new Set(usage.data.filter((d) => d.saving > 0).map((d) => d.day));
    expect(await page.locator("#chart-savings svg rect.bar").count()).toBe(savedDays.size);
    expect(await page.locator("#chart-savings svg").count()).toBe(1);
    const today = new Date().toISOString().slice(0, 10);
    expect(await page.locator(`#chart-requests rect.bar[data-day="${today}"]`).count()).toBe(1);
    expect((await page.textContent('#total-row td[data-field="requests"]'))?.trim()).toBe(String(SENT));
    expect(await page.textContent("#totals tbody")).toContain(modelId); // the model's row
    expect(await page.textContent("#budget")).toBe("€5.00");
    const me = (await (await fetch(`${edge.url}/v1/key`, { headers: { authorization: `Bearer ${key}` } })).json()) as { spent: number; remaining: number };
    expect(me.spent).toBeGreaterThan(0);
    const euros = async (sel: string) => Number((await page.textContent(sel))?.replace(/^€/, ""));
    expect(await euros("#spent")).toBeCloseTo(me.spent, 6);
    expect(await euros("#remaining")).toBeCloseTo(me.remaining, 2);
    expect(await page.textContent("#key-name")).toContain("charts");

    const file = path.join(shots, "usage.png");
    await page.screenshot({ path: file, fullPage: true });
    const png = readFileSync(file);
    expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
    expect(png.length).toBeGreaterThan(5_000);

    // The key never went into a URL; the page loaded nothing from elsewhere.
    for (const u of requests) {
      expect(u).not.toContain(key);
      expect(new URL(u).origin === new URL(edge.url).origin || u.startsWith("data:")).toBe(true);
    }
    expect(page.url()).toBe(`${edge.url}/usage`);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("says so for a wrong key (401) and for a key without traffic", async () => {
    const { page, errors } = await open();
    await submit(page, "sk-alia-aaaaaaaaaaaa_wrong");
    await page.waitForSelector("#message.error");
    expect(await page.textContent("#message")).toContain("Wrong API key");
    expect(await page.isVisible("#report")).toBe(false);
    // Chromium reports the 401 response itself as a console error; nothing else may show up.
    expect(errors.filter((e) => !/Failed to load resource: .*401/.test(e))).toEqual([]);

    errors.length = 0;
    await submit(page, quietKey);
    await page.waitForSelector("body[data-state=loaded]");
    expect(await page.textContent("#message")).toContain("No traffic for this key");
    expect(await page.locator("svg rect.bar").count()).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  });
});
