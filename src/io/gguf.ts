/**
 * A Llama model as one GGUF file (llama.cpp's format), written and read.
 *
 *   writeGguf(config, tensors, { dtype, tokenizer })   the file's bytes (ggufModelPieces: in pieces)
 *   readGguf(readRange, source)                        config, f32 tensors and tokenizer.json
 *
 * gguf-file.ts is the container (header, tensor table, checks), gguf-llama.ts the names and
 * keys and the rotary permutation of q and k, gguf-tokenizer.ts the tokenizer keys, and
 * tensor/quant-blocks.ts the Q8_0 and Q4_0 blocks.
 *
 * Storage: matrices in the dtype asked for (F32, F16, BF16, Q8_0, Q4_0); vectors (norms,
 * biases, rope factors) always F32, as llama.cpp's converter keeps them; a matrix whose rows
 * are not whole blocks of 32 stays F32 under Q8_0 / Q4_0. On read, every type is widened
 * to f32, except Q8_0 matrices, kept as their blocks (keepQ8_0: the CPU backend computes with
 * them as they are; any other widens them when it loads them); readGgufBlocks gives a tensor's
 * stored bytes as they are.
 */
import { parseConfig, parseGenerationConfig, ConfigError, weightShapes, type LlamaConfig } from '../model/config.js';
import { f32ToBF16, f32ToF16, numel, type HostTensor, type TensorMap } from '../tensor/dtype.js';
import { BLOCK_BYTES, dequantizeBlocks, quantizeBlocks, QK } from '../tensor/quant-blocks.js';
import { keepQ8_0 } from '../tensor/weight-format.js';
import { BpeTokenizer } from '../tokenizer/bpe.js';
import { HfTokenizer, tokenizerJsonOf } from '../tokenizer/hf.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { decodeInto, describeNonFinite, firstNonFinite, shapeString, writeF32, writeU16 } from './bytes.js';
import { FormatError } from './errors.js';
import {
  ALIGNMENT_KEY, concatPieces, DEFAULT_ALIGNMENT, ggufPieces, readGgufHeader, tensorBytes,
  type GgmlType, type GgufHeader, type GgufTensorInfo, type GgufTensorOut, type GgufValue, type ReadRange,
} from './gguf-file.js';
import { architectureOf, configMetadata, configObject, ggufDims, ggufTensorName, llama3RopeFactors, OWN_KEYS, permutedHeads, permuteRotaryRows, ROPE_FREQS } from './gguf-llama.js';
import { HF_JSON_KEY, tokenizerJsonFromGgml, tokenizerMetadata } from './gguf-tokenizer.js';

export type GgufDType = GgmlType;
export const GGUF_DTYPES: readonly GgufDType[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'];
/** general.file_type: llama.cpp's name for what most tensors are stored as */
const FILE_TYPE: Record<GgufDType, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, BF16: 32 };

export interface WriteGgufOptions {
  /** storage of the matrices (default F32) */
  dtype?: GgufDType;
  /** the model's tokenizer; without one (or one with no tokenizer.json form), the byte-level vocabulary of an untrained BpeTokenizer */
  tokenizer?: Tokenizer;
  /** stored as tokenizer.chat_template */
  chatTemplate?: string;
  /** general.name */
  name?: string;
  /** names the output in messages */
  source?: string;
}

