// Benchmarks only: the draft model with every forward call padded to `stepMs` (a Salamandra-2b q4 step
// on an edge CPU, ~25 ms, instead of the fixture draft's fraction of a millisecond). The padding is
// a wait, not work, so proactive drafting can overlap it with a verify call as it would real compute.
import type { CausalLM } from "../src/common/models/causal-lm.ts";

export function withDraftStepCost(model: CausalLM, stepMs: number): CausalLM {
  if (stepMs <= 0) return model;
  return new Proxy(model, {
    get(target, prop, receiver) {
      if (prop !== "forward") return Reflect.get(target, prop, receiver);
      return async (...args: Parameters<CausalLM["forward"]>) => {
        const t0 = performance.now();
        const out = await target.forward(...args);
        const left = stepMs - (performance.now() - t0);
        if (left > 0) await new Promise((r) => setTimeout(r, left));
        return out;
      };
    },
  });
}
