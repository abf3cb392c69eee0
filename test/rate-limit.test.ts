// The rate limiter's math (pure, no clock): burst and sustained rate, exact instants of refill, Retry-After
// (never 0 when refused, always enough when honoured), refusals that spend nothing, refunds, and OpenAI's
// x-ratelimit-* header formats.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EMPTY_RATE_LIMIT_STATE, type RateLimitState, type RateLimits, WINDOW_MS, checkRateLimit, formatResetDuration, refundTokens } from "../src/billing/rate-limit.ts";

const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a realistic Date.now()
const LIMITS: RateLimits = { requestsPerMinute: 60, tokensPerMinute: 150_000 };

/** Runs requests of `tokens` at the given instants; the admitted ones' count and the final state. */
function run(limits: RateLimits, instants: number[], tokens: number, state: RateLimitState = EMPTY_RATE_LIMIT_STATE) {
  let admitted = 0;
  for (const now of instants) {
    const d = checkRateLimit(limits, state, now, tokens);
    state = d.state;
    if (d.allowed) admitted++;
  }
  return { admitted, state };
}

describe("requests per minute", () => {
  it("admits a full minute's burst to a fresh key, then refuses with Retry-After 1 s", () => {
    const { admitted, state } = run(LIMITS, Array(60).fill(T0), 1);
    expect(admitted).toBe(60);
    const d = checkRateLimit(LIMITS, state, T0, 1);
    expect(d).toMatchObject({ allowed: false, retryAfterS: 1, refusedBy: ["requests"], tooLarge: false });
    expect(d.state).toEqual(state); // a refusal spends nothing
  });

  it("refills one request per 1,000 ms at 60 per minute: refused at 999 ms, admitted at exactly 1,000", () => {
    const { state } = run(LIMITS, Array(60).fill(T0), 1);
    expect(checkRateLimit(LIMITS, state, T0 + 999, 1).allowed).toBe(false);
    expect(checkRateLimit(LIMITS, state, T0 + 999, 1).retryAfterS).toBe(1);
    const d = checkRateLimit(LIMITS, state, T0 + 1000, 1);
    expect(d.allowed).toBe(true);
    expect(checkRateLimit(LIMITS, d.state, T0 + 1000, 1).allowed).toBe(false);
  });

  it("sustains exactly the limit: over a minute of a request every ms, the burst plus one per 1,000 ms", () => {
    const instants = Array.from({ length: WINDOW_MS + 1 }, (_, i) => T0 + i);
    expect(run(LIMITS, instants, 1).admitted).toBe(60 + 60);
    // Admitted late (every 7 ms), the schedule does not drift: the bucket keeps what the late instant drained.
    expect(
      run(
        LIMITS,
        instants.filter((_, i) => i % 7 === 0),
        1,
      ).admitted,
    ).toBe(60 + 60 - 1); // 60,000 is not a multiple of 7
    // A limit that does not divide a minute: 7 per minute, one per 8,571.43 ms (admitted at ⌈k × 60,000 / 7⌉).
    const seven = { requestsPerMinute: 7, tokensPerMinute: 1000 };
    expect(run(seven, instants, 1).admitted).toBe(7 + 7);
  });

  it("is empty again a minute after a full burst, and after any idle time", () => {
    const { state } = run(LIMITS, Array(60).fill(T0), 1);
    expect(checkRateLimit(LIMITS, state, T0 + WINDOW_MS - 1, 0).headers["x-ratelimit-remaining-requests"]).toBe("58"); // 60 ticks left, then this one
    const d = checkRateLimit(LIMITS, state, T0 + WINDOW_MS, 0);
    expect(d.headers["x-ratelimit-remaining-requests"]).toBe("59"); // this request spent one
    expect(checkRateLimit(LIMITS, state, T0 + 365 * 86_400_000, 0).state).toMatchObject({ requestTicks: WINDOW_MS, tokenTicks: 0 });
  });

  it("allows a limit of 1 per minute: Retry-After 60 s", () => {
    const one = { requestsPerMinute: 1, tokensPerMinute: 1 };
    const a = checkRateLimit(one, EMPTY_RATE_LIMIT_STATE, T0, 1);
    expect(a.allowed).toBe(true);
    const b = checkRateLimit(one, a.state, T0 + 1, 1);
    expect(b).toMatchObject({ allowed: false, retryAfterS: 60, refusedBy: ["requests", "tokens"] });
    expect(checkRateLimit(one, a.state, T0 + WINDOW_MS - 1, 1).allowed).toBe(false);
    expect(checkRateLimit(one, a.state, T0 + WINDOW_MS, 1).allowed).toBe(true);
  });
});

