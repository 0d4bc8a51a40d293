/**
 * The GGUF container (llama.cpp's weight file), without any model in it: the header's
 * key/value metadata and tensor table, written and read with every field checked.
 *
 *   "GGUF"  u32 version (2 or 3; both little-endian, same layout)
 *   u64 tensor count, u64 metadata count
 *   metadata:  string key, u32 value type, value        (strings: u64 byte length + UTF-8)
 *   tensors:   string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset
 *   padding to general.alignment (default 32), then the data section: each tensor at its
 *   offset (relative to the section, a multiple of the alignment), padded to the alignment
 *
 * Dims are listed fastest-first: ne[0] is the length of a row, so a row-major [out, in]
 * matrix has ne = [in, out].
 *
 * The reader never trusts a length: every count is checked against the bytes it would need
 * before anything is allocated, the header must end within MAX_HEADER_BYTES, and running out
 * of file is a FormatError saying where, never a RangeError or a huge allocation.
 */
import { FormatError } from './errors.js';
import { BLOCK_BYTES, QK } from '../tensor/quant-blocks.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
const READABLE_VERSIONS = [2, 3];
export const DEFAULT_ALIGNMENT = 32;
export const ALIGNMENT_KEY = 'general.alignment';
/** a header (metadata + tensor table) larger than this is refused: real ones are tens of MB */
export const MAX_HEADER_BYTES = 256 * 2 ** 20;
/** GGML_MAX_DIMS */
const MAX_DIMS = 4;
/** GGML_MAX_NAME: names are stored in 64-byte fields, NUL included */
const MAX_NAME_BYTES = 63;

/** The metadata value types, by their number in the file. */
const VALUE_TYPES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'] as const;
export type GgufValueType = (typeof VALUE_TYPES)[number];
type NumberType = Exclude<GgufValueType, 'bool' | 'string' | 'array'>;
const NUMBER_BYTES: Record<NumberType, number> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 };

export type GgufValue =
  | { type: NumberType; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: Exclude<GgufValueType, 'array'>; value: (number | string | boolean)[] }
  | { type: 'array'; itemType: 'array'; value: GgufValue[] };

/** ggml's tensor types by number: the ones read and written here carry their block layout */
export const GGML_TYPE_NAMES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K',
  13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S',
  22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16', 34: 'TQ1_0',
  35: 'TQ2_0', 39: 'MXFP4',
};
export type GgmlType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0';
/** values per block and bytes per block of each supported type */
const LAYOUT: Record<GgmlType, { id: number; block: number; bytes: number }> = {
  F32: { id: 0, block: 1, bytes: 4 },
  F16: { id: 1, block: 1, bytes: 2 },
  BF16: { id: 30, block: 1, bytes: 2 },
  Q8_0: { id: 8, block: QK, bytes: BLOCK_BYTES.Q8_0 },
  Q4_0: { id: 2, block: QK, bytes: BLOCK_BYTES.Q4_0 },
};
const TYPE_BY_ID = new Map(Object.entries(LAYOUT).map(([name, l]) => [l.id, name as GgmlType]));

/** the bytes a tensor of `type` with dims `ne` takes, or a reason it cannot be stored */
export function tensorBytes(type: GgmlType, ne: readonly number[]): number | string {
  const { block, bytes } = LAYOUT[type];
  if (ne[0]! % block !== 0) return `${type} stores rows in blocks of ${block}, and the row length ne[0] = ${ne[0]} is not a multiple of ${block}`;
  let n = 1;
  for (const d of ne) n *= d;
  return (n / block) * bytes;
}

/** One entry of the tensor table. */
export interface GgufTensorInfo {
  name: string;
  type: GgmlType;
  /** ne: fastest-first */
  dims: number[];
  /** offset in the data section, as written */
  offset: number;
  /** absolute byte range in the file */
  start: number;
  end: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** first byte of the data section */
  dataStart: number;
  /** one past the last tensor's last byte */
  dataEnd: number;
}

const alignUp = (n: number, alignment: number) => Math.ceil(n / alignment) * alignment;

// ---------------------------------------------------------------------------- writing

