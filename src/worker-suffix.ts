// Cloudflare Worker entry that drafts by suffix matching alone (SPEC_PROPOSER=suffix): no draft model and
// no model runtime in the bundle — the Hono app, the tokenizer and the suffix index. wrangler.toml's
// `[env.suffix]` deploys it.
import { createWorker } from "./worker-app.ts";

export default createWorker();
