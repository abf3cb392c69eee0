// Languages of the translation endpoint: ISO codes and the English names SalamandraTA's prompt format
// expects ("[Spanish] … \n[Catalan]"). Spanish, the co-official languages and neighbours.
export const LANGUAGES: Readonly<Record<string, string>> = {
  es: "Spanish",
  ca: "Catalan",
  "ca-valencia": "Valencian",
  eu: "Basque",
  gl: "Galician",
  oc: "Occitan",
  "oc-aranese": "Aranese",
  an: "Aragonese",
  ast: "Asturian",
  en: "English",
  pt: "Portuguese",
  fr: "French",
  it: "Italian",
  de: "German",
};

export function languageName(code: string): string | undefined {
  return Object.hasOwn(LANGUAGES, code.toLowerCase()) ? LANGUAGES[code.toLowerCase()] : undefined;
}
