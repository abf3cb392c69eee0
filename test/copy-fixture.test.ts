// Checks on the COMMITTED copy fixture (fixtures/copy/, made by `npm run fixtures:train-copy`): it loads with
// its files verified, shares the default pair's tokenizer byte for byte (so the default draft and the suffix
// proposer drive it), and rewrites held-out passages of several quotes far more faithfully than the default
// target it was fine-tuned from — the long copies with small edits the passage-rewriting benchmark needs.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import type { CausalLM } from "../src/common/models/causal-lm.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { EOS_ID, IM_END_ID } from "../fixtures/generate/bpe.ts";
import { chrF } from "../fixtures/generate/chrf.ts";
import { readRewriteCases } from "../fixtures/generate/heldout.ts";
import { rewritePrompt, type RewriteCase } from "../fixtures/generate/quote-docs.ts";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";

const COPY_DIR = path.join(DEFAULT_PAIR_DIR, "..", "copy");

let copy: CausalLM;
let base: CausalLM;
let tok: TextTokenizer;
let cases: RewriteCase[];

beforeAll(async () => {
  const [copyBundle, baseBundle] = await Promise.all([loadBundle(path.join(COPY_DIR, "target")), loadBundle(path.join(DEFAULT_PAIR_DIR, "target"))]);
  tok = TextTokenizer.fromBundle(copyBundle);
  [copy, base] = await Promise.all([loadTargetModel(copyBundle, { threads: 1 }), loadTargetModel(baseBundle, { threads: 1 })]);
  cases = (await readRewriteCases(COPY_DIR)).slice(0, 12);
});

/** Greedy answers to "put this passage right", and the tokens each shares with the original before the first difference. */
async function rewrite(lm: CausalLM): Promise<{ texts: string[]; prefix: number; tokens: number }> {
  const texts: string[] = [];
  let [prefix, tokens] = [0, 0];
  for (const c of cases) {
    const want = tok.encode(c.original, { addSpecialTokens: false });
    const got = await lm.greedy(tok.encode(rewritePrompt(c.slipped)), want.length + 8, [EOS_ID, IM_END_ID]);
    texts.push(tok.decode(got, { skipSpecialTokens: true }).trim());
    let k = 0;
    while (k < want.length && got[k] === want[k]) k++;
    prefix += k;
    tokens += want.length;
  }
  return { texts, prefix, tokens };
}

describe("the copy fixture", () => {
  it("shares the default pair's tokenizer files byte for byte", async () => {
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) expect(await readFile(path.join(COPY_DIR, "target", f), "utf8"), f).toBe(await readFile(path.join(DEFAULT_PAIR_DIR, "target", f), "utf8"));
    expect(cases.length).toBe(12);
    expect(cases.every((c) => c.original.length > 60 && c.slipped !== c.original)).toBe(true);
  });

  it("rewrites held-out passages close to the original, where the default target cannot", async () => {
    const [c, b] = [await rewrite(copy), await rewrite(base)];
    const originals = cases.map((x) => x.original);
    const own = chrF(c.texts, originals);
    // Against another passage's original: a model that ignored the prompt would score both alike.
    const other = chrF(c.texts, [...originals.slice(1), originals[0]]);
    expect(own, c.texts.slice(0, 2).join(" | ")).toBeGreaterThan(80);
    expect(own).toBeGreaterThan(other + 40);
    expect(own).toBeGreaterThan(chrF(b.texts, originals) + 20);
    // Long runs of exact tokens: what suffix matching drafts from.
    expect(c.prefix / c.tokens).toBeGreaterThan(4 * (b.prefix / b.tokens) + 0.1);
  });
});
