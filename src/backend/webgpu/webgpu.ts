/**
 * The WebGPU backend: the Backend interface on a GPUDevice.
 *
 * Storage: every Buf is a GPUBuffer from a size-keyed pool (free returns it, alloc reuses it
 * and clears it on the GPU). Kernels are recorded into one command encoder (one compute
 * pass while nothing else intervenes) and submitted when the host reads (the one wait point),
 * writes (so a write never overtakes recorded work), or when a per-batch arena fills.
 *
 * Per-launch data lives in two arenas that are written once per submit:
 *  - uniforms: each launch's small parameter struct takes one slot of a uniform buffer,
 *    bound with a dynamic offset, so bind groups are cached and reused across steps;
 *  - aux: a storage buffer for host data (token ids, rope cos/sin, attention masks, and the
 *    attention query, copied there so attention needs only 4 storage buffers, the
 *    compatibility-mode limit). Kernels find their data by an element offset in their params.
 * Nothing is created in the steady-state token loop; `stats` counts creations for tests.
 *
 * Each kernel has one thin launcher below that owns its workgroup size, dispatch math and
 * parameter packing; the shaders are kernels/*.wgsl, embedded by scripts/embed-kernels.mjs.
 */
import type { AttentionParams, Backend, BackendCapacity, Buf } from '../backend.js';
import { SHADERS } from './shaders.generated.js';

// WebGPU's numeric flags (spec constants), so the backend needs no GPU* globals at run time
const USAGE_MAP_READ = 0x1;
const USAGE_COPY_SRC = 0x4;
const USAGE_COPY_DST = 0x8;
const USAGE_UNIFORM = 0x40;
const USAGE_STORAGE = 0x80;
const MAP_MODE_READ = 0x1;
const STAGE_COMPUTE = 0x4;

const PARAM_BYTES = 64; // every kernel's Params struct fits in 16 words
const UNIFORM_SLOTS = 512; // launches per submit before the batch is flushed
const AUX_INITIAL = 1 << 16; // elements; grows (rarely) to the largest single launch's need
const ATTN_MAX_HEAD_DIM = 256; // attention.wgsl: 64 threads x 4 output dims

/**
 * A kernel entry point: shader file, entry, and its bind group layout as one character per
 * binding number: 'u' uniform Params (dynamic offset), 'w' read-write storage,
 * 'r' read-only storage, '-' unused by this entry.
 */
interface KernelDef {
  file: string;
  entry: string;
  layout: string;
}

const KERNELS = {
  embedding: { file: 'embedding', entry: 'main', layout: 'uwrr' },
  rmsnorm: { file: 'rmsnorm', entry: 'main', layout: 'uwrr' },
  matmul_vec: { file: 'matmul_vec', entry: 'main', layout: 'uwrr' },
  matmul_tiled: { file: 'matmul_tiled', entry: 'main', layout: 'uwrr' },
  add: { file: 'add', entry: 'main', layout: 'uwrr' },
  add_inplace: { file: 'add', entry: 'main_a', layout: 'uw-r' },
  add_bias: { file: 'add', entry: 'main_bias', layout: 'uw-r' },
  mul: { file: 'mul', entry: 'main', layout: 'uwrr' },
  mul_inplace: { file: 'mul', entry: 'main_a', layout: 'uw-r' },
  silu_gate: { file: 'silu_gate', entry: 'main', layout: 'uwrr' },
  silu_gate_inplace: { file: 'silu_gate', entry: 'main_a', layout: 'uw-r' },
  rope: { file: 'rope', entry: 'main', layout: 'uwr' },
  attention: { file: 'attention', entry: 'main', layout: 'uwrrr' },
  softmax: { file: 'softmax', entry: 'main', layout: 'uwr' },
  argmax: { file: 'argmax', entry: 'main', layout: 'uwr' },
  copy: { file: 'copy', entry: 'main', layout: 'uwr' },
  copy_self: { file: 'copy', entry: 'main_self', layout: 'uw' },
} satisfies Record<string, KernelDef>;
type KernelName = keyof typeof KERNELS;

