/**
 * Weight matrices of the SIMD CPU backend in 16 and 8 bits (src/tensor/weight-format.ts says
 * what the formats are): their buffers in the arena, and the plain TypeScript definitions the
 * wasm kernels (wasm.ts) are checked against, operation for operation.
 *
 * A CpuWeightBuf holds its matrix in one or two arena blocks, each 16-aligned:
 *   f32          values (N, K)
 *   f16, bf16    16-bit values (N, K)
 *   q8_0         int8 quants (N, Kp), Kp = K rounded up to 32, and f32 scales (N, Kp / 32)
 * Rows [n0, n1) of any of them start at a fixed byte offset per row, so a matmul can be split
 * by output rows (wasm.ts: every kernel takes the matrix as offsets, N and its strides).
 */
import type { Buf } from '../backend.js';
import { packedBytes, q8PaddedK, unpackRows, type PackedMatrix, type WeightFormat } from '../../tensor/weight-format.js';
import { QK } from '../../tensor/quant-blocks.js';
import type { Arena } from './arena.js';
import { READ_AHEAD_BYTES } from './wasm.js';

/** the weight formats the SIMD CPU backend keeps (f32 is every backend's) */
export const CPU_WEIGHT_FORMATS: readonly WeightFormat[] = ['f32', 'f16', 'bf16', 'q8_0'];

/** A (N, K) weight matrix in the arena, in `format`. `length` counts weights, N * K. */
export class CpuWeightBuf implements Buf {
  readonly format: WeightFormat;
  readonly N: number;
  readonly K: number;
  readonly length: number;
  /** byte offset of the values (f32, 16-bit) or the quants (q8_0) */
  readonly byteOffset: number;
  /** byte offset of the q8_0 scales (-1 for the other formats) */
  readonly scalesOffset: number;
  private readonly scalesOwner = {}; // the scales' block has an owner of its own, so each block is freed once

  /** `m` copied into the arena, or (m a format and shape only) zero-filled, for `write` to fill */
  constructor(m: PackedMatrix | { format: 'f16' | 'bf16'; N: number; K: number }, readonly arena: Arena) {
    this.format = m.format;
    this.N = m.N;
    this.K = m.K;
    this.length = m.N * m.K;
    const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    this.byteOffset = arena.alloc(this.mainBytes + READ_AHEAD_BYTES, this); // the kernels touch up to READ_AHEAD_BYTES past a row
    this.scalesOffset = m.format === 'q8_0' ? arena.alloc(Math.max(m.N * (q8PaddedK(m.K) / QK) * 4, 1), this.scalesOwner) : -1;
    if ('data' in m) this.write(bytes(m.data), 0);
    else if ('bits' in m) this.write(bytes(m.bits), 0);
    else if ('quants' in m) {
      this.write(bytes(m.quants), 0);
      new Uint8Array(arena.buffer, this.scalesOffset, m.scales.byteLength).set(bytes(m.scales));
    }
  }

  /** bytes of the values (f32, 16-bit) or the quants (q8_0) */
  private get mainBytes(): number {
    return this.format === 'f32' ? 4 * this.length : this.format === 'q8_0' ? this.N * q8PaddedK(this.K) : 2 * this.length;
  }

  /** bytes [byteOffset, byteOffset + bytes.length) of the values (the quants of q8_0), as stored in memory */
  write(bytes: Uint8Array, byteOffset: number): void {
    if (!(byteOffset >= 0 && byteOffset + bytes.length <= this.mainBytes)) {
      throw new RangeError(`cpu writeWeights: bytes [${byteOffset}, ${byteOffset + bytes.length}) outside the ${this.mainBytes} bytes of a ${this.format} [${this.N}, ${this.K}] matrix`);
    }
    new Uint8Array(this.arena.buffer, this.byteOffset + byteOffset, bytes.length).set(bytes);
  }

  /** bytes the matrix takes in the arena */
  get bytes(): number {
    return packedBytes(this.format, this.N, this.K);
  }

  /** the matrix as a PackedMatrix over the arena (views: valid until the arena grows) */
  view(): PackedMatrix {
    const { N, K, arena } = this;
    if (this.format === 'f32') return { format: 'f32', N, K, data: new Float32Array(arena.buffer, this.byteOffset, N * K) };
    if (this.format === 'q8_0') {
      const Kp = q8PaddedK(K);
      return { format: 'q8_0', N, K, quants: new Int8Array(arena.buffer, this.byteOffset, N * Kp), scales: new Float32Array(arena.buffer, this.scalesOffset, (N * Kp) / QK) };
    }
    return { format: this.format, N, K, bits: new Uint16Array(arena.buffer, this.byteOffset, N * K) };
  }

  /** rows [row0, row0 + rows) as f32 into out[at ..] (an embedding lookup) */
  readRows(row0: number, rows: number, out: Float32Array, at: number): void {
    unpackRows(this.view(), row0, rows, out, at);
  }

