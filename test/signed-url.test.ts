// The signed translation URL scheme (src/billing/signed-url.ts), pure: its canonical form is unambiguous
// (it decodes back to the very parameter list), its HMAC is the one an independent implementation computes,
// and every change to a signed URL — any parameter, the key id, the expiry, the path, the secret, even its
// spelling — fails, as do a missing or malformed signature, a repeated parameter and an expired or too
// distant exp.
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  CanonicalFormError,
  CLOCK_SKEW_S,
  canonicalQuery,
  equalConstantTime,
  importSigningSecret,
  MAX_EXPIRES_IN_S,
  percentEncode,
  SIGNED_URL_VERSION,
  signature,
  signedCacheControl,
  signQuery,
  stringToSign,
  verifySignedQuery,
} from "../src/billing/signed-url.ts";

const SECRET = "test-secret-0123456789abcdefghijklmnop";
const OTHER = "another-secret-0123456789abcdefghijklm";
const PATH = "/v1/translate";
const NOW = 1_750_000_000;
const KID = "abcdefghijkl";
const PARAMS = { text: "El perro de San Roque no tiene rabo. ¿Y qué? 100% & más = +", source: "es", target: "ca" };

const key = () => importSigningSecret(SECRET);
const signed = async (o: Partial<{ params: Record<string, string>; kid: string; exp: number }> = {}) => signQuery(await key(), { path: PATH, params: PARAMS, kid: KID, exp: NOW + 3600, ...o });
const verify = async (query: string, o: { keys?: CryptoKey[]; now?: number; path?: string } = {}) => verifySignedQuery(o.keys ?? [await key()], o.path ?? PATH, query, o.now ?? NOW);
/** Replaces one parameter's value in a query string (re-encoded as URLSearchParams would). */
const withParam = (query: string, name: string, value: string | null): string => {
  const p = new URLSearchParams(query);
  if (value === null) p.delete(name);
  else p.set(name, value);
  return p.toString();
};