/** matmul_vec's override constants: see kernels/matmul_vec.wgsl */
export interface MatvecTuning {
  WG: number;
  LANES: number;
}
const MATVEC_ROWS_PER_THREAD = 2;
/** default largest T that takes the matrix-vector kernel; beyond it the tiled kernel reuses weights */
const MATVEC_MAX_T = 64;

export interface WebGPUStats {
  buffersCreated: number; // GPUBuffers of any kind (storage, staging, arenas)
  pipelinesCreated: number;
  bindGroupsCreated: number;
  submits: number;
  dispatches: number;
}

export interface WebGPUBackendOptions {
  /** matmul_vec tuning; default picked from `cpuLike` */
  matvec?: MatvecTuning;
  /**
   * largest T that takes matmul_vec (default MATVEC_MAX_T). Its rows are computed the same
   * way for any T, so a value >= the largest verification tree makes tree forwards
   * bit-identical to one-token decoding (see the `batchInvariant` notes in the README).
   */
  matvecMaxT?: number;
  /** the adapter is a CPU rasteriser (llvmpipe, SwiftShader): prefer kernels without barriers */
  cpuLike?: boolean;
  /** a line naming the adapter, for messages */
  description?: string;
  /**
   * Objects the device depends on (the GPU instance, the adapter). Dawn's node binding tears
   * the instance down when its JS object is collected, under a live device, so hold them.
   */
  keepAlive?: unknown[];
}

/** one GPUBuffer; `id` keys the bind group cache */
interface Mem {
  readonly gpu: GPUBuffer;
  readonly id: number;
  readonly bytes: number;
}

export class WebGPUBuf implements Buf {
  constructor(
    readonly length: number,
    public mem: Mem | null, // null once freed
  ) {}
}

type Grid = readonly [number, number];

export class WebGPUBackend implements Backend {
  readonly name = 'webgpu';
  readonly stats: WebGPUStats = { buffersCreated: 0, pipelinesCreated: 0, bindGroupsCreated: 0, submits: 0, dispatches: 0 };
  readonly description: string;
  readonly software: boolean;
  readonly matvec: MatvecTuning;
  readonly matvecMaxT: number;

  private nextId = 1;
  private pool = new Map<number, Mem[]>(); // free storage buffers by byte size
  private stagingPool = new Map<number, Mem[]>(); // free MAP_READ buffers by byte size
  private modules = new Map<string, GPUShaderModule>();
  private pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  private bindGroups = new Map<string, GPUBindGroup>();

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;

  // uniform arena: UNIFORM_SLOTS slots of `slotBytes`, mirrored on the host
  private readonly slotBytes: number;
  private readonly uniforms: Mem;
  private readonly uniformHost: ArrayBuffer;
  private readonly uniformU32: Uint32Array;
  private readonly uniformF32: Float32Array;
  private uniformUsed = 0; // slots

  // aux arena (host data), mirrored on the host
  private aux: Mem;
  private auxHost: ArrayBuffer;
  private auxI32: Int32Array;
  private auxF32: Float32Array;
  private auxUsed = 0; // elements

  private error: string | null = null;
  private readonly maxGroupsPerDim: number;
  private readonly keepAlive: unknown[];