/** The GGUF file of a model, as pieces to write one after another (large models: no single buffer). */
export function ggufModelPieces(config: LlamaConfig, tensors: TensorMap, opts: WriteGgufOptions = {}): { size: number; pieces: Iterable<Uint8Array> } {
  const dtype = opts.dtype ?? 'F32';
  const source = opts.source ?? 'GGUF output';
  if (!GGUF_DTYPES.includes(dtype)) throw new FormatError(source, `unsupported dtype ${JSON.stringify(dtype)} (supported: ${GGUF_DTYPES.join(', ')})`);
  const metadata: [string, GgufValue][] = [
    ['general.name', { type: 'string', value: opts.name ?? 'ctcspec model' }],
    ['general.file_type', { type: 'u32', value: FILE_TYPE[dtype] }],
    [ALIGNMENT_KEY, { type: 'u32', value: DEFAULT_ALIGNMENT }],
    ...configMetadata(config),
  ];
  const eos = config.eos_token_id === undefined ? undefined : typeof config.eos_token_id === 'number' ? [config.eos_token_id] : config.eos_token_id;
  if (eos && eos.length > 1) metadata.push([OWN_KEYS.eosList, { type: 'array', itemType: 'u32', value: eos }]);
  const tok = opts.tokenizer;
  const json = (tok && tokenizerJsonOf(tok)) ?? tokenizerJsonOf(new BpeTokenizer([]))!;
  metadata.push(...tokenizerMetadata(json, {
    vocabSize: config.vocab_size,
    bosId: config.bos_token_id ?? tok?.bosId,
    eosIds: eos ?? tok?.eosIds,
    addBos: tok instanceof HfTokenizer ? tok.addsBos : undefined,
    chatTemplate: opts.chatTemplate,
  }));

  const out: GgufTensorOut[] = [];
  if (config.rope_scaling?.rope_type === 'llama3') {
    const factors = llama3RopeFactors(config);
    out.push({ name: ROPE_FREQS, type: 'F32', dims: [factors.length], bytes: () => encode(factors, 'F32', ROPE_FREQS, [factors.length], source) });
  }
  for (const [hfName, shape] of weightShapes(config)) {
    const t = tensors.get(hfName);
    if (!t) throw new FormatError(source, `missing (the config needs it, shape ${shapeString(shape)})`, hfName);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]) || t.data.length !== numel(shape)) {
      throw new FormatError(source, `shape ${shapeString(t.shape)} (${t.data.length} values), but the config needs ${shapeString(shape)}`, hfName);
    }
    const name = ggufTensorName(hfName)!;
    const dims = ggufDims(shape);
    const type = storageType(dtype, dims);
    const heads = permutedHeads(config, hfName);
    out.push({ name, type, dims, bytes: () => encode(heads ? permuteRotaryRows(t.data, heads, shape[1] ?? 1, true) : t.data, type, name, shape, source) });
  }
  for (const name of tensors.keys()) if (!weightShapes(config).has(name)) throw new FormatError(source, 'not a tensor of this config', name);
  return ggufPieces(metadata, out, source);
}

/** The GGUF file of a model, in one array (ggufModelPieces for one over 2 GiB). */
export function writeGguf(config: LlamaConfig, tensors: TensorMap, opts: WriteGgufOptions = {}): Uint8Array {
  return concatPieces(ggufModelPieces(config, tensors, opts));
}

function storageType(dtype: GgufDType, dims: number[]): GgmlType {
  if (dims.length < 2) return 'F32';
  if ((dtype === 'Q8_0' || dtype === 'Q4_0') && dims[0]! % QK !== 0) return 'F32';
  return dtype;
}

/** f32 values in a GGUF type; a value the type cannot hold is an error naming the tensor */
function encode(data: Float32Array, type: GgmlType, name: string, shape: readonly number[], source: string): Uint8Array {
  const bad = firstNonFinite(data);
  if (bad >= 0) throw new FormatError(source, describeNonFinite(data, [...shape], bad), name);
  if (type === 'F32') {
    const out = new Uint8Array(4 * data.length);
    writeF32(out, 0, data);
    return out;
  }
  if (type === 'F16' || type === 'BF16') {
    const narrow = type === 'F16' ? f32ToF16 : f32ToBF16;
    const expMask = type === 'F16' ? 0x7c00 : 0x7f80; // all-ones exponent: the value overflowed
    const h = new Uint16Array(data.length);
    for (let i = 0; i < data.length; i++) {
      h[i] = narrow(data[i]!);
      if ((h[i]! & expMask) === expMask) throw new FormatError(source, `value ${data[i]} at index ${i} overflows ${type}`, name);
    }
    const out = new Uint8Array(2 * data.length);
    writeU16(out, 0, h);
    return out;
  }
  try {
    return quantizeBlocks(type, data);
  } catch (e) {
    if (e instanceof RangeError) throw new FormatError(source, e.message, name);
    throw e;
  }
}

