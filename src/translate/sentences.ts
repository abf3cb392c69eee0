// Text → sentences and the whitespace between them (Intl.Segmenter), so that each sentence is translated
// and cached on its own and the output keeps the input's spacing and paragraphs exactly.

export interface Piece {
  /** A sentence to translate, or whitespace to keep as is. */
  kind: "sentence" | "space";
  text: string;
}

export function splitSentences(text: string, locale = "es"): Piece[] {
  const out: Piece[] = [];
  const push = (kind: Piece["kind"], t: string) => {
    if (!t) return;
    const last = out[out.length - 1];
    if (last && last.kind === kind && kind === "space") last.text += t;
    else out.push({ kind, text: t });
  };
  for (const { segment } of new Intl.Segmenter(locale, { granularity: "sentence" }).segment(text)) {
    // A segment carries its trailing whitespace (and paragraph breaks); keep that apart from the sentence.
    const lead = /^\s*/.exec(segment)![0];
    const trail = /\s*$/.exec(segment.slice(lead.length))![0];
    const core = segment.slice(lead.length, segment.length - trail.length);
    push("space", lead);
    if (core) {
      // A line break inside a segment (a list, a title without a full stop) separates sentences too.
      const lines = core.split(/(\s*\n\s*)/);
      lines.forEach((l, i) => push(i % 2 ? "space" : "sentence", l));
    }
    push("space", trail);
  }
  return out;
}

/** The cache's view of a sentence: Unicode NFC, inner whitespace runs as one space. */
export function normalizeSentence(s: string): string {
  return s.normalize("NFC").replace(/\s+/g, " ").trim();
}
