/**
 * The WebGL backend: the Backend interface on gpu.js, which compiles the JavaScript kernel
 * functions of kernels/gpujs/ to fragment shaders. It is for browsers without WebGPU: nearly
 * every browser runs WebGL2.
 *
 * Storage: a Buf's values live in float textures on the GPU. gpu.js runs every kernel in
 * pipeline mode (its output is a texture that the next kernel reads) and immutable (each run
 * renders a texture of its own, so a Buf may be both input and output of a kernel). The host
 * sees values only in `write` (an upload) and `read` (a readback, the one wait point): weights
 * are uploaded once, and a model step reads back once.
 *
 * A render target is written whole, so a Buf is a stack of layers, top first, each a texture
 * holding the buffer's first `len` elements (lengths grow downwards; beyond the bottom layer
 * every element is 0, as alloc promises). A kernel writing the first n elements pushes a
 * layer of n: a one-token step after a long prefill renders one row, not the prefill's
 * rows. A kernel reading m elements takes the top layer when it holds them, else the layers
 * are merged first (rare). A write at an offset (`copy` into a KV cache, a partial `write`)
 * renders the buffer up to the end of what it holds (`splice`): the cache up to its last
 * written slot, about what attention reads anyway.
 *
 * Each kernel has one thin launcher below (output size, arguments). Every output element is
 * one shader invocation computing from its inputs alone in a fixed order, so a row's values
 * do not depend on the batch: tree verification gives every node the logits of a
 * step-by-step decode, bit for bit.
 */
import type { AttentionParams, Backend, BackendCapacity, Buf } from '../backend.js';
import { GPUJS_KERNELS } from './kernels.generated.js';

/** what the backend needs of a gpu.js texture (pipeline output) */
export interface GpujsTexture {
  toArray(): ArrayLike<number>;
  delete(): void;
}

/** a compiled gpu.js kernel: call it with its arguments, it returns the output texture */
export interface GpujsKernel {
  (...args: unknown[]): GpujsTexture;
  setOutput(output: number[]): unknown;
  destroy?(removeCanvasReference?: boolean): void;
}

/** what the backend needs of a gpu.js `GPU` instance */
export interface GpujsInstance {
  createKernel(source: string, settings: Record<string, unknown>): GpujsKernel;
  destroy(): unknown;
  readonly mode?: string;
  readonly context?: unknown;
}

export interface GpujsBackendOptions {
  /** a line naming the WebGL renderer, for messages */
  description?: string;
  /** the renderer is a CPU rasteriser (SwiftShader, llvmpipe) */
  software?: boolean;
  /** largest texture side (WebGL MAX_TEXTURE_SIZE): bounds one buffer */
  maxTextureSize?: number;
}

/**
 * gpu.js argument types by parameter name: sizes, offsets and flags are `Integer` (exact int
 * math at any size), `eps` and `scale` are `Float`, `data` and `ids` are host arrays; every
 * other parameter is a texture (a Buf's layer).
 */
const INTEGER_ARGS = new Set(['oldLen', 'srcOffset', 'lo', 'hi', 'D', 'K', 'N', 'cols', 'H', 'KVH', 'half', 'hd', 'past', 'slots', 'masked']);
const FLOAT_ARGS = new Set(['eps', 'scale']);
const HOST_ARGS = new Set(['data', 'ids']);
function argumentTypes(source: string): Record<string, string> {
  const params = /function\s+\w+\s*\(([^)]*)\)/.exec(source)?.[1];
  if (params === undefined) throw new Error('webgl: a kernel source without a function');
  const types: Record<string, string> = {};
  for (const name of params.split(',').map((p) => p.trim()).filter((p) => p)) {
    types[name] = INTEGER_ARGS.has(name) ? 'Integer' : FLOAT_ARGS.has(name) ? 'Float' : HOST_ARGS.has(name) ? 'Array' : 'NumberTexture';
  }
  return types;
}
type KernelName = keyof typeof GPUJS_KERNELS;

/** generated loops run to this bound and break at their own: larger than any row or head */
const LOOP_MAX = 1 << 24;
/** the deepest layer stack kept before merging: a Buf read whole stays one texture fetch away */
const MAX_LAYERS = 4;

interface Layer {
  tex: GpujsTexture;
  len: number; // elements [0, len) of the buffer
}

export class GpujsBuf implements Buf {
  /** top first; empty: every element is 0 */
  layers: Layer[] = [];
  freed = false;
  constructor(readonly length: number) {}
}

