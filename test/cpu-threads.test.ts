/**
 * The CPU backend on several threads (src/backend/cpu/threads.ts): a matmul split by rows
 * across worker threads, and attention split by heads, must give bit for bit what one thread
 * gives, for any shape,
 * including row counts that do not split evenly, and the model on it must decode the same
 * tokens (the golden tokens of the shipped model included) and keep tree forwards equal to
 * step-by-step decoding.
 */
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { AttentionParams, Buf } from '../src/backend/backend.js';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { generate } from '../src/decode/generate.js';
import { Llama } from '../src/model/llama.js';
import { nodeWorkerSpawner } from '../src/node/backend.js';
import { readModelDir } from '../src/node/files.js';
import { readFileSync } from 'node:fs';
import { bpeFromJson } from '../src/tokenizer/index.js';
import { attentionCases, checkTreeEqualsDecode, f32Values as f32 } from './helpers.js';
import { packMatrix, type PackedMatrix } from '../src/tensor/weight-format.js';

const root = resolve(import.meta.dirname, '..');

/** a backend on `threads` threads that splits every matmul it can (no minimum work per thread) */
async function threaded(threads: number): Promise<CpuBackend> {
  const be = new CpuBackend({ threads, spawn: nodeWorkerSpawner, minWorkPerThread: 1 });
  await be.ready;
  return be;
}

const opened: CpuBackend[] = [];
afterAll(() => opened.forEach((b) => b.close()));

async function matmulOn(be: CpuBackend, x: Float32Array, w: Float32Array, T: number, K: number, N: number): Promise<Float32Array> {
  const up = (a: Float32Array): Buf => {
    const b = be.alloc(a.length);
    be.write(b, a);
    return b;
  };
  const out = be.alloc(T * N);
  be.matmul(out, up(x), up(w), T, K, N);
  const o = new Float32Array(T * N);
  await be.read(out, o);
  return o;
}

async function matmulPacked(be: CpuBackend, x: Float32Array, m: PackedMatrix, T: number, K: number, N: number): Promise<Float32Array> {
  const xb = be.alloc(x.length), out = be.alloc(T * N);
  be.write(xb, x);
  be.matmul(out, xb, be.uploadWeights(m), T, K, N);
  const o = new Float32Array(T * N);
  await be.read(out, o);
  return o;
}

