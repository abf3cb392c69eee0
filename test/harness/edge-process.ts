// Moved: the edge and verifier starters live in processes.ts, the port helpers in ports.ts. Kept only
// for scripts/bench-translate.ts, which still imports this path; new code imports those files.
export { freePort } from "./ports.ts";
export { startEdgeProcess } from "./processes.ts";
