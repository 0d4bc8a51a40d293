/**
 * What the trained draft heads (ctc-head.ts, medusa.ts) share: the frozen tensors they
 * borrow from the base model, shape checking of their own weights, and their file
 * format, runtime-neutral (the Node adapter reads and writes the directory):
 *
 *   <dir>/config.json         the head's config (a "kind" field says which head)
 *   <dir>/model.safetensors   the head's own trained tensors only (never the base's)
 */
import { shapeString } from '../io/bytes.js';
import { FormatError } from '../io/errors.js';
import { parseSafetensors, serializeSafetensors } from '../io/safetensors.js';
import type { LlamaConfig } from '../model/config.js';
import { numel, type HostTensor, type TensorMap } from '../tensor/dtype.js';
import type { CtcHeadConfig } from './ctc-head.js';
import type { MedusaConfig } from './medusa.js';

/** The base model's frozen tables a head reads: token embeddings and the LM head (the same when tied). */
export interface FrozenBase {
  embed: HostTensor; // (V, D) model.embed_tokens.weight
  lmHead: HostTensor; // (V, D) lm_head.weight, or embed when tie_word_embeddings
}

export function frozenBase(config: LlamaConfig, tensors: TensorMap): FrozenBase {
  const get = (name: string): HostTensor => {
    const t = tensors.get(name);
    const want = [config.vocab_size, config.hidden_size];
    if (!t || t.shape.join() !== want.join()) throw new FormatError('base model', `needs "${name}" of shape ${shapeString(want)}`, name);
    return t;
  };
  const embed = get('model.embed_tokens.weight');
  return { embed, lmHead: config.tie_word_embeddings ? embed : get('lm_head.weight') };
}

/**
 * Refuse a head that was trained for another base model, before it drafts: its config
 * copies the base's width, vocabulary and (CTC) attention layout, which must agree, and a
 * CTC head's own KV cache holds max_position_embeddings rows, so a shorter context than the
 * base's would run out in the middle of a generation. All disagreements in one error.
 */
export function checkHeadFitsBase(head: CtcHeadConfig | MedusaConfig, base: LlamaConfig, source: string): void {
  const problems: string[] = [];
  const same = (field: keyof CtcHeadConfig & keyof LlamaConfig, headValue: number): void => {
    if (headValue !== base[field]) problems.push(`${field} ${headValue}, the base model's ${base[field]}`);
  };
  same('hidden_size', head.hidden_size);
  same('vocab_size', head.vocab_size);
  if (head.kind === 'ctc') {
    same('num_attention_heads', head.num_attention_heads);
    same('num_key_value_heads', head.num_key_value_heads);
    if (head.max_position_embeddings < base.max_position_embeddings) {
      problems.push(`max_position_embeddings ${head.max_position_embeddings} is shorter than the base model's context ${base.max_position_embeddings}`);
    }
  }
  if (problems.length) throw new FormatError(source, `this ${head.kind} head does not fit the base model: ${problems.join('; ')}`);
}

/** Assert that `tensors` holds exactly the expected names and shapes (all problems in one error). */
export function checkHeadWeights(expected: ReadonlyMap<string, readonly number[]>, tensors: TensorMap, source: string): void {
  const problems: string[] = [];
  for (const [name, shape] of expected) {
    const t = tensors.get(name);
    if (!t) problems.push(`missing ${name} ${shapeString(shape)}`);
    else if (t.shape.join() !== shape.join() || t.data.length !== numel(shape)) {
      problems.push(`${name}: expected ${shapeString(shape)}, found ${shapeString(t.shape)}`);
    }
  }
  for (const [name, t] of tensors) if (!expected.has(name)) problems.push(`unexpected ${name} ${shapeString(t.shape)}`);
  if (problems.length) throw new FormatError(source, `draft head weights do not match its config: ${problems.join('; ')}`);
}

/** the field of a parsed JSON object, checked to be a positive integer */
export function positiveInt(o: Record<string, unknown>, key: string, source: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new FormatError(source, `field "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

export function positiveNum(o: Record<string, unknown>, key: string, source: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new FormatError(source, `field "${key}" must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

export function parseJsonObject(text: string, source: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FormatError(source, `not valid JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FormatError(source, 'expected a JSON object');
  return raw as Record<string, unknown>;
}

/** A head's two files as bytes: config.json text and model.safetensors. */
export interface HeadFiles {
  configJson: string;
  safetensors: Uint8Array;
}

export function serializeHead(config: object, tensors: TensorMap, metadata: Record<string, string> = {}): HeadFiles {
  return {
    configJson: JSON.stringify(config, null, 2) + '\n',
    safetensors: serializeSafetensors(tensors, { dtype: 'F32', metadata: { format: 'pt', ...metadata }, source: 'draft head' }),
  };
}

export function parseHeadTensors(bytes: Uint8Array, source: string): TensorMap {
  return parseSafetensors(bytes, source).tensors;
}
