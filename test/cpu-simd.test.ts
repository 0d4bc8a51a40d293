/**
 * The WebAssembly SIMD matmul and attention against the plain TypeScript reference and a
 * naive f64 definition, and the wasm-memory arena the SIMD backend keeps its buffers in (growing
 * the memory detaches the old ArrayBuffer; buffers must survive that).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AttentionParams, Buf } from '../src/backend/backend.js';
import { CpuBackend, CpuBuf, reference } from '../src/backend/cpu/cpu.js';
import { simdSupported } from '../src/backend/cpu/wasm.js';
import { attentionCases, f32Values as f32, maxAbsDiff, tinyConfig, tinyModel } from './helpers.js';
import { checkHiddenSlotsAddNothing } from './masked-attention.js';

const dims = fc.record({ T: fc.integer({ min: 1, max: 9 }), K: fc.integer({ min: 1, max: 70 }), N: fc.integer({ min: 1, max: 23 }) });

function upload(be: CpuBackend, a: Float32Array): Buf {
  const b = be.alloc(a.length);
  be.write(b, a);
  return b;
}
async function download(be: CpuBackend, b: Buf): Promise<Float32Array> {
  const o = new Float32Array(b.length);
  await be.read(b, o);
  return o;
}

/** out (T, N) = x (T, K) @ w (N, K)^T on the backend */
async function runMatmul(be: CpuBackend, x: Float32Array, w: Float32Array, T: number, K: number, N: number): Promise<Float32Array> {
  const out = be.alloc(T * N);
  be.matmul(out, upload(be, x), upload(be, w), T, K, N);
  return download(be, out);
}

/** want[t, n] = sum_k x[t, k] w[n, k] in f64, and the same sum of |terms| (the rounding scale) */
function naiveMatmul(x: Float32Array, w: Float32Array, T: number, K: number, N: number) {
  const want = new Float64Array(T * N), scale = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < K; k++) {
        want[t * N + n]! += x[t * K + k]! * w[n * K + k]!;
        scale[t * N + n]! += Math.abs(x[t * K + k]! * w[n * K + k]!);
      }
    }
  }
  return { want, scale };
}

/** f32 sums of K terms in any order stay within about K ulps of the sum of |terms| (70 * 2^-24 < 1e-5) */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number>) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= 1e-5 * (1 + scale[i]!))) throw new Error(`index ${i}: got ${got[i]}, want ${want[i]} (scale ${scale[i]})`);
  }
}

// Every runtime we support (Node >= 20, Deno, Bun, current browsers) has wasm SIMD:
// its absence is a failure here, not a reason to skip.
it('wasm SIMD is available', () => expect(simdSupported()).toBe(true));

describe('cpu SIMD matmul', () => {
  const simd = new CpuBackend({ simd: true });

  it('equals the plain TS matmul and the f64 definition (K % 4, N % 4, T % 4 remainders)', async () => {
    await fc.assert(
      fc.asyncProperty(dims.chain((d) => fc.tuple(fc.constant(d), f32(d.T * d.K), f32(d.N * d.K))), async ([{ T, K, N }, x, w]) => {
        const got = await runMatmul(simd, x, w, T, K, N);
        const plain = new Float32Array(T * N);
        reference.matmul(plain, x, w, T, K, N);
        const { want, scale } = naiveMatmul(x, w, T, K, N);
        expectClose(got, want, scale);
        expectClose(got, plain, scale);
      }),
      { numRuns: 300 },
    );
  });

  it('length 1 and model-sized shapes', async () => {
    const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);
    for (const [T, K, N] of [[1, 1, 1], [1, 288, 768], [1, 768, 288], [5, 288, 97], [9, 30, 4001]] as const) {
      const x = rand(T * K, 1), w = rand(N * K, 2);
      const { want, scale } = naiveMatmul(x, w, T, K, N);
      expectClose(await runMatmul(simd, x, w, T, K, N), want, scale);
    }
  });

  it('old buffers stay readable and new buffers compute correctly after the memory grows', async () => {
    const be = new CpuBackend({ simd: true });
    const before = upload(be, Float32Array.from([1, 2, 3, 4, 5]));
    const bytesBefore = be.arena!.memory.buffer.byteLength;
    const viewBefore = (before as CpuBuf).data;
    const big = be.alloc(4 << 20); // 16 MiB: more than the memory holds, so it grows
    expect(be.arena!.memory.buffer.byteLength).toBeGreaterThan(bytesBefore);
    expect(viewBefore.length).toBe(0); // growing detached the old ArrayBuffer ...
    expect(Array.from(await download(be, before))).toEqual([1, 2, 3, 4, 5]); // ... and .data re-derived the view
    expect((await download(be, big)).every((v) => v === 0)).toBe(true);

    const T = 3, K = 7, N = 5;
    const x = Float32Array.from({ length: T * K }, (_, i) => i - 10), w = Float32Array.from({ length: N * K }, (_, i) => (i % 5) - 2);
    const { want, scale } = naiveMatmul(x, w, T, K, N);
    expectClose(await runMatmul(be, x, w, T, K, N), want, scale);
    // and a matmul whose operands straddle the grow: one from before, one from after
    const w1 = be.alloc(5);
    be.write(w1, Float32Array.from([1, 1, 1, 1, 1]));
    const out = be.alloc(1);
    be.matmul(out, before, w1, 1, 5, 1);
    expect(Array.from(await download(be, out))).toEqual([15]);
  });

  it('freed blocks are reused zero-filled; a double free throws', async () => {
    const be = new CpuBackend({ simd: true });
    const a = upload(be, Float32Array.from([7, 7, 7]));
    const offset = (a as CpuBuf).byteOffset;
    be.free(a);
    const b = be.alloc(3);
    expect((b as CpuBuf).byteOffset).toBe(offset);
    expect(Array.from(await download(be, b))).toEqual([0, 0, 0]);
    expect(() => be.free(a)).toThrow(/not allocated/);
    for (const n of [1, 5, 6, 0]) expect((be.alloc(n) as CpuBuf).byteOffset % 16).toBe(0);
  });

  it('buffers of another backend take the plain path (the kernel only sees its own memory)', async () => {
    const other = new CpuBackend({ simd: true }), plain = new CpuBackend({ simd: false });
    const x = upload(other, Float32Array.from([1, 2, 3])), w = upload(plain, Float32Array.from([4, 5, 6, 1, 1, 1]));
    const out = simd.alloc(2);
    simd.matmul(out, x, w, 1, 3, 2);
    expect(Array.from(await download(simd, out))).toEqual([32, 6]);
  });

  it('a model on the SIMD backend gives the logits of the plain backend', async () => {
    const plain = new CpuBackend({ simd: false });
    await fc.assert(
      fc.asyncProperty(tinyConfig, fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 12 }), async (config, tokens) => {
        const a = await tinyModel(simd, config, 3).forward(tokens);
        const b = await tinyModel(plain, config, 3).forward(tokens);
        expect(maxAbsDiff(a, b)).toBeLessThan(1e-4 * (1 + Math.max(...b.map(Math.abs))));
      }),
      { numRuns: 30 },
    );
  });
});

