import fc from 'fast-check';
import type { Backend } from '../src/backend/backend.js';
import { parseConfig, type LlamaConfig } from '../src/model/config.js';
import { Llama, type LlamaOptions } from '../src/model/llama.js';
import { randomWeights } from '../src/io/weights.js';
import type { TensorMap } from '../src/tensor/dtype.js';

/** Tiny Llama configs: GQA ratios, tied and untied heads, odd vocab sizes. */
export const tinyConfig: fc.Arbitrary<LlamaConfig> = fc
  .record({
    kvHeads: fc.constantFrom(1, 2),
    group: fc.constantFrom(1, 2),
    headDim: fc.constantFrom(4, 8),
    layers: fc.integer({ min: 1, max: 2 }),
    ffn: fc.integer({ min: 4, max: 24 }),
    vocab: fc.integer({ min: 5, max: 40 }),
    tie: fc.boolean(),
    theta: fc.constantFrom(10000, 500),
  })
  .map((r) =>
    parseConfig({
      hidden_size: r.kvHeads * r.group * r.headDim,
      num_hidden_layers: r.layers,
      num_attention_heads: r.kvHeads * r.group,
      num_key_value_heads: r.kvHeads,
      intermediate_size: r.ffn,
      vocab_size: r.vocab,
      max_position_embeddings: 64,
      rope_theta: r.theta,
      rms_norm_eps: 1e-5,
      tie_word_embeddings: r.tie,
    }),
  );

/**
 * Random weights scaled so that logits are spread out (std-0.02 init gives near-uniform
 * logits whose argmax is decided by rounding noise, which would make comparisons flaky).
 */
export function spreadWeights(config: LlamaConfig, seed: number, scale = 20): TensorMap {
  const w = randomWeights(config, seed);
  for (const [name, t] of w) if (!name.endsWith('norm.weight')) for (let i = 0; i < t.data.length; i++) t.data[i]! *= scale;
  return w;
}

export function tinyModel(backend: Backend, config: LlamaConfig, seed: number, opts: LlamaOptions = {}): Llama {
  return new Llama(backend, config, spreadWeights(config, seed), opts);
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
