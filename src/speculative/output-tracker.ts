// What the client sees of the committed tokens: stops at an end-of-sequence id, at max tokens or at a stop
// string (possibly spanning tokens), and releases text only when it can no longer change — a tail that
// could begin a stop string, or an incomplete UTF-8 character from byte-fallback tokens, is held back.
import { scanStops } from "./stop-strings.ts";

export type FinishReason = "stop" | "length";

export interface DecodeEvent {
  /** Newly committed output tokens. */
  tokens: number[];
  /** Newly visible text (with `decode`). */
  text: string;
}

export interface OutputLimits {
  maxTokens: number;
  /** Token ids that end the generation (EOS); not part of the output. */
  stopIds?: readonly number[];
  /** Stop strings (need `decode`); the output ends before the first one. */
  stop?: readonly string[];
  decode?: (tokens: readonly number[]) => string;
}

export class OutputTracker {
  /** Committed output tokens (stop ids excluded). */
  readonly output: number[] = [];
  finishReason: FinishReason | undefined;
  private readonly stopIds: Set<number>;
  private shownText = 0;

  constructor(private readonly o: OutputLimits) {
    if (!(Number.isInteger(o.maxTokens) && o.maxTokens >= 1)) throw new RangeError(`maxTokens must be a positive integer, got ${o.maxTokens}`);
    if (o.stop?.length && !o.decode) throw new RangeError("stop strings need a decode function");
    this.stopIds = new Set(o.stopIds ?? []);
  }

  get stopIdList(): number[] {
    return [...this.stopIds];
  }

  get remaining(): number {
    return this.o.maxTokens - this.output.length;
  }

  /** Adds committed tokens; returns what became visible and whether the generation is over. */
  commit(tokens: readonly number[]): { event: DecodeEvent; done: boolean } {
    const fresh: number[] = [];
    let done = false;
    for (const t of tokens) {
      if (this.stopIds.has(t)) {
        this.finishReason = "stop";
        done = true;
        break;
      }
      this.output.push(t);
      fresh.push(t);
      if (this.output.length >= this.o.maxTokens) {
        this.finishReason = "length";
        done = true;
        break;
      }
    }
    let text = "";
    const { decode, stop = [] } = this.o;
    if (decode) {
      const dec = (t: readonly number[]) => (t.length ? decode(t) : "");
      const full = dec(this.output);
      const scan = scanStops(full, stop);
      if (scan.stopAt !== -1) {
        // Keep the tokens up to the one that completes the stop string.
        let k = this.output.length - fresh.length;
        while (k < this.output.length && !stop.some((s) => dec(this.output.slice(0, k)).includes(s))) k++;
        const cut = this.output.length - k;
        this.output.length = k;
        fresh.length = Math.max(0, fresh.length - cut);
        this.finishReason = "stop";
        done = true;
      }
      const visible = done ? (scan.stopAt !== -1 ? scan.stopAt : full.length) : scan.safeLength;
      if (visible > this.shownText) {
        text = full.slice(this.shownText, visible);
        this.shownText = visible;
      }
    }
    return { event: { tokens: fresh, text }, done };
  }
}
