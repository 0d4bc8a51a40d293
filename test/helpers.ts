// The tiny-model helpers live in the public testing entry point (ctcspec/testing).
import fc from 'fast-check';
import { expect } from 'vitest';
import type { AttentionParams, Backend } from '../src/backend/backend.js';
import type { Llama } from '../src/model/llama.js';
import { tinyConfig, tinyModel } from '../src/testing/index.js';
export { spreadWeights, tinyConfig, tinyModel } from '../src/testing/index.js';

/** f32 arrays of n values in [-4, 4], no NaN or Infinity */
export const f32Values = (n: number) => fc.float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true, min: -4, max: 4 });

/**
 * Random attention inputs: q (T, H, hd), k and v (past + T, KVH, hd) in [-4, 4], and half the
 * time a random additive mask (0, -0.5 or -Infinity per slot) in which every row still sees
 * its own slot. Shapes within the given ranges, H = KVH * group.
 */
export function attentionCases(r: { maxT: number; maxKvHeads: number; groups: number[]; maxHeadDim: number; maxPast: number }): fc.Arbitrary<{ p: AttentionParams; q: Float32Array; k: Float32Array; v: Float32Array }> {
  const shapes = fc.record({
    T: fc.integer({ min: 1, max: r.maxT }),
    kvHeads: fc.integer({ min: 1, max: r.maxKvHeads }),
    group: fc.constantFrom(...r.groups),
    hd: fc.integer({ min: 1, max: r.maxHeadDim }),
    past: fc.integer({ min: 0, max: r.maxPast }),
    masked: fc.boolean(),
  });
  return shapes.chain((d) => {
    const H = d.kvHeads * d.group, slots = d.past + d.T;
    const maskValues = fc.array(fc.constantFrom(0, 0, -Infinity, -0.5), { minLength: d.T * slots, maxLength: d.T * slots });
    return fc.tuple(f32Values(d.T * H * d.hd), f32Values(slots * d.kvHeads * d.hd), f32Values(slots * d.kvHeads * d.hd), maskValues).map(([q, k, v, values]) => {
      let mask: Float32Array | null = null;
      if (d.masked) {
        mask = Float32Array.from(values);
        for (let t = 0; t < d.T; t++) mask[t * slots + d.past + t] = 0; // a row sees at least its own slot
      }
      return { p: { T: d.T, nHeads: H, nKvHeads: d.kvHeads, headDim: d.hd, past: d.past, mask }, q, k, v };
    });
  });
}

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