describe('CPU backend on worker threads', async () => {
  const one = new CpuBackend();
  const two = await threaded(2);
  const three = await threaded(3);
  opened.push(two, three);

  it('starts the threads it was asked for', () => {
    expect(two.threads).toBe(2);
    expect(three.threads).toBe(3);
    expect(two.threadsNote).toBe('');
  });

  it('matmul is bit-identical to one thread for random shapes, rows not splitting evenly included', async () => {
    const dims = fc.record({ T: fc.integer({ min: 1, max: 9 }), K: fc.integer({ min: 1, max: 70 }), N: fc.integer({ min: 1, max: 41 }) });
    await fc.assert(
      fc.asyncProperty(
        dims.chain((d) => fc.tuple(fc.constant(d), f32(d.T * d.K), f32(d.N * d.K))),
        async ([{ T, K, N }, x, w]) => {
          const want = await matmulOn(one, x, w, T, K, N);
          expect(Array.from(await matmulOn(two, x, w, T, K, N))).toEqual(Array.from(want));
          expect(Array.from(await matmulOn(three, x, w, T, K, N))).toEqual(Array.from(want));
        },
      ),
      { numRuns: 60 },
    );
    expect(two.splitCalls).toBeGreaterThan(30); // most of them were really split
    expect(three.splitCalls).toBeGreaterThan(30);
  });

  for (const format of ['f32', 'bf16', 'f16', 'q8_0'] as const) {
    it(`${format} weights: the threaded matmul is bit-identical to one thread`, async () => {
      const q8f32 = new CpuBackend({ threads: 2, spawn: nodeWorkerSpawner, minWorkPerThread: 1, q8Activations: 'f32' });
      await q8f32.ready;
      opened.push(q8f32);
      const backends = format === 'q8_0' ? [two, three, q8f32] : [two, three];
      const oneF32 = new CpuBackend({ q8Activations: 'f32' });
      const dims = fc.record({ T: fc.integer({ min: 1, max: 7 }), K: fc.integer({ min: 1, max: 100 }), N: fc.integer({ min: 1, max: 29 }) });
      await fc.assert(
        fc.asyncProperty(dims.chain((d) => fc.tuple(fc.constant(d), f32(d.T * d.K), f32(d.N * d.K))), async ([{ T, K, N }, x, w]) => {
          const m = packMatrix({ shape: [N, K], data: w }, format);
          for (const be of backends) {
            const single = be === q8f32 ? oneF32 : one;
            const before = be.splitCalls;
            const got = await matmulPacked(be, x, m, T, K, N);
            expect(be.splitCalls, 'split across threads').toBe(N > 4 ? before + 1 : before);
            expect(Array.from(got)).toEqual(Array.from(await matmulPacked(single, x, m, T, K, N)));
          }
        }),
        { numRuns: 40 },
      );
    });
  }

  it('attention is bit-identical to one thread, split by heads (GQA, masks with hidden slots, heads not splitting evenly)', async () => {
    const cases = attentionCases({ maxT: 4, maxKvHeads: 3, groups: [1, 2, 3], maxHeadDim: 40, maxPast: 30 });
    const attend = async (be: CpuBackend, q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionParams): Promise<number[]> => {
      const up = (a: Float32Array): Buf => {
        const b = be.alloc(a.length);
        be.write(b, a);
        return b;
      };
      const out = be.alloc(q.length);
      be.attention(out, up(q), up(k), up(v), p);
      const o = new Float32Array(q.length);
      await be.read(out, o);
      return Array.from(o);
    };
    const [splitBefore2, splitBefore3] = [two.splitCalls, three.splitCalls];
    await fc.assert(
      fc.asyncProperty(cases, async ({ p, q, k, v }) => {
        const want = await attend(one, q, k, v, p);
        expect(await attend(two, q, k, v, p)).toEqual(want);
        expect(await attend(three, q, k, v, p)).toEqual(want);
      }),
      { numRuns: 60 },
    );
    expect(two.splitCalls - splitBefore2).toBeGreaterThan(30); // most calls were really split
    expect(three.splitCalls - splitBefore3).toBeGreaterThan(30);
  });

  it('a tree forward gives every node the logits of step-by-step decoding', async () => {
    await checkTreeEqualsDecode(two, 8);
  });

  it('the shipped model decodes its golden tokens on 2 threads', async () => {
    const golden: { maxNewTokens: number; cases: { prompt: string; tokens: number[] }[] } = JSON.parse(readFileSync(join(root, 'test/golden.json'), 'utf8'));
    const { config, tensors, tokenizerJson } = await readModelDir(join(root, 'weights/base'));
    const tokenizer = bpeFromJson(tokenizerJson!, 'weights/base/tokenizer.json');
    const model = new Llama(two, config, tensors);
    for (const c of golden.cases) {
      const r = await generate(model, tokenizer.encode(c.prompt, { bos: true }), { maxNewTokens: golden.maxNewTokens });
      expect(r.tokens, c.prompt).toEqual(c.tokens);
    }
  });

  it('a runtime without workers runs on one thread and says why', () => {
    const be = new CpuBackend({ threads: 4 }); // Node has no Web Workers: no spawner given
    expect(be.threads).toBe(1);
    expect(be.threadsNote).toMatch(/1 thread of the 4 asked for: .*ctcspec\/node/);
  });

  it('refuses a thread count that is not a whole number >= 1', () => {
    for (const bad of [0, -1, 1.5, NaN]) expect(() => new CpuBackend({ threads: bad })).toThrow(/threads must be a whole number >= 1/);
  });
});

describe('Web Workers (the runtime-neutral spawner) in Deno and Bun', () => {
  const run = promisify(execFile);
  const bin = (name: string) => join(root, 'node_modules', '.bin', name);
  const script = join(root, 'test/threads-web.mjs'); // imports dist/: npm test builds first
  for (const [runtime, args] of [['deno', ['run', '--allow-read', script]], ['bun', [script]]] as const) {
    it(`${runtime}: 2 threads give 1 thread's matmul bit for bit`, async () => {
      const { stdout } = await run(bin(runtime), [...args], { cwd: root, timeout: 60_000 });
      const r = JSON.parse(stdout.trim().split('\n').pop()!);
      expect(r).toEqual({ threads: 2, note: '', splitCalls: 4, same: true });
    }, 90_000);
  }
});
