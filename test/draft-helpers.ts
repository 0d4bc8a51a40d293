/** Tiny base models and distillation data for the draft-head tests. */
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { frozenBase, type FrozenBase } from '../src/draft/head-io.js';
import { parseConfig, type LlamaConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import type { TensorMap } from '../src/tensor/dtype.js';
import { buildDistillSet, type DistillSet } from '../src/train/distill.js';
import { Rng } from '../src/util/random.js';
import { spreadWeights } from './helpers.js';

export function tinyBaseConfig(o: { D?: number; H?: number; KVH?: number; V?: number; tie?: boolean } = {}): LlamaConfig {
  return parseConfig({
    hidden_size: o.D ?? 16, num_hidden_layers: 1, num_attention_heads: o.H ?? 2, num_key_value_heads: o.KVH ?? 1,
    intermediate_size: 24, vocab_size: o.V ?? 24, max_position_embeddings: 48, rope_theta: 10000, rms_norm_eps: 1e-5,
    tie_word_embeddings: o.tie ?? true, bos_token_id: 1,
  });
}

export interface TinyBase {
  config: LlamaConfig;
  tensors: TensorMap;
  model: Llama;
  frozen: FrozenBase;
}

/** A random base model whose greedy continuations are deterministic and varied (spread weights). */
export function tinyBase(config: LlamaConfig, seed: number, spread = 3): TinyBase {
  const tensors = spreadWeights(config, seed, spread);
  return { config, tensors, model: new Llama(new CpuBackend(), config, tensors), frozen: frozenBase(config, tensors) };
}

/** random token stream standing in for the training split */
export function randomStream(V: number, n: number, seed: number): Uint16Array {
  const rng = new Rng(seed);
  return Uint16Array.from({ length: n }, () => 3 + rng.int(V - 3));
}

export async function tinyDistill(base: TinyBase, sequences: number, seqLen = 32, seed = 5): Promise<DistillSet> {
  return buildDistillSet(base.model, randomStream(base.config.vocab_size, 500, seed), { sequences, seqLen, promptMin: 3, promptMax: 8, seed });
}