export interface GpujsStats {
  launches: number; // kernel runs, merges and uploads included
  uploads: number; // host arrays sent to the GPU (weights, ids, masks, rope tables)
  readbacks: number; // textures read to the host
  merges: number; // layer stacks flattened before a read
}

export class GpujsBackend implements Backend {
  readonly name = 'webgl';
  readonly description: string;
  readonly software: boolean;
  readonly stats: GpujsStats = { launches: 0, uploads: 0, readbacks: 0, merges: 0 };
  private readonly kernels = new Map<string, GpujsKernel>();
  private readonly maxTextureSize: number;
  /** a 4-element zero texture: the argument a kernel gets for an input it does not read */
  private none: GpujsTexture | null = null;
  // host tables, kept from the last call and re-sent only when they change (every layer of a
  // step passes the same positions and mask)
  private ropeKey = { positions: new Int32Array(0), invFreq: new Float64Array(0), T: 0, half: 0 };
  private ropeTex: GpujsTexture | null = null;
  private maskSeen = new Float32Array(0);
  private maskTex: GpujsTexture | null = null;

  constructor(
    readonly gpu: GpujsInstance,
    opts: GpujsBackendOptions = {},
  ) {
    this.description = opts.description ?? 'WebGL (gpu.js)';
    this.software = opts.software ?? false;
    this.maxTextureSize = opts.maxTextureSize ?? 4096;
  }

  /** outputs hold one f32 per texel of a square texture at most MAX_TEXTURE_SIZE on a side */
  get capacity(): BackendCapacity {
    return { bufferBytes: this.maxTextureSize * this.maxTextureSize * 4, why: `MAX_TEXTURE_SIZE ${this.maxTextureSize} of ${this.description}` };
  }

  // ---- storage -------------------------------------------------------------------------

  alloc(length: number): Buf {
    if (!Number.isInteger(length) || length < 0) throw new Error(`webgl alloc: bad length ${length}`);
    return new GpujsBuf(length); // no texture until written: every element reads 0
  }

  write(dst: Buf, data: Float32Array, dstOffset = 0): void {
    const b = this.buf(dst);
    if (dstOffset < 0 || dstOffset + data.length > b.length) {
      throw new Error(`webgl write: ${data.length} elements at ${dstOffset} exceed the buffer (${b.length})`);
    }
    if (data.length === 0) return;
    this.stats.uploads++;
    if (dstOffset === 0) {
      this.pushLayer(b, this.run('upload', data.length, [data]), data.length);
    } else {
      const tex = this.run('upload', data.length, [data]);
      try {
        this.splice(b, tex, 0, dstOffset, data.length);
      } finally {
        tex.delete();
      }
    }
  }

  async read(src: Buf, dst: Float32Array, srcOffset = 0): Promise<void> {
    const b = this.buf(src);
    if (srcOffset < 0 || srcOffset + dst.length > b.length) {
      throw new Error(`webgl read: ${dst.length} elements at ${srcOffset} exceed the buffer (${b.length})`);
    }
    if (dst.length === 0) return;
    const end = srcOffset + dst.length;
    if (b.layers.length === 0) {
      dst.fill(0);
      return;
    }
    const top = this.covering(b, end);
    this.stats.readbacks++;
    const values = top.tex.toArray();
    const have = Math.min(end, top.len);
    for (let i = srcOffset; i < have; i++) dst[i - srcOffset] = values[i]!;
    if (have < end) dst.fill(0, Math.max(0, have - srcOffset));
  }

  async readMany(srcs: readonly Buf[], dsts: readonly Float32Array[]): Promise<void> {
    if (srcs.length !== dsts.length) throw new Error(`webgl readMany: ${srcs.length} sources for ${dsts.length} destinations`);
    for (let i = 0; i < srcs.length; i++) {
      if (dsts[i]!.length > srcs[i]!.length) throw new Error(`webgl readMany: ${dsts[i]!.length} elements exceed buffer ${i} (${srcs[i]!.length})`);
    }
    for (let i = 0; i < srcs.length; i++) await this.read(srcs[i]!, dsts[i]!);
  }

  free(buf: Buf): void {
    const b = this.buf(buf);
    for (const layer of b.layers) layer.tex.delete();
    b.layers = [];
    b.freed = true;
  }

  /** release every texture and the WebGL context; the backend is unusable after */
  destroy(): void {
    for (const t of [this.none, this.ropeTex, this.maskTex]) t?.delete();
    for (const k of this.kernels.values()) k.destroy?.(true);
    this.kernels.clear();
    this.gpu.destroy();
  }

  // ---- kernels (one thin launcher each) ---------------------------------------------------

