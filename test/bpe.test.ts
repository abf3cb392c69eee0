import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHATML_TEMPLATE } from "../src/common/models/bundle.ts";
import {
  BOS_ID,
  BYTE_TOKEN_OFFSET,
  FIRST_PIECE_ID,
  IM_END_ID,
  IM_START_ID,
  SPECIAL_TOKENS,
  SPIECE_UNDERLINE,
  bpeEncoder,
  byteToken,
  toTokenizerJson,
  tokenizerConfigJson,
  trainBpe,
  type BpeModel,
} from "../fixtures/generate/bpe.ts";
import { parseFortunes, decodeText } from "../fixtures/generate/corpus.ts";

// A small built-in Spanish corpus (offline): hand-written sentences plus combinations of phrases.
const SENTENCES = [
  "Más vale pájaro en mano que ciento volando.",
  "No por mucho madrugar amanece más temprano.",
  "A quien madruga, Dios le ayuda.",
  "En boca cerrada no entran moscas.",
  "Dime con quién andas y te diré quién eres.",
  "Camarón que se duerme se lo lleva la corriente.",
  "El que la sigue la consigue.",
  "Cría cuervos y te sacarán los ojos.",
  "Ojos que no ven, corazón que no siente.",
  "A caballo regalado no se le mira el diente.",
  "Perro ladrador, poco mordedor.",
  "Quien mucho abarca poco aprieta.",
  "Al mal tiempo, buena cara.",
  "Más vale tarde que nunca.",
  "La curiosidad mató al gato.",
  "No hay mal que por bien no venga.",
  "Donde fueres, haz lo que vieres.",
  "Cada loco con su tema.",
  "El hábito no hace al monje.",
  "Agua que no has de beber, déjala correr.",
  "Hoy hace un día precioso en Madrid y vamos a pasear por el parque.",
  "¿Dónde está la biblioteca de la universidad?",
  "¡Qué alegría verte de nuevo después de tanto tiempo!",
  "Mañana por la mañana tenemos una reunión con el equipo de ingeniería.",
  "El niño comió una manzana y después se quedó dormido en el sofá.",
  "La economía española creció más de lo previsto durante el último año.",
  "Los científicos del centro de supercomputación presentaron un nuevo modelo de lenguaje.",
  "El modelo entiende el castellano, el catalán, el gallego y el euskera.",
  "Por favor, tradúceme este párrafo al inglés sin cambiar el sentido.",
  "La señora Muñoz compró pan, leche y huevos en la tienda de la esquina.",
  "El tren de alta velocidad llega a Barcelona en menos de tres horas.",
  "Me gustaría reservar una mesa para cuatro personas a las nueve de la noche.",
  "¿Cuánto cuesta el billete de ida y vuelta a Sevilla?",
  "El pingüino y el cigüeñal son palabras con diéresis.",
  "La acción de la obra transcurre en un pequeño pueblo de Castilla.",
  "Ayer llovió muchísimo y las calles se inundaron por completo.",
  "Según el informe, la mayoría de los usuarios prefiere respuestas breves.",
  "Escribe una función que calcule la suma de los números de una lista.",
  "El año que viene quiero aprender a tocar la guitarra.",
  "Ella siempre dice que la paciencia es la madre de la ciencia.",
  "Nosotros vivimos en un piso pequeño cerca del centro de la ciudad.",
  "Vosotros tenéis que terminar el trabajo antes del viernes.",
  "Ellos no sabían qué hacer cuando se apagó la luz.",
  "El médico le recomendó descansar y beber mucha agua.",
  "La película que vimos anoche fue larga pero muy interesante.",
  "Los árboles del jardín florecen cada primavera.",
  "Quien no arriesga no gana, dice mi abuela.",
  "La inteligencia artificial puede ayudar a las pequeñas empresas.",
  "El servidor verifica los tokens propuestos por el modelo pequeño.",
  "Este restaurante sirve la mejor paella de Valencia.",
];
const SUBJECTS = ["El perro", "La niña", "Mi hermano", "Nuestra vecina", "El profesor", "La empresa", "Un amigo", "La gente", "El gobierno", "Mi madre", "Aquel hombre", "La ciudad"];
const VERBS = ["quiere", "necesita", "busca", "encuentra", "prepara", "compra", "vende", "recuerda", "explica", "pide", "espera", "olvida"];
const OBJECTS = ["una casa nueva", "el libro de la biblioteca", "la respuesta correcta", "un poco de agua", "la comida de mañana", "el coche rojo", "las llaves de la puerta", "un regalo para la fiesta"];
const ENDINGS = ["cada día.", "por la tarde.", "en el mercado.", "con mucha paciencia.", "sin decir nada.", "antes de que llueva."];
function builtinCorpus(): string[] {
  const out = [...SENTENCES];
  const n = SUBJECTS.length * VERBS.length * OBJECTS.length * ENDINGS.length;
  for (let k = 0; k < 400; k++) {
    const i = (k * 7919) % n;
    const s = SUBJECTS[i % SUBJECTS.length];
    const v = VERBS[Math.floor(i / SUBJECTS.length) % VERBS.length];
    const o = OBJECTS[Math.floor(i / (SUBJECTS.length * VERBS.length)) % OBJECTS.length];
    const e = ENDINGS[Math.floor(i / (SUBJECTS.length * VERBS.length * OBJECTS.length)) % ENDINGS.length];
    out.push(`${s} ${v} ${o} ${e}`);
  }
  return out;
}

