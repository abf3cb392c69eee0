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
