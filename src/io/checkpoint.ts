/**
 * Reading a model folder's weights, in any runtime: one model.safetensors, or shards listed by
 * model.safetensors.index.json (its weight_map names each tensor's shard), stored as F32, F16
 * or BF16 and widened to f32.
 *
 * Where the source can read byte ranges, no file is ever read whole: the 8-byte length, the
 * header, then each tensor's bytes in pieces of at most READ_PIECE_BYTES, each piece decoded
 * into the tensor's f32 array as it arrives. Memory then peaks near the f32 weights' size,
 * whatever the size of a shard (JavaScript cannot hold one file over 2 GiB in a Buffer).
 * F16 / BF16 tensors may instead stay 16-bit (keepSixteenBit), or go piece by piece straight
 * into a backend that holds them (sixteenBitSink): then nothing the size of a tensor is ever
 * on the host. Without ranges each file is read whole and parsed by parseSafetensors.
 *
 * config.json and generation_config.json are read here too (readModelConfig).
 *
 * Errors name the file: a shard the index sends outside the folder, a missing shard, a
 * tensor in the wrong shard or in none, a truncated file, trailing bytes.
 */
import { parseConfig, parseGenerationConfig, type LlamaConfig } from '../model/config.js';
import { bf16ToF32, f16ToF32, numel, type HostTensor, type TensorMap } from '../tensor/dtype.js';
import { copyU16Into, decodeInto, describeNonFinite, firstNonFinite16Bytes, u16At } from './bytes.js';
import { FormatError } from './errors.js';
import {
  checkFinite, HEADER_LENGTH_BYTES, parseSafetensors, parseSafetensorsHeader, readHeaderLength, sixteenBitTensor, type SafetensorsEntry,
} from './safetensors.js';

/** The files of a model folder (FileSource in src/api/source.ts has this shape). */
export interface CheckpointSource {
  /** the folder, for messages */
  readonly location: string;
  /** a whole file, or undefined when there is none */
  read(path: string): Promise<Uint8Array | undefined>;
  /** bytes [start, end) of a file (fewer where the file ends first), or undefined when there is none */
  readRange?(path: string, start: number, end: number): Promise<Uint8Array | undefined>;
}

export const CONFIG_FILE = 'config.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';
export const SINGLE_FILE = 'model.safetensors';
export const SHARD_INDEX = 'model.safetensors.index.json';
/** largest piece of a tensor read at once: bounds the memory a read holds beside the f32 weights */
export const READ_PIECE_BYTES = 16 * 2 ** 20;

export interface ReadOptions {
  /** bytes read at once, a multiple of 4 (default READ_PIECE_BYTES) */
  pieceBytes?: number;
  /**
   * keep F16 / BF16 tensors in their 16 bits (HostTensor.stored) instead of widening them to
   * f32: for a backend that holds 16-bit weights, memory then peaks near the file's size
   */
  keepSixteenBit?: boolean;
  /**
   * where 16-bit tensors go as they are read (ranged reads only): for a tensor it takes, a
   * writer of its bytes, piece by piece, and the HostTensor that stands for it (HostTensor.held);
   * undefined leaves the tensor to the reader. No host copy of the tensor is made.
   */
  sixteenBitSink?: (e: { name: string; dtype: 'F16' | 'BF16'; shape: number[] }) => SixteenBitWriter | undefined;
}

export interface SixteenBitWriter {
  write(bytes: Uint8Array, byteOffset: number): void;
  tensor: HostTensor;
}

/**
 * The folder's weights: model.safetensors when there is one (as Hugging Face looks first),
 * else the shards of model.safetensors.index.json. Returns the tensors and the file the
 * weights were listed in, for messages.
 */
export async function readCheckpoint(source: CheckpointSource, opts: ReadOptions = {}): Promise<{ tensors: TensorMap; file: string }> {
  const single = await readSafetensorsFile(source, SINGLE_FILE, opts);
  if (single) return { tensors: single, file: locate(source, SINGLE_FILE) };
  const index = await source.read(SHARD_INDEX);
  if (!index) {
    throw new FormatError(locate(source, SINGLE_FILE), `file not found (a model folder needs ${SINGLE_FILE}, or ${SHARD_INDEX} and its shards)`);
  }
  return { tensors: await readShards(source, index, opts), file: locate(source, SHARD_INDEX) };
}

