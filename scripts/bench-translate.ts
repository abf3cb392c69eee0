// `npm run bench:translate`: the translation endpoint on the Node edge (`src/node.ts` as a real process
// with its own verifier), over loopback: miss latency per sentence, hit latency p50/p99 and hits/s under
// 16 concurrent clients, and the share of sentences served from cache on a repeated-document workload.
// Writes bench/results/translate.json.
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import { SPANISH_PROMPTS } from "../test/harness/prompts.ts";
import { median } from "../bench/statistics.ts";
import { startEdgeProcess } from "../test/harness/processes.ts";

const { child, url } = await startEdgeProcess({ SPEC_GAMMA: "4" });
try {
  const get = async (text: string, target = "ca") => {
    const t0 = performance.now();
    const r = await fetch(`${url}/v1/translate?${new URLSearchParams({ text, source: "es", target })}`);
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`status ${r.status}`);
    return { ms: performance.now() - t0, sentences: r.headers.get("x-alia-sentences") ?? "" };
  };
  const sentences = SPANISH_PROMPTS.slice(0, 30).map((s) => `${s}.`);

  console.error("misses…");
  const miss = [];
  for (const s of sentences) miss.push((await get(s, "gl")).ms);

  console.error("hits under 16 concurrent clients for 5 s…");
  await get("La vida es bella.");
  const hit: number[] = [];
  const end = performance.now() + 5000;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (performance.now() < end) hit.push((await get("La vida es bella.")).ms);
    }),
  );
  hit.sort((a, b) => a - b);

  console.error("repeated documents…");
  // 20 documents of 8 sentences drawn (deterministically) from the same 30: later documents repeat earlier sentences.
  let served = 0;
  let total = 0;
  let x = 7;
  for (let d = 0; d < 20; d++) {
    const doc = Array.from({ length: 8 }, () => {
      x = (x * 1103515245 + 12345) % 2147483648;
      return sentences[x % sentences.length];
    }).join(" ");
    const h = (await get(doc, "eu")).sentences;
    const n = (k: string) => Number(new RegExp(`${k}=(\\d+)`).exec(h)?.[1] ?? 0);
    total += n("total");
    served += n("total") - n("computed");
  }

  const result = {
    date: new Date().toISOString(),
    machine: { node: process.version, cpus: os.cpus().length },
    miss_ms_per_sentence: { p50: median(miss), mean: miss.reduce((a, b) => a + b, 0) / miss.length, sentences: miss.length },
    hit_ms: { p50: median(hit), p99: hit[Math.floor(hit.length * 0.99)], requests: hit.length, hits_per_s: hit.length / 5, concurrency: 16 },
    repeated_documents: { documents: 20, sentences: total, served_from_cache: served, share: served / total },
  };
  await mkdir("bench/results", { recursive: true });
  await writeFile("bench/results/translate.json", JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify(result, null, 2));
} finally {
  child.kill("SIGINT");
}
