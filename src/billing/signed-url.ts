// Signed translation URLs (docs/BILLING.md, "Signed translation URLs"): the canonical form of a signed
// query and its HMAC-SHA256 under the server's URL_SIGNING_SECRET. Web Crypto only, so the same code runs
// in Node and in workerd. Pure: no clock (`nowS` is an argument), no I/O; whether the key id names a live
// key with the translate scope is the caller's question.
//
// Canonical form: every query parameter but `sig` (the translation's own and `kid`, `exp`), each name and
// value percent-encoded as RFC 3986 unreserved characters only (UTF-8; `&`, `=`, `+`, `%` and the rest always
// encoded, so no two different parameter lists share a canonical string), sorted by encoded name, joined by
// `&` and `=`. What is signed is that, after a version line and the path, so a signature is good for one
// route of one scheme version only; a repeated name is refused outright (which copy would the handler have
// used?). The URL itself is the same form with `sig` in its sorted place, and only that spelling is
// accepted: one URL per translation, so one CDN cache key, and a query re-spelled (`+` for `%20`, another
// order) to miss the CDN's cache is refused instead of billed.

/** The first line of every signed string: a new canonical form gets a new version, old signatures fail. */
export const SIGNED_URL_VERSION = "alia-signed-url-v1";
/** The longest life a signed URL may have (the sign endpoint's bound, and a check on every URL presented). */
export const MAX_EXPIRES_IN_S = 30 * 86_400;
/** The sign endpoint's life for a URL when the request names none: a day, as TRANSLATE_MAX_AGE_S's default. */
export const DEFAULT_EXPIRES_IN_S = 86_400;
/** How far past the bound a presented `exp` may be: edges whose clocks differ a little sign and verify. */
export const CLOCK_SKEW_S = 300;
/** The parameters a signed URL adds to the translation's own. */
export const SIGNATURE_PARAMS = ["kid", "exp", "sig"] as const;
/** RFC 9110 asks every sender and recipient to handle URIs of at least 8,000 octets; CDNs and proxies stop somewhere above. */
export const MAX_SIGNED_URL_BYTES = 8000;

const KID = /^[A-Za-z0-9_-]{1,64}$/;
/** Unix seconds, no sign, no leading zero (one spelling per instant), below 10^11 (year 5138). */
const EXP = /^[1-9][0-9]{0,10}$/;
/** 32 bytes of HMAC-SHA256 in base64url without padding. */
const SIG = /^[A-Za-z0-9_-]{43}$/;

export type SignedUrlRefusal =
  /** kid, exp or sig is absent. */
  | "missing"
  /** A parameter is repeated, or kid, exp or sig is not in its format. */
  | "malformed"
  /** The signature does not match the parameters (any of them changed, or not signed by this server). */
  | "bad_signature"
  /** Authentic, but not spelled as signed (re-encoded or reordered on its way). */
  | "respelled"
  /** Authentic, but `exp` has passed. */
  | "expired"
  /** Authentic, but `exp` lies further ahead than any URL this server signs (a secret in the wrong hands). */
  | "too_far";

export type VerifiedQuery = { ok: true; kid: string; exp: number; params: Record<string, string> } | { ok: false; reason: SignedUrlRefusal; message: string; param: string | null };

/** A parameter list that has no canonical form (a repeated name, `sig` among the signed ones, text that is not Unicode). */
export class CanonicalFormError extends Error {
  constructor(
    message: string,
    readonly param: string,
  ) {
    super(message);
  }
}

/** RFC 3986 percent-encoding of everything but unreserved characters (encodeURIComponent leaves !'()* alone). */
export function percentEncode(s: string, param = s): string {
  try {
    return encodeURIComponent(s).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
  } catch {
    // A lone surrogate has no UTF-8 form.
    throw new CanonicalFormError(`${param} is not valid Unicode text (it holds a lone surrogate)`, param);
  }
}

/** The canonical query of a parameter list (without `sig`). */
export function canonicalQuery(pairs: Iterable<readonly [string, string]>): string {
  const list = [...pairs];
  if (list.some(([name]) => name === "sig")) throw new CanonicalFormError("sig cannot be one of the signed parameters", "sig");
  return sortedQuery(list);
}

/** Encoded pairs sorted by encoded name; a repeated name is an error. */
function sortedQuery(pairs: Iterable<readonly [string, string]>): string {
  const seen = new Map<string, string>();
  for (const [name, value] of pairs) {
    const n = percentEncode(name);
    if (seen.has(n)) throw new CanonicalFormError(`the parameter ${name} appears more than once`, name);
    seen.set(n, `${n}=${percentEncode(value, name)}`);
  }
  // Encoded names are ASCII, so this is byte order: the same in every runtime and locale.
  return [...seen.keys()]
    .sort()
    .map((n) => seen.get(n))
    .join("&");
}

/** What the HMAC covers: the scheme version, the path, the canonical query. */
export function stringToSign(path: string, pairs: Iterable<readonly [string, string]>): string {
  return `${SIGNED_URL_VERSION}\n${path}\n${canonicalQuery(pairs)}`;
}

