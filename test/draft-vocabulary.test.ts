// DraftVocabulary (pure): the map between a trimmed draft's rows and the target's token ids.
import { describe, expect, it } from "vitest";
import { DraftVocabulary, DraftVocabularyFileSchema } from "../src/common/models/draft-vocabulary.ts";

describe("DraftVocabulary", () => {
  const v = new DraftVocabulary([2, 5, 7], 10);

  it("has one row per kept id and a fallback row after them", () => {
    expect(v.size).toBe(4);
    expect(v.fallback).toBe(3);
    expect(v.toDraft([5, 2, 7])).toEqual([1, 0, 2]);
  });

  it("maps every id outside the subset to the fallback row", () => {
    expect(v.toDraft([0, 1, 3, 4, 6, 8, 9])).toEqual([3, 3, 3, 3, 3, 3, 3]);
    expect([...Array(10).keys()].filter((id) => v.covers(id))).toEqual([2, 5, 7]);
  });

  it("maps rows back to target ids and never the fallback", () => {
    expect([0, 1, 2].map((r) => v.toTarget(r))).toEqual([2, 5, 7]);
    expect(() => v.toTarget(3)).toThrow(/not a proposable token/);
    expect(() => v.toTarget(-1)).toThrow(RangeError);
    expect(() => v.toTarget(1.5)).toThrow(RangeError);
  });

  it("rejects ids outside the target's vocabulary", () => {
    expect(() => v.toDraft([10])).toThrow(/outside the target's 0…9/);
    expect(() => v.toDraft([-1])).toThrow(RangeError);
    expect(v.covers(10)).toBe(false);
  });

  it("refuses malformed subsets", () => {
    expect(() => new DraftVocabulary([1, 1], 10)).toThrow(/appears twice/);
    expect(() => new DraftVocabulary([10], 10)).toThrow(/outside 0…9/);
    expect(() => new DraftVocabulary([], 10)).toThrow(RangeError);
    expect(() => new DraftVocabulary([...Array(10).keys()], 10)).toThrow(RangeError); // nothing trimmed
    expect(() => new DraftVocabulary([1], 0)).toThrow(RangeError);
  });

  it("byFrequency keeps the given ids, then the most frequent (lower id first on ties)", () => {
    const counts = [0, 9, 3, 3, 7, 0, 1, 3];
    expect(DraftVocabulary.byFrequency(counts, 3).targetIds).toEqual([1, 2, 4]);
    expect(DraftVocabulary.byFrequency(counts, 4, [0]).targetIds).toEqual([0, 1, 2, 4]);
    expect(DraftVocabulary.byFrequency(counts, 2, [5, 6]).targetIds).toEqual([5, 6]);
    expect(() => DraftVocabulary.byFrequency(counts, 8)).toThrow(RangeError);
    expect(() => DraftVocabulary.byFrequency(counts, 1, [0, 1])).toThrow(RangeError);
  });

  it("coverage is the share of tokens the subset holds", () => {
    expect(v.coverage([2, 5, 0, 9])).toBe(0.5);
    expect(v.coverage([])).toBe(0);
  });

  it("round-trips through its file, which the schema validates", () => {
    const file = v.toFile({ source: "test", coverage: 0.5 });
    const back = DraftVocabulary.fromFile(DraftVocabularyFileSchema.parse(JSON.parse(JSON.stringify(file))));
    expect(back.targetIds).toEqual([2, 5, 7]);
    expect(back.targetVocabSize).toBe(10);
    expect(DraftVocabularyFileSchema.safeParse({ ...file, format: "other" }).success).toBe(false);
    expect(DraftVocabularyFileSchema.safeParse({ ...file, target_ids: [] }).success).toBe(false);
  });
});
