/**
 * A backend is storage (alloc / write / read / free) plus a small set of named kernels.
 *
 * Every buffer holds f32 elements, except weight matrices a backend may hold narrower
 * (16-bit, Q8_0: see `weightFormats`), which only `matmul` and `embedding` read. Kernels take their output first (as in llama2.c)
 * and receive every size explicitly; shape checking happens one level up, in
 * `src/tensor/tensor.ts`, so kernels stay tiny. Kernels are "enqueue" operations: the CPU
 * backend runs them at once, the WebGPU backend records them and runs them in order;
 * `read` is the only point where the host waits.
 *
 * Host-side integer inputs (token ids, positions) and attention masks are passed as
 * typed arrays; a GPU backend copies them into scratch buffers it owns (grown rarely,
 * never freed in the token loop).
 */
import type { PackedMatrix, WeightFormat } from '../tensor/weight-format.js';

export interface Buf {
  /** number of f32 elements */
  readonly length: number;
}

export interface AttentionParams {
  T: number; // new tokens (queries) in this batch
  nHeads: number; // H query heads
  nKvHeads: number; // KVH key/value heads; query head h reads kv head floor(h / (H / KVH))
  headDim: number; // hd
  past: number; // cache slots [0, past) written by earlier batches
  /**
   * Additive mask, row-major (T, past + T): 0 where query t may attend to slot s, -Infinity
   * where it may not (the slot then contributes nothing at all, see `attention`). `null`
   * means causal: query t sees slots [0, past + t]. Every row must allow at least one slot.
   */
  mask: Float32Array | null;
}

/** What a backend can hold, so a model too big for it fails before allocating, saying why. */
export interface BackendCapacity {
  /** bytes of every buffer together */
  totalBytes?: number;
  /** bytes of one buffer */
  bufferBytes?: number;
  /** where the limit comes from, for messages */
  why: string;
}

export interface Backend {
  readonly name: string;
  readonly capacity?: BackendCapacity;
  /**
   * a GPU backend whose device is emulated on the CPU cores (Mesa llvmpipe, SwiftShader): its
   * costs are a CPU's, not a GPU's (a tree of tokens costs several single-token steps)
   */
  readonly software?: boolean;

  /**
   * Weight formats this backend can hold a (N, K) matrix in (src/tensor/weight-format.ts);
   * absent: f32 only. A model asks, and holds f32 weights where the format it wants is not
   * listed: nothing else changes (WebGPU holds f32).
   */
  readonly weightFormats?: readonly WeightFormat[];
  /**
   * A weight matrix in one of `weightFormats`, as a Buf of length N * K that `matmul` takes as
   * `w` and `embedding` as `table` (no other kernel reads it); `free` releases it.
   */
  uploadWeights?(m: PackedMatrix): Buf;
  /**
   * A 16-bit (N, K) weight matrix to be filled by `writeWeights` with a file's bytes
   * (little-endian, row-major) piece by piece as they are read: a 16-bit checkpoint then goes
   * from file to backend with no host copy of a whole tensor. With uploadWeights, or not at all.
   */
  allocWeights?(format: 'f16' | 'bf16', N: number, K: number): Buf;
  /** bytes [byteOffset, byteOffset + bytes.length) of a matrix from allocWeights */
  writeWeights?(w: Buf, bytes: Uint8Array, byteOffset: number): void;

  alloc(length: number): Buf; // zero-filled
  write(dst: Buf, data: Float32Array, dstOffset?: number): void;
  /** copy `dst.length` elements of `src` starting at `srcOffset` into `dst` (the one wait point) */
  read(src: Buf, dst: Float32Array, srcOffset?: number): Promise<void>;
  /**
   * several reads with one wait: `dsts[i].length` elements of `srcs[i]` from its start into
   * `dsts[i]` (on a GPU one staging copy and one map instead of a round trip per buffer)
   */
  readMany(srcs: readonly Buf[], dsts: readonly Float32Array[]): Promise<void>;
  free(buf: Buf): void;

  /** out[t, :] = table[ids[t], :]   out: (T, D), table: (V, D), f32 or from uploadWeights (rows widened exactly) */
  embedding(out: Buf, table: Buf, ids: Int32Array, D: number): void;
  /** out[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * w   (T, D) */
  rmsnorm(out: Buf, x: Buf, w: Buf, T: number, D: number, eps: number): void;
  /** out = x @ w^T   out: (T, N), x: (T, K), w: (N, K) as stored by nn.Linear, f32 or from uploadWeights */
  matmul(out: Buf, x: Buf, w: Buf, T: number, K: number, N: number): void;
  /** out[i] = a[i] + b[i], i < n (out may alias a or b) */
  add(out: Buf, a: Buf, b: Buf, n: number): void;
  /** out[i] = a[i] * b[i] */
  mul(out: Buf, a: Buf, b: Buf, n: number): void;
  /** out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g))   (the SwiGLU gate) */
  siluGate(out: Buf, gate: Buf, up: Buf, n: number): void;
  /**
   * Rotary embedding in place, Hugging Face "rotate half" layout: for head h of token t,
   * pairs (i, i + hd/2) rotate by angle pos[t] * invFreq[i].   x: (T, nHeads, hd), invFreq: (hd/2)
   * (the frequencies of rope.ts: theta^(-2i/hd), rescaled as the model's rope_scaling says)
   */
  rope(x: Buf, positions: Int32Array, T: number, nHeads: number, headDim: number, invFreq: Float64Array): void;
  /** x[r, c] += bias[c] in place   x: (rows, cols), bias: (cols), not in x's buffer */
  addBias(x: Buf, bias: Buf, rows: number, cols: number): void;
  /**
   * out[t, h, :] = softmax_s(q[t,h,:] . k[s,kvh,:] / sqrt(hd) + mask[t, s]) @ v[s, kvh, :]
   * over the slots s < past + T that row t sees (mask[t, s] != -Infinity): a masked slot is
   * left out (score -Infinity by selection, value row skipped, never 0 * v), so its k and v
   * rows may hold Infinity or NaN.   q, out: (T, H, hd); kCache, vCache: (slots, KVH, hd)
   */
  attention(out: Buf, q: Buf, kCache: Buf, vCache: Buf, p: AttentionParams): void;
  /** row-wise softmax, (rows, cols) */
  softmax(out: Buf, x: Buf, rows: number, cols: number): void;
  /** out[r] = index of the largest x[r, :] (first one on ties), stored as f32   x: (rows, cols) */
  argmax(out: Buf, x: Buf, rows: number, cols: number): void;
  /** dst[dstOffset + i] = src[srcOffset + i], i < n (regions must not overlap) */
  copy(dst: Buf, dstOffset: number, src: Buf, srcOffset: number, n: number): void;
}