describe("tokens per minute", () => {
  it("refuses a request whose tokens do not fit, with the wait until they do", () => {
    const limits = { requestsPerMinute: 1000, tokensPerMinute: 6000 }; // 100 tokens per second
    const a = checkRateLimit(limits, EMPTY_RATE_LIMIT_STATE, T0, 5000);
    expect(a.allowed).toBe(true);
    expect(a.headers["x-ratelimit-remaining-tokens"]).toBe("1000");
    const b = checkRateLimit(limits, a.state, T0, 1500); // 500 short: 5 s
    expect(b).toMatchObject({ allowed: false, refusedBy: ["tokens"], retryAfterS: 5, tooLarge: false });
    expect(checkRateLimit(limits, a.state, T0 + 4999, 1500).allowed).toBe(false);
    expect(checkRateLimit(limits, a.state, T0 + 5000, 1500).allowed).toBe(true);
    expect(checkRateLimit(limits, a.state, T0 + 4010, 1500).retryAfterS).toBe(1); // 990 ms left: rounded up
    expect(checkRateLimit(limits, a.state, T0, 1000).allowed).toBe(true); // exactly what is left
  });

  it("calls a request larger than a minute's tokens too large, even on an empty bucket", () => {
    const d = checkRateLimit(LIMITS, EMPTY_RATE_LIMIT_STATE, T0, 150_001);
    expect(d).toMatchObject({ allowed: false, tooLarge: true, refusedBy: ["tokens"], retryAfterS: 60 });
    expect(d.state).toEqual({ at: T0, requestTicks: 0, tokenTicks: 0 });
    expect(checkRateLimit(LIMITS, EMPTY_RATE_LIMIT_STATE, T0, 150_000).allowed).toBe(true);
  });

  it("takes the later of the two waits when both refuse", () => {
    const limits = { requestsPerMinute: 2, tokensPerMinute: 600 };
    const { state } = run(limits, [T0, T0], 300); // both full: a request in 30 s, 300 tokens in 30 s
    expect(checkRateLimit(limits, state, T0, 300)).toMatchObject({ allowed: false, refusedBy: ["requests", "tokens"], retryAfterS: 30 });
    expect(checkRateLimit(limits, state, T0, 600)).toMatchObject({ allowed: false, retryAfterS: 60 });
  });

  it("gives back unused reserved tokens, never below empty", () => {
    const limits = { requestsPerMinute: 10, tokensPerMinute: 1000 };
    const a = checkRateLimit(limits, EMPTY_RATE_LIMIT_STATE, T0, 1000); // reserved prompt + max_tokens
    expect(checkRateLimit(limits, a.state, T0, 1).allowed).toBe(false);
    const settled = refundTokens(limits, a.state, T0 + 10, 700); // used 300
    expect(checkRateLimit(limits, settled, T0 + 10, 700).allowed).toBe(true);
    expect(checkRateLimit(limits, settled, T0 + 10, 0).headers["x-ratelimit-remaining-tokens"]).toBe("700");
    expect(refundTokens(limits, settled, T0 + 10, 1_000_000).tokenTicks).toBe(0);
  });
});

