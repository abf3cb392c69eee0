// The grammar engine on xgrammar (the engine SGLang and vLLM constrain decoding with), compiled to
// WebAssembly: @mlc-ai/web-xgrammar. It compiles a JSON schema against the target's tokenizer once (cached)
// and gives per-token bitmasks in microseconds (docs/STRUCTURED-OUTPUTS.md has the measurements and the
// comparison with the alternatives).
import type { TextTokenizer } from "../common/models/tokenizer.ts";
import type { TokenMask } from "../common/token-mask.ts";
import { checkJsonSchema } from "./json-schema-support.ts";
import { type CompiledGrammar, type GrammarEngine, type GrammarMatcher, type GrammarSpec, UnsupportedGrammar } from "./grammar.ts";

type Xg = typeof import("@mlc-ai/web-xgrammar");
type XgCompiler = import("@mlc-ai/web-xgrammar").GrammarCompiler;
type XgCompiled = import("@mlc-ai/web-xgrammar").CompiledGrammar;
type XgMatcher = import("@mlc-ai/web-xgrammar").GrammarMatcher;

/** Compiled grammars kept (most recently used), per engine. */
const CACHED_GRAMMARS = 64;

let loading: Promise<Xg> | undefined;
/** Where the engine's console lines go while a call listens (withEngineErrors); else to the console. */
let engineSays: ((line: string) => void) | undefined;

/**
 * What a runtime wraps around loading the module: its import and first call, which makes the WebAssembly
 * instance. Node needs nothing more; a Worker hands over its precompiled WebAssembly (xgrammar-workerd.ts).
 */
export type XgrammarShims = <T>(load: () => Promise<T>) => Promise<T>;

/**
 * The module, loaded once (a failed load is forgotten, so that the next call tries again). Its bundle is UMD
 * inside an ES-module package, compiled by Emscripten: it hangs its exports on `globalThis.xgrammar`, and
 * where it runs with no `location` it calls `require("url")` with its `__filename` to find its own folder.
 * A `location` naming this file is lent for the load instead (it needs only its href; the WebAssembly is
 * inlined, no file is looked for), so no Node built-in is needed here and a Worker can load it too.
 */
export function loadXgrammar(shims: XgrammarShims = (load) => load()): Promise<Xg> {
  if (loading) return loading;
  loading = (async () => {
    const g = globalThis as Record<string, unknown>;
    if (!(g.xgrammar as Xg | undefined)?.GrammarCompiler) {
      const lent = !("location" in g);
      if (lent) g.location = { href: typeof import.meta.url === "string" ? import.meta.url : "file:///bundle/index.js" };
      // The instance binds console.error for its messages when it is made: bind it to a forwarder instead,
      // so that a failing call can hear why.
      const error = console.error;
      console.error = (...args: unknown[]) => (engineSays ? engineSays(args.map(String).join(" ")) : error(...args));
      try {
        await shims(async () => {
          const m = (await import("@mlc-ai/web-xgrammar")) as unknown as Partial<Xg>;
          if (m.GrammarCompiler) g.xgrammar = m;
          // The WebAssembly instance is made at the first call, which also needs the shims.
          (await (g.xgrammar as Xg).Grammar.builtinJSONGrammar()).dispose();
        });
      } finally {
        console.error = error;
        if (lent) delete g.location;
      }
    }
    return g.xgrammar as Xg;
  })();
  loading.catch(() => (loading = undefined));
  return loading;
}

/** What xgrammar needs of the tokenizer: each id's text, how bytes are spelled, and a leading-space rule. */
export function tokenizerVocabulary(tokenizer: TextTokenizer): { encoded: string[]; vocabType: "byte_fallback" | "byte_level" | "raw"; prependSpace: boolean } {
  const json = tokenizer.tokenizerJson as {
    model: { byte_fallback?: boolean };
    added_tokens?: { id: number; content: string; special?: boolean }[];
    normalizer?: unknown;
    pre_tokenizer?: unknown;
    decoder?: unknown;
  };
  const vocab = tokenizer.vocab();
  let size = 0;
  for (const id of vocab.values()) size = Math.max(size, id + 1);
  const encoded = new Array<string>(size).fill("");
  for (const [text, id] of vocab) encoded[id] = text;
  // Special tokens stand for no text: as "" xgrammar never allows them inside the output (only as stop ids).
  for (const t of json.added_tokens ?? []) if (t.special) encoded[t.id] = "";
  const spec = JSON.stringify([json.normalizer ?? null, json.pre_tokenizer ?? null, json.decoder ?? null]);
  const vocabType = json.model.byte_fallback ? "byte_fallback" : spec.includes('"ByteLevel"') ? "byte_level" : "raw";
  // SentencePiece-style tokenizers put "▁" before the text (a Prepend normalizer or Metaspace).
  const prependSpace = /"Prepend"|"prepend_scheme":"(always|first)"|"add_prefix_space":true/.test(spec);
  return { encoded, vocabType, prependSpace };
}