// ---------------------------------------------------------------------------- reading

/** largest piece of a tensor read at once (whole blocks) */
export const GGUF_READ_PIECE_BYTES = 16 * 2 ** 20;

export interface GgufModel {
  config: LlamaConfig;
  /** Hugging Face names, row-major f32, q and k in Hugging Face's rotary layout */
  tensors: TensorMap;
  /** the tokenizer as a tokenizer.json text (undefined when the file has no tokenizer.ggml.model) */
  tokenizerJson?: string;
  /** a tokenizer_config.json text carrying add_bos_token, when the file says */
  tokenizerConfigJson?: string;
  header: GgufHeader;
}

export interface ReadGgufOptions {
  /** bytes read at once (default GGUF_READ_PIECE_BYTES) */
  pieceBytes?: number;
  /** the file's layout when readGgufLayout has read it already */
  layout?: GgufLayout;
}

export interface GgufLayout {
  header: GgufHeader;
  config: LlamaConfig;
  /** the file's tensor of each Hugging Face name */
  names: Map<string, GgufTensorInfo>;
}

/** A model's header, config and the GGUF name of each of its tensors, all checked. */
export async function readGgufLayout(readRange: ReadRange, source: string): Promise<GgufLayout> {
  const header = await readGgufHeader(readRange, source);
  const fail = (problem: string, tensor?: string): never => {
    throw new FormatError(source, problem, tensor);
  };
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const raw = configObject(header.metadata, byName.has(ROPE_FREQS), fail);
  const embedding = byName.get('token_embd.weight') ?? fail('no token_embd.weight tensor (the token embeddings)');
  const vocabKey = header.metadata.get(`${raw.model_type}.vocab_size`)?.value;
  const tokens = header.metadata.get('tokenizer.ggml.tokens');
  raw.vocab_size = typeof vocabKey === 'number' ? vocabKey : embedding.dims[1] ?? (tokens?.type === 'array' ? tokens.value.length : undefined);
  raw.tie_word_embeddings = !byName.has('output.weight');
  const layer0 = (part: string) => byName.has(`blk.0.${part}`);
  if (raw.model_type === 'llama') {
    if (layer0('attn_q.bias')) raw.attention_bias = true;
    if (layer0('ffn_gate.bias')) raw.mlp_bias = true;
  }
  let config: LlamaConfig;
  try {
    config = parseConfig(raw, `${source} (metadata)`);
    const generation = header.metadata.get(OWN_KEYS.generationConfig);
    if (generation) {
      if (generation.type !== 'string') fail(`${OWN_KEYS.generationConfig} must be a string (generation_config.json's text), got a ${generation.type}`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(generation.value as string);
      } catch (e) {
        fail(`${OWN_KEYS.generationConfig} is not valid JSON (${(e as Error).message})`);
      }
      config.generation_config = parseGenerationConfig(parsed, config.vocab_size, `${source} (metadata)`);
    }
  } catch (e) {
    if (e instanceof ConfigError) throw new FormatError(source, `metadata: ${e.message.replace(`${source} (metadata): `, '')}`);
    throw e;
  }
  // the layer count must be the tensors' own (a corrupt count would list every layer it claims)
  let layers = 0;
  for (const t of header.tensors) layers = Math.max(layers, 1 + Number(/^blk\.(\d+)\./.exec(t.name)?.[1] ?? -1));
  if (config.num_hidden_layers !== layers) fail(`${raw.model_type}.block_count is ${config.num_hidden_layers}, but the tensors hold ${layers} layer${layers === 1 ? '' : 's'} (blk.0 to blk.${layers - 1})`);
  const names = new Map<string, GgufTensorInfo>();
  const missing: string[] = [], wrong: string[] = [];
  for (const [hfName, shape] of weightShapes(config)) {
    const ggufName = ggufTensorName(hfName)!;
    const t = byName.get(ggufName);
    const dims = ggufDims(shape);
    if (!t) missing.push(`${ggufName} ${shapeString(dims)}`);
    else if (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) wrong.push(`${ggufName}: ne ${shapeString(t.dims)}, the metadata needs ${shapeString(dims)}`);
    else names.set(hfName, t);
    byName.delete(ggufName);
  }
  if (config.rope_scaling?.rope_type === 'llama3') {
    const t = byName.get(ROPE_FREQS);
    if (!t) missing.push(`${ROPE_FREQS} [${headDimOf(config) / 2}]`);
    byName.delete(ROPE_FREQS);
  }
  const unexpected = [...byName.keys()];
  if (missing.length || wrong.length || unexpected.length) {
    const parts = [];
    if (missing.length) parts.push(`${missing.length} missing: ${missing.slice(0, 8).join(', ')}`);
    if (wrong.length) parts.push(`${wrong.length} with the wrong dims: ${wrong.slice(0, 8).join(', ')}`);
    if (unexpected.length) parts.push(`${unexpected.length} unexpected: ${unexpected.slice(0, 8).join(', ')}`);
    fail(`tensors do not match the metadata: ${parts.join('; ')}`);
  }
  return { header, config, names };
}

