/**
 * Every WebGL (gpu.js) kernel against the CPU reference backend, in headless Chromium (WebGL2
 * on SwiftShader where there is no GPU): the shared kernel properties
 * (test/gpu-kernel-properties.ts, also run on WebGPU) plus what is particular to this backend:
 * writes into part of a buffer, copies into the middle, layers of one row over a long batch.
 * The calls go through RemoteBackend (test/gpujs-remote.ts), which queues them and runs them
 * in the page at each read, so a bad call is reported at the next flush.
 *
 * Tolerances: kernels compute in f32 (GLSL highp); the bounds are the shared ones. No WebGL
 * context is a failure, not a skip. Needs `npm run build` first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkTreeEqualsDecode } from './helpers.js';
import { gpuVsCpu, randn, registerKernelProperties, seed, size } from './gpu-kernel-properties.js';
import { openWebgl, type RemoteBackend, type WebglSession } from './gpujs-remote.js';

let session: WebglSession;
let gpu: RemoteBackend;
const RUNS = { numRuns: 25 };
const { runBoth, expectClose } = gpuVsCpu('webgl', () => gpu);

beforeAll(async () => {
  session = await openWebgl();
  gpu = session.backend;
});
afterAll(() => session?.close());

// ---- kernels ------------------------------------------------------------------------------

describe('webgl kernels vs the CPU reference', () => {
  registerKernelProperties({
    label: 'webgl',
    gpu: () => gpu,
    runs: RUNS,
    // calls queue in the page: a bad one rejects the next flush
    expectReported: async (call, message) => {
      call();
      await expect(gpu.flush()).rejects.toThrow(message);
    },
    titles: { matmul: 'one invocation per output; K of every size', fullyMasked: 'run of 100 slots', hiddenSlots: '' },
  });
});

describe('webgl buffers: partial writes and copies keep the rest', () => {
  it('write at an offset, copy into the middle, a shorter prefix written over a longer one', async () => {
    await fc.assert(
      fc.asyncProperty(size(400), fc.nat(200), fc.integer({ min: 1, max: 400 }), seed, async (n, off, m, s) => {
        const len = n + off + 5, a = randn(len, s), part = randn(n, s + 1), short = randn(Math.min(m, len), s + 2);
        const [g, c] = await runBoth([a, part], [len], (b, [ab, pb, out]) => {
          b.write(ab!, part, off); //                         a[off, off + n) = part
          b.copy(out!, off + 1, ab!, off, n); //               out[off + 1, ...) = a[off, off + n)
          b.write(out!, short); //                            a shorter prefix over it
          b.add(ab!, ab!, ab!, Math.min(m, len)); //          a prefix kernel over a longer layer
        });
        expect(g[0]).toEqual(c[0]);
        expect(g[2]).toEqual(c[2]);
      }),
      RUNS,
    );
  });

  it('a one-row step after a long batch reads back the long batch beyond its row', async () => {
    const D = 7, T = 30, x = randn(T * D, 1), w = randn(D * D, 2);
    const [g, c] = await runBoth([x, w], [T * D], (b, [xb, wb, out]) => {
      b.matmul(out!, xb!, wb!, T, D, D); // all rows
      b.matmul(out!, xb!, wb!, 1, D, D); // row 0 again: a layer of one row over thirty
      b.add(xb!, out!, xb!, T * D); //     reads every row: the layers merge
    });
    expectClose(g[0]!, c[0]!, 0, 1e-5, 'x');
    expectClose(g[2]!, c[2]!, 0, 1e-5, 'out');
  });
});

describe('webgl batch invariance', () => {
  it('a tree forward gives every node bit-identical logits to a step-by-step decode of its root path', () => checkTreeEqualsDecode(gpu, 6));
});

describe('webgl backend mechanics', () => {
  it('rejects use after free and out-of-range reads', async () => {
    const b = gpu.alloc(4);
    await expect(gpu.read(b, new Float32Array(5))).rejects.toThrow(/exceed/);
    gpu.free(b);
    gpu.add(b, b, b, 4);
    await expect(gpu.flush()).rejects.toThrow(/after free/);
  });

  it('a decode step reads back once and uploads nothing but its token id', async () => {
    const D = 32, V = 40, emb = gpu.alloc(V * D), w = gpu.alloc(D * D), x = gpu.alloc(4 * D), y = gpu.alloc(4 * D), tok = gpu.alloc(4);
    gpu.write(emb, randn(V * D, 1));
    gpu.write(w, randn(D * D, 2));
    const out = new Float32Array(1);
    const step = async (id: number) => {
      gpu.embedding(x, emb, Int32Array.of(id), D);
      gpu.matmul(y, x, w, 1, D, D);
      gpu.matmul(x, y, w, 1, D, D);
      gpu.argmax(tok, x, 1, D);
      await gpu.read(tok, out);
    };
    await step(0);
    const before = await gpu.stats();
    for (let i = 1; i <= 5; i++) await step(i);
    const after = await gpu.stats();
    expect(after.readbacks - before.readbacks).toBe(5);
    expect(after.uploads - before.uploads).toBe(5);
    expect(after.merges).toBe(before.merges);
  });
});
