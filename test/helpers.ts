// The tiny-model helpers live in the public testing entry point (ctcspec/testing).
export { spreadWeights, tinyConfig, tinyModel } from '../src/testing/index.js';

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Additive tree mask (T, past + T) for nodes with parent[i] < i (-1 = child of the
 * cache): each node sees the whole cache, its ancestors and itself.
 */
export function treeMask(parent: readonly number[], past: number): Float32Array {
  const T = parent.length, S = past + T;
  const mask = new Float32Array(T * S).fill(-Infinity);
  for (let i = 0; i < T; i++) {
    mask.fill(0, i * S, i * S + past);
    for (let j = i; j >= 0; j = parent[j]!) mask[i * S + past + j] = 0;
  }
  return mask;
}

export function depths(parent: readonly number[]): number[] {
  const d: number[] = [];
  for (let i = 0; i < parent.length; i++) d.push(parent[i]! < 0 ? 0 : d[parent[i]!]! + 1);
  return d;
}
