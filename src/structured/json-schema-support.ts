// Which JSON Schema keywords a response_format schema may use: those the grammar enforces token by token.
// xgrammar compiles more than it enforces — it reads `oneOf` as `anyOf` and passes over `not`,
// `if`/`then`/`else`, `uniqueItems`, `multipleOf`, … — and an answer that breaks its schema must never be
// returned as if it followed it, so everything else is refused by name (400) before compiling. Pure.
import { UnsupportedGrammar } from "./grammar.ts";

/** Keywords that only describe: accepted and ignored. */
const ANNOTATIONS = new Set(["title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly"]);
/** Keywords the grammar enforces. */
const ENFORCED = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "enum",
  "const",
  "anyOf",
  "allOf",
  "$ref",
  "$defs",
  "definitions",
  "minLength",
  "maxLength",
  "pattern",
  "format",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
]);
/** String formats the grammar spells out (others would pass as any string). */
export const FORMATS = new Set(["date-time", "date", "time", "email", "uuid", "ipv4", "ipv6", "hostname", "uri"]);
const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);
/** Keywords whose value is a map of schemas, and those whose value is a schema or a list of them. */
const SCHEMA_MAPS = new Set(["properties", "$defs", "definitions"]);
const SCHEMA_VALUES = new Set(["items", "additionalProperties", "prefixItems", "anyOf", "allOf"]);
const NUMBER_BOUNDS = new Set(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]);
/** A schema that admits non-integer numbers. */
const numeric = (s: Record<string, unknown>) => s.type === "number" || (Array.isArray(s.type) && s.type.includes("number"));
/** Deepest nesting checked (a schema deeper than this is refused rather than walked). */
const MAX_DEPTH = 64;

/** Throws UnsupportedGrammar naming the first keyword (and where) the grammar would not enforce. */
export function checkJsonSchema(schema: unknown): void {
  walk(schema, "schema", 0);
}

function walk(s: unknown, at: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new UnsupportedGrammar(`${at}: the schema is nested more than ${MAX_DEPTH} levels deep`);
  if (typeof s === "boolean") return;
  if (typeof s !== "object" || s === null || Array.isArray(s)) throw new UnsupportedGrammar(`${at}: expected a schema (an object or a boolean)`);
  for (const [key, value] of Object.entries(s)) {
    const here = `${at}.${key}`;
    if (ANNOTATIONS.has(key)) continue;
    if (!ENFORCED.has(key)) {
      const hint = key === "oneOf" ? " (use anyOf: the grammar cannot tell that exactly one branch matches)" : "";
      throw new UnsupportedGrammar(`${here}: the keyword '${key}' is not supported in response_format schemas${hint}`);
    }
    if (key === "type") {
      const types = Array.isArray(value) ? value : [value];
      for (const t of types) if (typeof t !== "string" || !TYPES.has(t)) throw new UnsupportedGrammar(`${here}: unknown type ${JSON.stringify(t)} (types: ${[...TYPES].join(", ")})`);
    } else if (key === "format") {
      if (typeof value !== "string" || !FORMATS.has(value)) throw new UnsupportedGrammar(`${here}: the format ${JSON.stringify(value)} is not supported (formats: ${[...FORMATS].join(", ")})`);
    } else if (key === "$ref") {
      if (typeof value !== "string" || !(value === "#" || value.startsWith("#/"))) throw new UnsupportedGrammar(`${here}: only references within the schema ("#/…") are supported`);
    } else if (key === "allOf") {
      if (!Array.isArray(value) || value.length !== 1) throw new UnsupportedGrammar(`${here}: allOf is supported with one schema only; merge them into one`);
    } else if (key === "pattern") {
      if (typeof value !== "string") throw new UnsupportedGrammar(`${here}: expected a regular expression (a string)`);
      if (/\(\?<?[=!]/.test(value)) throw new UnsupportedGrammar(`${here}: lookahead and lookbehind are not supported in patterns`);
      if (/\\[1-9]/.test(value)) throw new UnsupportedGrammar(`${here}: backreferences are not supported in patterns`);
      // A pattern the engine cannot parse would abort its WebAssembly instance, which does not take many.
      try {
        new RegExp(value, "u");
      } catch (e) {
        throw new UnsupportedGrammar(`${here}: not a valid regular expression (${(e as Error).message})`);
      }
    } else if (NUMBER_BOUNDS.has(key) && numeric(s as Record<string, unknown>)) {
      throw new UnsupportedGrammar(`${here}: bounds are supported on integers only (the grammar lets a number start that no digit can finish in range)`);
    } else if (SCHEMA_MAPS.has(key)) {
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw new UnsupportedGrammar(`${here}: expected an object of schemas`);
      for (const [name, sub] of Object.entries(value)) walk(sub, `${here}.${name}`, depth + 1);
    } else if (SCHEMA_VALUES.has(key)) {
      if (Array.isArray(value)) value.forEach((sub, i) => walk(sub, `${here}[${i}]`, depth + 1));
      else walk(value, here, depth + 1);
    }
  }
}
