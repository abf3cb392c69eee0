// Moved to test/harness/prompts.ts (one module for the tests and the benchmarks). Kept only for
// scripts/bench-translate.ts, which still imports this path; new code imports the harness module.
export { SPANISH_PROMPTS } from "../test/harness/prompts.ts";
