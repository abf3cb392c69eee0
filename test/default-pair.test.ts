// Fast checks on the COMMITTED default fixture pair (fixtures/default/, made by `npm run fixtures:train`):
// it loads, the two models share one tokenizer, the target uses GQA and the draft MHA (like ALIA-40b and
// Salamandra-2b), greedy output is Spanish-looking text, the draft agrees with the target at a natural
// rate, the target translates held-out sentences into Catalan and Galician better than copying the Spanish
// (chrF against Apertium) and answers a rewriting request by copying the text it was given. No training here.
import { Tokenizer } from "@huggingface/tokenizers";
import { beforeAll, describe, expect, it } from "vitest";
import type { LoadedBundle } from "../src/common/models/bundle.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { measureGreedyAgreement } from "../fixtures/generate/agreement.ts";
import { chrF } from "../fixtures/generate/chrf.ts";
import { readHeldOutTranslations, readRewriteCases, translateHeldOut } from "../fixtures/generate/heldout.ts";
import { rewritePrompt } from "../fixtures/generate/quote-docs.ts";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";
import { loadDefaultPair } from "./harness/default-pair.ts";
import { FORTUNE_OPENINGS as PROMPTS } from "./harness/prompts.ts";

const EOS = 2;
const IM_END = 5;
/** chrF points the target's translations must gain over copying the source. */
const MIN_CHRF_GAIN = 3;

/** Frequent Spanish words (function words and the corpus's favourite topics). */
const SPANISH_WORDS = new Set(
  (
    "de la que el en y a los se del las un por con no una su para es al lo como más pero sus le ha me si sin sobre " +
    "este ya entre cuando todo esta ser son dos también fue era muy hasta desde está mi porque qué sólo solo han yo " +
    "hay vez puede todos así nos ni tiene él uno donde bien tiempo mismo ese ahora cada vida otro después te otros " +
    "aunque esa eso hace otra tan siempre día tanto ella sí gran mundo antes hombre hombres mujer amor amigo amigos " +
    "amistad nada nunca quien quien cosa cosas nadie hacer tu tus mejor ser dios verdad corazón hay muerte poco mucho"
  ).split(" "),
);

let target: LoadedBundle;
let draft: LoadedBundle;
let tok: Tokenizer;
let targetLm: CausalLM;
let draftLm: CausalLM;

beforeAll(async () => {
  ({ targetBundle: target, draftBundle: draft, target: targetLm, draft: draftLm } = await loadDefaultPair());
  // The tokenizers library itself (not our TextTokenizer wrapper): the files are what a third party reads.
  tok = new Tokenizer(target.tokenizerJson as object, target.tokenizerConfig);
});

const encode = (text: string): number[] => tok.encode(text).ids;

describe("default fixture pair (fixtures/default)", () => {
  it("has two verified bundles with the expected ids, roles and provenance note", () => {
    expect(target.manifest.id).toBe("alia-fixture-es-target");
    expect(target.manifest.role).toBe("target");
    expect(draft.manifest.id).toBe("alia-fixture-es-draft");
    expect(draft.manifest.role).toBe("draft");
    for (const b of [target, draft]) expect((b.config as Record<string, unknown>).alia_edge_fixture).toMatch(/fortunes-es/);
    const bytes = [target, draft].flatMap((b) => b.manifest.files).reduce((s, f) => s + f.size, 0);
    expect(bytes).toBeLessThanOrEqual(15e6);
  });

  it("shares one tokenizer between draft and target (Salamandra's special ids)", () => {
    expect(JSON.stringify(draft.tokenizerJson)).toBe(JSON.stringify(target.tokenizerJson));
    expect(JSON.stringify(draft.tokenizerConfig)).toBe(JSON.stringify(target.tokenizerConfig));
    expect(draft.config.vocab_size).toBe(target.config.vocab_size);
    expect(["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"].map((t) => tok.token_to_id(t))).toEqual([0, 1, 2, 3, 4, 5]);
    const ids = encode("¿Qué tal? ¡Año nuevo, vida nueva!");
    expect(ids[0]).toBe(1);
    expect(tok.decode(ids, { skip_special_tokens: true })).toBe("¿Qué tal? ¡Año nuevo, vida nueva!");
  });

  it("uses grouped-query attention in the target and multi-head attention in the draft", () => {
    expect(target.config.num_key_value_heads).toBeLessThan(target.config.num_attention_heads);
    expect(draft.config.num_key_value_heads).toBe(draft.config.num_attention_heads);
    expect(draft.config.num_hidden_layers).toBeLessThan(target.config.num_hidden_layers);
  });

  it("generates Spanish-looking text greedily", async () => {
    let generated = "";
    for (const p of PROMPTS.slice(0, 4)) {
      const ids = encode(p);
      const out = await targetLm.greedy(ids, 32, [EOS]);
      generated += " " + tok.decode(out, { skip_special_tokens: true });
    }
    const chars = [...generated.toLowerCase()];
    const spanish = chars.filter((c) => /[a-záéíóúñü ,.;:¿?¡!\n-]/.test(c)).length;
    expect(spanish / chars.length, generated).toBeGreaterThanOrEqual(0.8);
    const words = generated.toLowerCase().match(/[a-záéíóúñü]+/g) ?? [];
    const known = words.filter((w) => SPANISH_WORDS.has(w));
    expect(words.length, generated).toBeGreaterThanOrEqual(10);
    expect(known.length, generated).toBeGreaterThanOrEqual(3);
  });

  it("has a draft that agrees with the target at a natural rate (not a copy, not random)", async () => {
    const { alpha, positions } = await measureGreedyAgreement(targetLm, draftLm, PROMPTS.map(encode), 32, [EOS]);
    expect(positions).toBeGreaterThanOrEqual(40);
    expect(alpha).toBeGreaterThan(0.2);
    expect(alpha).toBeLessThan(0.98);
  });

  it.each([
    ["es", "ca"],
    ["es", "gl"],
  ])("translates held-out sentences %s→%s better than copying the source (chrF against Apertium)", async (source, target_) => {
    const cases = (await readHeldOutTranslations(DEFAULT_PAIR_DIR)).filter((t) => t.source === source && t.target === target_);
    expect(cases.length).toBe(100);
    const score = await translateHeldOut(targetLm, encode, (ids) => tok.decode(ids, { skip_special_tokens: true }), cases);
    expect(score.chrf, score.translations.slice(0, 3).join(" | ")).toBeGreaterThan(score.chrfCopying + MIN_CHRF_GAIN);
  });

  it("answers a rewriting request with the text it was given (copies from the prompt)", async () => {
    const cases = (await readRewriteCases(DEFAULT_PAIR_DIR)).slice(0, 20);
    expect(cases.length).toBe(20);
    const outs: string[] = [];
    for (const c of cases) outs.push(tok.decode(await targetLm.greedy(encode(rewritePrompt(c.slipped)), 48, [EOS, IM_END]), { skip_special_tokens: true }).trim());
    const originals = cases.map((c) => c.original);
    // Against its own quote versus another's: a model that ignored the prompt would score both alike.
    const own = chrF(outs, originals);
    const other = chrF(outs, [...originals.slice(1), originals[0]]);
    expect(own, outs.slice(0, 3).join(" | ")).toBeGreaterThan(other + 25);
  });
});
