// Constrained decoding (structured outputs): what a grammar engine must give the decoder — per position,
// the tokens the grammar allows next — behind a narrow interface, one file per engine (xgrammar-engine.ts).
// The edge runs the grammar: it masks its own drafts and sends the target's masks with each verify round
// (token-mask.ts), so the verifier applies them without a grammar engine of its own.
import type { TokenMask } from "../common/token-mask.ts";

/** What the output must be: a JSON object, or JSON that validates against a JSON schema. */
export type GrammarSpec = { kind: "json_object" } | { kind: "json_schema"; schema: Record<string, unknown> };

/** A grammar engine's stateful matcher over one output: it has accepted the output's tokens so far. */
export interface GrammarMatcher {
  /** Vocabulary size: the masks' length in tokens. */
  readonly vocab: number;
  /** Tokens allowed next (the stop ids once the output is complete). */
  allowed(): Promise<TokenMask>;
  /**
   * The tokens of the text the grammar forces next (a key, `":`, a closing brace…: every output goes on
   * with it), as the tokenizer spells it; empty when the next character is free.
   */
  forced(): number[];
  /** Accept one token; false (state unchanged) if the grammar refuses it. */
  accept(token: number): boolean;
  /** Undo the last `n` accepted tokens. */
  rollback(n: number): void;
  dispose(): void;
}

export interface CompiledGrammar {
  /** A fresh matcher at the start of an output that ends with one of `stopIds`. */
  matcher(stopIds: readonly number[]): Promise<GrammarMatcher>;
}

export interface GrammarEngine {
  readonly name: string;
  /** Compiles (or finds compiled) `spec`; throws UnsupportedGrammar for what the engine cannot constrain. */
  compile(spec: GrammarSpec): Promise<CompiledGrammar>;
}

/** A schema the engine cannot constrain to (the API answers 400 with the message). */
export class UnsupportedGrammar extends Error {
  override name = "UnsupportedGrammar";
}

/**
 * A matcher that follows any output path: `maskAfter(output)` rolls back to the longest common prefix with
 * what it has accepted, accepts the rest, and gives the mask after it. Drafting walks ahead and the next
 * round's committed text may diverge from the drafts, so the path moves back and forth.
 */
export class GrammarCursor {
  private path: number[] = [];

  constructor(private readonly m: GrammarMatcher) {}

  get vocab(): number {
    return this.m.vocab;
  }

  /** The mask after exactly `output`; undefined if the grammar refuses a token of it. */
  async maskAfter(output: readonly number[]): Promise<TokenMask | undefined> {
    return this.moveTo(output) ? this.m.allowed() : undefined;
  }

  /** The tokens the grammar forces after exactly `output` (empty if it refuses `output`). */
  forcedAfter(output: readonly number[]): number[] {
    return this.moveTo(output) ? this.m.forced() : [];
  }

  /** Whether the grammar accepts `output` (the cursor then stands after it). */
  moveTo(output: readonly number[]): boolean {
    let common = 0;
    while (common < this.path.length && common < output.length && this.path[common] === output[common]) common++;
    if (common < this.path.length) {
      this.m.rollback(this.path.length - common);
      this.path.length = common;
    }
    for (let i = common; i < output.length; i++) {
      if (!this.m.accept(output[i])) return false;
      this.path.push(output[i]);
    }
    return true;
  }

  dispose(): void {
    this.m.dispose();
  }
}