  embedding(out: Buf, table: Buf, ids: Int32Array, D: number): void {
    const T = ids.length;
    if (T === 0 || D === 0) return;
    const V = Math.floor(table.length / D);
    for (let t = 0; t < T; t++) {
      if (!(ids[t]! >= 0 && ids[t]! < V)) throw new Error(`webgl embedding: id ${ids[t]} at ${t} outside [0, ${V})`);
    }
    need(out, T * D, 'embedding out');
    this.stats.uploads++;
    this.launch(out, 'embedding', T * D, [this.input(table, V * D), Float32Array.from(ids), D]);
  }

  rmsnorm(out: Buf, x: Buf, w: Buf, T: number, D: number, eps: number): void {
    if (T === 0 || D === 0) return;
    need(out, T * D, 'rmsnorm out'), need(x, T * D, 'rmsnorm x'), need(w, D, 'rmsnorm w');
    const xs = this.input(x, T * D);
    const scale = this.run('rms_scale', T, [xs, D, eps]);
    try {
      this.launch(out, 'rms_apply', T * D, [xs, scale, this.input(w, D), D]);
    } finally {
      scale.delete();
    }
  }

  matmul(out: Buf, x: Buf, w: Buf, T: number, K: number, N: number): void {
    if (T === 0 || N === 0) return;
    need(out, T * N, 'matmul out'), need(x, T * K, 'matmul x'), need(w, N * K, 'matmul w');
    if (K === 0) return this.launch(out, 'upload', T * N, [new Float32Array(T * N)]);
    this.launch(out, 'matmul', T * N, [this.input(x, T * K), this.input(w, N * K), K, N]);
  }

  add(out: Buf, a: Buf, b: Buf, n: number): void {
    if (n === 0) return;
    need(out, n, 'add out'), need(a, n, 'add a'), need(b, n, 'add b');
    this.launch(out, 'add', n, [this.input(a, n), this.input(b, n)]);
  }

  mul(out: Buf, a: Buf, b: Buf, n: number): void {
    if (n === 0) return;
    need(out, n, 'mul out'), need(a, n, 'mul a'), need(b, n, 'mul b');
    this.launch(out, 'mul', n, [this.input(a, n), this.input(b, n)]);
  }

  siluGate(out: Buf, gate: Buf, up: Buf, n: number): void {
    if (n === 0) return;
    need(out, n, 'siluGate out'), need(gate, n, 'siluGate gate'), need(up, n, 'siluGate up');
    this.launch(out, 'silu_gate', n, [this.input(gate, n), this.input(up, n)]);
  }

  rope(x: Buf, positions: Int32Array, T: number, nHeads: number, headDim: number, invFreq: Float64Array): void {
    const half = headDim >> 1;
    if (T === 0 || nHeads === 0 || half === 0) return;
    if (positions.length < T) throw new Error(`webgl rope: ${positions.length} positions for T = ${T}`);
    if (invFreq.length < half) throw new Error(`webgl rope: ${invFreq.length} frequencies for head dim ${headDim}`);
    const n = T * nHeads * headDim;
    need(x, n, 'rope x');
    this.launch(x, 'rope', n, [this.input(x, n), this.ropeAngles(positions, T, half, invFreq), nHeads, half]);
  }

  addBias(x: Buf, bias: Buf, rows: number, cols: number): void {
    const n = rows * cols;
    if (n === 0) return;
    need(x, n, 'addBias x'), need(bias, cols, 'addBias bias');
    if (x === bias) throw new Error("webgl addBias: the bias shares x's buffer");
    this.launch(x, 'add_bias', n, [this.input(x, n), this.input(bias, cols), cols]);
  }

  /**
   * Three kernels: scores (one invocation per (t, h, slot)), per-row max and sum of exp over
   * the slots the row sees, then the weighted sum of value rows. Hidden slots are skipped by
   * a flag (never read, never multiplied), so their k and v rows may hold Infinity or NaN.
   */
  attention(out: Buf, q: Buf, kCache: Buf, vCache: Buf, p: AttentionParams): void {
    const { T, nHeads: H, nKvHeads: KVH, headDim: hd, past, mask } = p;
    if (T === 0 || H === 0 || hd === 0) return;
    if (H % KVH !== 0) throw new Error(`webgl attention: ${H} heads not a multiple of ${KVH} kv heads`);
    const slots = past + T;
    if (mask && mask.length !== T * slots) throw new Error(`webgl attention: mask has ${mask.length} entries, want T * (past + T) = ${T * slots}`);
    need(out, T * H * hd, 'attention out'), need(q, T * H * hd, 'attention q');
    need(kCache, slots * KVH * hd, 'attention kCache'), need(vCache, slots * KVH * hd, 'attention vCache');
    const masked = mask ? 1 : 0;
    const hidden = mask ? this.maskFlags(mask) : this.noneTexture();
    const scores = this.run('attn_scores', T * H * slots, [this.input(q, T * H * hd), this.input(kCache, slots * KVH * hd), hidden, masked, H, KVH, hd, past, slots, 1 / Math.sqrt(hd)]);
    const stats = this.run('attn_stats', T * H * 2, [scores, hidden, masked, H, past, slots]);
    try {
      this.launch(out, 'attn_values', T * H * hd, [scores, stats, this.input(vCache, slots * KVH * hd), hidden, masked, H, KVH, hd, past, slots]);
    } finally {
      scores.delete();
      stats.delete();
    }
  }

