// A trimmed draft vocabulary (pure, no I/O): a draft model whose embedding and output rows cover only a
// subset of the target's token ids — the frequent ones — plus one fallback row. Most of a small drafter's
// weights and time are its vocabulary rows (hidden × vocab, twice), so dropping the rare three quarters of
// a 128k–256k vocabulary is what lets a drafter fit a Worker (FR-Spec: the top 25 % of a 128k vocabulary
// covers 95 % of tokens; EAGLE-3 drafts over 32k of 128k).
//
// Context tokens outside the subset all enter the draft as the fallback row; proposals come from the
// subset only (the fallback's logit is masked, so q̃ is 0 outside the subset), which keeps verification
// exact: a draft distribution may put zero mass anywhere. The map lives in the draft bundle as
// `draft_vocab.json`, listed and hashed in its manifest like every other file.
import { z } from "zod";

export const DRAFT_VOCAB_FILE = "draft_vocab.json";

export const DraftVocabularyFileSchema = z.object({
  format: z.literal("alia-edge-draft-vocab/1"),
  /** The target's vocabulary size (its config.json vocab_size). */
  target_vocab_size: z.number().int().positive(),
  /** Draft row i is target token target_ids[i]; the row after the last is the fallback. */
  target_ids: z.array(z.number().int().nonnegative()).min(1),
  /** How the subset was chosen and what it covers, for people (not read by the code). */
  source: z.string().optional(),
  coverage: z.number().min(0).max(1).optional(),
});
export type DraftVocabularyFile = z.infer<typeof DraftVocabularyFileSchema>;

export class DraftVocabulary {
  /** The draft model's rows: the subset and the fallback (its config.json vocab_size). */
  readonly size: number;
  /** The row every target token outside the subset maps to; never proposed. */
  readonly fallback: number;
  private readonly draftOf: Int32Array;

  constructor(
    readonly targetIds: readonly number[],
    readonly targetVocabSize: number,
  ) {
    if (!(Number.isInteger(targetVocabSize) && targetVocabSize > 0)) throw new RangeError(`target vocabulary size must be a positive integer, got ${targetVocabSize}`);
    if (targetIds.length === 0 || targetIds.length >= targetVocabSize) throw new RangeError(`a draft vocabulary keeps 1…${targetVocabSize - 1} of the target's ${targetVocabSize} ids, got ${targetIds.length}`);
    this.fallback = targetIds.length;
    this.size = targetIds.length + 1;
    this.draftOf = new Int32Array(targetVocabSize).fill(this.fallback);
    targetIds.forEach((id, row) => {
      if (!(Number.isInteger(id) && id >= 0 && id < targetVocabSize)) throw new RangeError(`target id ${id} (draft row ${row}) is outside 0…${targetVocabSize - 1}`);
      if (this.draftOf[id] !== this.fallback) throw new RangeError(`target id ${id} appears twice (draft rows ${this.draftOf[id]} and ${row})`);
      this.draftOf[id] = row;
    });
  }

  static fromFile(f: DraftVocabularyFile): DraftVocabulary {
    return new DraftVocabulary(f.target_ids, f.target_vocab_size);
  }

  /**
   * The `size` most frequent ids of `counts` (counts[id]: occurrences of target token id in a corpus),
   * `always` first (special tokens: a drafter must be able to propose EOS). Ties go to the lower id.
   */
  static byFrequency(counts: ArrayLike<number>, size: number, always: readonly number[] = []): DraftVocabulary {
    if (!(Number.isInteger(size) && size >= always.length && size < counts.length)) throw new RangeError(`draft vocabulary of ${size} ids: needs ${always.length}…${counts.length - 1}`);
    const keep = new Set(always);
    const order = Array.from({ length: counts.length }, (_, i) => i).sort((a, b) => counts[b] - counts[a] || a - b);
    for (const id of order) {
      if (keep.size >= size) break;
      keep.add(id);
    }
    return new DraftVocabulary(
      [...keep].sort((a, b) => a - b),
      counts.length,
    );
  }

  toFile(extra: Pick<DraftVocabularyFile, "source" | "coverage"> = {}): DraftVocabularyFile {
    return { format: "alia-edge-draft-vocab/1", target_vocab_size: this.targetVocabSize, target_ids: [...this.targetIds], ...extra };
  }

  /** Whether the draft can propose target token `id`. */
  covers(id: number): boolean {
    return id >= 0 && id < this.targetVocabSize && this.draftOf[id] !== this.fallback;
  }

  /** Draft rows of target tokens (the fallback for those outside the subset). */
  toDraft(ids: readonly number[]): number[] {
    return ids.map((id) => {
      if (!(id >= 0 && id < this.targetVocabSize)) throw new RangeError(`token id ${id} is outside the target's 0…${this.targetVocabSize - 1}`);
      return this.draftOf[id];
    });
  }

  /** The target token of a draft row; the fallback row has none. */
  toTarget(row: number): number {
    if (!(Number.isInteger(row) && row >= 0 && row < this.fallback)) throw new RangeError(`draft row ${row} is not a proposable token (rows 0…${this.fallback - 1})`);
    return this.targetIds[row];
  }

  /** Share of `tokens` (target ids) the subset covers. */
  coverage(tokens: Iterable<number>): number {
    let n = 0;
    let hit = 0;
    for (const t of tokens) {
      n++;
      if (this.covers(t)) hit++;
    }
    return n ? hit / n : 0;
  }
}
