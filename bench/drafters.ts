// The drafter benchmark (`npm run bench:drafters`): which drafter wins on which workload. One stream at a
// time over the delay proxy (RTT 20 ms) to one verifier whose GPU is the measured ALIA-40b/H200 cost model
// at 2,048 tokens of context. Workloads: open chat (the Spanish prompts), a tenant repeating its requests
// (each prompt asked a second time: agentic loops, templated jobs), copying (the prompt holds a passage
// the answer repeats), rewriting (a quote put right: a copy with small edits), translation es→ca of held-out
// sentences and of near-duplicates of sentences translated before. Modes: autoregressive, the fixture's
// draft model (adaptive γ), suffix matching at a fixed γ and adaptive, and the hybrid. Also the suffix
// proposer's own cost per round with a 32k-token tenant index, and the fixture target's chrF.
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadTargetModel } from "../gpu-backend/target-model.ts";
import { loadBundle } from "../src/common/models/model-store.ts";
import { TextTokenizer } from "../src/common/models/tokenizer.ts";
import { SeededRng } from "../src/common/sampling.ts";
import { loadDraftModel } from "../src/model-pair/draft-model.ts";
import { PoolClient } from "../src/pool/pool-client.ts";
import { ProposerFactory } from "../src/speculative/proposer-factory.ts";
import { SpeculativeDecoder } from "../src/speculative/speculative-decoder.ts";
import { SuffixProposer } from "../src/speculative/suffix-proposer.ts";
import { TenantSuffixCache } from "../src/speculative/tenant-suffix-cache.ts";
import { DEFAULT_PAIR_DIR } from "../fixtures/generate/synthetic-bundles.ts";
import { readHeldOutTranslations, readRewriteCases, translateHeldOut } from "../fixtures/generate/heldout.ts";
import { EOS_ID, IM_END_ID } from "../fixtures/generate/bpe.ts";
import { rewritePrompt } from "../fixtures/generate/quote-docs.ts";
import { continuationDecoder } from "../src/model-pair/served-model.ts";
import type { OutputLimits } from "../src/speculative/output-tracker.ts";
import { translationPrompt } from "../src/translate/translator.ts";
import { startDelayProxy, type DelayProxy } from "../test/harness/delay-proxy.ts";
import { startVerifierProcess, type ListeningProcess } from "../test/harness/processes.ts";
import { SPANISH_PROMPTS } from "../test/harness/prompts.ts";
import { SpeculationPriors } from "../src/speculative/speculation-prior.ts";

export const DRAFTER_MODES = ["autoregressive", "model", "suffix-4", "suffix-serial", "suffix", "hybrid"] as const;
export type DrafterMode = (typeof DRAFTER_MODES)[number];

export interface DrafterCell {
  workload: string;
  mode: DrafterMode;
  tokens: number;
  tokens_per_s: number;
  /** Tokens per second over the autoregressive cell of the same workload. */
  vs_autoregressive: number;
  rounds: number;
  /** Accepted drafts per verify round (the mean accepted length). */
  accepted_per_round: number;
  /** Committed tokens per verify round. */
  tokens_per_round: number;
  drafted: number;
  accepted: number;
  /** Share of the output the pool generated alone (γ = 0). */
  pool_generated_share: number;
  /** Drafting time per verify round (ms). */
  draft_ms_per_round: number;
  gpu_ms_per_token: number;
}

interface Workload {
  name: string;
  what: string;
  prompts: number[][];
  /** Each prompt asked twice, the second asking measured. */
  repeat: boolean;
  /** Asked (unmeasured) before the prompt of the same index, by the same key. */
  primers?: number[][];
  /** Where a prompt's answer ends (default: after the tokens per stream). */
  limits?: (prompt: number[]) => Partial<OutputLimits>;
  /** Most tokens per stream (default: the run's tokens per stream). */
  tokens?: number;
  /** The verifier's MODEL_DIR, whose `target` bundle it serves (default: the default pair's folder). */
  modelDir?: string;
}

/** `text` with one word of four letters or more (not the first) replaced by a word of `other`: a near-duplicate sentence. */
export function nearDuplicate(text: string, other: string): string {
  const words = text.split(" ");
  const slots = words.map((w, i) => (i > 0 && /^\p{L}{4,}$/u.test(w) ? i : -1)).filter((i) => i >= 0);
  const fill = other.split(" ").filter((w) => /^\p{L}{4,}$/u.test(w) && !words.includes(w));
  if (!slots.length || !fill.length) return `${text} ${other.split(" ")[0]}`;
  words[slots[Math.floor(slots.length / 2)]] = fill[0].toLowerCase();
  return words.join(" ");
}