/** attention in f64, straight from the definition: softmax(q k^T / sqrt(hd) + mask) v */
function naiveAttention(q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionParams): Float64Array {
  const { T, nHeads: H, nKvHeads: KVH, headDim: hd, past, mask } = p;
  const slots = past + T, out = new Float64Array(T * H * hd);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / KVH));
      const sc: number[] = [];
      for (let s = 0; s < slots; s++) {
        const m = mask ? mask[t * slots + s]! : s <= past + t ? 0 : -Infinity;
        let dot = 0;
        for (let i = 0; i < hd; i++) dot += q[(t * H + h) * hd + i]! * k[(s * KVH + kvh) * hd + i]!;
        sc.push(m === -Infinity ? -Infinity : dot / Math.sqrt(hd) + m);
      }
      const max = Math.max(...sc);
      const e = sc.map((x) => (x === -Infinity ? 0 : Math.exp(x - max)));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let i = 0; i < hd; i++) {
        let a = 0;
        for (let s = 0; s < slots; s++) a += (e[s]! / sum) * v[(s * KVH + kvh) * hd + i]!;
        out[(t * H + h) * hd + i] = a;
      }
    }
  }
  return out;
}

describe('cpu SIMD attention', () => {
  const simd = new CpuBackend({ simd: true });
  /** shapes with every remainder of the kernels: hd % 4, hd vs 32, T % 4, grouped heads, no past */
  const cases = attentionCases({ maxT: 9, maxKvHeads: 3, groups: [1, 2, 3], maxHeadDim: 70, maxPast: 20 });

  it('equals the plain TS attention and the f64 definition (causal and masked, GQA, every head size)', async () => {
    await fc.assert(
      fc.asyncProperty(cases, async ({ p, q, k, v }) => {
        const slots = p.past + p.T;
        const out = simd.alloc(q.length);
        simd.attention(out, upload(simd, q.map((x) => x / 2)), upload(simd, k), upload(simd, v), p);
        const got = await download(simd, out);
        const plain = new Float32Array(got.length);
        reference.attention(plain, q.map((x) => x / 2), k, v, p, new Float32Array(slots), new Int32Array(slots));
        const want = naiveAttention(q.map((x) => x / 2), k, v, p);
        // outputs are convex combinations of values in [-4, 4]; the scores' f32 rounding
        // (up to hd terms of size 8) moves the weights by about hd * 8 * 2^-24 relative
        const tol = 1e-6 * (10 + 16 * p.headDim);
        for (let i = 0; i < want.length; i++) {
          if (!(Math.abs(got[i]! - want[i]!) <= tol)) throw new Error(`simd index ${i}: got ${got[i]}, want ${want[i]}`);
          if (!(Math.abs(plain[i]! - want[i]!) <= tol)) throw new Error(`plain index ${i}: got ${plain[i]}, want ${want[i]}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a query row gives the same bits whatever else is in the batch and whatever the mask hides', async () => {
    // query t of a causal batch vs the same query alone behind a mask that shows the same slots
    const H = 4, KVH = 2, hd = 36, past = 11, T = 6, slots = past + T;
    const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed));
    const q = rand(T * H * hd, 1), k = rand(slots * KVH * hd, 2), v = rand(slots * KVH * hd, 3);
    const kb = upload(simd, k), vb = upload(simd, v);
    const batch = simd.alloc(T * H * hd);
    simd.attention(batch, upload(simd, q), kb, vb, { T, nHeads: H, nKvHeads: KVH, headDim: hd, past, mask: null });
    const all = await download(simd, batch);
    for (let t = 0; t < T; t++) {
      // the same query as a batch of T with only row t meaningful: a tree mask that shows slots <= past + t
      const mask = new Float32Array(T * slots).fill(-Infinity);
      for (let r = 0; r < T; r++) mask.fill(0, r * slots, r * slots + past + Math.min(r, t) + 1);
      const qt = new Float32Array(T * H * hd);
      qt.set(q.subarray(t * H * hd, (t + 1) * H * hd), t * H * hd);
      const out = simd.alloc(T * H * hd);
      simd.attention(out, upload(simd, qt), kb, vb, { T, nHeads: H, nKvHeads: KVH, headDim: hd, past, mask });
      const got = await download(simd, out);
      expect(Array.from(got.subarray(t * H * hd, (t + 1) * H * hd))).toEqual(Array.from(all.subarray(t * H * hd, (t + 1) * H * hd)));
    }
  });

  it('hidden slots add nothing, even with Infinity, NaN or 3e38 in their k and v rows', () =>
    checkHiddenSlotsAddNothing(simd, { maxPast: 20, maxHeadDim: 70 }, 200));
});

describe('cpu logSumExpRows (the vector exp in wasm)', () => {
  const simd = new CpuBackend({ simd: true }), plain = new CpuBackend({ simd: false });
  const rows = fc.record({ rows: fc.integer({ min: 1, max: 4 }), cols: fc.integer({ min: 1, max: 70 }) }).chain((d) =>
    fc.tuple(fc.constant(d), fc.array(fc.oneof(fc.float({ min: -120, max: 60, noNaN: true }), fc.constant(-Infinity)), { minLength: d.rows * d.cols, maxLength: d.rows * d.cols })),
  );

  it('equals the f64 log-sum-exp within f32 rounding (spread rows, -Infinity entries, every cols % 4)', () => {
    fc.assert(
      fc.property(rows, ([{ rows: R, cols: C }, values]) => {
        const x = Float32Array.from(values);
        const got = new Float64Array(R), plainGot = new Float64Array(R);
        simd.logSumExpRows(upload(simd, x), R, C, got);
        plain.logSumExpRows(upload(plain, x), R, C, plainGot);
        for (let r = 0; r < R; r++) {
          const want = reference.logSumExp(x, r * C, C);
          expect(plainGot[r]).toBe(want);
          if (!(got[r] === want || Math.abs(got[r]! - want) <= 1e-6 * (1 + Math.abs(want)))) throw new Error(`row ${r}: got ${got[r]}, want ${want}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a NaN in a row gives NaN for that row only', () => {
    const x = Float32Array.from([0, 1, NaN, 2, 3, 4, 5, 6, 7, 8]);
    const out = new Float64Array(2);
    simd.logSumExpRows(upload(simd, x), 2, 5, out);
    expect(out[0]).toBeNaN();
    expect(out[1]).toBeCloseTo(reference.logSumExp(x, 5, 5), 5);
  });
});

describe('cpu SIMD siluGate', () => {
  it('equals silu(g) * u in f64 within a few f32 ulps (every n % 4, large |g|)', async () => {
    const simd = new CpuBackend({ simd: true });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 70 }).chain((n) => fc.tuple(fc.float32Array({ minLength: n, maxLength: n, noNaN: true, min: -200, max: 200 }), f32(n))),
        async ([g, u]) => {
          const out = simd.alloc(g.length);
          simd.siluGate(out, upload(simd, g), upload(simd, u), g.length);
          const got = await download(simd, out);
          for (let i = 0; i < g.length; i++) {
            const want = (g[i]! / (1 + Math.exp(-g[i]!))) * u[i]!;
            if (!(Math.abs(got[i]! - want) <= 1e-6 * Math.abs(want) + 1e-30)) throw new Error(`index ${i}: silu(${g[i]}) * ${u[i]}: got ${got[i]}, want ${want}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('cpu backend with simd: false', () => {
  it('keeps plain Float32Array buffers and the reference matmul, bit for bit', async () => {
    const be = new CpuBackend({ simd: false });
    expect(be.arena).toBeNull();
    const T = 6, K = 13, N = 7;
    const x = Float32Array.from({ length: T * K }, (_, i) => Math.cos(i)), w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i));
    const want = new Float32Array(T * N);
    reference.matmul(want, x, w, T, K, N);
    expect(Array.from(await runMatmul(be, x, w, T, K, N))).toEqual(Array.from(want));
  });
});
