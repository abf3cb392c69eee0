// Which proposer drafts each generation, chosen once by configuration: the draft model, suffix matching
// (no model: the prompt, the output so far and the tenant's recent outputs), or the hybrid of both. Built
// once per process or isolate; it holds what outlives a generation — the tenants' suffix caches.
import type { CausalLM } from "../common/models/causal-lm.ts";
import type { DraftVocabulary } from "../common/models/draft-vocabulary.ts";
import type { Sampling } from "../common/protocol.ts";
import { HybridProposer } from "./hybrid-proposer.ts";
import { ModelProposer } from "./model-proposer.ts";
import type { Proposer, ProposerKind } from "./proposer.ts";
import { SuffixProposer } from "./suffix-proposer.ts";
import { TenantSuffixCache } from "./tenant-suffix-cache.ts";
import type { CompiledGrammar } from "../structured/grammar.ts";

export interface ProposerFactoryOptions {
  kind: ProposerKind;
  /** The draft model (kinds "model" and "hybrid"), and its trimmed vocabulary if it has one. */
  draft?: CausalLM;
  vocabulary?: DraftVocabulary;
  /** Support K of the sparse q̃ of sampled model drafts. */
  support?: number;
  /** Suffix proposer: longest context matched, and the bounds of the per-tenant output caches. */
  suffix?: { maxOrder: number; bytesPerTenant: number; maxTenants: number };
}

export interface GenerationContext {
  promptLength: number;
  /** Omitted or temperature 0: greedy. */
  sampling?: Sampling;
  /** Whose generation (an API key; "" where none is needed): suffix caches are never shared between tenants. */
  tenant: string;
  /**
   * Sampling with a caller-chosen seed: the same request must give the same text, so its proposals may
   * depend on the request alone — the suffix proposer then neither reads nor feeds the tenant's cache.
   */
  seeded?: boolean;
  /**
   * Constrained decoding: the output's grammar and the ids it ends with. The draft model drafts under it;
   * suffix proposals are cut by the decoder where the grammar refuses them.
   */
  grammar?: { compiled: CompiledGrammar; stopIds: readonly number[] };
}

export class ProposerFactory {
  private readonly tenants: TenantSuffixCache | undefined;

  constructor(readonly o: ProposerFactoryOptions) {
    if (o.kind !== "suffix" && !o.draft) throw new RangeError(`the "${o.kind}" proposer needs a draft model`);
    const s = o.suffix ?? { maxOrder: 8, bytesPerTenant: 4 << 20, maxTenants: 16 };
    this.tenants = o.kind !== "model" && s.bytesPerTenant > 0 ? new TenantSuffixCache(s) : undefined;
  }

  get kind(): ProposerKind {
    return this.o.kind;
  }

  /** A proposer for one generation. */
  create(g: GenerationContext): Proposer {
    const s = g.sampling && g.sampling.temperature > 0 ? g.sampling : undefined;
    const tenant = s && g.seeded ? undefined : this.tenants?.tenant(g.tenant);
    const suffix = () => new SuffixProposer({ maxOrder: this.o.suffix?.maxOrder, promptLength: g.promptLength, tenant, sampling: !!s });
    const grammar = g.grammar;
    const model = () =>
      new ModelProposer(this.o.draft!, {
        sampling: s && { temperature: s.temperature, topP: s.top_p, topK: s.top_k, seed: s.seed },
        support: this.o.support,
        vocabulary: this.o.vocabulary,
        grammar: grammar && { matcher: () => grammar.compiled.matcher(grammar.stopIds), promptLength: g.promptLength },
      });
    if (this.o.kind === "suffix") return suffix();
    if (this.o.kind === "hybrid") return new HybridProposer(suffix(), model());
    return model();
  }
}