  constructor(
    readonly device: GPUDevice,
    opts: WebGPUBackendOptions = {},
  ) {
    this.description = opts.description ?? 'WebGPU device';
    this.software = opts.cpuLike ?? false;
    this.keepAlive = opts.keepAlive ?? [];
    this.matvec = opts.matvec ?? (opts.cpuLike ? { WG: 32, LANES: 1 } : { WG: 128, LANES: 64 });
    this.matvecMaxT = opts.matvecMaxT ?? MATVEC_MAX_T;
    this.maxGroupsPerDim = device.limits.maxComputeWorkgroupsPerDimension;
    const align = device.limits.minUniformBufferOffsetAlignment;
    this.slotBytes = Math.ceil(PARAM_BYTES / align) * align;
    this.uniforms = this.createMem(UNIFORM_SLOTS * this.slotBytes, USAGE_UNIFORM | USAGE_COPY_DST);
    this.uniformHost = new ArrayBuffer(UNIFORM_SLOTS * this.slotBytes);
    this.uniformU32 = new Uint32Array(this.uniformHost);
    this.uniformF32 = new Float32Array(this.uniformHost);
    this.aux = this.createMem(AUX_INITIAL * 4, USAGE_STORAGE | USAGE_COPY_DST);
    this.auxHost = new ArrayBuffer(AUX_INITIAL * 4);
    this.auxI32 = new Int32Array(this.auxHost);
    this.auxF32 = new Float32Array(this.auxHost);
    // validation errors surface at the next read (several backends may share one device)
    device.addEventListener('uncapturederror', (e) => {
      this.error ??= (e as GPUUncapturedErrorEvent).error.message;
    });
  }

  /** one buffer is bound whole as storage: the smaller of the two device limits bounds a tensor */
  get capacity(): BackendCapacity {
    const { maxBufferSize, maxStorageBufferBindingSize } = this.device.limits;
    return {
      bufferBytes: Math.min(maxBufferSize, maxStorageBufferBindingSize),
      why: `maxBufferSize ${maxBufferSize} / maxStorageBufferBindingSize ${maxStorageBufferBindingSize} of ${this.description}`,
    };
  }

  // ---- storage -------------------------------------------------------------------------

  alloc(length: number): Buf {
    if (!Number.isInteger(length) || length < 0) throw new Error(`webgpu alloc: bad length ${length}`);
    const bytes = roundUp(Math.max(length, 4) * 4, 16);
    const reused = this.pool.get(bytes)?.pop();
    if (reused) {
      this.endPass();
      this.enc().clearBuffer(reused.gpu); // zero-filled, in order with recorded work
      return new WebGPUBuf(length, reused);
    }
    return new WebGPUBuf(length, this.createMem(bytes, USAGE_STORAGE | USAGE_COPY_SRC | USAGE_COPY_DST));
  }

