/**
 * The kernel property tests every GPU backend runs against the CPU reference backend, on
 * random shapes and values (fast-check): sizes that are not multiples of a workgroup or a
 * texture row, length 1, large values, -Infinity masks, grouped-query ratios, argmax ties,
 * aliased outputs. One suite, rerun per backend: test/webgpu-kernels.test.ts (WebGPU) and
 * test/gpujs-kernels.test.ts (WebGL through gpu.js) each call registerKernelProperties inside
 * their own describe and add only what is particular to their backend.
 *
 * Tolerances: kernels compute in f32 where the CPU reference accumulates some sums in f64
 * and uses Math.exp; every backend is held to the same bounds.
 */
import { expect, it } from 'vitest';
import fc from 'fast-check';
import type { AttentionParams, Backend, Buf } from '../src/backend/backend.js';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { ropeInvFreq } from '../src/backend/rope.js';
import { checkHiddenSlotsAddNothing } from './masked-attention.js';

// ---- helpers ------------------------------------------------------------------------------

/** deterministic uniform values in [-scale, scale) */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13, s ^= s >>> 17, s ^= s << 5; // xorshift32
    a[i] = ((s >>> 0) / 2 ** 32 * 2 - 1) * scale;
  }
  return a;
}

export const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

// sizes around 1 and the powers of two 32, 64, 128: workgroup widths on WebGPU; texture rows,
// which are not multiples of anything, on WebGL
export const size = (max: number) => fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constantFrom(31, 63, 64, 65, 127, 128, 129), fc.integer({ min: 1, max }));
export const scale = fc.constantFrom(1, 1e-3, 1e3);
export const seed = fc.integer({ min: 1, max: 2 ** 31 - 1 });

/** one GPU backend against the CPU reference: the comparison helpers every test uses */
export interface GpuVsCpu {
  /**
   * Upload `inputs` to both backends, allocate zeroed outputs of `outLens`, run `op` with
   * [...inputs, ...outputs] and read every buffer back: [gpu contents, cpu contents].
   * `g` replaces the GPU backend (another tuning of it, say).
   */
  runBoth(inputs: Float32Array[], outLens: number[], op: (b: Backend, bufs: Buf[]) => void, g?: Backend): Promise<[Float32Array[], Float32Array[]]>;
  /** |got - want| <= atol[i] + rtol * |want| elementwise, NaN-free */
  expectClose(got: Float32Array, want: Float32Array, rtol: number, atol: number | Float32Array, what?: string): void;
}

/**
 * The helpers for the backend `gpu()` returns (a getter: the backend is opened in a hook);
 * `label` ('webgpu', 'webgl') names it in failure messages.
 */
export function gpuVsCpu(label: string, gpu: () => Backend): GpuVsCpu {
  const cpu = new CpuBackend();
  return {
    async runBoth(inputs, outLens, op, g = gpu()) {
      const results: Float32Array[][] = [];
      for (const b of [g, cpu]) {
        const bufs = inputs.map((data) => {
          const buf = b.alloc(data.length);
          b.write(buf, data);
          return buf;
        });
        for (const n of outLens) bufs.push(b.alloc(n));
        op(b, bufs);
        const out = [];
        for (const buf of bufs) {
          const host = new Float32Array(buf.length);
          await b.read(buf, host);
          out.push(host);
          b.free(buf);
        }
        results.push(out);
      }
      return [results[0]!, results[1]!];
    },
    expectClose(got, want, rtol, atol, what = '') {
      expect(got.length).toBe(want.length);
      for (let i = 0; i < got.length; i++) {
        const tol = (typeof atol === 'number' ? atol : atol[i]!) + rtol * Math.abs(want[i]!);
        const g = got[i]!, w = want[i]!;
        if (!(Math.abs(g - w) <= tol) && !(g === w)) {
          throw new Error(`${what}[${i}]: ${label} ${g} vs cpu ${w} (tolerance ${tol})`);
        }
      }
    },
  };
}

// ---- the shared tests ---------------------------------------------------------------------