describe("Retry-After", () => {
  it("is at least 1 s whenever refused, 0 when admitted, and honouring it admits the same request", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 500 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 120_000 })), { maxLength: 60 }),
        (rpm, tpm, requests) => {
          const limits = { requestsPerMinute: rpm, tokensPerMinute: tpm };
          let state = EMPTY_RATE_LIMIT_STATE;
          let now = T0;
          for (const [gap, tokens] of requests) {
            now += gap;
            const d = checkRateLimit(limits, state, now, tokens);
            if (d.allowed) expect(d.retryAfterS).toBe(0);
            else {
              expect(d.retryAfterS).toBeGreaterThanOrEqual(1);
              expect(d.state).toEqual(refundTokens(limits, state, now, 0)); // the buckets drained to now, nothing spent
              if (!d.tooLarge) expect(checkRateLimit(limits, d.state, now + d.retryAfterS * 1000, tokens).allowed).toBe(true);
              else expect(d.retryAfterS).toBe(60);
            }
            state = d.state;
            for (const v of [state.at, state.requestTicks, state.tokenTicks]) expect(Number.isSafeInteger(v)).toBe(true);
          }
        },
      ),
    );
  });
});

describe("state and inputs", () => {
  it("drains nothing when the clock goes back, and keeps the later instant", () => {
    const a = checkRateLimit(LIMITS, EMPTY_RATE_LIMIT_STATE, T0, 1000);
    const b = checkRateLimit(LIMITS, a.state, T0 - 5000, 0);
    expect(b.state).toEqual({ at: T0, requestTicks: 2 * WINDOW_MS, tokenTicks: 1000 * WINDOW_MS });
  });

  it("stays in exact integers at the largest limits and after long idle times", () => {
    const huge = { requestsPerMinute: 1_000_000_000, tokensPerMinute: 1_000_000_000 };
    const a = checkRateLimit(huge, EMPTY_RATE_LIMIT_STATE, T0, 1_000_000_000);
    expect(a.allowed).toBe(true);
    expect(a.state.tokenTicks).toBe(6e13);
    expect(a.headers["x-ratelimit-reset-tokens"]).toBe("1m0s");
    expect(checkRateLimit(huge, a.state, T0 + 1, 0).headers["x-ratelimit-remaining-tokens"]).toBe("16666"); // 1 ms refills 16,666.67 tokens
    expect(checkRateLimit(huge, a.state, Number.MAX_SAFE_INTEGER, 1).allowed).toBe(true);
  });

  it("reports 0 remaining, not a negative count, after a limit was lowered, and waits beyond a minute", () => {
    const { state } = run({ requestsPerMinute: 600, tokensPerMinute: 100_000 }, Array(600).fill(T0), 1);
    const lowered = { requestsPerMinute: 60, tokensPerMinute: 100_000 };
    const d = checkRateLimit(lowered, state, T0, 1);
    expect(d.headers["x-ratelimit-remaining-requests"]).toBe("0");
    expect(d.retryAfterS).toBe(541); // 600 requests' ticks drain at 60 per minute: 600 s, less the capacity of 59
    expect(checkRateLimit(lowered, state, T0 + 540_999, 1).allowed).toBe(false);
    expect(checkRateLimit(lowered, state, T0 + 541_000, 1).allowed).toBe(true);
  });

  it("leaves a dimension without a limit (null) untracked and out of the headers", () => {
    const tokensOnly = { requestsPerMinute: null, tokensPerMinute: 1000 };
    const { admitted, state } = run(tokensOnly, Array(5000).fill(T0), 0);
    expect(admitted).toBe(5000);
    expect(state.requestTicks).toBe(0);
    expect(Object.keys(checkRateLimit(tokensOnly, state, T0, 10).headers)).toEqual(["x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"]);
    expect(checkRateLimit(tokensOnly, state, T0, 1001)).toMatchObject({ allowed: false, tooLarge: true, refusedBy: ["tokens"] });

    const requestsOnly = { requestsPerMinute: 2, tokensPerMinute: null };
    const a = checkRateLimit(requestsOnly, EMPTY_RATE_LIMIT_STATE, T0, 1_000_000_000);
    expect(a).toMatchObject({ allowed: true, tooLarge: false, state: { tokenTicks: 0 } });
    expect(Object.keys(a.headers)).toEqual(["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"]);
    expect(refundTokens(requestsOnly, a.state, T0, 5).tokenTicks).toBe(0);

    const none = { requestsPerMinute: null, tokensPerMinute: null };
    expect(checkRateLimit(none, EMPTY_RATE_LIMIT_STATE, T0, 1_000_000_000)).toMatchObject({ allowed: true, headers: {}, state: { requestTicks: 0, tokenTicks: 0 } });
  });

  it("refuses malformed limits, instants and counts", () => {
    const ok = EMPTY_RATE_LIMIT_STATE;
    expect(() => checkRateLimit({ requestsPerMinute: 0, tokensPerMinute: 1 }, ok, T0, 1)).toThrow(/requestsPerMinute must be an integer in 1…/);
    expect(() => checkRateLimit({ requestsPerMinute: 1, tokensPerMinute: 1.5 }, ok, T0, 1)).toThrow(/tokensPerMinute/);
    expect(() => checkRateLimit({ requestsPerMinute: 1, tokensPerMinute: 2e9 }, ok, T0, 1)).toThrow(/tokensPerMinute/);
    expect(() => checkRateLimit(LIMITS, ok, T0 + 0.5, 1)).toThrow(/now must be integer ms/);
    expect(() => checkRateLimit(LIMITS, ok, T0, -1)).toThrow(/tokens must be an integer/);
    expect(() => refundTokens(LIMITS, ok, T0, Number.NaN)).toThrow(/tokens must be an integer/);
  });
});

