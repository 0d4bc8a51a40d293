/**
 * Little-endian byte helpers shared by the weight formats. Weight files are
 * little-endian; on a little-endian host (every host this runs on in practice) a
 * block copy is enough, otherwise we fall back to a DataView element by element.
 * Every reader copies, so the returned arrays never alias the file bytes.
 */
import { f16ToF32, type DType } from '../tensor/dtype.js';

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** n little-endian f32 values starting at bytes[offset], copied into a new array. */
export function readF32(bytes: Uint8Array, offset: number, n: number): Float32Array {
  const out = new Float32Array(n);
  if (HOST_LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + 4 * n));
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, 4 * n);
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  }
  return out;
}

/** n little-endian u16 values starting at bytes[offset], copied into a new array. */
export function readU16(bytes: Uint8Array, offset: number, n: number): Uint16Array {
  const out = new Uint16Array(n);
  if (HOST_LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + 2 * n));
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, 2 * n);
    for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true);
  }
  return out;
}

export function writeF32(dst: Uint8Array, offset: number, data: Float32Array): void {
  if (HOST_LITTLE_ENDIAN) {
    dst.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
  } else {
    const dv = new DataView(dst.buffer, dst.byteOffset + offset, data.byteLength);
    for (let i = 0; i < data.length; i++) dv.setFloat32(4 * i, data[i]!, true);
  }
}

export function writeU16(dst: Uint8Array, offset: number, data: Uint16Array): void {
  if (HOST_LITTLE_ENDIAN) {
    dst.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
  } else {
    const dv = new DataView(dst.buffer, dst.byteOffset + offset, data.byteLength);
    for (let i = 0; i < data.length; i++) dv.setUint16(2 * i, data[i]!, true);
  }
}

let f16Table: Float32Array | undefined;

/** every IEEE half bit pattern's f32 value, a 64K-entry table built on first use */
function f16Widening(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}

/** Widen IEEE half bit patterns to f32 through a 64K-entry table (built on first use). */
export function widenF16(h: Uint16Array): Float32Array {
  const table = f16Widening();
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = table[h[i]!]!;
  return out;
}

/** Widen bfloat16 bit patterns to f32: a bf16 is the top half of an f32. */
export function widenBF16(h: Uint16Array): Float32Array {
  const bits = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) bits[i] = h[i]! << 16;
  return new Float32Array(bits.buffer);
}

/**
 * Decode little-endian F32/F16/BF16 `bytes` into out[at, at + bytes.length / width): the
 * step that turns a file's bytes into f32 weights, one piece of a tensor at a time, with no
 * copy of the whole tensor in its stored dtype.
 */
export function decodeInto(dtype: DType, bytes: Uint8Array, out: Float32Array, at: number): void {
  if (dtype === 'F32') {
    const n = bytes.length >> 2;
    if (HOST_LITTLE_ENDIAN) new Uint8Array(out.buffer, out.byteOffset + 4 * at, 4 * n).set(bytes.subarray(0, 4 * n));
    else out.set(readF32(bytes, 0, n), at);
    return;
  }
  const n = bytes.length >> 1;
  // a u16 view needs an even byte offset; an odd one (a subarray of a file) is copied first
  const h = HOST_LITTLE_ENDIAN && bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : readU16(bytes, 0, n);
  if (dtype === 'BF16') {
    const bits = new Int32Array(out.buffer, out.byteOffset + 4 * at, n); // a bf16 is the top half of an f32 (int32: no unsigned conversion)
    for (let i = 0; i < n; i++) bits[i] = h[i]! << 16;
  } else {
    const table = f16Widening();
    for (let i = 0; i < n; i++) out[at + i] = table[h[i]!]!;
  }
}

/** Index of the first F16 / BF16 bit pattern of a NaN or ±Inf (exponent all ones) in h, or -1. */
export function firstNonFinite16(h: Uint16Array, dtype: 'F16' | 'BF16'): number {
  const exponent = dtype === 'F16' ? 0x7c00 : 0x7f80;
  for (let i = 0; i < h.length; i++) if ((h[i]! & exponent) === exponent) return i;
  return -1;
}

/** The F16 / BF16 bit patterns in little-endian `bytes` (whatever the host's byte order), as numbers from `at`. */
export function u16At(bytes: Uint8Array, i: number): number {
  return bytes[2 * i]! | (bytes[2 * i + 1]! << 8);
}

/** firstNonFinite16 over little-endian bytes: the index of the first NaN or ±Inf pattern, or -1 */
export function firstNonFinite16Bytes(bytes: Uint8Array, dtype: 'F16' | 'BF16'): number {
  const exponent = dtype === 'F16' ? 0x7c00 : 0x7f80;
  for (let i = 0; 2 * i + 1 < bytes.length; i++) if ((u16At(bytes, i) & exponent) === exponent) return i;
  return -1;
}

/** Copy little-endian 16-bit `bytes` into out[at, at + bytes.length / 2), as they are (no widening). */
export function copyU16Into(bytes: Uint8Array, out: Uint16Array, at: number): void {
  const n = bytes.length >> 1;
  if (HOST_LITTLE_ENDIAN) new Uint8Array(out.buffer, out.byteOffset + 2 * at, 2 * n).set(bytes.subarray(0, 2 * n));
  else out.set(readU16(bytes, 0, n), at);
}

/** Index of the first NaN or ±Inf in data, or -1. */
export function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    // x - x is 0 for every finite x and NaN for NaN and ±Inf
    if (data[i]! - data[i]! !== 0) return i;
  }
  return -1;
}

/** "NaN at index 7 (element [1, 3] of shape [2, 4])", for error messages. */
export function describeNonFinite(data: ArrayLike<number>, shape: readonly number[], index: number, value = data[index]): string {
  const coords: number[] = [];
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d--) {
    coords.unshift(rest % shape[d]!);
    rest = Math.floor(rest / shape[d]!);
  }
  return `non-finite value ${value} at index ${index} (element [${coords.join(', ')}] of shape [${shape.join(', ')}])`;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
