// The default pair's training documents (pure): spelling slips for the rewriting task, and the task mix —
// held-out sentences never trained on in any direction, no document longer than a window, the same seed
// the same documents.
import { describe, expect, it } from "vitest";
import { EOS_ID, IM_END_ID } from "../fixtures/generate/bpe.ts";
import { misspell, pairDocs, rewriteHeldOut, rewritePrompt } from "../fixtures/generate/quote-docs.ts";
import { PASSAGE_TOKENS, passageCases } from "../fixtures/generate/passages.ts";
import { seededRandom } from "../fixtures/generate/random-weights.ts";
import { TRANSLATION_DIRECTIONS, type ParallelSentence, type TranslationDirection } from "../fixtures/generate/translation-corpus.ts";
import { translationPrompt } from "../src/translate/translator.ts";
import { nearDuplicate } from "../bench/drafters.ts";

// Characters as token ids (BOS = 1 first when asked): enough to check lengths and contents.
const encode = (text: string, bos = true) => [...(bos ? [1] : []), ...[...text].map((c) => 100 + c.codePointAt(0)!)];
const decode = (ids: readonly number[]) => String.fromCodePoint(...ids.filter((i) => i >= 100).map((i) => i - 100));

const QUOTES = Array.from({ length: 300 }, (_, i) => `La vida número ${i} es bella y también muy breve hoy.`);
const PARALLEL = new Map<TranslationDirection, ParallelSentence[]>(
  TRANSLATION_DIRECTIONS.map((d) => [d, Array.from({ length: 200 }, (_, i) => ({ source: `Frase ${i} en castellano.`, target: `Frase ${i} en ${d.target}.` }))]),
);
const MIX = { seed: 7, valFraction: 0.1, chatFraction: 0.1, rewriteFraction: 0.5, copyFraction: 0.5, heldOutSentences: 20, seqLen: 200 };

describe("spelling slips", () => {
  it("changes one or two words of three letters or more and keeps the rest", () => {
    const rand = seededRandom(3);
    const text = "El hombre sabio llevaba siempre un libro bajo el brazo";
    for (let k = 0; k < 200; k++) {
      const out = misspell(text, rand)!;
      const [a, b] = [text.split(" "), out.split(" ")];
      expect(b.length).toBe(a.length);
      const changed = a.filter((w, i) => w !== b[i]);
      expect(changed.length).toBeGreaterThanOrEqual(1);
      expect(changed.length).toBeLessThanOrEqual(2);
      expect(changed.every((w) => w.length >= 3)).toBe(true);
    }
  });

  it("is seeded and leaves text without a fitting word alone", () => {
    const text = "Quien bien te quiere te hará llorar.";
    expect(misspell(text, seededRandom(5))).toBe(misspell(text, seededRandom(5)));
    expect(misspell("Sí, ya no. Y tú", seededRandom(1))).toBeUndefined();
  });

  it("held-out rewriting cases are short validation quotes with their original", () => {
    const cases = rewriteHeldOut(QUOTES.slice(0, 30), 9, 10);
    expect(cases).toHaveLength(10);
    for (const c of cases) {
      expect(QUOTES).toContain(c.original);
      expect(c.slipped).not.toBe(c.original);
    }
    expect(rewriteHeldOut(QUOTES.slice(0, 30), 9, 10)).toEqual(cases);
  });
});