export class XgrammarEngine implements GrammarEngine {
  readonly name = "xgrammar";
  private readonly cache = new Map<string, Promise<CompiledGrammar>>();

  private constructor(
    private readonly xg: Xg,
    private readonly compiler: XgCompiler,
    readonly vocab: number,
    private readonly spell: (text: string) => number[],
  ) {}

  /** `load`: how this runtime loads the module (default: as on Node; a Worker's is xgrammar-workerd.ts's). */
  static async create(tokenizer: TextTokenizer, load: () => Promise<Xg> = loadXgrammar): Promise<XgrammarEngine> {
    const xg = await load();
    const v = tokenizerVocabulary(tokenizer);
    const info = await xg.TokenizerInfo.createTokenizerInfo(v.encoded, v.vocabType, v.prependSpace, v.encoded.length);
    // Forced text is spelled as the tokenizer spells it mid-text: after a line break, whose own tokens
    // (and a SentencePiece tokenizer's "▁" before a text's start) are then dropped.
    const lead = tokenizer.encode("\n", { addSpecialTokens: false });
    const spell = (text: string) => {
      const ids = tokenizer.encode(`\n${text}`, { addSpecialTokens: false });
      return lead.every((id, i) => ids[i] === id) ? ids.slice(lead.length) : [];
    };
    return new XgrammarEngine(xg, await xg.GrammarCompiler.createGrammarCompiler(info, false), v.encoded.length, spell);
  }

  compile(spec: GrammarSpec): Promise<CompiledGrammar> {
    const schema = spec.kind === "json_object" ? { type: "object" } : spec.schema;
    if (spec.kind === "json_schema") checkJsonSchema(schema);
    const key = JSON.stringify(schema);
    let hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key); // most recently used last
      this.cache.set(key, hit);
      return hit;
    }
    hit = this.compileSchema(key);
    this.cache.set(key, hit);
    hit.catch(() => this.cache.delete(key));
    while (this.cache.size > CACHED_GRAMMARS) this.cache.delete(this.cache.keys().next().value!);
    return hit;
  }

  private async compileSchema(schema: string): Promise<CompiledGrammar> {
    // Compact JSON (no free whitespace: a model cannot pad forever) and standard JSON Schema semantics
    // (strict mode off: properties a schema leaves open stay open).
    const compiled: XgCompiled = await withEngineErrors(() => this.compiler.compileJSONSchema(schema, false, -1, [",", ":"], false));
    const { xg, vocab, spell } = this;
    return {
      async matcher(stopIds: readonly number[]): Promise<GrammarMatcher> {
        return new XgrammarMatcher(await xg.GrammarMatcher.createGrammarMatcher(compiled, [...stopIds]), vocab, spell);
      },
    };
  }
}

class XgrammarMatcher implements GrammarMatcher {
  private accepted = 0;

  constructor(
    private readonly m: XgMatcher,
    readonly vocab: number,
    private readonly spell: (text: string) => number[],
  ) {}

  forced(): number[] {
    if (this.m.isTerminated()) return [];
    const text = this.m.findJumpForwardString();
    if (!text) return [];
    // As far as the grammar takes the spelling (a token may run past the forced text into a choice).
    const ids = this.spell(text);
    let n = 0;
    while (n < ids.length && this.m.acceptToken(ids[n])) n++;
    if (n) this.m.rollBack(n);
    return ids.slice(0, n);
  }

  async allowed(): Promise<TokenMask> {
    // Nothing follows a stop token (and asking the engine then aborts it).
    if (this.m.isTerminated()) return new Uint32Array(Math.ceil(this.vocab / 32));
    const bits = await this.m.getNextTokenBitmask();
    return new Uint32Array(bits.buffer, bits.byteOffset, bits.length);
  }

  accept(token: number): boolean {
    if (token < 0 || token >= this.vocab || this.m.isTerminated() || !this.m.acceptToken(token)) return false;
    this.accepted++;
    return true;
  }

  rollback(n: number): void {
    // Rolling back past the start aborts the WebAssembly module: refuse it here.
    if (n > this.accepted) throw new RangeError(`cannot roll back ${n} tokens: ${this.accepted} accepted`);
    this.m.rollBack(n);
    this.accepted -= n;
  }

  dispose(): void {
    this.m.dispose();
  }
}

/**
 * Runs an xgrammar call that may fail: the engine reports what it refused on the console ("[FATAL] …:
 * message") and throws a bare "Aborted()". The message is caught and becomes the error's.
 */
async function withEngineErrors<T>(f: () => Promise<T>): Promise<T> {
  const said: string[] = [];
  engineSays = (line) => said.push(line);
  try {
    return await f();
  } catch (e) {
    const fatal = said.find((l) => l.includes("[FATAL]"));
    const why = fatal ? fatal.replace(/^.*\[FATAL\][^:]*:\d+: /, "").replace(/^Check failed: \(.*?\) is false: /, "") : (e as Error).message;
    throw new UnsupportedGrammar(`the schema cannot be compiled: ${why}`);
  } finally {
    engineSays = undefined;
  }
}
