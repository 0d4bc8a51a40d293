/**
 * The WebAssembly SIMD matmul against the plain TypeScript reference and a naive f64
 * definition, and the wasm-memory arena the SIMD backend keeps its buffers in (growing
 * the memory detaches the old ArrayBuffer; buffers must survive that).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Buf } from '../src/backend/backend.js';
import { CpuBackend, CpuBuf, reference } from '../src/backend/cpu/cpu.js';
import { simdSupported } from '../src/backend/cpu/wasm.js';
import { maxAbsDiff, tinyConfig, tinyModel } from './helpers.js';

const f32 = (n: number) => fc.float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true, min: -4, max: 4 });
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
