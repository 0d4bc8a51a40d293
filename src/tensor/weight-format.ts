/**
 * Weight matrices in memory narrower than f32: what a backend may hold a (N, K) matrix as,
 * and the host-side packing that feeds it.
 *
 *   f32    4 bytes a weight
 *   f16    IEEE half bits, 2 bytes        (widening to f32 is exact: same weights as f32 decoding)
 *   bf16   bfloat16 bits, 2 bytes         (the top half of an f32: likewise exact)
 *   q8_0   llama.cpp's Q8_0: blocks of 32 weights along K, each an int8 times one scale,
 *          about 1.06 bytes a weight (one f32 scale per 32 int8 in memory)
 *
 * A 16-bit matrix read from a 16-bit file keeps the file's bits (never widened on the way);
 * one read as f32 is narrowed (round to nearest even). Q8_0 quantizes as llama.cpp does
 * (src/tensor/quant-blocks.ts: d = max|x| / 127 rounded to f16, q = round-half-away(x / d)),
 * so a model quantized on load computes with the weights a Q8_0 file of it would hold.
 *
 * In memory Q8_0 keeps quants and scales apart (a row of quants is K rounded up to 32
 * bytes, the padding 0): the SIMD kernel reads a block of quants as two aligned vectors.
 */
import { f16ToF32, f32ToBF16, f32ToF16, numel, type HostTensor } from './dtype.js';
import { dequantizeQ8_0, QK, Q8_0_BLOCK_BYTES, quantizeQ8_0 } from './quant-blocks.js';

export type WeightFormat = 'f32' | 'f16' | 'bf16' | 'q8_0';
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['f32', 'f16', 'bf16', 'q8_0'];

/** A (N, K) weight matrix, row-major, packed in `format`. */
export type PackedMatrix =
  | { format: 'f32'; N: number; K: number; data: Float32Array }
  | { format: 'f16' | 'bf16'; N: number; K: number; bits: Uint16Array }
  | { format: 'q8_0'; N: number; K: number; quants: Int8Array; scales: Float32Array }; // (N, Kp), (N, Kp / 32)

/** K rounded up to whole Q8_0 blocks: the length of a row of quants */
export function q8PaddedK(K: number): number {
  return Math.ceil(K / QK) * QK;
}

/** bytes a (N, K) matrix takes in `format` */
export function packedBytes(format: WeightFormat, N: number, K: number): number {
  if (format === 'f32') return 4 * N * K;
  if (format === 'q8_0') return N * q8PaddedK(K) * (1 + 4 / QK);
  return 2 * N * K;
}

/** parse a format name, for options; the error lists the choices */
export function parseWeightFormat(name: string, what = 'weights'): WeightFormat {
  const lower = name.toLowerCase() as WeightFormat;
  if (!WEIGHT_FORMATS.includes(lower)) throw new RangeError(`${what} must be one of ${WEIGHT_FORMATS.join(', ')}, got ${JSON.stringify(name)}`);
  return lower;
}

/** the format a tensor is stored in: its file's narrow dtype, else f32 */
export function storedFormat(t: HostTensor): WeightFormat {
  return t.held ? t.held.format : t.stored ? STORED_FORMAT[t.stored.dtype] : 'f32';
}
const STORED_FORMAT = { F16: 'f16', BF16: 'bf16', Q8_0: 'q8_0' } as const;

/**
 * A (N, K) tensor that stays in llama.cpp's Q8_0 blocks as a file holds them (K a multiple of
 * 32, rows of K / 32 blocks of 34 bytes): a backend holding Q8_0 computes with exactly the
 * file's weights; `data` dequantizes only when something asks for it.
 */
export function keepQ8_0(shape: number[], blocks: Uint8Array): HostTensor {
  const n = numel(shape);
  const rowLength = shape[shape.length - 1] ?? 1;
  if (rowLength % QK !== 0) throw new RangeError(`keepQ8_0: Q8_0 rows are whole blocks of ${QK}; shape [${shape}] has rows of ${rowLength}`);
  if (blocks.length !== (n / QK) * Q8_0_BLOCK_BYTES) throw new RangeError(`keepQ8_0: ${blocks.length} bytes are not the Q8_0 blocks of shape [${shape}] (${(n / QK) * Q8_0_BLOCK_BYTES})`);
  let data: Float32Array | undefined;
  return {
    shape,
    stored: { dtype: 'Q8_0', blocks },
    get data(): Float32Array {
      if (!data) dequantizeQ8_0(blocks, (data = new Float32Array(n)));
      return data;
    },
  };
}

/**
 * `t` (N, K) packed in `format`. 16-bit bits of the same dtype are taken as they are (no
 * copy); anything else goes through f32 a row at a time, so a 16-bit tensor is never
 * widened whole.
 */
