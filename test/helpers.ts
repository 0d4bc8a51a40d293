// The tiny-model helpers live in the public testing entry point (ctcspec/testing).
import fc from 'fast-check';
import { expect } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import type { Llama } from '../src/model/llama.js';
import { tinyConfig, tinyModel } from '../src/testing/index.js';
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

/**
 * After `prefix`, a tree forward of `nodes` (parent[i] < i, -1 = child of the prefix) gives
 * node i exactly the logits that decoding its root path one token at a time gives.
 */
export async function expectTreeEqualsDecode(m: Llama, prefix: number[], nodes: number[], parent: readonly number[]): Promise<void> {
  const V = m.config.vocab_size;
  m.reset();
  await m.forward(prefix);
  const tree = Float32Array.from(await m.forwardTree(nodes, depths(parent).map((d) => prefix.length + d), treeMask(parent, prefix.length)));
  for (let i = 0; i < parent.length; i++) {
    const path: number[] = [];
    for (let j = i; j >= 0; j = parent[j]!) path.unshift(nodes[j]!);
    m.reset();
    await m.forward(prefix);
    let logits = new Float32Array(0);
    for (const tok of path) logits = Float32Array.from(await m.forward([tok]));
    expect(Array.from(tree.subarray(i * V, (i + 1) * V))).toEqual(Array.from(logits));
  }
}

/**
 * The batch-invariance property of a backend: for random tiny models, prefixes and trees,
 * a tree forward gives every node bit-identical logits to a step-by-step decode of its root
 * path (what makes greedy speculative decoding on that backend exact).
 */
export async function checkTreeEqualsDecode(backend: Backend, numRuns: number): Promise<void> {
  const treeArb = fc.integer({ min: 1, max: 10 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => fc.integer({ min: -1, max: i - 1 }))));
  const tokens = (V: number, min: number, max: number) => fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: min, maxLength: max });
  await fc.assert(
    fc.asyncProperty(
      tinyConfig.chain((c) => fc.tuple(fc.constant(c), tokens(c.vocab_size, 1, 9), treeArb, tokens(c.vocab_size, 10, 10))),
      async ([config, prefix, parentTuple, pool]) => {
        const parent = parentTuple as number[];
        await expectTreeEqualsDecode(tinyModel(backend, config, 12), prefix, pool.slice(0, parent.length), parent);
      },
    ),
    { numRuns },
  );
}
