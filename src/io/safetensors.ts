/**
 * safetensors: the Hugging Face weight file format.
 *
 *   [u64 little-endian N][N bytes of UTF-8 JSON header][data section]
 *
 * The header maps each tensor name to {dtype, shape, data_offsets: [start, end]} with
 * offsets relative to the data section, plus an optional "__metadata__" object of
 * string values. Tensors must tile the data section exactly: no overlap, no gap, no
 * trailing bytes (the rules of the reference implementation). We read F32, F16 and
 * BF16 (widened to f32) and reject NaN/Inf, which in a weight file is always a bug.
 */
import { bf16ToF32, DTYPE_BYTES, f16ToF32, f32ToBF16, f32ToF16, keepSixteenBit, numel, type DType, type HostTensor, type TensorMap } from '../tensor/dtype.js';
import { copyU16Into, decodeInto, describeNonFinite, firstNonFinite, firstNonFinite16, shapeString, writeF32, writeU16 } from './bytes.js';
import { FormatError } from './errors.js';

/** The reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';
/** the u64 header length that opens the file */
export const HEADER_LENGTH_BYTES = 8;

export interface Safetensors {
  tensors: TensorMap;
  metadata: Record<string, string>;
}

/** One validated header entry; start/end are absolute offsets into the file. */
export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  offsets: [number, number]; // as written, relative to the data section
  start: number;
  end: number;
}

/** A validated header: the tensors in file order, and the bytes their data spans. */
export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  dataStart: number; // first byte after the header
  dataEnd: number; // one past the last tensor's last byte: the file's size
}

export interface ParseOptions {
  /** keep F16 / BF16 tensors 16-bit (HostTensor.stored; `data` widens only when read) instead of widening them */
  keepSixteenBit?: boolean;
}

/** Parse and fully validate a safetensors file. `source` names it in error messages. */
export function parseSafetensors(bytes: Uint8Array, source: string, opts: ParseOptions = {}): Safetensors {
  const headerLen = readHeaderLength(bytes, bytes.length, source);
  const header = parseSafetensorsHeader(bytes.subarray(HEADER_LENGTH_BYTES, HEADER_LENGTH_BYTES + headerLen), bytes.length, source);
  const tensors: TensorMap = new Map();
  for (const e of header.entries) {
    if (opts.keepSixteenBit && e.dtype !== 'F32') {
      const bits = new Uint16Array(numel(e.shape));
      copyU16Into(bytes.subarray(e.start, e.end), bits, 0);
      tensors.set(e.name, sixteenBitTensor(e, bits, source));
      continue;
    }
    const data = new Float32Array(numel(e.shape));
    decodeInto(e.dtype, bytes.subarray(e.start, e.end), data, 0);
    checkFinite(data, e, source);
    tensors.set(e.name, { shape: e.shape, data });
  }
  return { tensors, metadata: header.metadata };
}

/** A 16-bit tensor kept as read, refused (naming the value) when it holds a NaN or Inf pattern. */
export function sixteenBitTensor(e: Pick<SafetensorsEntry, 'name' | 'shape' | 'dtype'>, bits: Uint16Array, source: string): HostTensor {
  const dtype = e.dtype as 'F16' | 'BF16';
  const bad = firstNonFinite16(bits, dtype);
  if (bad >= 0) throw new FormatError(source, describeNonFinite(bits, e.shape, bad, (dtype === 'F16' ? f16ToF32 : bf16ToF32)(bits[bad]!)), e.name);
  return keepSixteenBit(e.shape, dtype, bits);
}

/**
 * The header length from the file's first 8 bytes, checked against the reference limit and,
 * when `fileSize` is known, against the file.
 */
export function readHeaderLength(first: Uint8Array, fileSize: number | undefined, source: string): number {
  if (first.length < HEADER_LENGTH_BYTES) {
    throw new FormatError(source, `file is ${first.length} bytes, too short for the 8-byte header length`);
  }
  const dv = new DataView(first.buffer, first.byteOffset, HEADER_LENGTH_BYTES);
  // u64 as two u32 halves; exact below 2^53, and anything near that is rejected as absurd
  const headerLen = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
  if (headerLen > MAX_HEADER_BYTES) {
    throw new FormatError(source, `header length ${headerLen} is absurdly large (limit ${MAX_HEADER_BYTES} bytes)`);
  }
  if (fileSize !== undefined && HEADER_LENGTH_BYTES + headerLen > fileSize) {
    throw new FormatError(source, `header length ${headerLen} runs past the end of the ${fileSize}-byte file`);
  }
  return headerLen;
}