/** A tensor to write: its table entry and its stored bytes. */
export interface GgufTensorOut {
  name: string;
  type: GgmlType;
  dims: number[];
  /** the stored bytes (exactly tensorBytes(type, dims) of them), made when the writer reaches it */
  bytes: () => Uint8Array;
}

/** Growing little-endian byte buffer for the header. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private readonly utf8 = new TextEncoder();

  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const grown = new Uint8Array(Math.max(2 * this.buf.length, this.length + n));
      grown.set(this.buf.subarray(0, this.length));
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  // room() may replace buf and view: take the offset first, then read them
  u32(v: number) { const at = this.room(4); this.view.setUint32(at, v, true); }
  u64(v: number) { const at = this.room(8); this.view.setBigUint64(at, BigInt(v), true); }
  string(s: string) {
    const bytes = this.utf8.encode(s);
    this.u64(bytes.length);
    const at = this.room(bytes.length);
    this.buf.set(bytes, at);
  }
  number(type: NumberType, v: number) {
    const at = this.room(NUMBER_BYTES[type]);
    const dv = this.view;
    switch (type) {
      case 'u8': return dv.setUint8(at, v);
      case 'i8': return dv.setInt8(at, v);
      case 'u16': return dv.setUint16(at, v, true);
      case 'i16': return dv.setInt16(at, v, true);
      case 'u32': return dv.setUint32(at, v, true);
      case 'i32': return dv.setInt32(at, v, true);
      case 'f32': return dv.setFloat32(at, v, true);
      case 'u64': return dv.setBigUint64(at, BigInt(v), true);
      case 'i64': return dv.setBigInt64(at, BigInt(v), true);
      case 'f64': return dv.setFloat64(at, v, true);
    }
  }
  item(type: Exclude<GgufValueType, 'array'>, v: number | string | boolean) {
    if (type === 'string') this.string(v as string);
    else if (type === 'bool') { const at = this.room(1); this.view.setUint8(at, v ? 1 : 0); }
    else this.number(type, v as number);
  }
  value(v: GgufValue) {
    if (v.type !== 'array') return this.item(v.type, v.value);
    this.u32(VALUE_TYPES.indexOf(v.itemType));
    this.u64(v.value.length);
    if (v.itemType === 'array') for (const inner of v.value as GgufValue[]) this.typedValue(inner);
    else for (const x of v.value as (number | string | boolean)[]) this.item(v.itemType, x);
  }
  typedValue(v: GgufValue) {
    this.u32(VALUE_TYPES.indexOf(v.type));
    this.value(v);
  }
  pad(alignment: number) { this.room(alignUp(this.length, alignment) - this.length); }
  bytes(): Uint8Array { return this.buf.slice(0, this.length); }
}

/**
 * A GGUF file as pieces, in order: the header (padded to the alignment), then each tensor's
 * bytes and its padding. The tensor bytes are made one at a time as the pieces are taken,
 * so a large model is written without holding all of it encoded at once. `size` is the
 * file's length.
 */
export function ggufPieces(metadata: [string, GgufValue][], tensors: GgufTensorOut[], source = 'GGUF output'): { size: number; pieces: Iterable<Uint8Array> } {
  const alignmentEntry = metadata.find(([k]) => k === ALIGNMENT_KEY)?.[1];
  const alignment = alignmentEntry?.type === 'u32' ? alignmentEntry.value : DEFAULT_ALIGNMENT;
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, value] of metadata) {
    w.string(key);
    w.typedValue(value);
  }
  const sizes: number[] = [];
  let offset = 0;
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new FormatError(source, 'two tensors have this name', t.name);
    names.add(t.name);
    const size = tensorBytes(t.type, t.dims);
    if (typeof size === 'string') throw new FormatError(source, size, t.name);
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(LAYOUT[t.type].id);
    w.u64(offset);
    sizes.push(size);
    offset = alignUp(offset + size, alignment);
  }
  w.pad(alignment);
  const header = w.bytes();
  function* pieces(): Iterable<Uint8Array> {
    yield header;
    for (let i = 0; i < tensors.length; i++) {
      const bytes = tensors[i]!.bytes();
      if (bytes.length !== sizes[i]) throw new FormatError(source, `encoded to ${bytes.length} bytes, expected ${sizes[i]}`, tensors[i]!.name);
      yield bytes;
      const padding = alignUp(sizes[i]!, alignment) - sizes[i]!;
      if (padding) yield new Uint8Array(padding);
    }
  }
  return { size: header.length + offset, pieces: pieces() };
}