/** config.json, checked, with the defaults of generation_config.json when the folder has one. */
export async function readModelConfig(source: CheckpointSource): Promise<LlamaConfig> {
  const config = parseConfig(await readJson(source, CONFIG_FILE, true), locate(source, CONFIG_FILE));
  const generation = await readJson(source, GENERATION_CONFIG_FILE, false);
  if (generation !== undefined) {
    config.generation_config = parseGenerationConfig(generation, config.vocab_size, locate(source, GENERATION_CONFIG_FILE));
  }
  return config;
}

async function readJson(source: CheckpointSource, path: string, required: boolean): Promise<unknown> {
  const bytes = await source.read(path);
  if (!bytes) {
    if (required) throw new FormatError(locate(source, path), 'file not found (a model directory needs config.json)');
    return undefined;
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new FormatError(locate(source, path), `not valid JSON (${(e as Error).message})`);
  }
}

/** `location/path`, for messages */
export function locate(source: Pick<CheckpointSource, 'location'>, path: string): string {
  return source.location.endsWith('/') ? source.location + path : `${source.location}/${path}`;
}

/**
 * The weight_map of an index, checked: every value a shard file name that stays inside the
 * folder (relative, no "." or ".." segments, no backslashes).
 */
export function parseShardIndex(bytes: Uint8Array, source: string): Map<string, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new FormatError(source, `not valid JSON (${(e as Error).message})`);
  }
  const map = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) {
    throw new FormatError(source, 'no "weight_map" object (tensor name -> shard file)');
  }
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== 'string') throw new FormatError(source, `weight_map value must be a file name, got ${JSON.stringify(shard)}`, tensor);
    if (!staysInside(shard)) {
      throw new FormatError(source, `weight_map sends it to ${JSON.stringify(shard)}, outside the model folder (shards must be files in the folder)`, tensor);
    }
    weightMap.set(tensor, shard);
  }
  if (weightMap.size === 0) throw new FormatError(source, 'weight_map lists no tensors');
  return weightMap;
}

