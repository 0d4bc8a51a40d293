/**
 * Every WebGPU kernel against the CPU reference backend: the shared kernel properties
 * (test/gpu-kernel-properties.ts, also run on WebGL) plus what is particular to this backend:
 * matmul_vec under every tuning, batch invariance up to matvecMaxT rows, 2D dispatch splits,
 * no buffers, pipelines or bind groups created by a repeated step, readMany.
 *
 * Runs on the software adapter (Dawn OpenGL ES on Mesa llvmpipe) unless CTCSPEC_WEBGPU=gpu
 * asks for a real GPU. No adapter is a failure, not a skip: CI must have the fallback.
 */
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ropeInvFreq } from '../src/backend/rope.js';
import { WebGPUBackend } from '../src/backend/webgpu/webgpu.js';
import { createNodeWebGPU } from '../src/node/webgpu.js';
import { checkTreeEqualsDecode } from './helpers.js';
import { gpuVsCpu, randn, registerKernelProperties, seed, size } from './gpu-kernel-properties.js';

let gpu: WebGPUBackend;
const RUNS = { numRuns: 40 };
const { runBoth, expectClose } = gpuVsCpu('webgpu', () => gpu);

// In every test's own hook, so a missing adapter fails each test (a failing beforeAll would
// only mark them skipped).
const ready = createNodeWebGPU({ fallback: process.env.CTCSPEC_WEBGPU !== 'gpu' });
ready.catch(() => {}); // reported by each test below
beforeEach(async () => {
  gpu = await ready;
});

afterAll(() => gpu?.destroy());

// ---- kernels ------------------------------------------------------------------------------

describe('webgpu kernels vs the CPU reference', () => {
  registerKernelProperties({
    label: 'webgpu',
    gpu: () => gpu,
    runs: RUNS,
    // arguments are checked as each call encodes its dispatch
    expectReported: async (call, message) => {
      expect(call).toThrow(message);
    },
    titles: { matmul: 'matrix-vector and tiled paths', fullyMasked: '64-slot chunk', hiddenSlots: ' (several 64-slot chunks)' },
  });

  it('matmul_vec under every tuning (GPU-style workgroup reductions included)', async () => {
    const tunings = [{ WG: 32, LANES: 1 }, { WG: 64, LANES: 8 }, { WG: 128, LANES: 32 }, { WG: 128, LANES: 128 }];
    const backends = tunings.map((matvec) => new WebGPUBackend(gpu.device, { matvec }));
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 100 }), size(300), fc.nat(tunings.length - 1), seed, async (T, K4, N, which, s) => {
        const K = 4 * K4, x = randn(T * K, s, 3), w = randn(N * K, s + 1);
        const [g, c] = await runBoth([x, w], [T * N], (b, [xb, wb, out]) => b.matmul(out!, xb!, wb!, T, K, N), backends[which]);
        expectClose(g[2]!, c[2]!, 0, 2e-6 * 3 * K, `matmul_vec ${JSON.stringify(tunings[which])} T=${T} K=${K} N=${N}`);
      }),
      RUNS,
    );
  });
});

describe('webgpu batch invariance', () => {
  it('a tree forward gives every node bit-identical logits to a step-by-step decode of its root path', async () => {
    // what makes greedy speculative decoding on this backend exact: every matmul of up to
    // matvecMaxT rows takes matmul_vec (rows independent of T), attention and the rest are per row
    expect(gpu.matvecMaxT).toBeGreaterThanOrEqual(64);
    await checkTreeEqualsDecode(gpu, 12);
  });
});