describe("headers", () => {
  it("writes OpenAI's x-ratelimit-* headers", () => {
    const a = checkRateLimit(LIMITS, EMPTY_RATE_LIMIT_STATE, T0, 16);
    expect(a.headers).toEqual({
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "59",
      "x-ratelimit-reset-requests": "1s",
      "x-ratelimit-limit-tokens": "150000",
      "x-ratelimit-remaining-tokens": "149984",
      "x-ratelimit-reset-tokens": "7ms", // 16 tokens at 2,500 per second: 6.4 ms, rounded up
    });
    // 500 ms later the 16 tokens have drained (in 6.4 ms): 149,984 leave 16.
    const b = checkRateLimit(LIMITS, a.state, T0 + 500, 149_984);
    expect(b.headers).toMatchObject({ "x-ratelimit-remaining-requests": "58", "x-ratelimit-reset-requests": "1.5s", "x-ratelimit-remaining-tokens": "16", "x-ratelimit-reset-tokens": "59.994s" });
    const fresh = checkRateLimit(LIMITS, EMPTY_RATE_LIMIT_STATE, T0, 0);
    expect(fresh.headers["x-ratelimit-reset-tokens"]).toBe("0s");
  });

  it("formats durations as Go does (OpenAI's reset values)", () => {
    const cases: [number, string][] = [
      [0, "0s"],
      [1, "1ms"],
      [999, "999ms"],
      [1000, "1s"],
      [1001, "1.001s"],
      [1050, "1.05s"],
      [1500, "1.5s"],
      [59_999, "59.999s"],
      [60_000, "1m0s"],
      [90_500, "1m30.5s"],
      [360_000, "6m0s"],
      [3_600_000, "1h0m0s"],
      [3_723_004, "1h2m3.004s"],
      [90_000_000, "25h0m0s"],
    ];
    for (const [ms, s] of cases) expect(formatResetDuration(ms)).toBe(s);
    for (const bad of [-1, 0.5, Number.NaN]) expect(() => formatResetDuration(bad)).toThrow(RangeError);
  });

  it("has decimal counts and Go-style durations in every state", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 200_000 })), { maxLength: 40 }), (requests) => {
        let state = EMPTY_RATE_LIMIT_STATE;
        let now = T0;
        for (const [gap, tokens] of requests) {
          now += gap;
          const d = checkRateLimit(LIMITS, state, now, tokens);
          state = d.state;
          for (const k of ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens"] as const) expect(d.headers[k]).toMatch(/^\d+$/);
          for (const k of ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"] as const) expect(d.headers[k]).toMatch(/^(?:\d+ms|(?:\d+h)?(?:\d+m)?\d+(?:\.\d{1,3})?s)$/);
          expect(Number(d.headers["x-ratelimit-remaining-tokens"])).toBeLessThanOrEqual(150_000);
        }
      }),
    );
  });
});
