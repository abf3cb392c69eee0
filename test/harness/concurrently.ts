/** Runs `f` over items with `n` in flight (concurrent sessions share the verifier's batches). */
export async function concurrently<T>(items: T[], n: number, f: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      for (let i = next++; i < items.length; i = next++) await f(items[i], i);
    }),
  );
}
