// Command-line parsing shared by the scripts in this folder: node:util parseArgs (strict: unknown flags
// and missing values are errors), `-h`/`--help` printing the script's usage and exiting 0, and bad
// arguments reported as `<script>: <message>` + `(see --help)` on stderr with exit code 2.
import { type ParseArgsConfig, parseArgs } from "node:util";

/** Parses `process.argv` (or `config.args`) by `config`, adding `-h`/`--help`, which prints `usage` and exits. */
export function parseCli<const T extends ParseArgsConfig>(script: string, usage: string, config: T): ReturnType<typeof parseArgs<T>> {
  let parsed: ReturnType<typeof parseArgs<ParseArgsConfig>>;
  try {
    parsed = parseArgs({ ...config, options: { ...config.options, help: { type: "boolean", short: "h" } } });
  } catch (e) {
    cliFail(script, (e as Error).message);
  }
  if (parsed.values.help) {
    process.stdout.write(usage.endsWith("\n") ? usage : `${usage}\n`);
    process.exit(0);
  }
  return parsed as ReturnType<typeof parseArgs<T>>;
}

/** Reports a usage error and exits with code 2. */
export function cliFail(script: string, message: string): never {
  process.stderr.write(`${script}: ${message}\n(see --help)\n`);
  process.exit(2);
}

/** The integer value of `--flag`, at least `min`; undefined when the flag is absent. */
export function intFlag(script: string, flag: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < min) {
    const what = min === 1 ? "a positive integer" : min === 0 ? "a non-negative integer" : `an integer ≥ ${min}`;
    cliFail(script, `--${flag} must be ${what}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** The value of `--flag`, one of `choices`; undefined when the flag is absent. */
export function choiceFlag<const C extends readonly string[]>(script: string, flag: string, value: string | undefined, choices: C): C[number] | undefined {
  if (value === undefined || choices.includes(value)) return value as C[number] | undefined;
  const list = choices.length > 1 ? `${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}` : choices.join("");
  cliFail(script, `--${flag} must be ${list}, got ${JSON.stringify(value)}`);
}