export interface DraftersResult {
  date: string;
  machine: { node: string; cpus: number };
  rtt_ms: number;
  past: number;
  tokens_per_stream: number;
  /** Largest γ of every speculating mode (SPEC_MAX_GAMMA); absent in runs before it was recorded (8). */
  max_gamma?: number;
  /** `tokens`: most tokens per stream; absent in runs before it was recorded (tokens_per_stream). */
  workloads: { name: string; what: string; streams: number; tokens?: number }[];
  cells: DrafterCell[];
  /**
   * The fixture target's greedy translations of the held-out sentences against Apertium's; and what suffix
   * matching would draft if the target wrote Apertium's translation itself (absent in earlier runs).
   */
  translation?: {
    source: string;
    target: string;
    sentences: number;
    chrf: number;
    chrf_copying_source: number;
    example: { text: string; model: string; apertium: string };
    suffix_on_apertium?: SuffixOnReference;
  }[];
  /** The suffix proposer's cost per round: an index of `tenant_tokens` outputs plus the session's own text. */
  suffix_cost: { tenant_tokens: number; session_tokens: number; rounds: number; us_per_round_p50: number; us_per_round_p99: number; tenant_index_mib: number };
}

const RTT_MS = 20;
const PAST = 2048;
/**
 * SPEC_MAX_GAMMA: the protocol's limit. A verify pass of 17 tokens costs the measured H200 22.97 ms at this
 * context against 22.84 ms for 9, so a long suffix match should be checked in one round, not two.
 */
const MAX_GAMMA = 16;
/** The copy fixture: the default target fine-tuned to rewrite passages (scripts/train-copy-target.ts). */
const COPY_DIR = path.join(DEFAULT_PAIR_DIR, "..", "copy");

async function passGpuMs(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return 1000 * Number(text.match(/^alia_verifier_modelled_gpu_seconds_total (\S+)$/m)?.[1] ?? 0);
}

/** Suffix matching replayed over reference answers: where it proposes and how much of it they accept. */
export interface SuffixOnReference {
  tokens: number;
  /** Positions where it proposed something, and the drafts accepted there (at most 16 per proposal). */
  proposals: number;
  accepted: number;
  accepted_per_proposal: number;
  /** Share of the answers' tokens that were accepted drafts. */
  accepted_share: number;
}

/**
 * Suffix matching (the prompt and the answer so far) replayed over `answers` as if the target wrote each:
 * at every position it proposes up to 16 tokens, the longest prefix agreeing with the answer is accepted,
 * then the answer's next token — the drafts a round would accept, whatever the target model.
 */
export async function suffixOnReference(cases: { prompt: number[]; answer: number[] }[]): Promise<SuffixOnReference> {
  let [tokens, proposals, accepted] = [0, 0, 0];
  for (const { prompt, answer } of cases) {
    const p = new SuffixProposer({ promptLength: prompt.length });
    const history = [...prompt];
    for (let i = 0; i < answer.length; ) {
      const drafts = p.peek(history, MAX_GAMMA).tokens;
      let a = 0;
      while (a < drafts.length && drafts[a] === answer[i + a]) a++;
      if (drafts.length) [proposals, accepted] = [proposals + 1, accepted + a];
      for (const end = Math.min(i + a + 1, answer.length); i < end; i++) {
        await p.observe(history, answer[i]);
        history.push(answer[i]);
      }
    }
    tokens += answer.length;
  }
  return { tokens, proposals, accepted, accepted_per_proposal: proposals ? accepted / proposals : 0, accepted_share: tokens ? accepted / tokens : 0 };
}