export function packMatrix(t: HostTensor, format: WeightFormat): PackedMatrix {
  if (t.shape.length !== 2) throw new RangeError(`packMatrix: a weight matrix is 2-D, got shape [${t.shape}]`);
  const [N, K] = t.shape as [number, number];
  const stored = t.stored;
  if (format === 'f32' && !stored) return { format, N, K, data: t.data };
  if (stored && stored.dtype !== 'Q8_0' && format === storedFormat(t)) return { format: format as 'f16' | 'bf16', N, K, bits: stored.bits };
  const rowBlocks = Math.ceil(K / QK);
  if (stored?.dtype === 'Q8_0' && format === 'q8_0') return splitBlocks(stored.blocks, N, K, rowBlocks);
  const row = new Float32Array(format === 'q8_0' ? q8PaddedK(K) : K); // a q8_0 row is padded with zeros
  const readRow = (n: number) => {
    if (!stored) row.set(t.data.subarray(n * K, n * K + K));
    else if (stored.dtype === 'Q8_0') dequantizeQ8_0(stored.blocks.subarray(n * rowBlocks * Q8_0_BLOCK_BYTES, (n + 1) * rowBlocks * Q8_0_BLOCK_BYTES), row);
    else widenInto(stored.bits.subarray(n * K, n * K + K), storedFormat(t), row);
  };
  if (format === 'f32') {
    const data = new Float32Array(N * K);
    for (let n = 0; n < N; n++) {
      readRow(n);
      data.set(row, n * K);
    }
    return { format, N, K, data };
  }
  if (format === 'q8_0') {
    const quants = new Int8Array(N * row.length), scales = new Float32Array(N * rowBlocks);
    for (let n = 0; n < N; n++) {
      readRow(n);
      const m = splitBlocks(quantizeQ8_0(row), 1, K, rowBlocks); // llama.cpp's 34-byte blocks: f16 d, 32 int8
      quants.set(m.quants, n * row.length);
      scales.set(m.scales, n * rowBlocks);
    }
    return { format, N, K, quants, scales };
  }
  const bits = new Uint16Array(N * K), narrow = format === 'f16' ? f32ToF16 : f32ToBF16;
  for (let n = 0; n < N; n++) {
    readRow(n);
    for (let k = 0; k < K; k++) bits[n * K + k] = narrow(row[k]!);
  }
  return { format, N, K, bits };
}

/** llama.cpp's Q8_0 blocks of N rows (rowBlocks blocks each) as quants and f32 scales apart */
function splitBlocks(blocks: Uint8Array, N: number, K: number, rowBlocks: number): PackedMatrix & { format: 'q8_0' } {
  const Kp = rowBlocks * QK, quants = new Int8Array(N * Kp), scales = new Float32Array(N * rowBlocks);
  const dv = new DataView(blocks.buffer, blocks.byteOffset, blocks.byteLength);
  for (let b = 0; b < N * rowBlocks; b++) {
    scales[b] = f16ToF32(dv.getUint16(b * Q8_0_BLOCK_BYTES, true));
    quants.set(new Int8Array(blocks.buffer, blocks.byteOffset + b * Q8_0_BLOCK_BYTES + 2, QK), b * QK);
  }
  return { format: 'q8_0', N, K, quants, scales };
}

/** rows [row0, row0 + rows) of m as f32 into out[at ..]: the exact values the weights stand for */
export function unpackRows(m: PackedMatrix, row0: number, rows: number, out: Float32Array, at = 0): void {
  const { K } = m;
  if (m.format === 'f32') {
    out.set(m.data.subarray(row0 * K, (row0 + rows) * K), at);
  } else if (m.format === 'q8_0') {
    const Kp = q8PaddedK(K), blocks = Kp / QK;
    for (let r = 0; r < rows; r++) {
      const q = (row0 + r) * Kp, s = (row0 + r) * blocks, o = at + r * K;
      for (let k = 0; k < K; k++) out[o + k] = m.scales[s + Math.floor(k / QK)]! * m.quants[q + k]!;
    }
  } else {
    widenInto(m.bits.subarray(row0 * K, (row0 + rows) * K), m.format, out.subarray(at));
  }
}

/** the whole matrix as f32 */
export function unpackMatrix(m: PackedMatrix): Float32Array {
  const out = new Float32Array(numel([m.N, m.K]));
  unpackRows(m, 0, m.N, out);
  return out;
}

let f16Table: Float32Array | undefined; // every half's f32 value, built on first use

function widenInto(bits: Uint16Array, format: WeightFormat, out: Float32Array): void {
  if (format === 'bf16') {
    const u = new Uint32Array(out.buffer, out.byteOffset, bits.length); // bf16 is the top half of an f32
    for (let i = 0; i < u.length; i++) u[i] = bits[i]! << 16;
    return;
  }
  if (!f16Table) {
    f16Table = new Float32Array(1 << 16);
    for (let h = 0; h < f16Table.length; h++) f16Table[h] = f16ToF32(h);
  }
  for (let i = 0; i < bits.length; i++) out[i] = f16Table[bits[i]!]!;
}