/** The whole file in one array (small models; ggufPieces for large ones). */
export function concatPieces({ size, pieces }: { size: number; pieces: Iterable<Uint8Array> }): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------- reading

/** thrown by the parser when it needs bytes past those it was given; the reader fetches more */
class NeedMore {
  constructor(readonly end: number) {}
}

/** Reads fields from the header bytes we have, checking each against what is left. */
class ByteReader {
  pos = 0;
  private readonly view: DataView;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });

  /** `complete`: the bytes are the whole file (or all of it there is), so running out is an error */
  constructor(private readonly bytes: Uint8Array, private readonly complete: boolean, private readonly source: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  fail(problem: string, tensor?: string): never {
    throw new FormatError(this.source, problem, tensor);
  }
  /** n more bytes must be there, for `what` */
  need(n: number, what: string): number {
    const end = this.pos + n;
    if (end > MAX_HEADER_BYTES) this.fail(`${what} at byte ${this.pos} would take the header past ${MAX_HEADER_BYTES} bytes (a corrupt count or length?)`);
    if (end > this.bytes.length) {
      if (this.complete) this.fail(`file ends at byte ${this.bytes.length}, inside ${what} (at byte ${this.pos}, ${n} bytes; truncated file?)`);
      throw new NeedMore(end);
    }
    const at = this.pos;
    this.pos = end;
    return at;
  }
  u32(what: string): number { return this.view.getUint32(this.need(4, what), true); }
  /** a u64 that must be a safe integer (counts, lengths, dims, offsets) */
  count(what: string): number {
    const at = this.need(8, what);
    const v = this.view.getUint32(at, true) + this.view.getUint32(at + 4, true) * 2 ** 32;
    if (!Number.isSafeInteger(v)) this.fail(`${what} is ${this.view.getBigUint64(at, true)}, absurdly large (corrupt file?)`);
    return v;
  }
  string(what: string): string {
    const length = this.count(`the length of ${what}`);
    const at = this.need(length, `${what} (${length} bytes)`);
    try {
      return this.utf8.decode(this.bytes.subarray(at, at + length));
    } catch {
      return this.fail(`${what} at byte ${at} is not valid UTF-8`);
    }
  }
  valueType(what: string): GgufValueType {
    const t = this.u32(`the value type of ${what}`);
    const type = VALUE_TYPES[t];
    if (type === undefined) this.fail(`${what} has value type ${t}, not a GGUF type (0..${VALUE_TYPES.length - 1})`);
    return type;
  }
  number(type: NumberType, what: string): number {
    const at = this.need(NUMBER_BYTES[type], what);
    const dv = this.view;
    switch (type) {
      case 'u8': return dv.getUint8(at);
      case 'i8': return dv.getInt8(at);
      case 'u16': return dv.getUint16(at, true);
      case 'i16': return dv.getInt16(at, true);
      case 'u32': return dv.getUint32(at, true);
      case 'i32': return dv.getInt32(at, true);
      case 'f32': return dv.getFloat32(at, true);
      case 'u64': return Number(dv.getBigUint64(at, true));
      case 'i64': return Number(dv.getBigInt64(at, true));
      case 'f64': return dv.getFloat64(at, true);
    }
  }
  item(type: Exclude<GgufValueType, 'array'>, what: string): number | string | boolean {
    if (type === 'string') return this.string(what);
    if (type === 'bool') {
      const b = this.view.getUint8(this.need(1, what));
      if (b > 1) this.fail(`${what} is a bool stored as ${b} (only 0 and 1 are booleans)`);
      return b === 1;
    }
    return this.number(type, what);
  }
  value(type: GgufValueType, what: string, depth = 0): GgufValue {
    if (type !== 'array') return { type, value: this.item(type, what) } as GgufValue;
    const itemType = this.valueType(`the items of ${what}`);
    const length = this.count(`the length of ${what}`);
    // every item takes at least its fixed size (strings: their 8-byte length): a length the
    // header cannot hold is refused before anything is allocated
    const least = itemType === 'string' || itemType === 'array' ? 8 : itemType === 'bool' ? 1 : NUMBER_BYTES[itemType];
    if (length * least > MAX_HEADER_BYTES) this.fail(`${what} claims ${length} items, more than a ${MAX_HEADER_BYTES}-byte header holds (corrupt length?)`);
    if (itemType !== 'string' && itemType !== 'array') {
      const start = this.pos;
      this.need(length * least, `the ${length} items of ${what}`); // all there before allocating
      this.pos = start;
    }
    if (itemType === 'array') {
      if (depth >= MAX_DIMS) this.fail(`${what} nests arrays more than ${MAX_DIMS} deep`);
      const items: GgufValue[] = [];
      for (let i = 0; i < length; i++) items.push(this.value('array', `${what}[${i}]`, depth + 1));
      return { type: 'array', itemType, value: items };
    }
    const items: (number | string | boolean)[] = new Array(itemType === 'string' ? 0 : length);
    if (itemType === 'string') for (let i = 0; i < length; i++) items.push(this.string(`${what}[${i}]`));
    else for (let i = 0; i < length; i++) items[i] = this.item(itemType, `${what}[${i}]`);
    return { type: 'array', itemType, value: items };
  }
}