describe('webgpu backend mechanics', () => {
  it('splits dispatches beyond 65535 workgroups in 2D', async () => {
    const n = 65535 * 128 + 257; // elementwise: one workgroup per 128 elements
    const a = randn(n, 1), bb = randn(n, 2);
    const [g, c] = await runBoth([a, bb], [n], (b, [ab, bbuf, out]) => b.add(out!, ab!, bbuf!, n));
    expectClose(g[2]!, c[2]!, 0, 0, 'add'); // (toEqual is slow on 8M elements)
    const rows = 70_000, cols = 3; // one workgroup per row
    const x = randn(rows * cols, 3);
    const [g2, c2] = await runBoth([x], [rows], (b, [xb, out]) => b.argmax(out!, xb!, rows, cols));
    expectClose(g2[1]!, c2[1]!, 0, 0, "argmax");
  }, 60_000);

  it('a repeated kernel sequence creates no buffers, pipelines or bind groups', async () => {
    const D = 96, F = 200, V = 50, H = 4, KVH = 2, hd = D / H, T = 1;
    const w = {
      emb: gpu.alloc(V * D), wq: gpu.alloc(D * D), w1: gpu.alloc(F * D), w2: gpu.alloc(D * F),
      norm: gpu.alloc(D), k: gpu.alloc(16 * KVH * hd), v: gpu.alloc(16 * KVH * hd),
    };
    gpu.write(w.emb, randn(V * D, 1));
    gpu.write(w.wq, randn(D * D, 2));
    gpu.write(w.w1, randn(F * D, 3));
    gpu.write(w.w2, randn(D * F, 4));
    gpu.write(w.norm, randn(D, 5));
    const logits = new Float32Array(D);
    const step = async (pos: number) => {
      const x = gpu.alloc(D), h = gpu.alloc(D), q = gpu.alloc(D), att = gpu.alloc(D), f1 = gpu.alloc(F), f2 = gpu.alloc(F), tok = gpu.alloc(1);
      gpu.embedding(x, w.emb, Int32Array.of(pos % V), D);
      gpu.rmsnorm(h, x, w.norm, T, D, 1e-5);
      gpu.matmul(q, h, w.wq, T, D, D);
      gpu.rope(q, Int32Array.of(pos), T, H, hd, ropeInvFreq(hd, 10000));
      gpu.copy(w.k, pos * KVH * hd, q, 0, KVH * hd);
      gpu.copy(w.v, pos * KVH * hd, h, 0, KVH * hd);
      gpu.attention(att, q, w.k, w.v, { T, nHeads: H, nKvHeads: KVH, headDim: hd, past: pos, mask: null });
      gpu.add(x, x, att, D);
      gpu.matmul(f1, x, w.w1, T, D, F);
      gpu.matmul(f2, x, w.w1, T, D, F);
      gpu.siluGate(f1, f1, f2, F);
      gpu.matmul(h, f1, w.w2, T, F, D);
      gpu.mul(h, h, x, D);
      gpu.softmax(q, h, 1, D);
      gpu.argmax(tok, h, 1, D);
      await gpu.read(q, logits);
      await gpu.read(tok, logits.subarray(0, 1));
      for (const b of [x, h, q, att, f1, f2, tok]) gpu.free(b);
    };
    await step(0);
    await step(1);
    const before = { ...gpu.stats };
    for (let pos = 2; pos < 6; pos++) await step(pos);
    expect(gpu.stats.buffersCreated).toBe(before.buffersCreated);
    expect(gpu.stats.pipelinesCreated).toBe(before.pipelinesCreated);
    expect(gpu.stats.bindGroupsCreated).toBe(before.bindGroupsCreated);
    expect(gpu.stats.dispatches).toBeGreaterThan(before.dispatches);
    expect(logits.every(Number.isFinite)).toBe(true);
  });

  it('readMany returns what separate reads return, in one staging buffer (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 300 })), { minLength: 1, maxLength: 4 }), fc.integer({ min: 1 }), async (shapes, seed) => {
        const bufs = shapes.map(([len], i) => {
          const b = gpu.alloc(len);
          gpu.write(b, randn(len, seed + i));
          return b;
        });
        const dsts = shapes.map(([len, n]) => new Float32Array(Math.min(len, n)).fill(NaN));
        await gpu.readMany(bufs, dsts);
        for (let i = 0; i < bufs.length; i++) {
          const one = new Float32Array(dsts[i]!.length);
          await gpu.read(bufs[i]!, one);
          expect(dsts[i]).toEqual(one);
          expect(Array.from(one)).toEqual(Array.from(randn(shapes[i]![0], seed + i).subarray(0, one.length)));
        }
        for (const b of bufs) gpu.free(b);
      }),
      { numRuns: 20 },
    );
    const b = gpu.alloc(4);
    await expect(gpu.readMany([b], [new Float32Array(5)])).rejects.toThrow(/exceed/);
    await expect(gpu.readMany([b], [])).rejects.toThrow(/sources/);
    gpu.free(b);
  });

  it('rejects use after free and out-of-range reads', async () => {
    const b = gpu.alloc(4);
    await expect(gpu.read(b, new Float32Array(5))).rejects.toThrow(/exceed/);
    gpu.free(b);
    expect(() => gpu.add(b, b, b, 4)).toThrow(/after free/);
  });
});