/** what a backend tells the shared tests; everything else about them is the same */
export interface KernelPropertyOptions {
  /** names the backend in failure messages: 'webgpu', 'webgl' */
  label: string;
  /** the backend under test (opened in a hook, so read at run time) */
  gpu: () => Backend;
  /** fast-check runs per property */
  runs: { numRuns: number };
  /**
   * Expect `call` (a kernel call with bad arguments) to be reported with an error matching
   * `message`: WebGPU throws at the call, a queueing backend rejects at its next flush.
   */
  expectReported: (call: () => void, message: RegExp) => Promise<void>;
  /** what the titles say about how this backend computes */
  titles: {
    /** the matmul test's parenthesis: the paths it exercises */
    matmul: string;
    /** the fully masked region of the finite-bias attention test: '64-slot chunk' */
    fullyMasked: string;
    /** appended to the hidden-slots attention title, or '' */
    hiddenSlots: string;
  };
}

/**
 * Register every kernel's property test against the CPU reference with `it`, in the caller's
 * describe.
 */
export function registerKernelProperties(opts: KernelPropertyOptions): void {
  const { runs: RUNS } = opts;
  const { runBoth, expectClose } = gpuVsCpu(opts.label, opts.gpu);

  it('embedding', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 40 }), size(300), fc.integer({ min: 1, max: 20 }), seed, async (V, D, T, s) => {
        const table = randn(V * D, s, 10);
        const ids = Int32Array.from(randn(T, s + 1), (v) => Math.floor(((v + 1) / 2) * V) % V);
        const [g, c] = await runBoth([table], [T * D], (b, [tb, out]) => b.embedding(out!, tb!, ids, D));
        expect(g[1]).toEqual(c[1]);
      }),
      RUNS,
    );
    const gpu = opts.gpu();
    await opts.expectReported(() => gpu.embedding(gpu.alloc(4), gpu.alloc(8), Int32Array.of(2), 4), /outside/);
  });

  it('rmsnorm', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), size(700), scale, seed, async (T, D, sc, s) => {
        const x = randn(T * D, s, sc), w = randn(D, s + 1, 2);
        const [g, c] = await runBoth([x, w], [T * D], (b, [xb, wb, out]) => b.rmsnorm(out!, xb!, wb!, T, D, 1e-5));
        expectClose(g[2]!, c[2]!, 1e-5, 1e-6 * maxAbs(w), 'rmsnorm');
      }),
      RUNS,
    );
  });

  it('rmsnorm in place (out aliases x)', async () => {
    const T = 3, D = 77, x = randn(T * D, 5), w = randn(D, 6);
    const [g, c] = await runBoth([x, w], [], (b, [xb, wb]) => b.rmsnorm(xb!, xb!, wb!, T, D, 1e-6));
    expectClose(g[0]!, c[0]!, 1e-5, 1e-6, 'rmsnorm');
  });

  it(`matmul (${opts.titles.matmul})`, async () => {
    const T = fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 5, max: 70 }));
    const K = fc.oneof(fc.integer({ min: 1, max: 80 }).map((k) => 4 * k), size(300));
    await fc.assert(
      fc.asyncProperty(T, K, size(300), scale, seed, async (T, K, N, sc, s) => {
        const x = randn(T * K, s, sc), w = randn(N * K, s + 1);
        const [g, c] = await runBoth([x, w], [T * N], (b, [xb, wb, out]) => b.matmul(out!, xb!, wb!, T, K, N));
        // rounding grows with sum |x_k w_k|: bound each output by it
        const bound = new Float32Array(T * N);
        for (let t = 0; t < T; t++)
          for (let n = 0; n < N; n++) {
            let a = 0;
            for (let k = 0; k < K; k++) a += Math.abs(x[t * K + k]! * w[n * K + k]!);
            bound[t * N + n] = 2e-6 * a + 1e-30;
          }
        expectClose(g[2]!, c[2]!, 0, bound, `matmul T=${T} K=${K} N=${N}`);
      }),
      RUNS,
    );
  });

  for (const [name, run] of [
    ['add', (b: Backend, o: Buf, x: Buf, y: Buf, n: number) => b.add(o, x, y, n)],
    ['mul', (b: Backend, o: Buf, x: Buf, y: Buf, n: number) => b.mul(o, x, y, n)],
    ['siluGate', (b: Backend, o: Buf, x: Buf, y: Buf, n: number) => b.siluGate(o, x, y, n)],
  ] as const) {
    it(`${name}, including out aliasing a, b, or both`, async () => {
      const alias = fc.constantFrom('none', 'a', 'b', 'both');
      await fc.assert(
        fc.asyncProperty(size(3000), fc.constantFrom(1, 10, 80), seed, alias, async (n, sc, s, al) => {
          const a = randn(n, s, sc), bb = randn(n, s + 1, sc);
          const [g, c] = await runBoth([a, bb], [n], (b, [ab, bbuf, out]) => {
            if (al === 'none') run(b, out!, ab!, bbuf!, n);
            else if (al === 'a') run(b, ab!, ab!, bbuf!, n);
            else if (al === 'b') run(b, bbuf!, ab!, bbuf!, n);
            else run(b, ab!, ab!, ab!, n);
          });
          const which = al === 'none' ? 2 : al === 'b' ? 1 : 0;
          expectClose(g[which]!, c[which]!, 1e-5, 1e-30, name);
        }),
        RUNS,
      );
    });
  }

  it('addBias (a bias on every row, in place)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 9 }), size(700), seed, async (R, C, s) => {
        const x = randn(R * C, s, 3), bias = randn(C, s + 1, 3);
        const [g, c] = await runBoth([x, bias], [], (b, [xb, bb]) => b.addBias(xb!, bb!, R, C));
        expectClose(g[0]!, c[0]!, 1e-6, 1e-30, 'addBias');
      }),
      RUNS,
    );
  });

  it('rope with scaled frequencies (llama3, linear): the host table is what the kernel rotates by', async () => {
    const scalings = [
      { rope_type: 'linear' as const, factor: 4 },
      { rope_type: 'llama3' as const, factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    ];
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 32 }), fc.constantFrom(...scalings), seed, async (T, H, half, scaling, s) => {
        const hd = 2 * half, x = randn(T * H * hd, s, 3);
        const pos = Int32Array.from(randn(T, s + 1), (v) => Math.floor(Math.abs(v) * 100000));
        const [g, c] = await runBoth([x], [], (b, [xb]) => b.rope(xb!, pos, T, H, hd, ropeInvFreq(hd, 500000, scaling)));
        expectClose(g[0]!, c[0]!, 1e-5, 1e-6 * 3, 'rope');
      }),
      RUNS,
    );
  });

  it('rope (HF rotate-half, positions up to 5000)', async () => {
    const hd = fc.integer({ min: 1, max: 48 }).map((h) => 2 * h);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 4 }), hd, fc.constantFrom(10000, 500000), seed, async (T, H, hd, theta, s) => {
        const x = randn(T * H * hd, s, 3);
        const pos = Int32Array.from(randn(T, s + 1), (v) => Math.floor(Math.abs(v) * 5000));
        const [g, c] = await runBoth([x], [], (b, [xb]) => b.rope(xb!, pos, T, H, hd, ropeInvFreq(hd, theta)));
        expectClose(g[0]!, c[0]!, 1e-5, 1e-6 * 3, 'rope');
      }),
      RUNS,
    );
  });

  it('attention: causal (null mask) and random -Infinity masks, GQA, past > 0', async () => {
    const shape = fc.record({
      T: fc.integer({ min: 1, max: 6 }),
      past: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 150 })),
      KVH: fc.integer({ min: 1, max: 3 }),
      group: fc.constantFrom(1, 2, 3),
      hd: fc.oneof(fc.integer({ min: 1, max: 70 }), fc.constantFrom(64, 128, 256)),
      masked: fc.boolean(),
      density: fc.constantFrom(0.05, 0.5, 0.95),
      qScale: fc.constantFrom(0.1, 1, 4),
    });
    await fc.assert(
      fc.asyncProperty(shape, seed, async ({ T, past, KVH, group, hd, masked, density, qScale }, s) => {
        const H = KVH * group, slots = past + T;
        const q = randn(T * H * hd, s, qScale), k = randn(slots * KVH * hd, s + 1), v = randn(slots * KVH * hd, s + 2);
        let mask: Float32Array | null = null;
        if (masked) {
          // each row keeps at least one slot; -Infinity elsewhere with probability `density`
          const r = randn(T * slots, s + 3);
          mask = Float32Array.from(r, (x) => ((x + 1) / 2 < density ? -Infinity : 0));
          const keep = randn(T, s + 4);
          for (let t = 0; t < T; t++) mask[t * slots + Math.floor(((keep[t]! + 1) / 2) * slots) % slots] = 0;
        }
        const p: AttentionParams = { T, nHeads: H, nKvHeads: KVH, headDim: hd, past, mask };
        const [g, c] = await runBoth([q, k, v], [T * H * hd], (b, [qb, kb, vb, out]) => b.attention(out!, qb!, kb!, vb!, p));
        expectClose(g[3]!, c[3]!, 1e-4, 2e-5, `attention T=${T} past=${past} H=${H} KVH=${KVH} hd=${hd}`);
      }),
      RUNS,
    );
  });

  it(`attention: a mask of finite additive biases, and a fully masked ${opts.titles.fullyMasked}`, async () => {
    const T = 2, past = 140, H = 2, KVH = 1, hd = 16, slots = past + T;
    const mask = randn(T * slots, 9, 3);
    for (let s = 0; s < 100; s++) mask[s] = -Infinity; // row 0: the first chunk and more are masked
    mask[slots + 5] = -Infinity;
    const p: AttentionParams = { T, nHeads: H, nKvHeads: KVH, headDim: hd, past, mask };
    const q = randn(T * H * hd, 1, 2), k = randn(slots * KVH * hd, 2), v = randn(slots * KVH * hd, 3);
    const [g, c] = await runBoth([q, k, v], [T * H * hd], (b, [qb, kb, vb, out]) => b.attention(out!, qb!, kb!, vb!, p));
    expectClose(g[3]!, c[3]!, 1e-4, 2e-5, 'attention');
  });

  it(`attention: hidden slots add nothing, even with Infinity, NaN or 3e38 in their k and v rows${opts.titles.hiddenSlots}`, () =>
    checkHiddenSlotsAddNothing(opts.gpu(), { maxPast: 150, maxHeadDim: 256 }, 40));

  it('softmax, with -Infinity entries and all -Infinity rows', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), size(500), fc.constantFrom(0, 0.3, 1), fc.constantFrom(1, 30), seed, async (rows, cols, pInf, sc, s) => {
        const r = randn(rows * cols, s + 1);
        const x = Float32Array.from(randn(rows * cols, s, sc), (v, i) => ((r[i]! + 1) / 2 < pInf ? -Infinity : v));
        const [g, c] = await runBoth([x], [rows * cols], (b, [xb, out]) => b.softmax(out!, xb!, rows, cols));
        expectClose(g[1]!, c[1]!, 1e-5, 1e-7, 'softmax');
      }),
      RUNS,
    );
  });

  it('argmax: first index on ties', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), size(2000), fc.constantFrom(2, 5, 1e6), seed, async (rows, cols, levels, s) => {
        // few distinct levels force ties; the max may sit anywhere, including twice
        const x = Float32Array.from(randn(rows * cols, s), (v) => Math.floor(((v + 1) / 2) * levels));
        const [g, c] = await runBoth([x], [rows], (b, [xb, out]) => b.argmax(out!, xb!, rows, cols));
        expect(g[1]).toEqual(c[1]);
      }),
      RUNS,
    );
  });

  it('copy, between buffers and within one buffer', async () => {
    await fc.assert(
      fc.asyncProperty(size(500), fc.nat(300), fc.nat(300), fc.boolean(), seed, async (n, so, dOff, same, s) => {
        const src = randn(so + n, s);
        if (same) {
          const len = so + n + dOff + n; // [src region][gap][dst region]
          const buf = new Float32Array(len);
          buf.set(src);
          const [g, c] = await runBoth([buf], [], (b, [x]) => b.copy(x!, so + n + dOff, x!, so, n));
          expect(g[0]).toEqual(c[0]);
        } else {
          const [g, c] = await runBoth([src], [dOff + n + 3], (b, [x, out]) => b.copy(out!, dOff, x!, so, n));
          expect(g[1]).toEqual(c[1]);
        }
      }),
      RUNS,
    );
  });
}