/** Deterministic pseudo-random numbers (mulberry32), so a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const ALPHABET = ["a", "z", "0", "-", "_", ".", "~", " ", "+", "&", "=", "%", "%2", "%20", "#", "?", "/", "!", "'", "(", ")", "*", "é", "ñ", "€", "😀", "\n", "\u0000", ";", ","];
const randomString = (r: () => number, max: number) => Array.from({ length: Math.floor(r() * max) }, () => ALPHABET[Math.floor(r() * ALPHABET.length)]).join("");

describe("percent-encoding", () => {
  it("leaves only RFC 3986's unreserved characters as they are", () => {
    expect(percentEncode("AZaz09-._~")).toBe("AZaz09-._~");
    expect(percentEncode(" +&=%#?/!'()*;,:@$")).toBe("%20%2B%26%3D%25%23%3F%2F%21%27%28%29%2A%3B%2C%3A%40%24");
    expect(percentEncode("é€😀")).toBe("%C3%A9%E2%82%AC%F0%9F%98%80"); // UTF-8, upper-case hex
    for (let code = 0; code < 128; code++) {
      const ch = String.fromCharCode(code);
      const e = percentEncode(ch);
      expect(e === ch ? /[A-Za-z0-9\-._~]/.test(ch) : e === `%${code.toString(16).toUpperCase().padStart(2, "0")}`, JSON.stringify(ch)).toBe(true);
    }
  });

  it("refuses a lone surrogate (no UTF-8 form) with an error naming the parameter", () => {
    expect(() => percentEncode("a\ud800b", "text")).toThrow(CanonicalFormError);
    expect(() => canonicalQuery([["text", "\udc00"]])).toThrow(/text is not valid Unicode/);
  });
});

describe("canonical query", () => {
  it("sorts by name and joins encoded pairs, whatever the order given", () => {
    expect(
      canonicalQuery([
        ["text", "a b"],
        ["exp", "1"],
        ["kid", "k"],
        ["target", "ca"],
        ["source", "es"],
      ]),
    ).toBe("exp=1&kid=k&source=es&target=ca&text=a%20b");
    expect(
      canonicalQuery([
        ["b", "2"],
        ["a", "1"],
      ]),
    ).toBe(
      canonicalQuery([
        ["a", "1"],
        ["b", "2"],
      ]),
    );
    expect(canonicalQuery([])).toBe("");
    expect(canonicalQuery([["text", ""]])).toBe("text=");
  });

  it("tells apart parameter lists that naive joins confuse", () => {
    const distinct = [
      [["a", "b&c=d"]],
      [
        ["a", "b"],
        ["c", "d"],
      ],
      [["a=b", "c"]],
      [["a", "b=c"]],
      [["a", "b c"]],
      [["a", "b+c"]],
      [["a", "b%20c"]],
      [["a", ""]],
      [["a", "%"]],
      [["a", "%25"]],
    ] as [string, string][][];
    const forms = distinct.map(canonicalQuery);
    expect(new Set(forms).size).toBe(distinct.length);
  });

  it("decodes back to the very parameter list it was made of (so no two lists share a form), over 2,000 random lists", () => {
    const r = rng(20250601);
    for (let i = 0; i < 2000; i++) {
      const names = new Set<string>();
      const n = Math.floor(r() * 6);
      while (names.size < n) names.add(randomString(r, 6) || "x");
      const pairs = [...names].map((name) => [name, randomString(r, 12)] as [string, string]);
      const form = canonicalQuery(pairs);
      expect(form).toMatch(/^[A-Za-z0-9\-._~%=&]*$/);
      const decoded = form === "" ? [] : form.split("&").map((p) => p.split("=").map(decodeURIComponent) as [string, string]);
      expect(decoded).toEqual([...pairs].sort((a, b) => (percentEncode(a[0]) < percentEncode(b[0]) ? -1 : 1)));
    }
  });

  it("refuses a repeated name and sig among the signed parameters", () => {
    expect(() =>
      canonicalQuery([
        ["text", "a"],
        ["text", "b"],
      ]),
    ).toThrow(/text appears more than once/);
    expect(() => canonicalQuery([["sig", "x"]])).toThrow(CanonicalFormError);
  });

  it("signs the version, the path and the canonical query", () => {
    expect(
      stringToSign(PATH, [
        ["text", "hola"],
        ["kid", "k"],
      ]),
    ).toBe(`${SIGNED_URL_VERSION}\n/v1/translate\nkid=k&text=hola`);
  });
});

describe("signing", () => {
  it("computes HMAC-SHA256 over the string to sign, as an independent implementation does (known answer)", async () => {
    const query = await signQuery(await key(), { path: PATH, params: { text: "Hola, mundo.", source: "es", target: "ca" }, kid: KID, exp: NOW });
    const canonical = `exp=${NOW}&kid=${KID}&source=es&target=ca&text=Hola%2C%20mundo.`;
    const expected = createHmac("sha256", SECRET).update(`alia-signed-url-v1\n/v1/translate\n${canonical}`).digest("base64url");
    // The URL carries sig in its sorted place (a CDN that sorts query strings leaves it as it is).
    expect(query).toBe(`exp=${NOW}&kid=${KID}&sig=${expected}&source=es&target=ca&text=Hola%2C%20mundo.`);
    expect(expected).toHaveLength(43);
  });

  it("gives the same signature for the same parameters in any order, and a different one for another secret", async () => {
    const a = await signature(await key(), PATH, [
      ["text", "x"],
      ["kid", KID],
    ]);
    expect(
      await signature(await key(), PATH, [
        ["kid", KID],
        ["text", "x"],
      ]),
    ).toBe(a);
    expect(
      await signature(await importSigningSecret(OTHER), PATH, [
        ["text", "x"],
        ["kid", KID],
      ]),
    ).not.toBe(a);
  });

  it("refuses a short secret, a reserved parameter name, a bad key id or exp, and text with no UTF-8 form", async () => {
    await expect(importSigningSecret("too-short")).rejects.toThrow(RangeError);
    const k = await key();
    for (const reserved of ["kid", "exp", "sig"]) await expect(signQuery(k, { path: PATH, params: { ...PARAMS, [reserved]: "x" }, kid: KID, exp: NOW })).rejects.toThrow(/reserved/);
    await expect(signQuery(k, { path: PATH, params: PARAMS, kid: "a b", exp: NOW })).rejects.toThrow(/kid/);
    for (const exp of [0, -1, 1.5, Number.NaN, 1e12]) await expect(signQuery(k, { path: PATH, params: PARAMS, kid: KID, exp })).rejects.toThrow(/exp/);
    await expect(signQuery(k, { path: PATH, params: { ...PARAMS, text: "\ud83d" }, kid: KID, exp: NOW })).rejects.toThrow(CanonicalFormError);
  });
});

describe("verification", () => {
  it("accepts the signed URL as a server reads it, and hands back the translation's parameters", async () => {
    const q = await signed();
    expect(await verify(q)).toEqual({ ok: true, kid: KID, exp: NOW + 3600, params: PARAMS });
  });

  it("refuses the same values spelled otherwise (+ for %20, lower-case hex, another order, ~ encoded): one URL, one CDN cache key", async () => {
    const q = await signed({ params: { text: "La vida es bella, ¿no? ~", source: "es", target: "ca" } });
    const variants = [q.replace(/%20/g, "+"), q.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()), q.split("&").reverse().join("&"), q.replace("~", "%7E"), `${q}&`, `&${q}`, new URLSearchParams(q).toString()];
    for (const v of variants) {
      expect(v).not.toBe(q);
      const values = (x: string) => [...new URLSearchParams(x)].sort();
      expect(values(v)).toEqual(values(q)); // the same values
      expect(await verify(v), v).toMatchObject({ ok: false, reason: "respelled" });
    }
  });

  it("refuses any change to any parameter: text, source, target, key id, exp", async () => {
    const q = await signed();
    const changes: [string, string][] = [
      ["text", `${PARAMS.text} `],
      ["text", PARAMS.text.toUpperCase()],
      ["text", ""],
      ["source", "ES"],
      ["source", "gl"],
      ["target", "gl"],
      ["kid", "bbbbbbbbbbbb"],
      ["kid", KID.toUpperCase()],
      ["exp", String(NOW + 3601)],
      ["exp", String(NOW + 3599)],
    ];
    for (const [name, value] of changes) expect(await verify(withParam(q, name, value)), `${name}=${value}`).toMatchObject({ ok: false, reason: "bad_signature", param: "sig" });
  });

  it("refuses a parameter added or removed, and the query on another path", async () => {
    const q = await signed();
    expect(await verify(`${q}&format=text`)).toMatchObject({ ok: false, reason: "bad_signature" });
    expect(await verify(withParam(q, "source", null))).toMatchObject({ ok: false, reason: "bad_signature" });
    expect(await verify(q, { path: "/v1/translate/other" })).toMatchObject({ ok: false, reason: "bad_signature" });
  });

  it("refuses a changed or another secret's signature; accepts a retiring secret's while it is listed", async () => {
    const q = await signed();
    const sig = new URLSearchParams(q).get("sig")!;
    const flipped = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
    expect(await verify(withParam(q, "sig", flipped))).toMatchObject({ ok: false, reason: "bad_signature" });
    const other = await importSigningSecret(OTHER);
    expect(await verify(q, { keys: [other] })).toMatchObject({ ok: false, reason: "bad_signature" });
    expect(await verify(q, { keys: [other, await key()] })).toMatchObject({ ok: true }); // rotation: the old secret still verifies
    expect(await verify(q, { keys: [] })).toMatchObject({ ok: false, reason: "bad_signature" });
  });

  it("refuses a missing kid, exp or sig, naming it", async () => {
    const q = await signed();
    for (const p of ["sig", "kid", "exp"]) expect(await verify(withParam(q, p, null))).toMatchObject({ ok: false, reason: "missing", param: p });
    expect(await verify("text=hola&source=es&target=ca")).toMatchObject({ ok: false, reason: "missing" });
  });

  it("refuses a repeated parameter (which copy would the handler read?) and kid, exp or sig out of format", async () => {
    const q = await signed();
    expect(await verify(`${q}&text=otra`)).toMatchObject({ ok: false, reason: "malformed", param: "text" });
    expect(await verify(`text=otra&${q}`)).toMatchObject({ ok: false, reason: "malformed", param: "text" });
    expect(await verify(`${q}&sig=x`)).toMatchObject({ ok: false, reason: "malformed", param: "sig" });
    const sig = new URLSearchParams(q).get("sig")!;
    for (const bad of [`${sig}=`, sig.slice(1), `${sig}A`, `${sig.slice(0, 42)}+`, ""]) expect(await verify(withParam(q, "sig", bad)), bad).toMatchObject({ ok: false, reason: "malformed", param: "sig" });
    for (const bad of ["0", "-1", "01750000000", "1.5e9", " 1750003600", "", "123456789012"]) expect(await verify(withParam(q, "exp", bad)), bad).toMatchObject({ ok: false, reason: "malformed", param: "exp" });
    for (const bad of ["", "a b", "a/b", "x".repeat(65)]) expect(await verify(withParam(q, "kid", bad)), bad).toMatchObject({ ok: false, reason: "malformed", param: "kid" });
  });

  it("refuses an authentic URL once exp is reached, and checks the signature first", async () => {
    const q = await signed({ exp: NOW + 10 });
    expect((await verify(q, { now: NOW + 9.999 })).ok).toBe(true);
    expect(await verify(q, { now: NOW + 10 })).toMatchObject({ ok: false, reason: "expired", param: "exp" });
    expect(await verify(q, { now: NOW + 86_400 })).toMatchObject({ ok: false, reason: "expired", message: expect.stringContaining(new Date((NOW + 10) * 1000).toISOString()) });
    // Signed in the past: expired, not bad.
    expect(await verify(await signed({ exp: NOW - 1 }))).toMatchObject({ ok: false, reason: "expired" });
    // An expired URL whose exp is pushed forward is a forgery, not a live URL.
    expect(await verify(withParam(q, "exp", String(NOW + 1000)), { now: NOW + 20 })).toMatchObject({ ok: false, reason: "bad_signature" });
    // A forgery is never told it expired.
    expect(await verify(withParam(q, "text", "otro"), { now: NOW + 20 })).toMatchObject({ ok: false, reason: "bad_signature" });
  });

  it("refuses an exp further ahead than this server ever signs (with a little clock skew allowed)", async () => {
    expect((await verify(await signed({ exp: NOW + MAX_EXPIRES_IN_S }))).ok).toBe(true);
    expect((await verify(await signed({ exp: NOW + MAX_EXPIRES_IN_S + CLOCK_SKEW_S }))).ok).toBe(true);
    expect(await verify(await signed({ exp: NOW + MAX_EXPIRES_IN_S + CLOCK_SKEW_S + 1 }))).toMatchObject({ ok: false, reason: "too_far", param: "exp" });
  });

  it("refuses each of 500 random single-character changes to a signed URL", async () => {
    const q = await signed();
    const r = rng(7);
    const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~%&=+";
    for (let i = 0; i < 500; i++) {
      const at = Math.floor(r() * q.length);
      const mutated = q.slice(0, at) + chars[Math.floor(r() * chars.length)] + q.slice(at + 1);
      const v = await verify(mutated);
      if (mutated !== q) expect(v.ok, mutated).toBe(false);
    }
  });
});

describe("cache lifetime of a signed URL's answer", () => {
  it("is public, bounded by the time left until exp and by the configured ages; no-store once nothing is left", () => {
    expect(signedCacheControl(NOW + 3600, NOW, 86_400, 604_800)).toBe("public, max-age=3600, s-maxage=3600");
    expect(signedCacheControl(NOW + 10 * 86_400, NOW, 86_400, 604_800)).toBe("public, max-age=86400, s-maxage=604800");
    expect(signedCacheControl(NOW + 100, NOW + 0.5, 86_400, 604_800)).toBe("public, max-age=99, s-maxage=99");
    expect(signedCacheControl(NOW + 100, NOW, 0, 0)).toBe("public, max-age=0, s-maxage=0");
    expect(signedCacheControl(NOW, NOW, 86_400, 604_800)).toBe("no-store");
    expect(signedCacheControl(NOW + 1, NOW + 0.5, 86_400, 604_800)).toBe("no-store");
  });
});

describe("constant-time comparison", () => {
  it("compares whole strings", () => {
    expect(equalConstantTime("abc", "abc")).toBe(true);
    expect(equalConstantTime("abc", "abd")).toBe(false);
    expect(equalConstantTime("abc", "ab")).toBe(false);
    expect(equalConstantTime("", "")).toBe(true);
  });
});