const headDimOf = (c: LlamaConfig) => c.head_dim ?? c.hidden_size / c.num_attention_heads;

/** Read a GGUF model: config, f32 tensors (quantized ones dequantized) and tokenizer. */
export async function readGguf(readRange: ReadRange, source: string, opts: ReadGgufOptions = {}): Promise<GgufModel> {
  const layout = opts.layout ?? (await readGgufLayout(readRange, source));
  const { header, config, names } = layout;
  const piece = opts.pieceBytes ?? GGUF_READ_PIECE_BYTES;
  const tensors: TensorMap = new Map();
  for (const [hfName, info] of names) {
    const shape = ggufDims(info.dims);
    if (info.type === 'Q8_0' && shape.length === 2) {
      // kept as the file's blocks: a backend that holds Q8_0 computes with exactly these weights
      tensors.set(hfName, keepQ8_0(shape, (await readGgufBlocks(readRange, layout, hfName, source)).bytes));
      continue;
    }
    const data = await readTensorF32(readRange, info, piece, source);
    const heads = permutedHeads(config, hfName);
    tensors.set(hfName, { shape, data: heads ? permuteRotaryRows(data, heads, shape[1] ?? 1, false) : data });
  }
  const model: GgufModel = { config, tensors, header };
  const tokenizer = ggufTokenizerJson(header.metadata, source);
  if (tokenizer) Object.assign(model, tokenizer);
  return model;
}

/** A whole GGUF file in memory. */
export function readGgufBytes(bytes: Uint8Array, source: string, opts: ReadGgufOptions = {}): Promise<GgufModel> {
  return readGguf(async (start, end) => bytes.subarray(start, end), source, opts);
}

/** one tensor's bytes in pieces of whole blocks, each widened to f32 as it arrives */
async function readTensorF32(readRange: ReadRange, t: GgufTensorInfo, pieceBytes: number, source: string): Promise<Float32Array> {
  const n = numel(t.dims);
  const data = new Float32Array(n);
  const blockValues = t.type === 'Q8_0' || t.type === 'Q4_0' ? QK : 1;
  const blockSize = (tensorBytes(t.type, [blockValues]) as number);
  const piece = Math.max(1, Math.floor(pieceBytes / blockSize)) * blockSize;
  for (let at = t.start; at < t.end; at += piece) {
    const end = Math.min(t.end, at + piece);
    const bytes = await readRange(at, end);
    if (!bytes || bytes.length < end - at) {
      throw new FormatError(source, `file ends at byte ${at + (bytes?.length ?? 0)}, inside the tensor's data [${t.start}, ${t.end}) (truncated file?)`, t.name);
    }
    const first = ((at - t.start) / blockSize) * blockValues;
    if (t.type === 'Q8_0' || t.type === 'Q4_0') dequantizeBlocks(t.type, bytes, data, first);
    else decodeInto(t.type, bytes, data, first);
  }
  const bad = firstNonFinite(data);
  if (bad >= 0) throw new FormatError(source, describeNonFinite(data, ggufDims(t.dims), bad), t.name);
  return data;
}