/**
 * Parse and check the header in `bytes` (the file's start). With `complete` false, throws
 * NeedMore when the header runs past the bytes given.
 */
function parseHeader(bytes: Uint8Array, complete: boolean, source: string): GgufHeader {
  const r: ByteReader = new ByteReader(bytes, complete, source);
  const magic = r.u32('the magic number');
  if (magic !== GGUF_MAGIC) {
    const text = String.fromCharCode(...bytes.subarray(0, 4)).replace(/[^\x20-\x7e]/g, '?');
    r.fail(`not a GGUF file: it starts with "${text}", not "GGUF"`);
  }
  const version = r.u32('the version');
  if (!READABLE_VERSIONS.includes(version)) r.fail(`GGUF version ${version} is not supported (supported: ${READABLE_VERSIONS.join(', ')})`);
  const tensorCount = r.count('the tensor count');
  const kvCount = r.count('the metadata count');
  const MIN_TENSOR_INFO = 8 + 4 + 4 + 8, MIN_KV = 8 + 4 + 1;
  if (tensorCount * MIN_TENSOR_INFO > MAX_HEADER_BYTES) r.fail(`tensor count ${tensorCount} is absurd (a header of at most ${MAX_HEADER_BYTES} bytes holds far fewer)`);
  if (kvCount * MIN_KV > MAX_HEADER_BYTES) r.fail(`metadata count ${kvCount} is absurd (a header of at most ${MAX_HEADER_BYTES} bytes holds far fewer)`);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = r.string(`metadata key ${i}`);
    if (metadata.has(key)) r.fail(`metadata key "${key}" appears twice`);
    metadata.set(key, r.value(r.valueType(`metadata "${key}"`), `metadata "${key}"`));
  }
  const alignment = readAlignment(metadata, r);

  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string(`the name of tensor ${i}`);
    if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) r.fail(`tensor name is longer than ${MAX_NAME_BYTES} bytes`, name);
    if (names.has(name)) r.fail('two tensors have this name', name);
    names.add(name);
    const nDims = r.u32('its dimension count');
    if (nDims < 1 || nDims > MAX_DIMS) r.fail(`has ${nDims} dimensions (1 to ${MAX_DIMS} allowed)`, name);
    const dims: number[] = [];
    let n = 1;
    for (let d = 0; d < nDims; d++) {
      const ne = r.count(`ne[${d}] of tensor "${name}"`);
      if (ne < 1) r.fail(`ne[${d}] is 0 (every dimension must be at least 1)`, name);
      n *= ne;
      if (!Number.isSafeInteger(n)) r.fail(`dims [${[...dims, ne].join(', ')}] hold an absurd number of values`, name);
      dims.push(ne);
    }
    const typeId = r.u32('its type');
    const type = TYPE_BY_ID.get(typeId);
    if (type === undefined) {
      const known = GGML_TYPE_NAMES[typeId];
      r.fail(`${known ? `tensor type ${known} (${typeId})` : `unknown tensor type ${typeId}`} is not supported (supported: ${Object.keys(LAYOUT).join(', ')})`, name);
    }
    const offset = r.count(`the offset of tensor "${name}"`);
    if (offset % alignment !== 0) r.fail(`offset ${offset} is not a multiple of the alignment ${alignment}`, name);
    const size = tensorBytes(type, dims);
    if (typeof size === 'string') r.fail(size, name);
    tensors.push({ name, type, dims, offset, start: offset, end: offset + size });
  }
  const dataStart = alignUp(r.pos, alignment);
  let dataEnd = dataStart;
  for (const t of tensors) {
    t.start += dataStart;
    t.end += dataStart;
    if (!Number.isSafeInteger(t.end)) r.fail(`offset ${t.offset} is absurd`, t.name);
    dataEnd = Math.max(dataEnd, t.end);
  }
  checkNoOverlap(tensors, source);
  return { version, metadata, tensors, alignment, dataStart, dataEnd };
}