/** The suffix proposer's time per round over a large index (what a long-lived tenant's Worker pays). */
export function suffixCost(tenantTokens = 32_768, sessionTokens = 2048, rounds = 2000) {
  const cache = new TenantSuffixCache({ bytesPerTenant: 2 ** 31, maxTenants: 1, maxOrder: 8 });
  const tenant = cache.tenant("bench");
  const rng = new SeededRng(7, 1);
  // Text-like token streams: Zipf-ish draws over a 32k vocabulary, with phrases that recur.
  const phrase = () => Array.from({ length: 4 + Math.floor(rng.next() * 12) }, () => Math.floor(32_000 * rng.next() ** 3));
  const phrases = Array.from({ length: 400 }, phrase);
  const text = (n: number) => {
    const out: number[] = [];
    while (out.length < n) out.push(...(rng.next() < 0.5 ? phrases[Math.floor(rng.next() * phrases.length)] : phrase()));
    return out.slice(0, n);
  };
  for (let n = 0; n < tenantTokens; n += 512) tenant.addOutput(text(512));
  const history = text(sessionTokens);
  const p = new SuffixProposer({ tenant, promptLength: sessionTokens });
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    const proposal = p.peek(history, 8);
    times.push(performance.now() - t0);
    // Commit a few tokens as a round would: part of the proposal, then a token of the target's own.
    history.push(...proposal.tokens.slice(0, Math.floor(rng.next() * (proposal.tokens.length + 1))), ...text(1));
  }
  times.sort((a, b) => a - b);
  return {
    tenant_tokens: tenant.index.tokens,
    session_tokens: sessionTokens,
    rounds,
    us_per_round_p50: 1000 * times[Math.floor(rounds / 2)],
    us_per_round_p99: 1000 * times[Math.floor(rounds * 0.99)],
    tenant_index_mib: tenant.index.bytes / 2 ** 20,
  };
}

