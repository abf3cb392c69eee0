// Stop strings over a growing decoded text (pure): where the first stop string starts, and how much of
// the tail to hold back because it could still become one — so that streamed text never shows any part
// of a stop string, even one that spans token boundaries. A trailing U+FFFD (a byte-fallback character
// not yet complete) is held back too.

export interface StopScan {
  /** Index of the first complete stop string in the text, or -1. */
  stopAt: number;
  /** Text that can be shown now: up to the stop, or up to what might still start one. */
  safeLength: number;
}

export function scanStops(text: string, stops: readonly string[]): StopScan {
  let stopAt = -1;
  for (const s of stops) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i !== -1 && (stopAt === -1 || i < stopAt)) stopAt = i;
  }
  if (stopAt !== -1) return { stopAt, safeLength: stopAt };
  let hold = 0;
  for (const s of stops)
    for (let k = Math.min(s.length - 1, text.length); k > hold; k--)
      if (text.endsWith(s.slice(0, k))) {
        hold = k;
        break;
      }
  let safe = text.length - hold;
  while (safe > 0 && text.charCodeAt(safe - 1) === 0xfffd) safe--;
  return { stopAt: -1, safeLength: safe };
}
