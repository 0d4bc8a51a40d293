/**
 * GGML's block quantizations Q8_0 and Q4_0, the reference (scalar) versions: what a GGUF
 * file stores, bit for bit as llama.cpp's quantize_row_q8_0_ref / quantize_row_q4_0_ref
 * write it, and the f32 values those bytes stand for.
 *
 * A row is cut into blocks of 32 values; each block keeps one f16 scale d and 32 small
 * integers q:
 *
 *   Q8_0  34 bytes: d (f16), then 32 int8 q                    x = d * q
 *         d = max|x| / 127, q = round-half-away-from-zero(x * (1 / d))
 *   Q4_0  18 bytes: d (f16), then 16 bytes of 4-bit q          x = d * (q - 8)
 *         d = m / -8 where m is the value of largest magnitude (sign kept), so m itself maps
 *         to q = 0 and the other values fall in [-8, 8); q = min(15, trunc(x * (1 / d) + 8.5))
 *         byte j holds element j in its low nibble and element j + 16 in its high nibble
 *
 * Every step is f32 arithmetic (Math.fround), as in C: d and 1/d are f32, the product x * id
 * is rounded to f32 before rounding to an integer, and d is stored rounded to f16 (nearest
 * even) while the quantization used the unrounded f32 d. Dequantizing multiplies the f16 d,
 * widened to f32, by q.
 */
import { f16ToF32, f32ToF16 } from './dtype.js';

/** values per block, both types */
export const QK = 32;
/** bytes of one Q8_0 block: f16 scale + 32 int8 */
export const Q8_0_BLOCK_BYTES = 2 + QK;
/** bytes of one Q4_0 block: f16 scale + 32 nibbles */
export const Q4_0_BLOCK_BYTES = 2 + QK / 2;

const Q8_MAX = 127; // (1 << 7) - 1
const Q4_OFFSET = 8; // q = 8 stands for 0
const Q4_MAX = 15;
const Q4_ROUND = 8.5; // Q4_OFFSET + 0.5: truncation of x / d + 8.5 rounds to the nearest q
const F16_EXPONENT_MASK = 0x7c00; // all ones: Inf or NaN

export type BlockType = 'Q8_0' | 'Q4_0';

export const BLOCK_BYTES: Record<BlockType, number> = { Q8_0: Q8_0_BLOCK_BYTES, Q4_0: Q4_0_BLOCK_BYTES };

/** bytes that n values take in `type` (n a multiple of 32) */
export function blockBytes(type: BlockType, n: number): number {
  if (n % QK !== 0) throw new RangeError(`${type} holds whole blocks of ${QK} values; ${n} is not a multiple of ${QK}`);
  return (n / QK) * BLOCK_BYTES[type];
}

/** C's roundf: halves round away from zero (Math.round rounds them up) */
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** the f16 bits of a scale; a scale f16 cannot hold is an error, not an infinity in the file */
function scaleBits(d: number, type: BlockType): number {
  const h = f32ToF16(d);
  if ((h & F16_EXPONENT_MASK) === F16_EXPONENT_MASK) throw new RangeError(`${type}: block scale ${d} does not fit in f16 (values too large or not finite)`);
  return h;
}

/** x (length a multiple of 32) as Q8_0 blocks */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array(blockBytes('Q8_0', x.length));
  const dv = new DataView(out.buffer);
  for (let b = 0, at = 0; b < x.length; b += QK, at += Q8_0_BLOCK_BYTES) {
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[b + j]!));
    const d = Math.fround(amax / Q8_MAX);
    const id = d ? Math.fround(1 / d) : 0;
    dv.setUint16(at, scaleBits(d, 'Q8_0'), true);
    for (let j = 0; j < QK; j++) dv.setInt8(at + 2 + j, roundHalfAway(Math.fround(x[b + j]! * id)));
  }
  return out;
}

/** x (length a multiple of 32) as Q4_0 blocks */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array(blockBytes('Q4_0', x.length));
  const dv = new DataView(out.buffer);
  const half = QK / 2;
  for (let b = 0, at = 0; b < x.length; b += QK, at += Q4_0_BLOCK_BYTES) {
    let amax = 0, max = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[b + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -Q4_OFFSET);
    const id = d ? Math.fround(1 / d) : 0;
    dv.setUint16(at, scaleBits(d, 'Q4_0'), true);
    const nibble = (v: number) => Math.min(Q4_MAX, Math.trunc(Math.fround(Math.fround(v * id) + Q4_ROUND)));
    for (let j = 0; j < half; j++) out[at + 2 + j] = nibble(x[b + j]!) | (nibble(x[b + half + j]!) << 4);
  }
  return out;
}

/** Q8_0 blocks (n values) back to f32, written to out[at, at + n) */
export function dequantizeQ8_0(blocks: Uint8Array, out: Float32Array, at = 0): void {
  const dv = new DataView(blocks.buffer, blocks.byteOffset, blocks.byteLength);
  for (let p = 0, o = at; p + Q8_0_BLOCK_BYTES <= blocks.length; p += Q8_0_BLOCK_BYTES, o += QK) {
    const d = f16ToF32(dv.getUint16(p, true));
    for (let j = 0; j < QK; j++) out[o + j] = d * dv.getInt8(p + 2 + j);
  }
}

/** Q4_0 blocks (n values) back to f32, written to out[at, at + n) */
export function dequantizeQ4_0(blocks: Uint8Array, out: Float32Array, at = 0): void {
  const dv = new DataView(blocks.buffer, blocks.byteOffset, blocks.byteLength);
  const half = QK / 2;
  for (let p = 0, o = at; p + Q4_0_BLOCK_BYTES <= blocks.length; p += Q4_0_BLOCK_BYTES, o += QK) {
    const d = f16ToF32(dv.getUint16(p, true));
    for (let j = 0; j < half; j++) {
      const byte = blocks[p + 2 + j]!;
      out[o + j] = d * ((byte & 0xf) - Q4_OFFSET);
      out[o + half + j] = d * ((byte >> 4) - Q4_OFFSET);
    }
  }
}

/** the values of `type` blocks, as f32 */
export function dequantizeBlocks(type: BlockType, blocks: Uint8Array, out: Float32Array, at = 0): void {
  if (type === 'Q8_0') dequantizeQ8_0(blocks, out, at);
  else dequantizeQ4_0(blocks, out, at);
}

export function quantizeBlocks(type: BlockType, x: Float32Array): Uint8Array {
  return type === 'Q8_0' ? quantizeQ8_0(x) : quantizeQ4_0(x);
}
