/**
 * Device tensors and the op entry points.
 *
 * A `Tensor` is a backend buffer plus a row-major shape. Each op checks the shapes of
 * its arguments, then dispatches to the backend kernel of the same name with the sizes
 * spelled out. Ops write into a preallocated output (first argument, as in llama2.c),
 * so a model allocates its activations once and the token loop allocates nothing.
 */
import type { Backend, Buf } from '../backend/backend.js';
import { numel, type HostTensor } from './dtype.js';
import { packMatrix, storedFormat, type WeightFormat } from './weight-format.js';

export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShapeError';
  }
}

export class Tensor {
  constructor(
    readonly backend: Backend,
    readonly buf: Buf,
    readonly shape: readonly number[],
  ) {
    if (numel(shape) > buf.length) {
      throw new ShapeError(`shape [${shape}] needs ${numel(shape)} elements, buffer has ${buf.length}`);
    }
  }
  static zeros(backend: Backend, shape: readonly number[]): Tensor {
    return new Tensor(backend, backend.alloc(Math.max(1, numel(shape))), shape);
  }
  static fromArray(backend: Backend, shape: readonly number[], data: Float32Array): Tensor {
    if (data.length !== numel(shape)) {
      throw new ShapeError(`data has ${data.length} elements, shape [${shape}] needs ${numel(shape)}`);
    }
    const t = Tensor.zeros(backend, shape);
    backend.write(t.buf, data);
    return t;
  }
  /**
   * A 2-D weight matrix held in `format` (default: as stored, 16-bit stays 16-bit) where the
   * backend holds that format (Backend.weightFormats), else in f32 as fromArray: a backend
   * without narrower formats computes exactly as before. `format` on the result says which.
   */
  static weights(backend: Backend, t: HostTensor, format?: WeightFormat): Tensor {
    if (t.shape.length !== 2) throw new ShapeError(`a weight matrix must be 2-D, got [${t.shape}]`);
    const want = format ?? storedFormat(t);
    if (t.held) {
      if (want !== t.held.format) throw new Error(`a weight matrix read straight into the backend as ${t.held.format} cannot be held as ${want}`);
      const w = new Tensor(backend, t.held.buf, t.shape);
      w.format = want;
      return w;
    }
    if (want !== 'f32' && backend.uploadWeights && backend.weightFormats?.includes(want)) {
      const w = new Tensor(backend, backend.uploadWeights(packMatrix(t, want)), t.shape);
      w.format = want;
      return w;
    }
    return Tensor.fromArray(backend, t.shape, t.data);
  }
  /** how the buffer holds the values: f32, or a weight format (Tensor.weights) that only matmul and embedding read */
  format: WeightFormat = 'f32';
  get size(): number {
    return numel(this.shape);
  }
  /** The same buffer seen with another shape of at most as many elements (a view, no copy). */
  view(shape: readonly number[]): Tensor {
    return new Tensor(this.backend, this.buf, shape);
  }
  async toArray(): Promise<Float32Array> {
    const out = new Float32Array(this.size);
    await this.backend.read(this.buf, out);
    return out;
  }
  free(): void {
    this.backend.free(this.buf);
  }
}

function fail(op: string, msg: string): never {
  throw new ShapeError(`${op}: ${msg}`);
}
const fmt = (t: Tensor) => `[${t.shape.join(', ')}]`;

function rows(t: Tensor): number {
  return t.size / t.shape[t.shape.length - 1]!;
}
function last(t: Tensor): number {
  return t.shape[t.shape.length - 1]!;
}

/** out (T, D) = table[ids] with table (V, D) */
export function embedding(out: Tensor, table: Tensor, ids: Int32Array): void {
  const [V, D] = table.shape as [number, number];
  if (table.shape.length !== 2) fail('embedding', `table must be 2-D, got ${fmt(table)}`);
  if (out.size !== ids.length * D) fail('embedding', `out ${fmt(out)} does not hold ${ids.length} x ${D}`);
  for (const id of ids) if (!(id >= 0 && id < V)) fail('embedding', `token id ${id} outside vocabulary [0, ${V})`);
  out.backend.embedding(out.buf, table.buf, ids, D);
}

/** out = rmsnorm(x) * w over the last axis */
export function rmsnorm(out: Tensor, x: Tensor, w: Tensor, eps: number): void {
  const D = last(x);
  if (w.size !== D) fail('rmsnorm', `weight ${fmt(w)} does not match last axis of x ${fmt(x)}`);
  if (out.size !== x.size) fail('rmsnorm', `out ${fmt(out)} vs x ${fmt(x)}`);
  x.backend.rmsnorm(out.buf, x.buf, w.buf, rows(x), D, eps);
}

/** out (T, N) = x (T, K) @ w (N, K)^T */
export function matmul(out: Tensor, x: Tensor, w: Tensor): void {
  if (w.shape.length !== 2) fail('matmul', `weight must be 2-D, got ${fmt(w)}`);
  const [N, K] = w.shape as [number, number];
  if (last(x) !== K) fail('matmul', `x ${fmt(x)} last axis must be ${K} for weight ${fmt(w)}`);
  const T = rows(x);
  if (out.size !== T * N) fail('matmul', `out ${fmt(out)} must hold ${T} x ${N}`);
  x.backend.matmul(out.buf, x.buf, w.buf, T, K, N);
}

