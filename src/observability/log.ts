// Structured logs: one JSON object per line on stdout ({"time", "level", "msg", ...fields}), the same on
// Node and Workers (console.log). Callers pass numbers, ids and names only — never a key, a token, a
// prompt or generated text.

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  /** Writes the line if `level` is at or above the logger's level. */
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  enabled(level: LogLevel): boolean;
}

export function createLogger(o: { level?: LogLevel; write?: (line: string) => void } = {}): Logger {
  const min = LOG_LEVELS.indexOf(o.level ?? "info");
  const write = o.write ?? ((line: string) => console.log(line));
  const enabled = (level: LogLevel) => LOG_LEVELS.indexOf(level) >= min;
  return {
    enabled,
    log(level, msg, fields = {}) {
      if (!enabled(level)) return;
      // Undefined fields are left out (JSON.stringify drops them); time first, for readers that sort.
      write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));
    },
  };
}

/**
 * One line per distinct message per `intervalMs` (a failing pool would otherwise log every request: tens
 * of thousands of identical lines a minute). The lines held back are counted, and the next line of that
 * message let through says how many ("(N more like it in the last S s)"). At most `maxKeys` messages are
 * remembered (the oldest is forgotten), so varied messages cannot grow memory.
 */
export function rateLimitedWriter(write: (line: string) => void, o: { intervalMs?: number; maxKeys?: number; now?: () => number } = {}): (line: string) => void {
  const interval = o.intervalMs ?? 10_000;
  const maxKeys = o.maxKeys ?? 256;
  const now = o.now ?? Date.now;
  const seen = new Map<string, { at: number; held: number }>();
  return (line) => {
    const t = now();
    const s = seen.get(line);
    if (s && t - s.at < interval) {
      s.held++;
      return;
    }
    seen.delete(line); // re-inserted last: Map order is then oldest-first
    seen.set(line, { at: t, held: 0 });
    if (seen.size > maxKeys) seen.delete(seen.keys().next().value!);
    write(s?.held ? `${line} (${s.held} more like it in the last ${Math.round((t - s.at) / 1000)} s)` : line);
  };
}