  write(dst: Buf, data: Float32Array, dstOffset = 0): void {
    const m = this.mem(dst);
    if (dstOffset < 0 || dstOffset + data.length > dst.length) {
      throw new Error(`webgpu write: ${data.length} elements at ${dstOffset} exceed the buffer (${dst.length})`);
    }
    if (data.length === 0) return;
    this.flush(); // recorded kernels must see the old contents
    this.device.queue.writeBuffer(m.gpu, dstOffset * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  async read(src: Buf, dst: Float32Array, srcOffset = 0): Promise<void> {
    const m = this.mem(src);
    if (srcOffset < 0 || srcOffset + dst.length > src.length) {
      throw new Error(`webgpu read: ${dst.length} elements at ${srcOffset} exceed the buffer (${src.length})`);
    }
    const bytes = dst.length * 4;
    let staging: Mem | undefined;
    if (bytes > 0) {
      const size = stagingSize(bytes);
      staging = this.stagingPool.get(size)?.pop() ?? this.createMem(size, USAGE_MAP_READ | USAGE_COPY_DST);
      this.endPass();
      this.enc().copyBufferToBuffer(m.gpu, srcOffset * 4, staging.gpu, 0, bytes);
    }
    this.flush();
    if (!staging) return this.throwIfError();
    try {
      await staging.gpu.mapAsync(MAP_MODE_READ, 0, bytes);
      dst.set(new Float32Array(staging.gpu.getMappedRange(0, bytes)));
      staging.gpu.unmap();
    } finally {
      poolPush(this.stagingPool, staging);
    }
    this.throwIfError();
  }

  async readMany(srcs: readonly Buf[], dsts: readonly Float32Array[]): Promise<void> {
    if (srcs.length !== dsts.length) throw new Error(`webgpu readMany: ${srcs.length} sources for ${dsts.length} destinations`);
    // one staging buffer holds every region, each at a 256-byte aligned offset
    let bytes = 0;
    for (let i = 0; i < srcs.length; i++) {
      if (dsts[i]!.length > srcs[i]!.length) throw new Error(`webgpu readMany: ${dsts[i]!.length} elements exceed buffer ${i} (${srcs[i]!.length})`);
      bytes = alignUp(bytes, 256) + dsts[i]!.length * 4;
    }
    if (bytes === 0) {
      this.flush();
      return this.throwIfError();
    }
    const size = stagingSize(bytes);
    const staging = this.stagingPool.get(size)?.pop() ?? this.createMem(size, USAGE_MAP_READ | USAGE_COPY_DST);
    this.endPass();
    let off = 0;
    for (let i = 0; i < srcs.length; i++) {
      off = alignUp(off, 256);
      const n = dsts[i]!.length * 4;
      if (n > 0) this.enc().copyBufferToBuffer(this.mem(srcs[i]!).gpu, 0, staging.gpu, off, n);
      off += n;
    }
    this.flush();
    try {
      await staging.gpu.mapAsync(MAP_MODE_READ, 0, bytes);
      const mapped = staging.gpu.getMappedRange(0, bytes);
      off = 0;
      for (const dst of dsts) {
        off = alignUp(off, 256);
        dst.set(new Float32Array(mapped, off, dst.length));
        off += dst.length * 4;
      }
      staging.gpu.unmap();
    } finally {
      poolPush(this.stagingPool, staging);
    }
    this.throwIfError();
  }

  free(buf: Buf): void {
    const m = this.mem(buf);
    (buf as WebGPUBuf).mem = null;
    poolPush(this.pool, m);
  }

  /** submit what is recorded and release every GPU resource; the backend is unusable after */
  destroy(): void {
    this.flush();
    for (const list of [...this.pool.values(), ...this.stagingPool.values()]) for (const m of list) m.gpu.destroy();
    this.pool.clear();
    this.stagingPool.clear();
    this.uniforms.gpu.destroy();
    this.aux.gpu.destroy();
    this.device.destroy();
  }

  // ---- kernels (one thin launcher each) ---------------------------------------------------

  embedding(out: Buf, table: Buf, ids: Int32Array, D: number): void {
    const T = ids.length;
    if (T === 0 || D === 0) return;
    const V = Math.floor(table.length / D);
    for (let t = 0; t < T; t++) {
      if (!(ids[t]! >= 0 && ids[t]! < V)) throw new Error(`webgpu embedding: id ${ids[t]} at ${t} outside [0, ${V})`);
    }
    need(out, T * D, 'embedding out');
    const off = this.reserve(T);
    this.auxI32.set(ids, off);
    this.launch('embedding', [out, table, this.aux], 'uuu', [T, D, off], this.grid1D(Math.ceil((T * D) / 128)));
  }

  rmsnorm(out: Buf, x: Buf, w: Buf, T: number, D: number, eps: number): void {
    if (T === 0 || D === 0) return;
    need(out, T * D, 'rmsnorm out'), need(x, T * D, 'rmsnorm x'), need(w, D, 'rmsnorm w');
    this.unaliased(out, [x, w], ([xs, ws]) => {
      this.launch('rmsnorm', [out, xs!, ws!], 'uuf', [T, D, eps], this.grid1D(T));
    });
  }

  matmul(out: Buf, x: Buf, w: Buf, T: number, K: number, N: number): void {
    if (T === 0 || N === 0) return;
    need(out, T * N, 'matmul out'), need(x, T * K, 'matmul x'), need(w, N * K, 'matmul w');
    this.unaliased(out, [x, w], ([xs, ws]) => {
      if (K % 4 === 0 && K > 0 && T <= this.matvecMaxT) {
        const rowsPerGroup = (this.matvec.WG / this.matvec.LANES) * MATVEC_ROWS_PER_THREAD;
        const grid: Grid = [Math.ceil(N / rowsPerGroup), T];
        this.launch('matmul_vec', [out, xs!, ws!], 'uuu', [T, K, N], this.checkGrid(grid), this.matvecConstants());
      } else {
        const grid: Grid = [Math.ceil(N / 32), Math.ceil(T / 32)];
        this.launch('matmul_tiled', [out, xs!, ws!], 'uuu', [T, K, N], this.checkGrid(grid));
      }
    });
  }

  add(out: Buf, a: Buf, b: Buf, n: number): void {
    this.binary('add', 'add_inplace', true, out, a, b, n);
  }

  mul(out: Buf, a: Buf, b: Buf, n: number): void {
    this.binary('mul', 'mul_inplace', true, out, a, b, n);
  }

  siluGate(out: Buf, gate: Buf, up: Buf, n: number): void {
    this.binary('silu_gate', 'silu_gate_inplace', false, out, gate, up, n);
  }

  rope(x: Buf, positions: Int32Array, T: number, nHeads: number, headDim: number, invFreq: Float64Array): void {
    const half = headDim >> 1;
    if (T === 0 || nHeads === 0 || half === 0) return;
    if (positions.length < T) throw new Error(`webgpu rope: ${positions.length} positions for T = ${T}`);
    if (invFreq.length < half) throw new Error(`webgpu rope: ${invFreq.length} frequencies for head dim ${headDim}`);
    need(x, T * nHeads * headDim, 'rope x');
    // (cos, sin) per (t, i), angles in f64 exactly as the CPU reference computes them
    const off = this.reserve(T * half * 2);
    const tab = this.auxF32;
    for (let t = 0; t < T; t++) {
      const pos = positions[t]!;
      for (let i = 0; i < half; i++) {
        const angle = pos * invFreq[i]!;
        const j = off + (t * half + i) * 2;
        tab[j] = Math.cos(angle);
        tab[j + 1] = Math.sin(angle);
      }
    }
    this.launch('rope', [x, this.aux], 'uuuu', [T, nHeads, half, off], this.grid1D(Math.ceil((T * nHeads * half) / 128)));
  }

  addBias(x: Buf, bias: Buf, rows: number, cols: number): void {
    const n = rows * cols;
    if (n === 0) return;
    need(x, n, 'addBias x'), need(bias, cols, 'addBias bias');
    if (this.mem(x) === this.mem(bias)) throw new Error('webgpu addBias: the bias shares x\'s buffer');
    this.launch('add_bias', [x, bias], 'uu', [n, cols], this.grid1D(Math.ceil(n / 128)));
  }

  attention(out: Buf, q: Buf, kCache: Buf, vCache: Buf, p: AttentionParams): void {
    const { T, nHeads: H, nKvHeads: KVH, headDim: hd, past, mask } = p;
    if (T === 0 || H === 0 || hd === 0) return;
    if (H % KVH !== 0) throw new Error(`webgpu attention: ${H} heads not a multiple of ${KVH} kv heads`);
    if (hd > ATTN_MAX_HEAD_DIM) throw new Error(`webgpu attention: head dim ${hd} > ${ATTN_MAX_HEAD_DIM}`);
    const slots = past + T;
    if (mask && mask.length !== T * slots) throw new Error(`webgpu attention: mask has ${mask.length} entries, want T * (past + T) = ${T * slots}`);
    need(out, T * H * hd, 'attention out'), need(q, T * H * hd, 'attention q');
    need(kCache, slots * KVH * hd, 'attention kCache'), need(vCache, slots * KVH * hd, 'attention vCache');
    const outMem = this.mem(out);
    if (outMem === this.mem(kCache) || outMem === this.mem(vCache)) throw new Error('webgpu attention: out aliases the KV cache');
    const qElems = T * H * hd;
    const qOff = this.reserve(qElems + (mask ? mask.length : 0));
    const maskOff = qOff + qElems;
    if (mask) this.auxF32.set(mask, maskOff);
    this.endPass();
    this.enc().copyBufferToBuffer(this.mem(q).gpu, 0, this.aux.gpu, qOff * 4, qElems * 4);
    this.launch(
      'attention',
      [out, this.aux, kCache, vCache],
      'uuuuuuuuf',
      [T, H, KVH, hd, past, qOff, mask ? maskOff : 0, mask ? 1 : 0, 1 / Math.sqrt(hd)],
      this.grid1D(T * H),
    );
  }

  softmax(out: Buf, x: Buf, rows: number, cols: number): void {
    if (rows === 0 || cols === 0) return;
    need(out, rows * cols, 'softmax out'), need(x, rows * cols, 'softmax x');
    this.unaliased(out, [x], ([xs]) => this.launch('softmax', [out, xs!], 'uu', [rows, cols], this.grid1D(rows)));
  }

  argmax(out: Buf, x: Buf, rows: number, cols: number): void {
    if (rows === 0) return;
    if (cols === 0) throw new Error('webgpu argmax: no columns');
    need(out, rows, 'argmax out'), need(x, rows * cols, 'argmax x');
    this.unaliased(out, [x], ([xs]) => this.launch('argmax', [out, xs!], 'uu', [rows, cols], this.grid1D(rows)));
  }

  copy(dst: Buf, dstOffset: number, src: Buf, srcOffset: number, n: number): void {
    if (n === 0) return;
    if (dstOffset < 0 || srcOffset < 0 || dstOffset + n > dst.length || srcOffset + n > src.length) {
      throw new Error(`webgpu copy: ${n} elements from ${srcOffset} (of ${src.length}) to ${dstOffset} (of ${dst.length}) out of range`);
    }
    const grid = this.grid1D(Math.ceil(n / 128));
    if (this.mem(dst) === this.mem(src)) {
      if (dstOffset < srcOffset + n && srcOffset < dstOffset + n) throw new Error('webgpu copy: overlapping regions');
      this.launch('copy_self', [dst], 'uuu', [n, dstOffset, srcOffset], grid);
    } else {
      this.launch('copy', [dst, src], 'uuu', [n, dstOffset, srcOffset], grid);
    }
  }

  // ---- launch machinery ---------------------------------------------------------------

  /** add / mul / silu_gate with their aliasing cases (out may be a, b, or both) */
  private binary(kernel: KernelName, inplace: KernelName, commutative: boolean, out: Buf, a: Buf, b: Buf, n: number): void {
    if (n === 0) return;
    need(out, n, `${kernel} out`), need(a, n, `${kernel} a`), need(b, n, `${kernel} b`);
    const grid = this.grid1D(Math.ceil(n / 128));
    const o = this.mem(out), ma = this.mem(a), mb = this.mem(b);
    if (o !== ma && o !== mb) return this.launch(kernel, [out, a, b], 'u', [n], grid);
    if (o === ma && o !== mb) return this.launch(inplace, [out, b], 'u', [n], grid);
    if (o === mb && o !== ma && commutative) return this.launch(inplace, [out, a], 'u', [n], grid);
    // out is b (non-commutative) or both: read b from a copy
    this.unaliased(out, [b], ([bs]) => {
      if (o === ma) this.launch(inplace, [out, bs!], 'u', [n], grid);
      else this.launch(kernel, [out, a, bs!], 'u', [n], grid);
    });
  }

  /** run `body` with every input that shares out's buffer replaced by a scratch copy */
  private unaliased(out: Buf, inputs: Buf[], body: (inputs: Buf[]) => void): void {
    const o = this.mem(out);
    const scratch: Buf[] = [];
    const actual = inputs.map((b) => {
      if (this.mem(b) !== o) return b;
      const s = this.allocUncleared(b.length);
      this.copy(s, 0, b, 0, b.length);
      scratch.push(s);
      return s;
    });
    body(actual);
    for (const s of scratch) this.free(s); // pooled: reuse is ordered after this launch
  }

  private allocUncleared(length: number): Buf {
    const bytes = roundUp(Math.max(length, 4) * 4, 16);
    const m = this.pool.get(bytes)?.pop() ?? this.createMem(bytes, USAGE_STORAGE | USAGE_COPY_SRC | USAGE_COPY_DST);
    return new WebGPUBuf(length, m);
  }

  /**
   * Make room in this batch for one launch and `auxElems` elements of host data (flushing
   * the batch when an arena is full) and return the host data's element offset.
   */
  private reserve(auxElems: number): number {
    const need = roundUp(auxElems, 4); // keep offsets 16-byte aligned
    if (this.uniformUsed >= UNIFORM_SLOTS || this.auxUsed + need > this.auxF32.length) this.flush();
    if (need > this.auxF32.length) this.growAux(need);
    const off = this.auxUsed;
    this.auxUsed += need;
    return off;
  }

  private growAux(elems: number): void {
    const size = Math.max(elems, this.auxF32.length * 2);
    if (size * 4 > this.device.limits.maxStorageBufferBindingSize) {
      throw new Error(`webgpu: ${elems} elements of host data exceed maxStorageBufferBindingSize`);
    }
    this.aux.gpu.destroy();
    this.aux = this.createMem(size * 4, USAGE_STORAGE | USAGE_COPY_DST);
    this.auxHost = new ArrayBuffer(size * 4);
    this.auxI32 = new Int32Array(this.auxHost);
    this.auxF32 = new Float32Array(this.auxHost);
    this.bindGroups.clear(); // they bound the old arena
  }

  /**
   * Record one dispatch: pack `values` (typed by `types`, 'u' u32 or 'f' f32) into a uniform
   * slot, bind `bufs` to the layout's storage bindings in order, dispatch `grid`.
   */
  private launch(
    kernel: KernelName,
    bufs: (Buf | Mem)[],
    types: string,
    values: number[],
    grid: Grid,
    constants?: Record<string, number>,
  ): void {
    this.reserve(0);
    const slot = this.uniformUsed++;
    const base = (slot * this.slotBytes) / 4;
    for (let i = 0; i < values.length; i++) {
      if (types[i] === 'f') this.uniformF32[base + i] = values[i]!;
      else this.uniformU32[base + i] = values[i]!;
    }
    const { pipeline, key } = this.pipeline(kernel, constants);
    const mems = bufs.map((b) => ('gpu' in b ? b : this.mem(b)));
    const pass = this.computePass();
    pass.setPipeline(pipeline.pipeline);
    pass.setBindGroup(0, this.bindGroup(key, pipeline.layout, KERNELS[kernel].layout, mems), [slot * this.slotBytes]);
    pass.dispatchWorkgroups(grid[0], grid[1]);
    this.stats.dispatches++;
  }

  private pipeline(kernel: KernelName, constants?: Record<string, number>) {
    const key = constants ? `${kernel}:${JSON.stringify(constants)}` : kernel;
    let p = this.pipelines.get(key);
    if (!p) {
      const def: KernelDef = KERNELS[kernel];
      let module = this.modules.get(def.file);
      if (!module) {
        const code = SHADERS[def.file];
        if (code === undefined) throw new Error(`webgpu: kernels/${def.file}.wgsl is not embedded (run npm run build)`);
        module = this.device.createShaderModule({ label: def.file, code });
        this.modules.set(def.file, module);
      }
      const entries: GPUBindGroupLayoutEntry[] = [];
      [...def.layout].forEach((kind, binding) => {
        if (kind === 'u') entries.push({ binding, visibility: STAGE_COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: PARAM_BYTES } });
        else if (kind === 'w') entries.push({ binding, visibility: STAGE_COMPUTE, buffer: { type: 'storage' } });
        else if (kind === 'r') entries.push({ binding, visibility: STAGE_COMPUTE, buffer: { type: 'read-only-storage' } });
      });
      const layout = this.device.createBindGroupLayout({ label: key, entries });
      const pipeline = this.device.createComputePipeline({
        label: key,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: def.entry, constants },
      });
      p = { pipeline, layout };
      this.pipelines.set(key, p);
      this.stats.pipelinesCreated++;
    }
    return { pipeline: p, key };
  }