/** a relative path whose every segment is a plain name */
function staysInside(path: string): boolean {
  if (path === '' || path.includes('\\') || path.startsWith('/') || /^[a-z]+:/i.test(path)) return false;
  return path.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

async function readShards(source: CheckpointSource, indexBytes: Uint8Array, opts: ReadOptions): Promise<TensorMap> {
  const indexName = locate(source, SHARD_INDEX);
  const weightMap = parseShardIndex(indexBytes, indexName);
  const byShard = new Map<string, string[]>();
  for (const [tensor, shard] of weightMap) {
    const list = byShard.get(shard);
    if (list) list.push(tensor);
    else byShard.set(shard, [tensor]);
  }
  const tensors: TensorMap = new Map();
  for (const [shard, listed] of [...byShard].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const shardName = locate(source, shard);
    const got = await readSafetensorsFile(source, shard, opts);
    if (!got) {
      throw new FormatError(shardName, `file not found (${SHARD_INDEX} lists it for ${listed.length} tensors, "${listed[0]}" first)`);
    }
    for (const [name, t] of got) {
      const expected = weightMap.get(name);
      if (expected !== shard) {
        const why = expected === undefined ? `${SHARD_INDEX} does not list it` : `${SHARD_INDEX} puts it in "${expected}"`;
        throw new FormatError(shardName, `found here, but ${why}`, name);
      }
      tensors.set(name, t);
    }
    const absent = listed.filter((name) => !got.has(name));
    if (absent.length) {
      throw new FormatError(shardName, `${absent.length} tensors that ${SHARD_INDEX} puts in this shard are not in it: "${absent.slice(0, 3).join('", "')}"${absent.length > 3 ? ', ...' : ''}`);
    }
  }
  return tensors;
}

/** One safetensors file of the folder (in ranges when the source can), or undefined when there is none. */
export async function readSafetensorsFile(source: CheckpointSource, path: string, opts: ReadOptions = {}): Promise<TensorMap | undefined> {
  const name = locate(source, path);
  if (!source.readRange) {
    const bytes = await source.read(path);
    return bytes && parseSafetensors(bytes, name, opts).tensors;
  }
  const readRange = source.readRange.bind(source);
  const first = await readRange(path, 0, HEADER_LENGTH_BYTES);
  if (!first) return undefined;
  const headerLen = readHeaderLength(first, first.length < HEADER_LENGTH_BYTES ? first.length : undefined, name);
  const headerEnd = HEADER_LENGTH_BYTES + headerLen;
  const raw = (await readRange(path, HEADER_LENGTH_BYTES, headerEnd)) ?? new Uint8Array(0);
  if (raw.length < headerLen) {
    throw new FormatError(name, `header length ${headerLen} runs past the end of the ${HEADER_LENGTH_BYTES + raw.length}-byte file`);
  }
  const header = parseSafetensorsHeader(raw, undefined, name);
  const tensors: TensorMap = new Map();
  const piece = opts.pieceBytes ?? READ_PIECE_BYTES;
  if (!(Number.isInteger(piece) && piece > 0 && piece % 4 === 0)) throw new RangeError(`pieceBytes must be a positive multiple of 4, got ${piece}`);
  for (const e of header.entries) {
    const sink = e.dtype === 'F32' ? undefined : opts.sixteenBitSink?.({ name: e.name, dtype: e.dtype, shape: e.shape });
    if (sink) {
      await streamBits(readRange, path, e, name, piece, sink.write);
      tensors.set(e.name, sink.tensor);
    } else if (opts.keepSixteenBit && e.dtype !== 'F32') tensors.set(e.name, sixteenBitTensor(e, await readBits(readRange, path, e, name, piece), name));
    else tensors.set(e.name, { shape: e.shape, data: await readTensor(readRange, path, e, name, piece) });
  }
  const after = await readRange(path, header.dataEnd, header.dataEnd + 1);
  if (after && after.length > 0) {
    throw new FormatError(name, `trailing bytes after the last tensor (at byte ${header.dataEnd}) are not covered by any tensor`);
  }
  return tensors;
}

/** one 16-bit tensor's bytes, piece by piece, checked and handed to `write` as they arrive */
async function streamBits(
  readRange: NonNullable<CheckpointSource['readRange']>, path: string, e: SafetensorsEntry, name: string, piece: number,
  write: (bytes: Uint8Array, byteOffset: number) => void,
): Promise<void> {
  const dtype = e.dtype as 'F16' | 'BF16';
  for (let at = e.start; at < e.end; at += piece) {
    const end = Math.min(e.end, at + piece);
    const bytes = await readRange(path, at, end);
    if (!bytes || bytes.length < end - at) {
      throw new FormatError(name, `file ends at byte ${at + (bytes?.length ?? 0)}, inside the tensor's data [${e.start}, ${e.end}) (truncated file?)`, e.name);
    }
    const bad = firstNonFinite16Bytes(bytes, dtype);
    if (bad >= 0) {
      const index = (at - e.start) / 2 + bad;
      throw new FormatError(name, describeNonFinite([], e.shape, index, (dtype === 'F16' ? f16ToF32 : bf16ToF32)(u16At(bytes, bad))), e.name);
    }
    write(bytes, at - e.start);
  }
}

/** one 16-bit tensor's bytes, piece by piece, copied as they are into its u16 array */
async function readBits(
  readRange: NonNullable<CheckpointSource['readRange']>, path: string, e: SafetensorsEntry, name: string, piece: number,
): Promise<Uint16Array> {
  const bits = new Uint16Array(numel(e.shape));
  for (let at = e.start; at < e.end; at += piece) {
    const end = Math.min(e.end, at + piece);
    const bytes = await readRange(path, at, end);
    if (!bytes || bytes.length < end - at) {
      throw new FormatError(name, `file ends at byte ${at + (bytes?.length ?? 0)}, inside the tensor's data [${e.start}, ${e.end}) (truncated file?)`, e.name);
    }
    copyU16Into(bytes, bits, (at - e.start) / 2);
  }
  return bits;
}

/** one tensor's bytes, piece by piece, decoded into its f32 array as they arrive */
async function readTensor(
  readRange: NonNullable<CheckpointSource['readRange']>, path: string, e: SafetensorsEntry, name: string, piece: number,
): Promise<Float32Array> {
  const data = new Float32Array(numel(e.shape));
  const width = (e.end - e.start) / Math.max(1, data.length); // piece % 4 == 0: whole elements of every dtype
  for (let at = e.start; at < e.end; at += piece) {
    const end = Math.min(e.end, at + piece);
    const bytes = await readRange(path, at, end);
    if (!bytes || bytes.length < end - at) {
      throw new FormatError(name, `file ends at byte ${at + (bytes?.length ?? 0)}, inside the tensor's data [${e.start}, ${e.end}) (truncated file?)`, e.name);
    }
    const first = (at - e.start) / width;
    decodeInto(e.dtype, bytes, data, first);
    const decoded = data.subarray(first, first + bytes.length / width);
    checkFinite(decoded, e, name, first, data);
  }
  return data;
}