const VOCAB = 640;
const CORPUS = builtinCorpus();

const ROUND_TRIP = [
  "Hola, ¿qué tal estás?",
  "El pingüino Ñoño comió ñoquis en la Península Ibérica.",
  "Texto con  dos espacios,\ttabulador y\nsalto de línea.",
  " espacio inicial y final ",
  "Emoji 🦎🇪🇸, CJK 日本語 한국어, árabe مرحبا, griego αβγ, símbolos ∑ € ™ ©.",
  "Raros: ð Þ ß ø Å Ω ∞ \u0000 \u00A0 \u200B fin",
  "Números 1234567890 y 3,14159 y 2025-01-31.",
  "Signos sueltos . , ; : ! ? ¿ ¡ ( ) [ ] { } \" ' `",
  "MAYÚSCULAS Y minúsculas Y MeZcLaDaS",
  "a",
  "\n",
];

let model: BpeModel;
let tokJson: Record<string, unknown>;
let tokConfig: Record<string, unknown>;
let tok: Tokenizer;

beforeAll(() => {
  model = trainBpe(CORPUS, { vocabSize: VOCAB });
  tokJson = toTokenizerJson(model);
  tokConfig = tokenizerConfigJson(CHATML_TEMPLATE);
  tok = new Tokenizer(tokJson, tokConfig);
});