  /** dst.length values from element `offset` on (row-major), as f32 */
  readValues(dst: Float32Array, offset: number): void {
    const K = this.K, row0 = Math.floor(offset / K), row1 = Math.ceil((offset + dst.length) / K);
    if (offset % K === 0 && dst.length % K === 0) return this.readRows(row0, row1 - row0, dst, 0);
    const rows = new Float32Array((row1 - row0) * K);
    this.readRows(row0, row1 - row0, rows, 0);
    dst.set(rows.subarray(offset - row0 * K, offset - row0 * K + dst.length));
  }

  free(): void {
    this.arena.free(this.byteOffset, this);
    if (this.scalesOffset >= 0) this.arena.free(this.scalesOffset, this.scalesOwner);
  }
}

const f = Math.fround;

/** round to nearest, ties to even (f32x4.nearest, f32.nearest) */
function nearest(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The plain definitions of the Q8_0 kernels, f32 rounding after every operation in the
 * kernels' order (lane l of a vector accumulator sums elements l, l + 4, l + 8, ...), so the
 * SIMD results must equal them bit for bit. 16-bit weights need none: their kernel is the f32
 * matmul on widened values, bit for bit.
 */
export const q8Reference = {
  /** quantizeQ8 of one row x[xo, xo + K) into quants q[qo, qo + Kp) and scales s[so ..] */
  quantizeRow(x: Float32Array, xo: number, K: number, q: Int8Array, qo: number, s: Float32Array, so: number): void {
    const Kp = q8PaddedK(K);
    for (let b = 0; b < Kp; b += QK) {
      const end = Math.min(K, b + QK);
      let amax = 0;
      for (let k = b; k < end; k++) {
        const a = Math.abs(x[xo + k]!);
        amax = Number.isNaN(a) || Number.isNaN(amax) ? NaN : Math.max(amax, a);
      }
      const d = f(amax / 127), id = d !== 0 ? f(1 / d) : 0; // NaN != 0: id = 1 / NaN
      s[so + b / QK] = d;
      for (let k = b; k < b + QK; k++) {
        const v = k < end ? nearest(f(x[xo + k]! * id)) : 0;
        q[qo + k] = Number.isNaN(v) ? 0 : Math.max(-128, Math.min(127, v));
      }
    }
  },

  /** one output of matmulQ8F32: x[xo, xo + K) f32 against quant row q[qo ..] with scales s[so ..] */
  dotF32(x: Float32Array, xo: number, K: number, q: Int8Array, qo: number, s: Float32Array, so: number): number {
    const acc = [0, 0, 0, 0];
    const full = K & ~(QK - 1), K4 = K & ~3;
    const block = (from: number, to: number, b: number) => {
      const bacc = [0, 0, 0, 0];
      for (let k = from; k < to; k += 4) for (let l = 0; l < 4; l++) bacc[l] = f(bacc[l]! + f(x[xo + k + l]! * q[qo + k + l]!));
      for (let l = 0; l < 4; l++) acc[l] = f(acc[l]! + f(bacc[l]! * s[so + b]!));
    };
    for (let k = 0; k < full; k += QK) block(k, k + QK, k / QK);
    const partial = K % QK !== 0;
    if (partial) block(full, K4, full / QK);
    let sum = f(f(acc[0]! + acc[1]!) + f(acc[2]! + acc[3]!));
    if (partial) {
      let ts = 0;
      for (let k = K4; k < K; k++) ts = f(ts + f(x[xo + k]! * q[qo + k]!));
      sum = f(sum + f(ts * s[so + full / QK]!));
    }
    return sum;
  },

  /** one output of matmulQ8Q8: quantized x row against a weight row, Kp = K rounded up to 32 */
  dotQ8(xq: Int8Array, xo: number, xs: Float32Array, xso: number, K: number, q: Int8Array, qo: number, s: Float32Array, so: number): number {
    const acc = [0, 0, 0, 0];
    const Kp = q8PaddedK(K);
    for (let b = 0; b < Kp; b += QK) {
      // i32x4 lane l: bytes 2l, 2l + 1 of each 8-byte quarter (dot_i16x8_s), quarters summed (0 + 1) + (2 + 3), exact
      const scale = f(xs[xso + b / QK]! * s[so + b / QK]!);
      for (let l = 0; l < 4; l++) {
        let isum = 0;
        for (let quarter = 0; quarter < 4; quarter++) {
          for (let e = 0; e < 2; e++) {
            const k = b + 8 * quarter + 2 * l + e;
            isum += xq[xo + k]! * q[qo + k]!;
          }
        }
        acc[l] = f(acc[l]! + f(isum * scale));
      }
    }
    return f(f(acc[0]! + acc[1]!) + f(acc[2]! + acc[3]!));
  },
};