describe("the pair's task mix", () => {
  const docs = pairDocs(QUOTES, PARALLEL, encode, MIX);
  const texts = docs.trainDocs.map(decode);

  it("trains translations in every direction, except the held-out sentences in any", () => {
    expect(docs.heldOut.size).toBe(TRANSLATION_DIRECTIONS.length);
    const held = [...docs.heldOut.values()][0];
    expect(held).toHaveLength(MIX.heldOutSentences);
    for (const pairs of docs.heldOut.values()) expect(pairs.map((p) => p.source)).toEqual(held.map((p) => p.source)); // the same sentences in every direction
    for (const p of held) expect(texts.some((t) => t.includes(`] ${p.source} \n`))).toBe(false);
    for (const d of TRANSLATION_DIRECTIONS) {
      const trained = PARALLEL.get(d)!.filter((p) => !held.some((h) => h.source === p.source));
      for (const p of trained) expect(texts).toContain(`${translationPrompt(d.source, d.target, p.source)} ${p.target}\n`);
    }
    expect(docs.counts.translations).toBe(TRANSLATION_DIRECTIONS.length * (200 - MIX.heldOutSentences));
  });

  it("copies a share of the training sentences in the translator's format, never a held-out one", () => {
    const copies = texts.filter((t) => t.includes("[Spanish]") && t.split("\n")[1]?.startsWith("[Spanish]"));
    expect(copies.length).toBe(docs.counts.copies);
    expect(copies.length).toBeGreaterThan(0.3 * (200 - MIX.heldOutSentences));
    for (const t of copies) {
      const sentence = t.slice(t.indexOf("] ") + 2, t.indexOf(" \n"));
      expect(t).toBe(`${translationPrompt("es", "es", sentence)} ${sentence}\n`);
      expect(
        docs.heldOut
          .values()
          .next()
          .value!.some((p) => p.source === sentence),
      ).toBe(false);
    }
  });

  it("rewrites a share of the training quotes and sentences, ending the turn, never a validation quote or held-out sentence", () => {
    const rewrites = docs.trainDocs.filter((d) => decode(d).includes("Corrige la ortografía:"));
    expect(rewrites.length).toBe(docs.counts.rewrites);
    expect(rewrites.length).toBeGreaterThan(0.3 * docs.trainQuotes.length);
    for (const d of rewrites) {
      expect(d.slice(-2)).toEqual([IM_END_ID, EOS_ID]);
      const answer = decode(d).split("<|im_start|>assistant\n")[1];
      const sentence = [...PARALLEL.values()][0].some((p) => p.source === answer);
      expect(sentence || docs.trainQuotes.includes(answer)).toBe(true);
      expect(docs.valQuotes.some((v) => v.includes(answer))).toBe(false);
      if (sentence)
        expect(
          docs.heldOut
            .values()
            .next()
            .value!.some((p) => p.source === answer),
        ).toBe(false);
    }
    expect(decode(encode(rewritePrompt("x")))).toContain("Corrige la ortografía: x");
  });

  it("leaves out documents longer than a window and repeats itself for a seed", () => {
    const short = pairDocs(QUOTES, PARALLEL, encode, { ...MIX, seqLen: 60 });
    expect(short.trainDocs.slice(short.counts.quotes).every((d) => d.length <= 60)).toBe(true);
    expect(short.counts.tooLong).toBeGreaterThan(0);
    expect(pairDocs(QUOTES, PARALLEL, encode, MIX).trainDocs).toEqual(docs.trainDocs);
  });
});

describe("near-duplicate sentences (the translation benchmark's templated text)", () => {
  it("replaces one word of four letters or more, not the first, with one from another sentence", () => {
    const out = nearDuplicate("El perro de San Roque no tiene rabo.", "La casa grande tiene ventanas.");
    const [a, b] = ["El perro de San Roque no tiene rabo.".split(" "), out.split(" ")];
    expect(b).toHaveLength(a.length);
    expect(a.filter((w, i) => w !== b[i])).toHaveLength(1);
    expect(b[0]).toBe("El");
  });
});

describe("passage rewriting cases (the copy fixture's task)", () => {
  const count = (t: string) => [...t].length / 4; // about four characters a token
  const quotes = [...QUOTES.slice(0, 40), "Una cita\ncon dos líneas.", "Otra\tcon tabulador.", ...QUOTES.slice(40, 80)];

  it("joins one-line quotes in order into passages within the token bounds, each with a slip or two per changed quote", () => {
    const cases = passageCases(quotes, count, seededRandom(9), Number.POSITIVE_INFINITY);
    expect(cases.length).toBeGreaterThan(10);
    let at = 0;
    for (const c of cases) {
      const parts = c.original.split(/(?<=\.) /).length;
      expect(parts).toBeGreaterThanOrEqual(2);
      expect(parts).toBeLessThanOrEqual(5);
      if (parts < 5) expect(count(c.original)).toBeGreaterThanOrEqual(PASSAGE_TOKENS.min - parts);
      expect(count(c.original)).toBeLessThanOrEqual(PASSAGE_TOKENS.max);
      expect(c.original).not.toMatch(/[\n\t]/);
      // Consecutive quotes of the corpus, joined by a space.
      const first = quotes.indexOf(c.original.slice(0, c.original.indexOf(".") + 1), at);
      expect(first).toBeGreaterThanOrEqual(at);
      at = first + 1;
      const [a, b] = [c.original.split(" "), c.slipped.split(" ")];
      expect(b.length).toBe(a.length);
      expect(a.filter((w, i) => w !== b[i]).length).toBeGreaterThanOrEqual(1);
    }
  });

  it("stops at the count asked for, and the same seed gives the same cases", () => {
    expect(passageCases(quotes, count, seededRandom(9), 3)).toHaveLength(3);
    expect(passageCases(quotes, count, seededRandom(4), 5)).toEqual(passageCases(quotes, count, seededRandom(4), 5));
  });
});