/** A tensor's stored bytes, as they are in the file, with their type: what a kernel that keeps weights quantized reads. */
export interface GgufBlocks {
  type: GgmlType;
  /** Hugging Face row-major shape ([out, in] for a matrix) */
  shape: number[];
  /** rows in Hugging Face's order (q and k rows put back from the rotary permutation); each row is shape[1] values in `type` */
  bytes: Uint8Array;
}

/** The stored bytes of one tensor (by its Hugging Face name), rows in our order. */
export async function readGgufBlocks(readRange: ReadRange, layout: GgufLayout, hfName: string, source: string): Promise<GgufBlocks> {
  const t = layout.names.get(hfName);
  if (!t) throw new FormatError(source, 'not a tensor of this model', hfName);
  const bytes = await readRange(t.start, t.end);
  if (!bytes || bytes.length < t.end - t.start) throw new FormatError(source, `file ends inside the tensor's data [${t.start}, ${t.end})`, t.name);
  const shape = ggufDims(t.dims);
  const heads = permutedHeads(layout.config, hfName);
  const rowBytes = (t.end - t.start) / (shape.length > 1 ? shape[0]! : 1);
  return { type: t.type, shape, bytes: heads ? permuteRotaryRows(bytes.slice(), heads, rowBytes, false) : bytes.slice() };
}

/** bytes per block of the block types (re-exported for the kernels that read them) */
export { BLOCK_BYTES };

/**
 * The tokenizer.json a GGUF file's metadata describes, and the tokenizer_config.json fields it
 * holds too: add_bos_token (tokenizer.ggml.add_bos_token), chat_template
 * (tokenizer.chat_template), and bos_token / eos_token, the texts of the BOS and EOS pieces
 * (what a chat template writes for them).
 */
export function ggufTokenizerJson(meta: Map<string, GgufValue>, source: string): { tokenizerJson: string; tokenizerConfigJson?: string } | undefined {
  const fields: Record<string, unknown> = {};
  const addBos = meta.get('tokenizer.ggml.add_bos_token');
  if (addBos?.type === 'bool') fields.add_bos_token = addBos.value;
  const template = meta.get('tokenizer.chat_template');
  if (template !== undefined) {
    if (template.type !== 'string') throw new FormatError(source, `tokenizer.chat_template must be a string, not a ${template.type}`);
    fields.chat_template = template.value;
    const pieces = meta.get('tokenizer.ggml.tokens');
    const piece = (key: string): string | undefined => {
      const id = meta.get(key);
      return id !== undefined && typeof id.value === 'number' && pieces?.type === 'array' && pieces.itemType === 'string' ? (pieces.value[id.value] as string | undefined) : undefined;
    };
    const bos = piece('tokenizer.ggml.bos_token_id'), eos = piece('tokenizer.ggml.eos_token_id');
    if (bos !== undefined) fields.bos_token = bos;
    if (eos !== undefined) fields.eos_token = eos;
  }
  const configJson = Object.keys(fields).length > 0 ? JSON.stringify(fields) : undefined;
  const hf = meta.get(HF_JSON_KEY);
  if (hf?.type === 'string') return configJson === undefined ? { tokenizerJson: hf.value } : { tokenizerJson: hf.value, tokenizerConfigJson: configJson };
  if (!meta.has('tokenizer.ggml.model')) return undefined;
  const json = tokenizerJsonFromGgml(meta);
  if (typeof json !== 'string') throw new FormatError(source, `the tokenizer cannot be read: it needs ${json.missing}`);
  return configJson === undefined ? { tokenizerJson: json } : { tokenizerJson: json, tokenizerConfigJson: configJson };
}

export type { HostTensor };
export { architectureOf };
