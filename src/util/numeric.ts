/**
 * Host-side numeric helpers shared by every layer (decoding, drafting, training, the CPU
 * backend): plain loops over typed arrays, no allocation.
 */

/** log(e^a + e^b) without overflow; -Infinity is the log of zero. */
export function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

/**
 * Index (relative to `offset`) of the largest of xs[offset .. offset + n), the first one on
 * ties. NaN never wins; a row of only NaN and -Infinity gives 0. The greedy pick of every
 * host-side caller and the CPU backend's argmax kernel, so they all agree on ties.
 */
export function argmaxRow(xs: ArrayLike<number>, offset: number, n: number): number {
  let best = 0, bestValue = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = xs[offset + i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}
