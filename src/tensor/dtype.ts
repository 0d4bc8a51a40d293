import type { Buf } from '../backend/backend.js';

/** Storage dtypes of weight files: widened to f32 on load, or kept 16-bit (keepSixteenBit) for a backend that holds them. */
export type DType = 'F32' | 'F16' | 'BF16';

export const DTYPE_BYTES: Record<DType, number> = { F32: 4, F16: 2, BF16: 2 };

/** A tensor held in host memory: row-major f32 data with its shape. */
export interface HostTensor {
  shape: number[];
  /** the values as f32 (a tensor kept 16-bit widens on the first read of this, and keeps the result) */
  data: Float32Array;
  /**
   * the file's values as stored, for a tensor read to stay narrow: 16-bit (keepSixteenBit) or
   * llama.cpp's Q8_0 blocks of 34 bytes (keepQ8_0 in weight-format.ts)
   */
  stored?: { dtype: 'F16' | 'BF16'; bits: Uint16Array } | { dtype: 'Q8_0'; blocks: Uint8Array };
  /**
   * a weight matrix read straight into a backend's buffer (Backend.allocWeights), in this
   * 16-bit format: there is no host copy, and `data` throws (Llama.readWeight reads it back)
   */
  held?: { buf: Buf; format: 'f16' | 'bf16' };
}

/** how many values a tensor holds, counted without widening a narrow one */
export function valueCount(t: HostTensor): number {
  if (t.held) return numel(t.shape);
  if (!t.stored) return t.data.length;
  return t.stored.dtype === 'Q8_0' ? (t.stored.blocks.length / Q8_0_BYTES) * Q8_0_VALUES : t.stored.bits.length;
}
const Q8_0_BYTES = 34; // a Q8_0 block: f16 scale + 32 int8 (tensor/quant-blocks.ts)
const Q8_0_VALUES = 32;

/**
 * A tensor that stays in its file's 16-bit dtype: a backend that holds 16-bit weights takes
 * `stored` as it is; `data` widens to f32 only when something asks for it.
 */
export function keepSixteenBit(shape: number[], dtype: 'F16' | 'BF16', bits: Uint16Array): HostTensor {
  let data: Float32Array | undefined;
  return {
    shape,
    stored: { dtype, bits },
    get data(): Float32Array {
      if (!data) {
        const widen = dtype === 'F16' ? f16ToF32 : bf16ToF32;
        data = new Float32Array(bits.length);
        for (let i = 0; i < bits.length; i++) data[i] = widen(bits[i]!);
      }
      return data;
    },
  };
}

export type TensorMap = Map<string, HostTensor>;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half (as a 16-bit integer) to f32, including subnormals, inf and NaN. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** f32 to IEEE half, round to nearest even; overflow becomes inf. */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const e = (b >>> 23) & 0xff;
  let m = b & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  let exp = e - 127 + 15;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    m |= 0x800000;
    const shift = 14 - exp;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (exp << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** f32 to bfloat16, round to nearest even (NaN stays NaN). */
export function f32ToBF16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}