  softmax(out: Buf, x: Buf, rows: number, cols: number): void {
    if (rows === 0 || cols === 0) return;
    need(out, rows * cols, 'softmax out'), need(x, rows * cols, 'softmax x');
    const xs = this.input(x, rows * cols);
    const stats = this.run('softmax_stats', rows * 2, [xs, cols]);
    try {
      this.launch(out, 'softmax_apply', rows * cols, [xs, stats, cols]);
    } finally {
      stats.delete();
    }
  }

  argmax(out: Buf, x: Buf, rows: number, cols: number): void {
    if (rows === 0) return;
    if (cols === 0) throw new Error('webgl argmax: no columns');
    need(out, rows, 'argmax out'), need(x, rows * cols, 'argmax x');
    this.launch(out, 'argmax', rows, [this.input(x, rows * cols), cols]);
  }

  copy(dst: Buf, dstOffset: number, src: Buf, srcOffset: number, n: number): void {
    if (n === 0) return;
    if (dstOffset < 0 || srcOffset < 0 || dstOffset + n > dst.length || srcOffset + n > src.length) {
      throw new Error(`webgl copy: ${n} elements from ${srcOffset} (of ${src.length}) to ${dstOffset} (of ${dst.length}) out of range`);
    }
    if (dst === src && dstOffset < srcOffset + n && srcOffset < dstOffset + n) throw new Error('webgl copy: overlapping regions');
    this.splice(this.buf(dst), this.input(src, srcOffset + n), srcOffset, dstOffset, n);
  }

  // ---- buffers as layer stacks -----------------------------------------------------------

  /** a texture holding at least the first m elements of b (merging its layers if needed) */
  private input(buf: Buf, m: number): GpujsTexture {
    const b = this.buf(buf);
    if (b.layers.length === 0) return this.zeros(b, m);
    return this.covering(b, m).tex;
  }

  /** the top layer, once it holds the first m elements or all the buffer has */
  private covering(b: GpujsBuf, m: number): Layer {
    const top = b.layers[0]!;
    if (top.len >= m || b.layers.length === 1) return top;
    this.merge(b);
    return b.layers[0]!;
  }

  /** flatten the stack into one layer as long as the bottom one */
  private merge(b: GpujsBuf): void {
    this.stats.merges++;
    let merged = b.layers[b.layers.length - 1]!;
    for (let i = b.layers.length - 2; i >= 0; i--) {
      const upper = b.layers[i]!;
      const tex = this.run('splice', merged.len, [merged.tex, merged.len, upper.tex, 0, 0, upper.len]);
      merged.tex.delete();
      upper.tex.delete();
      merged = { tex, len: merged.len };
    }
    b.layers = [merged];
  }

  /** a buffer never written reads as zeros: give it a zero layer of m elements */
  private zeros(b: GpujsBuf, m: number): GpujsTexture {
    const tex = this.run('upload', Math.max(m, 1), [new Float32Array(Math.max(m, 1))]);
    b.layers = [{ tex, len: Math.max(m, 1) }];
    return tex;
  }

  /** the kernel's output becomes the first n elements of out */
  private pushLayer(b: GpujsBuf, tex: GpujsTexture, n: number): void {
    const kept = b.layers.filter((l) => l.len > n);
    for (const l of b.layers) if (l.len <= n) l.tex.delete();
    b.layers = [{ tex, len: n }, ...kept];
    if (b.layers.length > MAX_LAYERS) this.merge(b);
  }

