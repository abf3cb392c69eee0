// A draft/target pair must map text to the same ids; a mismatched pair is refused with a clear error.
import { describe, expect, it } from "vitest";
import type { LoadedBundle } from "../src/common/models/bundle.ts";
import { assertTokenizerPair, TOKENIZER_PROBES, TokenizerMismatchError } from "../src/common/models/tokenizer.ts";
import { loadDefaultBundles } from "./harness/default-pair.ts";

const { draftBundle: draft, targetBundle: target } = await loadDefaultBundles();

/** A copy of `b` whose tokenizer.json vocabulary has been edited by `edit`. */
function withVocab(b: LoadedBundle, edit: (vocab: Record<string, number>) => void): LoadedBundle {
  const json = structuredClone(b.tokenizerJson) as { model: { vocab: Record<string, number> } };
  edit(json.model.vocab);
  return { ...b, tokenizerJson: json };
}

describe("assertTokenizerPair", () => {
  it("accepts the default pair and returns a working tokenizer", () => {
    const tok = assertTokenizerPair(draft, target);
    for (const text of TOKENIZER_PROBES) {
      const ids = tok.encode(text);
      expect(ids[0]).toBe(1); // BOS
      expect(tok.decode(ids, { skipSpecialTokens: true }).replace(/\s+/g, " ").trim()).toBe(
        text
          .replace(/<\|im_(start|end)\|>/g, "")
          .replace(/\s+/g, " ")
          .trim(),
      );
    }
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    expect(tok.tokenToId("<|im_start|>")).toBe(4);
    expect(tok.tokenToId("<|im_end|>")).toBe(5);
  });

  it("refuses two tokens swapped, naming both bundles and the token", () => {
    const vocab = (target.tokenizerJson as { model: { vocab: Record<string, number> } }).model.vocab;
    const [a, b] = Object.keys(vocab)
      .filter((k) => vocab[k] > 300)
      .slice(0, 2);
    const swapped = withVocab(draft, (v) => {
      [v[a], v[b]] = [v[b], v[a]];
    });
    const err = (() => {
      try {
        assertTokenizerPair(swapped, target);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(TokenizerMismatchError);
    expect(err!.message).toContain(`draft bundle ${draft.manifest.id}@${draft.manifest.version}`);
    expect(err!.message).toContain(`target bundle ${target.manifest.id}@${target.manifest.version}`);
    expect(err!.message).toMatch(/is id \d+ in the draft but \d+ in the target/);
  });

  it("refuses different model vocabulary sizes", () => {
    expect(() => assertTokenizerPair({ ...draft, config: { ...draft.config, vocab_size: draft.config.vocab_size + 1 } }, target)).toThrow(/config.json vocab_size \d+ != \d+/);
  });

  it("refuses a tokenizer that encodes the same text differently", () => {
    // Same vocabulary, but without merges every word falls apart into characters.
    const json = structuredClone(draft.tokenizerJson) as { model: { merges: unknown[] } };
    json.model.merges = [];
    expect(() => assertTokenizerPair({ ...draft, tokenizerJson: json }, target)).toThrow(/encode .* differently/);
  });
});