/**
 * Validate the JSON header (the `headerLen` bytes after the length). With `fileSize` the
 * tensors must tile the rest of the file exactly; without it (a file read in ranges, size
 * unknown) they must tile from the header's end up to the last tensor, and the caller checks
 * that the file ends there.
 */
export function parseSafetensorsHeader(raw: Uint8Array, fileSize: number | undefined, source: string): SafetensorsHeader {
  const header = parseHeaderJson(raw, source);
  const dataStart = HEADER_LENGTH_BYTES + raw.length;
  const metadata = parseMetadata(header[METADATA_KEY], source);
  const entries: SafetensorsEntry[] = [];
  for (const [name, rawEntry] of Object.entries(header)) {
    if (name === METADATA_KEY) continue;
    entries.push(parseEntry(name, rawEntry, dataStart, fileSize === undefined ? Infinity : fileSize - dataStart, source));
  }
  const dataLen = fileSize === undefined ? entries.reduce((m, e) => Math.max(m, e.end - dataStart), 0) : fileSize - dataStart;
  const sorted = checkTiling(entries, dataStart, dataLen, source);
  return { entries: sorted, metadata, dataStart, dataEnd: dataStart + dataLen };
}

/** A tensor's f32 values must be finite: NaN or Inf in a weight file is always a bug. */
export function checkFinite(data: Float32Array, e: Pick<SafetensorsEntry, 'name' | 'shape'>, source: string, offset = 0, whole = data): void {
  const bad = firstNonFinite(data);
  if (bad >= 0) throw new FormatError(source, describeNonFinite(whole, e.shape, offset + bad), e.name);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function parseHeaderJson(raw: Uint8Array, source: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new FormatError(source, 'header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new FormatError(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) throw new FormatError(source, 'header JSON is not an object');
  return header;
}

function parseMetadata(raw: unknown, source: string): Record<string, string> {
  if (raw === undefined) return {};
  if (!isPlainObject(raw)) throw new FormatError(source, `"${METADATA_KEY}" must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') {
      throw new FormatError(source, `"${METADATA_KEY}" value for "${k}" must be a string, got ${JSON.stringify(v)}`);
    }
    out[k] = v;
  }
  return out;
}

const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function parseEntry(name: string, raw: unknown, dataStart: number, dataLen: number, source: string): SafetensorsEntry {
  const fail = (problem: string): never => {
    throw new FormatError(source, problem, name);
  };
  if (!isPlainObject(raw)) return fail('header entry is not an object');
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (raw[field] === undefined) fail(`header entry has no "${field}"`);
  }
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    fail(`unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
  }
  if (!Array.isArray(shape)) return fail(`shape must be an array, got ${JSON.stringify(shape)}`);
  for (const d of shape) {
    if (!isIndex(d)) fail(`shape ${JSON.stringify(shape)} has dimension ${JSON.stringify(d)}; dims must be non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
    return fail(`data_offsets must be two non-negative integers [start, end], got ${JSON.stringify(offsets)}`);
  }
  const [start, end] = offsets as [number, number];
  if (end < start) fail(`data_offsets [${start}, ${end}]: end is before start`);
  if (end > dataLen) fail(`data_offsets [${start}, ${end}] run past the end of the ${dataLen}-byte data section`);
  const dt = dtype as DType;
  const expected = numel(shape as number[]) * DTYPE_BYTES[dt];
  if (end - start !== expected) {
    fail(
      `data_offsets [${start}, ${end}] hold ${end - start} bytes, but shape ${shapeString(shape as number[])} ` +
        `of ${dt} needs ${expected}`,
    );
  }
  return { name, dtype: dt, shape: shape as number[], offsets: [start, end], start: dataStart + start, end: dataStart + end };
}

/** The tensors, sorted by offset, must cover the data section exactly once; returns them sorted. */
function checkTiling(entries: SafetensorsEntry[], dataStart: number, dataLen: number, source: string): SafetensorsEntry[] {
  const sorted = [...entries].sort((a, b) => a.start - b.start || a.end - b.end);
  let covered = dataStart; // every byte before this belongs to some tensor
  let last: SafetensorsEntry | undefined;
  for (const e of sorted) {
    if (e.start === e.end && e.start <= covered) continue; // an empty tensor takes no bytes
    if (e.start < covered) {
      throw new FormatError(
        source,
        `data_offsets [${e.offsets.join(', ')}] overlap tensor "${last!.name}" [${last!.offsets.join(', ')}]`,
        e.name,
      );
    }
    if (e.start > covered) {
      throw new FormatError(
        source,
        `bytes [${covered - dataStart}, ${e.start - dataStart}) of the data section are not covered by any tensor`,
      );
    }
    covered = e.end;
    last = e;
  }
  if (covered !== dataStart + dataLen) {
    throw new FormatError(
      source,
      `${dataStart + dataLen - covered} trailing bytes after the last tensor are not covered by any tensor`,
    );
  }
  return sorted;
}

export interface SerializeOptions {
  /** storage dtype of every tensor (default F32) */
  dtype?: DType;
  /** string key/values stored under "__metadata__" */
  metadata?: Record<string, string>;
  /** names the output in error messages (default "safetensors output") */
  source?: string;
}

/**
 * Write tensors as safetensors: names sorted, data contiguous in that order, header
 * padded with spaces so the data section starts 8-byte aligned. Refuses what the reader
 * would refuse (bad shapes, NaN/Inf, values that overflow F16/BF16).
 */
export function serializeSafetensors(tensors: TensorMap, opts: SerializeOptions = {}): Uint8Array {
  const dtype = opts.dtype ?? 'F32';
  const source = opts.source ?? 'safetensors output';
  if (!Object.hasOwn(DTYPE_BYTES, dtype)) throw new FormatError(source, `unsupported dtype ${JSON.stringify(dtype)}`);
  const width = DTYPE_BYTES[dtype];
  const names = [...tensors.keys()].sort();

  // encode first, so a value that does not fit fails before anything is written
  const encoded: (Float32Array | Uint16Array)[] = [];
  for (const name of names) {
    const t = tensors.get(name)!;
    if (name === METADATA_KEY) throw new FormatError(source, 'name is reserved for metadata', name);
    if (!t.shape.every(isIndex) || t.data.length !== numel(t.shape)) {
      throw new FormatError(source, `shape ${JSON.stringify(t.shape)} does not describe ${t.data.length} values`, name);
    }
    const bad = firstNonFinite(t.data);
    if (bad >= 0) throw new FormatError(source, describeNonFinite(t.data, t.shape, bad), name);
    encoded.push(dtype === 'F32' ? t.data : narrow(t.data, t.shape, dtype, source, name));
  }

  const parts: string[] = [];
  if (opts.metadata) parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(opts.metadata)}`);
  let offset = 0;
  names.forEach((name, i) => {
    const end = offset + encoded[i]!.length * width;
    const entry = { dtype, shape: tensors.get(name)!.shape, data_offsets: [offset, end] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    offset = end;
  });
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const header = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20); // pad with spaces
  header.set(json);

  const out = new Uint8Array(8 + header.length + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, header.length, true); // u64 low half; high half stays 0
  out.set(header, 8);
  let at = 8 + header.length;
  for (const data of encoded) {
    if (data instanceof Float32Array) writeF32(out, at, data);
    else writeU16(out, at, data);
    at += data.length * width;
  }
  return out;
}

/** f32 -> F16/BF16 bit patterns, round to nearest even; overflow to Inf is an error. */
function narrow(data: Float32Array, shape: number[], dtype: 'F16' | 'BF16', source: string, name: string): Uint16Array {
  const out = new Uint16Array(data.length);
  const convert = dtype === 'F16' ? f32ToF16 : f32ToBF16;
  const expMask = dtype === 'F16' ? 0x7c00 : 0x7f80; // all-ones exponent means Inf/NaN
  for (let i = 0; i < data.length; i++) {
    const h = convert(data[i]!);
    if ((h & expMask) === expMask) {
      throw new FormatError(source, `value ${data[i]} at index ${i} of shape ${shapeString(shape)} overflows ${dtype}`, name);
    }
    out[i] = h;
  }
  return out;
}