  /** dst[lo, lo + n) = src[srcOffset, srcOffset + n), the rest of what dst holds kept */
  private splice(dst: GpujsBuf, src: GpujsTexture, srcOffset: number, lo: number, n: number): void {
    if (dst.layers.length > 1) this.merge(dst);
    const old = dst.layers[0];
    const hi = lo + n;
    if (lo === 0 && (!old || old.len <= hi)) {
      const tex = this.run('splice', hi, [this.noneTexture(), 0, src, srcOffset, 0, hi]);
      return this.pushLayer(dst, tex, hi);
    }
    const len = Math.max(hi, old?.len ?? 0);
    const tex = this.run('splice', len, [old?.tex ?? this.noneTexture(), old?.len ?? 0, src, srcOffset, lo, hi]);
    old?.tex.delete();
    dst.layers = [{ tex, len }];
  }

  // ---- launch machinery ---------------------------------------------------------------

  /** run a kernel whose output is the first n elements of out */
  private launch(out: Buf, kernel: KernelName, n: number, args: unknown[]): void {
    const o = this.buf(out);
    this.pushLayer(o, this.run(kernel, n, args), n);
  }

  /** run a kernel over n output elements; the caller owns the texture it returns */
  private run(kernel: KernelName, n: number, args: unknown[]): GpujsTexture {
    if (n > this.maxTextureSize * this.maxTextureSize) {
      throw new Error(`webgl ${kernel}: ${n} outputs exceed one ${this.maxTextureSize}x${this.maxTextureSize} texture (${this.description})`);
    }
    const k = this.kernel(kernel);
    k.setOutput([n]);
    this.stats.launches++;
    return k(...args);
  }

  private kernel(name: KernelName): GpujsKernel {
    let k = this.kernels.get(name);
    if (!k) {
      const source = GPUJS_KERNELS[name];
      if (source === undefined) throw new Error(`webgl: kernels/gpujs/${name}.js is not embedded (run npm run build)`);
      const fn = source.slice(source.indexOf('function '));
      k = this.gpu.createKernel(fn, {
        output: [1],
        pipeline: true,
        immutable: true,
        precision: 'single',
        tactic: 'precision',
        dynamicOutput: true,
        dynamicArguments: true,
        loopMaxIterations: LOOP_MAX,
        argumentTypes: argumentTypes(fn),
      });
      this.kernels.set(name, k);
    }
    return k;
  }

  private noneTexture(): GpujsTexture {
    return (this.none ??= this.run('upload', 4, [new Float32Array(4)]));
  }

  /** (T, half, 2) cos, sin of positions[t] * invFreq[i] in f64, uploaded when they change */
  private ropeAngles(positions: Int32Array, T: number, half: number, invFreq: Float64Array): GpujsTexture {
    const key = this.ropeKey;
    let same = this.ropeTex !== null && key.T === T && key.half === half;
    for (let t = 0; same && t < T; t++) same = key.positions[t] === positions[t];
    for (let i = 0; same && i < half; i++) same = key.invFreq[i] === invFreq[i];
    if (same) return this.ropeTex!;
    const table = new Float32Array(T * half * 2);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < half; i++) {
        const angle = positions[t]! * invFreq[i]!;
        table[(t * half + i) * 2] = Math.cos(angle);
        table[(t * half + i) * 2 + 1] = Math.sin(angle);
      }
    }
    this.ropeKey = { positions: positions.slice(0, T), invFreq: invFreq.slice(0, half), T, half };
    this.ropeTex?.delete();
    this.stats.uploads++;
    return (this.ropeTex = this.run('upload', table.length, [table]));
  }

  /** (T, slots, 2): 1 where the mask hides a slot (-Infinity), else 0 and the additive bias; uploaded when it changes */
  private maskFlags(mask: Float32Array): GpujsTexture {
    let same = this.maskTex !== null && this.maskSeen.length === mask.length;
    for (let i = 0; same && i < mask.length; i++) same = Object.is(this.maskSeen[i], mask[i]);
    if (same) return this.maskTex!;
    const table = new Float32Array(mask.length * 2);
    for (let i = 0; i < mask.length; i++) {
      const hidden = mask[i] === -Infinity;
      table[2 * i] = hidden ? 1 : 0;
      table[2 * i + 1] = hidden ? 0 : mask[i]!;
    }
    this.maskSeen = mask.slice();
    this.maskTex?.delete();
    this.stats.uploads++;
    return (this.maskTex = this.run('upload', table.length, [table]));
  }

  private buf(b: Buf): GpujsBuf {
    if (!(b instanceof GpujsBuf)) throw new Error('webgl: buffer from another backend');
    if (b.freed) throw new Error('webgl: buffer used after free');
    return b;
  }
}

function need(b: Buf, n: number, what: string): void {
  if (b.length < n) throw new Error(`webgl ${what}: needs ${n} elements, buffer has ${b.length}`);
}