  private bindGroup(key: string, layout: GPUBindGroupLayout, kinds: string, mems: Mem[]): GPUBindGroup {
    const cacheKey = `${key}|${mems.map((m) => m.id).join(',')}`;
    let g = this.bindGroups.get(cacheKey);
    if (!g) {
      const entries: GPUBindGroupEntry[] = [];
      let next = 0;
      [...kinds].forEach((kind, binding) => {
        if (kind === 'u') entries.push({ binding, resource: { buffer: this.uniforms.gpu, offset: 0, size: PARAM_BYTES } });
        else if (kind !== '-') entries.push({ binding, resource: { buffer: mems[next++]!.gpu } });
      });
      if (next !== mems.length) throw new Error(`webgpu: ${key} takes ${next} buffers, got ${mems.length}`);
      g = this.device.createBindGroup({ layout, entries });
      if (this.bindGroups.size > 8192) this.bindGroups.clear(); // bound the cache; refilled on demand
      this.bindGroups.set(cacheKey, g);
      this.stats.bindGroupsCreated++;
    }
    return g;
  }

  private matvecConstants(): Record<string, number> {
    return { WG: this.matvec.WG, LANES: this.matvec.LANES };
  }

  /** n workgroups as (x, y) with x, y <= maxComputeWorkgroupsPerDimension; shaders use x + y * nx */
  private grid1D(n: number): Grid {
    const max = this.maxGroupsPerDim;
    if (n <= max) return [n, 1];
    return this.checkGrid([max, Math.ceil(n / max)]);
  }