/** The HMAC-SHA256 key of a server secret (at least 32 characters). Import once, sign and verify many times. */
export async function importSigningSecret(secret: string): Promise<CryptoKey> {
  if (secret.length < 32) throw new RangeError("a URL signing secret needs at least 32 characters");
  return crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

/** base64url (no padding) of HMAC-SHA256(key, stringToSign(path, pairs)). */
export async function signature(key: CryptoKey, path: string, pairs: Iterable<readonly [string, string]>): Promise<string> {
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(stringToSign(path, pairs))));
  return btoa(String.fromCharCode(...mac))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/**
 * The query string (without `?`) of a signed URL for `path` with `params`, paid by key `kid` until `exp`
 * (unix seconds): the canonical query with `sig=…` in its sorted place. TypeError for a parameter named kid,
 * exp or sig, or a kid or exp out of format; CanonicalFormError for text that has no UTF-8 form.
 */
export async function signQuery(key: CryptoKey, o: { path: string; params: Record<string, string>; kid: string; exp: number }): Promise<string> {
  for (const p of SIGNATURE_PARAMS) if (Object.hasOwn(o.params, p)) throw new TypeError(`${p} is reserved for the signature`);
  if (!KID.test(o.kid)) throw new TypeError(`kid must match ${KID}`);
  if (!EXP.test(String(o.exp))) throw new TypeError("exp must be a positive integer of unix seconds");
  const pairs: [string, string][] = [...Object.entries(o.params), ["kid", o.kid], ["exp", String(o.exp)]];
  return sortedQuery([...pairs, ["sig", await signature(key, o.path, pairs)]]);
}

/**
 * Checks a presented query string (`new URL(url).search` without its `?`, as it came) against the signing keys
 * (the current secret first, then one being retired) at `nowS`. The signature is checked before the spelling
 * and `exp`, so those answers are only ever given about a URL this server signed; a changed `exp` is a bad
 * signature.
 */
export async function verifySignedQuery(keys: readonly CryptoKey[], path: string, rawQuery: string, nowS: number): Promise<VerifiedQuery> {
  const refuse = (reason: SignedUrlRefusal, message: string, param: string | null = null): VerifiedQuery => ({ ok: false, reason, message, param });
  const all = [...new URLSearchParams(rawQuery)];
  const names = new Set<string>();
  for (const [name] of all) {
    if (names.has(name)) return refuse("malformed", `the parameter ${name} appears more than once`, name);
    names.add(name);
  }
  const get = (n: string) => all.find(([name]) => name === n)?.[1];
  for (const p of SIGNATURE_PARAMS) if (get(p) === undefined) return refuse("missing", `a signed URL needs kid, exp and sig; ${p} is missing`, p);
  const kid = get("kid")!;
  const exp = get("exp")!;
  const sig = get("sig")!;
  if (!KID.test(kid)) return refuse("malformed", "kid is not a key id", "kid");
  if (!EXP.test(exp)) return refuse("malformed", "exp is not a time in unix seconds", "exp");
  if (!SIG.test(sig)) return refuse("malformed", "sig is not a signature (43 base64url characters)", "sig");
  const signed = all.filter(([name]) => name !== "sig");
  let expected: string[];
  try {
    expected = await Promise.all(keys.map((k) => signature(k, path, signed)));
  } catch (e) {
    if (e instanceof CanonicalFormError) return refuse("malformed", e.message, e.param);
    throw e;
  }
  // Every key is compared, each in constant time: the time taken says nothing about how close a guess was.
  let match = false;
  for (const x of expected) match = equalConstantTime(x, sig) || match;
  if (!match) return refuse("bad_signature", "the signature does not match this URL (a parameter was changed, or it was not signed here)", "sig");
  if (rawQuery !== sortedQuery(all)) return refuse("respelled", "this URL's query is not spelled as it was signed (re-encoded or reordered on its way): use it exactly as POST /v1/translate/sign returned it", null);
  const expS = Number(exp);
  if (expS <= nowS) return refuse("expired", `this signed URL expired at ${new Date(expS * 1000).toISOString()}`, "exp");
  if (expS > nowS + MAX_EXPIRES_IN_S + CLOCK_SKEW_S) return refuse("too_far", `exp lies more than ${MAX_EXPIRES_IN_S} s ahead, beyond any URL this server signs`, "exp");
  const params: Record<string, string> = {};
  for (const [name, value] of signed) if (name !== "kid" && name !== "exp") params[name] = value;
  return { ok: true, kid, exp: expS, params };
}

/**
 * Cache-Control of a signed URL's answer: public, so any CDN may keep it, but never past `exp` (after it
 * the URL is refused, and a cached copy must not outlive it). `no-store` once nothing is left.
 */
export function signedCacheControl(expS: number, nowS: number, maxAgeS: number, sMaxAgeS: number): string {
  const left = Math.floor(expS - nowS);
  if (left <= 0) return "no-store";
  return `public, max-age=${Math.min(maxAgeS, left)}, s-maxage=${Math.min(sMaxAgeS, left)}`;
}

/** Equal strings, compared without an early exit (only the length, which is public, ends it early). */
export function equalConstantTime(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
