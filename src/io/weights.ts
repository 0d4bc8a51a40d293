/**
 * Checking a set of weights against a config, and deterministic random weights for
 * tests and benches. Tensor names and shapes are those of `weightShapes` (Hugging Face).
 */
import { weightShapes, type LlamaConfig } from '../model/config.js';
import { numel, valueCount, type TensorMap } from '../tensor/dtype.js';
import { shapeString } from './bytes.js';
import { FormatError } from './errors.js';
import { Rng } from '../util/random.js';

const MAX_LISTED = 8; // names listed per kind of problem before "... and N more"
const BIAS_STD = 0.02; // random biases: as small as the weights

/**
 * Assert that `tensors` holds exactly the tensors of `config`: every expected name with
 * its exact shape and value count, and nothing else. The error lists every missing,
 * misshapen and unexpected tensor at once.
 */
export function checkWeights(config: LlamaConfig, tensors: TensorMap, source: string): void {
  const expected = weightShapes(config);
  const missing: string[] = [];
  const misshapen: string[] = [];
  const unexpected: string[] = [];
  const culprits: string[] = [];
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t) {
      missing.push(`${name} ${shapeString(shape)}`);
      culprits.push(name);
    } else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      misshapen.push(`${name}: expected ${shapeString(shape)}, found ${shapeString(t.shape)}`);
      culprits.push(name);
    } else if (valueCount(t) !== numel(shape)) { // (a narrow tensor's count without widening it)
      misshapen.push(`${name}: shape ${shapeString(shape)} but ${valueCount(t)} values`);
      culprits.push(name);
    }
  }
  for (const [name, t] of tensors) {
    if (!expected.has(name)) {
      unexpected.push(`${name} ${shapeString(t.shape)}`);
      culprits.push(name);
    }
  }
  if (culprits.length === 0) return;

  const list = (items: string[]): string =>
    items.slice(0, MAX_LISTED).join(', ') + (items.length > MAX_LISTED ? `, ... and ${items.length - MAX_LISTED} more` : '');
  const parts: string[] = [];
  if (missing.length) parts.push(`${missing.length} missing: ${list(missing)}`);
  if (misshapen.length) parts.push(`${misshapen.length} with the wrong shape: ${list(misshapen)}`);
  if (unexpected.length) parts.push(`${unexpected.length} unexpected: ${list(unexpected)}`);
  // the usual cause of a lone lm_head problem is tie_word_embeddings set the wrong way
  if (tensors.has('lm_head.weight') !== expected.has('lm_head.weight')) {
    parts.push(`(config has tie_word_embeddings: ${config.tie_word_embeddings})`);
  }
  // biases the config does not expect, or expected biases absent: the flag that says which
  const biasFlag = (kind: RegExp, flag: string, on: boolean) => {
    const listed = (items: string[]) => items.some((item) => kind.test(item.split(' ')[0]!));
    if (listed(unexpected) || listed(missing)) parts.push(`(config has ${flag}: ${on})`);
  };
  biasFlag(/\.self_attn\.[qkvo]_proj\.bias$/, config.model_type === 'qwen2' ? 'model_type qwen2, whose q/k/v biases are always on, attention_bias' : 'attention_bias', config.attention_bias === true);
  biasFlag(/\.mlp\.\w+_proj\.bias$/, 'mlp_bias', config.mlp_bias === true);
  const problem = `weights do not match the config: ${parts.join('; ')}`;
  throw new FormatError(source, problem, culprits.length === 1 ? culprits[0] : undefined);
}

/**
 * Deterministic GPT-2-style initialisation: matrices ~ N(0, 0.02), the residual
 * projections (o_proj, down_proj) scaled by 1/sqrt(2 * layers) so the residual stream
 * does not grow with depth, RMSNorm weights all ones, biases (when the config has them)
 * ~ N(0, 0.02). Same seed, same weights.
 */
export function randomWeights(config: LlamaConfig, seed: number): TensorMap {
  const rng = new Rng(seed);
  const residualStd = 0.02 / Math.sqrt(2 * config.num_hidden_layers);
  const tensors: TensorMap = new Map();
  for (const [name, shape] of weightShapes(config)) {
    const data = new Float32Array(numel(shape));
    if (name.endsWith('norm.weight')) {
      data.fill(1);
    } else if (name.endsWith('.bias')) {
      for (let i = 0; i < data.length; i++) data[i] = BIAS_STD * rng.normal();
    } else {
      const std = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight') ? residualStd : 0.02;
      for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
    }
    tensors.set(name, { shape: [...shape], data });
  }
  return tensors;
}
