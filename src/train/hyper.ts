/**
 * Training hyperparameters: one plain object, stored in every checkpoint and quoted in the
 * model card. `checkHyper` validates a parsed object field by field.
 *
 * One optimizer step = `accumSteps` micro-batches of `batchSize` windows of `seqLen` tokens,
 * so tokens per step = batchSize * seqLen * accumSteps.
 */
export interface TrainHyper {
  steps: number; // optimizer steps in the whole run
  batchSize: number; // B: sequences per micro-batch
  seqLen: number; // T: tokens per sequence (each predicts the next)
  accumSteps: number; // micro-batches whose gradients are averaged into one step
  lr: number; // peak learning rate
  minLr: number; // the cosine schedule's floor
  warmupSteps: number; // linear warmup from lr/warmupSteps to lr
  weightDecay: number; // AdamW decoupled decay on matrices (not on norms)
  beta1: number;
  beta2: number;
  eps: number;
  clipNorm: number; // global gradient-norm clip (0 = off)
  evalEvery: number; // validation loss every N steps (and at the start and the end)
  evalSeqs: number; // sequences in the fixed validation set
  checkpointEvery: number; // write a checkpoint every N steps (and on stop)
  seed: number; // initial weights and batch sampling
}

const INT_FIELDS = ['steps', 'batchSize', 'seqLen', 'accumSteps', 'evalEvery', 'evalSeqs', 'checkpointEvery'] as const;

export function checkHyper(raw: unknown): TrainHyper {
  if (raw === null || typeof raw !== 'object') throw new RangeError('hyperparameters: expected an object');
  const o = raw as Record<string, unknown>;
  const num = (k: string, ok: (v: number) => boolean, what: string): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
      throw new RangeError(`hyperparameter "${k}" must be ${what}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const h: Record<string, number> = {};
  for (const k of INT_FIELDS) h[k] = num(k, (v) => Number.isInteger(v) && v > 0, 'a positive integer');
  h.lr = num('lr', (v) => v > 0, 'positive');
  h.minLr = num('minLr', (v) => v >= 0 && v <= (o.lr as number), 'in [0, lr]');
  h.warmupSteps = num('warmupSteps', (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
  h.weightDecay = num('weightDecay', (v) => v >= 0, '>= 0');
  h.beta1 = num('beta1', (v) => v >= 0 && v < 1, 'in [0, 1)');
  h.beta2 = num('beta2', (v) => v >= 0 && v < 1, 'in [0, 1)');
  h.eps = num('eps', (v) => v > 0, 'positive');
  h.clipNorm = num('clipNorm', (v) => v >= 0, '>= 0');
  h.seed = num('seed', (v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32, 'a uint32');
  return h as unknown as TrainHyper;
}

export function tokensPerStep(h: TrainHyper): number {
  return h.batchSize * h.seqLen * h.accumSteps;
}

/**
 * A training recipe: the model's shape (vocab_size comes from the tokenizer and
 * max_position_embeddings from seqLen) and the hyperparameters.
 */
export interface TrainRecipe {
  model: {
    hidden_size: number;
    num_hidden_layers: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    intermediate_size: number;
    rope_theta: number;
    rms_norm_eps: number;
    tie_word_embeddings: boolean;
  };
  hyper: TrainHyper;
}

export const TRAIN_PRESETS: Record<string, TrainRecipe> = {
  /**
   * The shipped model: 8 layers of width 128 (depth over width), ~1.7M parameters with a
   * 1024-token vocab and a 256-token context. 2400 steps of 4 x 2 x 256 = 2048 tokens (4.9M
   * tokens, ~2.3 epochs of the training split); bench/train.ts measures the training speed.
   */
  base: {
    model: {
      hidden_size: 128, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 4,
      intermediate_size: 352, rope_theta: 10000, rms_norm_eps: 1e-5, tie_word_embeddings: true,
    },
    hyper: {
      steps: 2400, batchSize: 4, seqLen: 256, accumSteps: 2,
      lr: 2e-3, minLr: 2e-4, warmupSteps: 100, weightDecay: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, clipNorm: 1,
      evalEvery: 100, evalSeqs: 64, checkpointEvery: 50, seed: 1337,
    },
  },
  /** seconds on a toy corpus: for tests and smoke runs */
  tiny: {
    model: {
      hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2,
      intermediate_size: 64, rope_theta: 10000, rms_norm_eps: 1e-5, tie_word_embeddings: true,
    },
    hyper: {
      steps: 300, batchSize: 4, seqLen: 32, accumSteps: 2,
      lr: 1e-2, minLr: 1e-3, warmupSteps: 20, weightDecay: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, clipNorm: 1,
      evalEvery: 50, evalSeqs: 16, checkpointEvery: 100, seed: 1,
    },
  },
};