describe("trainBpe", () => {
  it("is deterministic and independent of Map insertion order", () => {
    const again = trainBpe(CORPUS, { vocabSize: VOCAB });
    expect(JSON.stringify(toTokenizerJson(again))).toBe(JSON.stringify(tokJson));
    const shuffled = trainBpe([...CORPUS].reverse(), { vocabSize: VOCAB });
    expect(shuffled.vocab).toEqual(model.vocab);
    expect(shuffled.merges).toEqual(model.merges);
  });

  it("has the exact vocabulary size and the Salamandra id layout", () => {
    expect(model.vocab.length).toBe(VOCAB);
    expect(new Set(model.vocab).size).toBe(VOCAB);
    expect(model.vocab.slice(0, 6)).toEqual(["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]);
    for (let b = 0; b < 256; b++) expect(model.vocab[6 + b]).toBe(byteToken(b));
    expect(model.vocab[6]).toBe("<0x00>");
    expect(model.vocab[6 + 0x0a]).toBe("<0x0A>");
    expect(model.vocab[261]).toBe("<0xFF>");
    expect(FIRST_PIECE_ID).toBe(262);
    expect(model.vocab[262]).toBe(SPIECE_UNDERLINE);
    expect(model.vocab.slice(262, 262 + model.alphabet.length)).toEqual(model.alphabet);
    // Merged tokens come after the alphabet, every one is the concatenation of a listed merge.
    const mergedStrings = new Set(model.merges.map(([l, r]) => l + r));
    for (const t of model.vocab.slice(262 + model.alphabet.length)) expect(mergedStrings.has(t)).toBe(true);
    // Vocab entries of tokenizer.json match the ids.
    const v = (tokJson.model as { vocab: Record<string, number> }).vocab;
    expect(Object.keys(v).length).toBe(VOCAB);
    model.vocab.forEach((t, i) => expect(v[t]).toBe(i));
  });

  it("never merges across a word boundary, keeps digits single and letters apart from punctuation", () => {
    for (const [l, r] of model.merges) {
      expect(r.includes(SPIECE_UNDERLINE)).toBe(false);
      expect(l.slice(1).includes(SPIECE_UNDERLINE)).toBe(false);
      expect(/\p{N}/u.test(l + r)).toBe(false);
      const body = (l + r).replace(SPIECE_UNDERLINE, "");
      expect(/\p{L}/u.test(body) && /[^\p{L}\p{M}]/u.test(body)).toBe(false);
    }
  });

  it("leaves rare characters to byte fallback", () => {
    const rare = trainBpe([...CORPUS, "un carácter raro: ж"], { vocabSize: VOCAB });
    expect(rare.alphabet).not.toContain("ж");
    expect(model.alphabet).toContain("ñ");
    expect(model.alphabet).toContain("á");
  });

  it("refuses a vocabulary the corpus cannot fill", () => {
    expect(() => trainBpe(["hola hola"], { vocabSize: 400 })).toThrow(/corpus too small/);
  });
});

describe("tokenizer.json through @huggingface/tokenizers", () => {
  it("has the Llama / Salamandra shape", () => {
    expect(tokJson.normalizer).toEqual({
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    });
    expect(tokJson.pre_tokenizer).toBeNull();
    const m = tokJson.model as Record<string, unknown>;
    expect(m).toMatchObject({
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
    });
    expect((tokJson.added_tokens as { id: number; content: string; special: boolean }[]).map((t) => [t.id, t.content, t.special])).toEqual(SPECIAL_TOKENS.map((t, i) => [i, t, true]));
    expect(tokConfig).toMatchObject({
      bos_token: "<s>",
      eos_token: "</s>",
      pad_token: "<pad>",
      unk_token: "<unk>",
      add_bos_token: true,
      add_eos_token: false,
      tokenizer_class: "LlamaTokenizerFast",
      chat_template: CHATML_TEMPLATE,
      clean_up_tokenization_spaces: false,
    });
    expect(Object.keys(tokConfig.added_tokens_decoder as object)).toEqual(["0", "1", "2", "3", "4", "5"]);
  });

  it("encodes with BOS first and decodes losslessly (byte fallback for emoji, CJK, rare chars)", () => {
    for (const text of [...ROUND_TRIP, ...CORPUS.slice(0, 60)]) {
      const { ids, tokens } = tok.encode(text);
      expect(ids[0]).toBe(BOS_ID);
      expect(tokens[0]).toBe("<s>");
      expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < VOCAB)).toBe(true);
      expect(ids.slice(1)).not.toContain(0); // never <unk>: byte fallback covers everything
      expect(tok.decode(ids, { skip_special_tokens: true })).toBe(text);
      // Llama behaviour: the BOS token is printed and the Strip decoder only eats the first space.
      expect(tok.decode(ids)).toBe("<s>" + (text.length ? " " + text : ""));
    }
  });

  it("spells characters outside the alphabet as UTF-8 byte tokens", () => {
    const { ids, tokens } = tok.encode("🦎 日", { add_special_tokens: false });
    expect(tokens).toEqual(["▁", "<0xF0>", "<0x9F>", "<0xA6>", "<0x8E>", "▁", "<0xE6>", "<0x97>", "<0xA5>"]);
    expect(ids[1]).toBe(BYTE_TOKEN_OFFSET + 0xf0);
    expect(tok.decode(ids)).toBe("🦎 日");
  });

  it("maps ChatML specials to ids 4/5 (legacy Llama: a ▁ is prepended to every text segment)", () => {
    const text = "<|im_start|>user\nHola<|im_end|>";
    const { ids, tokens } = tok.encode(text);
    const inner = tok.encode("user\nHola", { add_special_tokens: false }).ids;
    expect(ids).toEqual([BOS_ID, IM_START_ID, ...inner, IM_END_ID]);
    expect(tokens[1]).toBe("<|im_start|>");
    expect(tokens[2].startsWith("▁")).toBe(true); // the segment after a special token is normalised on its own
    expect(tok.token_to_id("<|im_start|>")).toBe(4);
    expect(tok.token_to_id("<|im_end|>")).toBe(5);
    expect(tok.encode("</s><pad><unk>", { add_special_tokens: false }).ids).toEqual([2, 3, 0]);
    // Decoding: the content is exact; with specials kept, the prepended ▁ shows as a space after them.
    expect(tok.decode(ids, { skip_special_tokens: true })).toBe("user\nHola");
    expect(tok.decode(ids)).toBe("<s><|im_start|> user\nHola<|im_end|>");
    // Ids are stable through a decode/encode of each text segment.
    expect(tok.encode(tok.decode(inner), { add_special_tokens: false }).ids).toEqual(inner);
  });

  it("makes frequent words single tokens", () => {
    for (const w of ["que", "de", "la", "el", "en"]) {
      const { tokens } = tok.encode(w, { add_special_tokens: false });
      expect(tokens).toEqual([SPIECE_UNDERLINE + w]);
    }
    const { tokens } = tok.encode("el que la de", { add_special_tokens: false });
    expect(tokens).toEqual(["▁el", "▁que", "▁la", "▁de"]);
  });

  it("agrees with the pure-TS reference encoder", () => {
    const enc = bpeEncoder(model);
    const texts = [...CORPUS, ...ROUND_TRIP, "<|im_start|>system\nEres útil.<|im_end|>\n<|im_start|>user\nHola<|im_end|>\n<s>x</s>"];
    for (const t of texts) {
      expect(enc.encode(t)).toEqual(tok.encode(t).ids);
      expect(enc.encode(t, { addBos: false })).toEqual(tok.encode(t, { add_special_tokens: false }).ids);
    }
  });
});