function readAlignment(metadata: Map<string, GgufValue>, r: ByteReader): number {
  const v = metadata.get(ALIGNMENT_KEY);
  if (v === undefined) return DEFAULT_ALIGNMENT;
  if (v.type !== 'u32') r.fail(`${ALIGNMENT_KEY} must be a u32, got a ${v.type}`);
  const a = v.value as number;
  if (a === 0 || (a & (a - 1)) !== 0) r.fail(`${ALIGNMENT_KEY} ${a} is not a power of two`);
  return a;
}

function checkNoOverlap(tensors: GgufTensorInfo[], source: string): void {
  const sorted = [...tensors].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const before = sorted[i - 1]!, t = sorted[i]!;
    if (t.start < before.end) {
      throw new FormatError(source, `data [${t.offset}, ${t.offset + t.end - t.start}) overlaps tensor "${before.name}" [${before.offset}, ${before.offset + before.end - before.start})`, t.name);
    }
  }
}

/** Bytes [start, end) of the file (fewer where it ends first). */
export type ReadRange = (start: number, end: number) => Promise<Uint8Array | undefined>;

/** the first fetch of a header; each further one doubles it */
const FIRST_HEADER_READ = 1 << 20;

/**
 * Read and check a GGUF header through ranged reads: the file's start, then more (doubling)
 * as long as the header runs on, up to MAX_HEADER_BYTES. Also checks that the file reaches
 * the last tensor's last byte, so that nothing is allocated for data that is not there.
 */
export async function readGgufHeader(readRange: ReadRange, source: string): Promise<GgufHeader> {
  let want = FIRST_HEADER_READ;
  for (;;) {
    const bytes = (await readRange(0, want)) ?? new Uint8Array(0);
    const complete = bytes.length < want;
    let header: GgufHeader;
    try {
      header = parseHeader(bytes, complete, source);
    } catch (e) {
      if (!(e instanceof NeedMore)) throw e;
      want = Math.min(MAX_HEADER_BYTES, 2 * want); // doubling: a corrupt length stops at the end of the file, not at its claim
      continue;
    }
    if (header.dataEnd > header.dataStart) {
      const last = await readRange(header.dataEnd - 1, header.dataEnd);
      if (!last || last.length < 1) {
        const furthest = header.tensors.reduce((a, b) => (b.end > a.end ? b : a));
        throw new FormatError(source, `the file ends before byte ${header.dataEnd}, where this tensor's data ends (truncated file?)`, furthest.name);
      }
    }
    return header;
  }
}

/** Parse a whole GGUF file held in memory. */
export function parseGgufHeader(bytes: Uint8Array, source: string): GgufHeader {
  const header = parseHeader(bytes, true, source);
  if (header.dataEnd > bytes.length) {
    const furthest = header.tensors.reduce((a, b) => (b.end > a.end ? b : a));
    throw new FormatError(source, `the ${bytes.length}-byte file ends before byte ${header.dataEnd}, where this tensor's data ends (truncated file?)`, furthest.name);
  }
  return header;
}

/** the GGUF tensor type of ggml's type number, for error messages */
export function ggmlTypeName(id: number): string {
  return GGML_TYPE_NAMES[id] ?? `type ${id}`;
}
