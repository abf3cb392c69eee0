// Rate-limited error lines (src/observability/log.ts): one per distinct message per interval, with a count
// of those held back. Pure: a fake clock.
import { expect, it } from "vitest";
import { rateLimitedWriter } from "../src/observability/log.ts";

it("lets one line per message per interval through and counts the rest", () => {
  const lines: string[] = [];
  let t = 0;
  const log = rateLimitedWriter((l) => lines.push(l), { intervalMs: 10_000, maxKeys: 2, now: () => t });
  for (let i = 0; i < 1000; i++) log("pool: no verifier available");
  log("pool: other");
  expect(lines).toEqual(["pool: no verifier available", "pool: other"]);
  t = 12_000;
  log("pool: no verifier available");
  expect(lines.at(-1)).toBe("pool: no verifier available (999 more like it in the last 12 s)");
  log("pool: no verifier available");
  expect(lines).toHaveLength(3);
  // Bounded memory: a third message forgets the oldest one, which then logs at once again.
  log("c");
  log("pool: other");
  expect(lines.slice(3)).toEqual(["c", "pool: other"]);
});