export async function benchDrafters(o: {
  log: (s: string) => void;
  streams?: number;
  tokens?: number;
  /** Only these workloads (by name); the chrF scoring is left out then. Default: all. */
  workloads?: string[];
  /** Only these modes (autoregressive is always run: ratios are to it). Default: all. */
  modes?: DrafterMode[];
}): Promise<DraftersResult> {
  const streams = o.streams ?? 12;
  const tokens = o.tokens ?? 64;
  const targetBundle = await loadBundle(path.join(DEFAULT_PAIR_DIR, "target"));
  const tok = TextTokenizer.fromBundle(targetBundle);
  const target = await loadTargetModel(targetBundle);
  const chat = SPANISH_PROMPTS.slice(0, streams).map((t) => tok.encode(t));
  // Copying: a passage (the target's own continuation of another prompt), then the passage's opening words.
  const copying: number[][] = [];
  for (const text of SPANISH_PROMPTS.slice(streams, 2 * streams)) {
    const ids = tok.encode(text);
    const passage = [...ids, ...(await target.greedy(ids, tokens + 16))];
    copying.push([...passage, ...tok.encode(`\n\n${text}`).slice(1)]); // slice: no second BOS
  }
  // The fixture target's translations of every held-out sentence (greedy: what every mode outputs), scored against Apertium's.
  const heldOut = await readHeldOutTranslations(DEFAULT_PAIR_DIR);
  const translation: DraftersResult["translation"] = [];
  for (const [source, target_] of o.workloads ? [] : [...new Set(heldOut.map((t) => `${t.source}>${t.target}`))].map((k) => k.split(">"))) {
    const cases = heldOut.filter((t) => t.source === source && t.target === target_);
    const score = await translateHeldOut(
      target,
      (text) => tok.encode(text),
      (ids) => tok.decode(ids, { skipSpecialTokens: true }),
      cases,
    );
    // Apertium's translation as the answer, ended by the line break the translator stops at.
    const onApertium = await suffixOnReference(
      cases.map((c) => {
        const prompt = translationPrompt(c.source, c.target, c.text);
        const ids = tok.encode(prompt);
        return { prompt: ids, answer: tok.encode(`${prompt}${c.reference}\n`).slice(ids.length) };
      }),
    );
    translation.push({
      source,
      target: target_,
      sentences: cases.length,
      chrf: score.chrf,
      chrf_copying_source: score.chrfCopying,
      example: { text: cases[0].text, model: score.translations[0], apertium: cases[0].reference },
      suffix_on_apertium: onApertium,
    });
    o.log(
      `translation ${source}→${target_}: chrF ${translation.at(-1)!.chrf.toFixed(1)} against Apertium (copying the source: ${translation.at(-1)!.chrf_copying_source.toFixed(1)}) on ${cases.length} held-out sentences; suffix matching on Apertium's translation: ${onApertium.accepted_per_proposal.toFixed(2)} accepted per proposal, ${(100 * onApertium.accepted_share).toFixed(1)} % of its tokens`,
    );
  }
  await target.dispose();
  const draft = await loadDraftModel(await loadBundle(path.join(DEFAULT_PAIR_DIR, "draft")));
  // Translation as the translator asks for it: SalamandraTA's prompt, the answer ends at the line break.
  const esCa = heldOut.filter((t) => t.source === "es" && t.target === "ca").slice(0, 2 * streams);
  const translate = (text: string) => tok.encode(translationPrompt("es", "ca", text));
  const translationStop = (prompt: number[]): Partial<OutputLimits> => ({ stop: ["\n"], decode: continuationDecoder(tok, prompt), stopIds: [EOS_ID] });
  const chatStop = (): Partial<OutputLimits> => ({ stopIds: [EOS_ID, IM_END_ID] });
  const passages = existsSync(path.join(COPY_DIR, "target")) ? (await readRewriteCases(COPY_DIR)).slice(0, streams) : [];
  if (!passages.length) o.log("no copy fixture in fixtures/copy/ (npm run fixtures:train-copy): the passage-rewriting workload is left out");
  const allWorkloads: Workload[] = [
    { name: "open chat", what: `${streams} Spanish prompts, ${tokens} tokens each`, prompts: chat, repeat: false },
    { name: "repeated requests", what: "the same prompts asked again by the same API key (measured: the second asking)", prompts: chat, repeat: true },
    { name: "copying", what: "a passage in the prompt (the target's own text), then its opening again: the answer repeats the passage", prompts: copying, repeat: false },
    {
      name: "rewriting",
      what: 'held-out quotes with one or two spelling slips, "Corrige la ortografía:" in a chat turn: the answer is the quote put right (ends at the end of the turn)',
      prompts: (await readRewriteCases(DEFAULT_PAIR_DIR)).slice(0, streams).map((r) => tok.encode(rewritePrompt(r.slipped))),
      repeat: false,
      limits: chatStop,
    },
    ...(passages.length
      ? [
          {
            name: "passage rewriting",
            what: 'held-out passages of two to five validation quotes (38–65 tokens) with spelling slips, "Corrige la ortografía:" in a chat turn, answered by the copy fixture (the default target fine-tuned to rewrite passages, scripts/train-copy-target.ts): the answer is the passage put right (ends at the end of the turn)',
            prompts: passages.map((r) => tok.encode(rewritePrompt(r.slipped))),
            repeat: false,
            limits: chatStop,
            tokens: 160,
            modelDir: COPY_DIR,
          },
        ]
      : []),
    {
      name: "translation es→ca",
      what: "held-out sentences in the translator's prompt (SalamandraTA's format; the answer ends at the line break), one after another by one key",
      prompts: esCa.slice(0, streams).map((t) => translate(t.text)),
      repeat: false,
      limits: translationStop,
    },
    {
      name: "translation es→ca, near-duplicates",
      what: "a document of sentences that differ from ones translated before by one word (templated text): each sentence translated, then its variant measured",
      prompts: esCa.slice(0, streams).map((t, i) => translate(nearDuplicate(t.text, esCa[streams + i].text))),
      primers: esCa.slice(0, streams).map((t) => translate(t.text)),
      repeat: false,
      limits: translationStop,
    },
  ];

  const unknown = o.workloads?.filter((name) => !allWorkloads.some((w) => w.name === name)) ?? [];
  if (unknown.length) throw new RangeError(`unknown workloads ${unknown.join(", ")}: the workloads are ${allWorkloads.map((w) => w.name).join(", ")}`);
  const workloads = o.workloads ? allWorkloads.filter((w) => o.workloads!.includes(w.name)) : allWorkloads;
  const modes = DRAFTER_MODES.filter((m) => m === "autoregressive" || !o.modes || o.modes.includes(m));

  // One verifier (and its delay proxy) per target: the default pair's, and the copy fixture's.
  const verifiers = new Map<string, { v: ListeningProcess; proxy: DelayProxy; pool: PoolClient }>();
  const verifierFor = async (modelDir = DEFAULT_PAIR_DIR) => {
    let x = verifiers.get(modelDir);
    if (!x) {
      const v = await startVerifierProcess({ VERIFIER_COST_MODEL: "h200-alia-40b", VERIFIER_SIMULATE_GPU: "true", VERIFIER_SIMULATED_PAST: String(PAST), MODEL_DIR: modelDir });
      const proxy = await startDelayProxy({ target: v.url, delayMs: RTT_MS / 2 });
      x = { v, proxy, pool: new PoolClient({ nodes: [proxy.url], timeoutMs: 300_000 }) };
      verifiers.set(modelDir, x);
    }
    return x;
  };
  const cells: DrafterCell[] = [];
  try {
    let session = 0;
    for (const w of workloads) {
      const { v, pool } = await verifierFor(w.modelDir);
      let ar = NaN;
      for (const mode of modes) {
        const kind = mode === "suffix-4" || mode === "suffix-serial" ? "suffix" : mode === "autoregressive" ? "model" : mode;
        const factory = new ProposerFactory({ kind, draft, suffix: { maxOrder: 8, bytesPerTenant: 4 << 20, maxTenants: 4 } });
        // As on an edge in service, adaptive generations start from what the earlier ones of the workload measured.
        const priors = new SpeculationPriors();
        const decode = async (prompt: number[]) => {
          const d = new SpeculativeDecoder({
            ...w.limits?.(prompt),
            proposer: factory.create({ promptLength: prompt.length, tenant: "bench" }),
            pool,
            gamma: mode === "autoregressive" ? 0 : mode === "suffix-4" ? 4 : "adaptive",
            // The ablation: what resume and pipelining add to adaptive suffix matching.
            ...(mode === "suffix-serial" ? { resume: false, pipeline: false } : {}),
            maxGamma: MAX_GAMMA,
            maxTokens: w.tokens ?? tokens,
            priors,
            session: `d${session++}`,
          });
          for await (const _ of d.run(prompt));
          return d;
        };
        let [n, seconds, rounds, drafted, accepted, roundTokens, generated, draftMs, gpuMs] = [0, 0, 0, 0, 0, 0, 0, 0, 0];
        for (const [i, prompt] of w.prompts.entries()) {
          if (w.repeat) await decode(prompt); // the first asking fills the key's cache
          if (w.primers) await decode(w.primers[i]);
          const g0 = await passGpuMs(v.url);
          const t0 = performance.now();
          const d = await decode(prompt);
          seconds += (performance.now() - t0) / 1000;
          gpuMs += (await passGpuMs(v.url)) - g0;
          const s = d.stats;
          n += d.output.length;
          rounds += s.rounds;
          drafted += s.drafted;
          accepted += s.accepted;
          roundTokens += s.roundTokens;
          generated += s.generatedTokens;
          draftMs += s.draftMs;
        }
        const rate = n / seconds;
        if (mode === "autoregressive") ar = rate;
        const cell: DrafterCell = {
          workload: w.name,
          mode,
          tokens: n,
          tokens_per_s: rate,
          vs_autoregressive: rate / ar,
          rounds,
          accepted_per_round: rounds ? accepted / rounds : 0,
          tokens_per_round: rounds ? roundTokens / rounds : 0,
          drafted,
          accepted,
          pool_generated_share: generated / n,
          draft_ms_per_round: rounds ? draftMs / rounds : 0,
          gpu_ms_per_token: gpuMs / n,
        };
        cells.push(cell);
        o.log(
          `${w.name} ${mode}: ${rate.toFixed(1)} tokens/s (${cell.vs_autoregressive.toFixed(2)}× AR), ${cell.accepted_per_round.toFixed(2)} accepted per round, ${cell.draft_ms_per_round.toFixed(3)} ms drafting per round, ${cell.gpu_ms_per_token.toFixed(2)} GPU-ms/token`,
        );
      }
    }
  } finally {
    for (const { v, proxy } of verifiers.values()) {
      await proxy.close();
      v.child.kill("SIGKILL");
    }
    await draft.dispose();
  }
  const cost = suffixCost();
  o.log(`suffix proposer: ${cost.us_per_round_p50.toFixed(1)} µs per round (p99 ${cost.us_per_round_p99.toFixed(1)}) over ${cost.tenant_tokens} tenant + ${cost.session_tokens} session tokens`);
  return {
    date: new Date().toISOString(),
    machine: { node: process.version, cpus: os.cpus().length },
    rtt_ms: RTT_MS,
    past: PAST,
    tokens_per_stream: tokens,
    max_gamma: MAX_GAMMA,
    workloads: workloads.map((w) => ({ name: w.name, what: w.what, streams: w.prompts.length, tokens: w.tokens ?? tokens })),
    cells,
    translation,
    suffix_cost: cost,
  };
}