describe("@huggingface/transformers AutoTokenizer (dev-only cross-check)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "alia-bpe-"));
    await mkdir(path.join(dir, "fixture-tok"));
    await writeFile(path.join(dir, "fixture-tok", "tokenizer.json"), JSON.stringify(tokJson));
    await writeFile(path.join(dir, "fixture-tok", "tokenizer_config.json"), JSON.stringify(tokConfig, null, 2));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("gives the same ids as @huggingface/tokenizers, chat template included", async () => {
    const { AutoTokenizer, env } = await import("@huggingface/transformers");
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
    const auto = await AutoTokenizer.from_pretrained("fixture-tok");
    expect(auto.bos_token_id).toBe(1);
    expect(auto.eos_token_id).toBe(2);
    expect(auto.pad_token_id).toBe(3);
    for (const t of [...ROUND_TRIP, ...CORPUS.slice(0, 40), "<|im_start|>user\nHola<|im_end|>"]) {
      expect(auto.encode(t)).toEqual(tok.encode(t).ids);
      expect(auto.encode(t, { add_special_tokens: false })).toEqual(tok.encode(t, { add_special_tokens: false }).ids);
      const ids = tok.encode(t).ids;
      expect(auto.decode(ids, { skip_special_tokens: true })).toBe(tok.decode(ids, { skip_special_tokens: true }));
    }
    const messages = [
      { role: "system", content: "Eres un asistente útil." },
      { role: "user", content: "¿Cuál es la capital de España? 🇪🇸" },
    ];
    const rendered = auto.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true }) as string;
    expect(rendered).toBe("<|im_start|>system\nEres un asistente útil.<|im_end|>\n<|im_start|>user\n¿Cuál es la capital de España? 🇪🇸<|im_end|>\n<|im_start|>assistant\n");
    const chatIds = auto.apply_chat_template(messages, {
      add_generation_prompt: true,
      return_tensor: false,
      return_dict: false,
    }) as unknown as number[];
    // apply_chat_template tokenizes with add_special_tokens=false (the template supplies the specials).
    expect(chatIds).toEqual(tok.encode(rendered, { add_special_tokens: false }).ids);
    expect(chatIds).toEqual(bpeEncoder(model).encode(rendered, { addBos: false }));
    expect(chatIds.filter((id) => id === IM_START_ID).length).toBe(3);
    expect(chatIds.filter((id) => id === IM_END_ID).length).toBe(2);
  });
});

describe("corpus parsing", () => {
  it("splits fortune files and decodes Latin-1 or UTF-8", () => {
    const text = "Primera línea\nsigue aquí.\n\t\t-- Autor  Famoso\n%\n- ¿Diálogo?\n- ¡Sí!\n%\n\n%\nÚltima";
    expect(parseFortunes(text)).toEqual(["Primera línea sigue aquí.\n-- Autor Famoso", "- ¿Diálogo?\n- ¡Sí!", "Última"]);
    const latin1 = Uint8Array.from([0x61, 0xf1, 0x6f, 0x20, 0x63, 0x61, 0x6d, 0x69, 0xf3, 0x6e]); // "año camión"
    expect(decodeText(latin1)).toBe("año camión");
    expect(decodeText(new TextEncoder().encode("año camión"))).toBe("año camión");
  });
});