  private checkGrid(g: Grid): Grid {
    if (g[0] > this.maxGroupsPerDim || g[1] > this.maxGroupsPerDim) {
      throw new Error(`webgpu: dispatch ${g[0]} x ${g[1]} exceeds ${this.maxGroupsPerDim} workgroups per dimension`);
    }
    return g;
  }

  private enc(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private computePass(): GPUComputePassEncoder {
    return (this.pass ??= this.enc().beginComputePass());
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** upload this batch's params and host data, submit the recorded commands */
  private flush(): void {
    if (!this.encoder) return;
    this.endPass();
    const q = this.device.queue;
    if (this.uniformUsed > 0) q.writeBuffer(this.uniforms.gpu, 0, this.uniformHost, 0, this.uniformUsed * this.slotBytes);
    if (this.auxUsed > 0) q.writeBuffer(this.aux.gpu, 0, this.auxHost, 0, this.auxUsed * 4);
    q.submit([this.encoder.finish()]);
    this.encoder = null;
    this.uniformUsed = 0;
    this.auxUsed = 0;
    this.stats.submits++;
  }

  private createMem(bytes: number, usage: number): Mem {
    if (bytes > this.device.limits.maxBufferSize) {
      throw new Error(`webgpu: a ${bytes}-byte buffer exceeds maxBufferSize ${this.device.limits.maxBufferSize} of ${this.description}`);
    }
    this.stats.buffersCreated++;
    return { gpu: this.device.createBuffer({ size: bytes, usage }), id: this.nextId++, bytes };
  }

  private mem(b: Buf): Mem {
    const m = (b as WebGPUBuf).mem;
    if (m === undefined) throw new Error('webgpu: buffer from another backend');
    if (m === null) throw new Error('webgpu: buffer used after free');
    return m;
  }

  private throwIfError(): void {
    if (this.error === null) return;
    const e = this.error;
    this.error = null;
    throw new Error(`webgpu (${this.description}): ${e}`);
  }

}

function need(b: Buf, n: number, what: string): void {
  if (b.length < n) throw new Error(`webgpu ${what}: needs ${n} elements, buffer has ${b.length}`);
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/** staging buffers come in power-of-two sizes (>= 256 bytes) so a few serve every read */
function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function stagingSize(bytes: number): number {
  return Math.max(256, 2 ** Math.ceil(Math.log2(bytes)));
}

function poolPush(pool: Map<number, Mem[]>, m: Mem): void {
  const list = pool.get(m.bytes);
  if (list) list.push(m);
  else pool.set(m.bytes, [m]);
}
