import { describe, expect, it } from "vitest";
import { PoolClient } from "../src/pool/pool-client.ts";

describe("PoolClient's rendezvous ranking", () => {
  const nodes = Array.from({ length: 8 }, (_, i) => `http://127.0.0.1:${9000 + i}`);
  const pool = new PoolClient({ nodes });

  it("ranks the sessions of one group (`<group>--<i>`: the choices of a request) alike, on one node", () => {
    for (let r = 0; r < 50; r++) {
      const first = pool.ranking(`s-req${r}--0`);
      for (let i = 1; i < 8; i++) expect(pool.ranking(`s-req${r}--${i}`)).toEqual(first);
      expect(first).toEqual(pool.ranking(`s-req${r}`));
    }
  });

  it("spreads different sessions over the nodes", () => {
    const firsts = new Set(Array.from({ length: 200 }, (_, r) => pool.ranking(`s-${r}`)[0]));
    expect(firsts.size).toBe(nodes.length);
    expect(new Set(Array.from({ length: 200 }, (_, r) => pool.ranking(`s-req${r}--1`)[0])).size).toBe(nodes.length);
  });
});