function sameSize(op: string, ...ts: Tensor[]): number {
  const n = ts[0]!.size;
  for (const t of ts) if (t.size !== n) fail(op, `sizes differ: ${ts.map(fmt).join(' vs ')}`);
  return n;
}

export function add(out: Tensor, a: Tensor, b: Tensor): void {
  out.backend.add(out.buf, a.buf, b.buf, sameSize('add', out, a, b));
}
export function mul(out: Tensor, a: Tensor, b: Tensor): void {
  out.backend.mul(out.buf, a.buf, b.buf, sameSize('mul', out, a, b));
}
/** out = silu(gate) * up */
export function siluGate(out: Tensor, gate: Tensor, up: Tensor): void {
  out.backend.siluGate(out.buf, gate.buf, up.buf, sameSize('siluGate', out, gate, up));
}

/** rotary embedding in place; x (T, nHeads, hd), one position per token, invFreq (hd/2) from rope.ts */
export function rope(x: Tensor, positions: Int32Array, invFreq: Float64Array): void {
  if (x.shape.length !== 3) fail('rope', `x must be (T, heads, head_dim), got ${fmt(x)}`);
  const [T, H, hd] = x.shape as [number, number, number];
  if (positions.length !== T) fail('rope', `${positions.length} positions for ${T} tokens`);
  if (hd % 2) fail('rope', `head_dim ${hd} must be even`);
  if (invFreq.length !== hd / 2) fail('rope', `${invFreq.length} frequencies for head_dim ${hd} (need ${hd / 2})`);
  x.backend.rope(x.buf, positions, T, H, hd, invFreq);
}

/** x += bias on every row, in place: bias (N) with N the size of x's trailing axes (q (T, H, hd) takes a bias of H * hd) */
export function addBias(x: Tensor, bias: Tensor): void {
  const N = bias.size;
  let trailing = 1;
  for (let a = x.shape.length - 1; a >= 0 && trailing < N; a--) trailing *= x.shape[a]!;
  if (trailing !== N) fail('addBias', `bias ${fmt(bias)} does not match the trailing axes of x ${fmt(x)}`);
  if (bias.buf === x.buf) fail('addBias', 'the bias shares x\'s buffer');
  x.backend.addBias(x.buf, bias.buf, x.size / N, N);
}

/**
 * out, q: (T, H, hd); kCache, vCache: (slots, KVH, hd) already holding this batch's keys
 * and values at slots [past, past + T); mask: (T, past + T) additive, or null for causal.
 */
export function attention(
  out: Tensor,
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  past: number,
  mask: Float32Array | null,
): void {
  if (q.shape.length !== 3 || kCache.shape.length !== 3) fail('attention', `q ${fmt(q)} and cache ${fmt(kCache)} must be 3-D`);
  const [T, H, hd] = q.shape as [number, number, number];
  const [slots, KVH, hd2] = kCache.shape as [number, number, number];
  if (hd2 !== hd) fail('attention', `head_dim of q ${hd} vs cache ${hd2}`);
  if (H % KVH) fail('attention', `${H} query heads not divisible by ${KVH} kv heads`);
  if (vCache.size !== kCache.size) fail('attention', `k cache ${fmt(kCache)} vs v cache ${fmt(vCache)}`);
  if (past + T > slots) fail('attention', `past ${past} + T ${T} exceeds cache slots ${slots}`);
  if (out.size !== q.size) fail('attention', `out ${fmt(out)} vs q ${fmt(q)}`);
  if (mask) {
    const S = past + T;
    if (mask.length !== T * S) fail('attention', `mask has ${mask.length} entries, expected ${T} x ${S}`);
    for (let t = 0; t < T; t++) {
      let any = false;
      for (let s = 0; s < S && !any; s++) any = mask[t * S + s] !== -Infinity;
      if (!any) fail('attention', `mask row ${t} hides every slot`);
    }
  }
  q.backend.attention(out.buf, q.buf, kCache.buf, vCache.buf, { T, nHeads: H, nKvHeads: KVH, headDim: hd, past, mask });
}

export function softmax(out: Tensor, x: Tensor): void {
  sameSize('softmax', out, x);
  x.backend.softmax(out.buf, x.buf, rows(x), last(x));
}

/** out (rows) = argmax over the last axis of x, as f32 indices */
export function argmax(out: Tensor, x: Tensor): void {
  if (out.size < rows(x)) fail('argmax', `out ${fmt(out)} smaller than ${rows(x)} rows`);
  x.backend.argmax(out.buf, x.buf, rows(x), last(x));
}

/** copy n elements: dst[dstOffset..] = src[srcOffset..] */
export function copy(dst: Tensor, dstOffset: number, src: Tensor, srcOffset: number, n: number): void {
  if (dstOffset < 0 || srcOffset < 0 || dstOffset + n > dst.buf.length || srcOffset + n > src.buf.length) {
    fail('copy', `range out of bounds (dst ${dstOffset}+${n} of ${dst.buf.length}, src ${srcOffset}+${n} of ${src.buf.length})`);
  }
  if (dst.buf === src.buf && dstOffset < srcOffset + n && srcOffset < dstOffset + n) fail('copy', 'overlapping ranges');
  dst.backend.copy(dst.buf, dstOffset, src.buf, srcOffset, n);
}
