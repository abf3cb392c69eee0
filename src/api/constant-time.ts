// Constant-time string comparison that runs in Node and workerd alike (no node:crypto in Workers'
// default compatibility): the time depends only on the lengths, not on where the strings differ.
export function timingSafeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
