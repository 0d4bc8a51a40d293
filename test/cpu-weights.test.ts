/**
 * Weight matrices in 16 bits and Q8_0 on the SIMD CPU backend: the kernels against their plain
 * definitions (16-bit: the f32 kernel on the widened values, bit for bit; Q8_0: weights.ts's
 * q8Reference, bit for bit) on random shapes with odd sizes, the same bits whatever the batch
 * size and however the rows are split, Q8_0 results near the f64 product, and the Q8_0 round
 * trip within one quantization step.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Buf } from '../src/backend/backend.js';
import { Arena } from '../src/backend/cpu/arena.js';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { instantiateKernels } from '../src/backend/cpu/wasm.js';
import { CpuWeightBuf, q8Reference } from '../src/backend/cpu/weights.js';
import { f16ToF32, f32ToBF16, f32ToF16, keepSixteenBit, type TensorMap } from '../src/tensor/dtype.js';
import { backendSink, checkFits, Llama, modelBytes } from '../src/model/llama.js';
import { parseConfig } from '../src/model/config.js';
import { generate } from '../src/decode/generate.js';
import { parseSafetensors, serializeSafetensors } from '../src/io/safetensors.js';
import { readSafetensorsFile } from '../src/io/checkpoint.js';
import { maxAbsDiff, spreadWeights, tinyConfig } from './helpers.js';
import { keepQ8_0, packMatrix, q8PaddedK, unpackMatrix, type PackedMatrix, type WeightFormat } from '../src/tensor/weight-format.js';
import { quantizeQ8_0 } from '../src/tensor/quant-blocks.js';

const QK = 32;
const dims = fc.record({ T: fc.integer({ min: 1, max: 7 }), K: fc.integer({ min: 1, max: 100 }), N: fc.integer({ min: 1, max: 13 }) });
const f32 = (n: number, max = 4) => fc.float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true, min: -max, max });
/** 16-bit patterns of finite values (f16: exponent not all ones, subnormals included; bf16: likewise) */
const finiteBits = (n: number, format: 'f16' | 'bf16') =>
  fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: n, maxLength: n }).map((a) =>
    Uint16Array.from(a, (h) => (format === 'f16' ? ((h & 0x7c00) === 0x7c00 ? h & 0x83ff : h) : (h & 0x7f80) === 0x7f80 ? h & 0x807f : h)),
  );

async function download(be: CpuBackend, b: Buf): Promise<Float32Array> {
  const o = new Float32Array(b.length);
  await be.read(b, o);
  return o;
}
function upload(be: CpuBackend, a: Float32Array): Buf {
  const b = be.alloc(a.length);
  be.write(b, a);
  return b;
}
async function matmulOn(be: CpuBackend, x: Float32Array, w: Buf, T: number, K: number, N: number): Promise<Float32Array> {
  const out = be.alloc(T * N);
  be.matmul(out, upload(be, x), w, T, K, N);
  return download(be, out);
}
const sameBits = (a: Float32Array, b: Float32Array) => expect(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength))).toEqual(new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));

describe('16-bit weights', () => {
  const be = new CpuBackend({ simd: true });
  for (const format of ['bf16', 'f16'] as const) {
    it(`${format}: the matmul equals the f32 matmul on the widened weights, bit for bit`, async () => {
      await fc.assert(
        fc.asyncProperty(dims.chain((d) => fc.tuple(fc.constant(d), f32(d.T * d.K), finiteBits(d.N * d.K, format))), async ([{ T, K, N }, x, bits]) => {
          const m: PackedMatrix = { format, N, K, bits };
          const got = await matmulOn(be, x, be.uploadWeights(m), T, K, N);
          const want = await matmulOn(be, x, upload(be, unpackMatrix(m)), T, K, N);
          sameBits(got, want);
        }),
        { numRuns: 200 },
      );
    });
  }

  it('f16 widening in the kernel is exact for every half (subnormals included)', async () => {
    const bits = Uint16Array.from({ length: 1 << 16 }, (_, h) => h).filter((h) => (h & 0x7c00) !== 0x7c00);
    const N = bits.length;
    const out = await matmulOn(be, Float32Array.of(1), be.uploadWeights({ format: 'f16', N, K: 1, bits }), 1, 1, N);
    // (-0 sums to +0: the sum starts at 0)
    for (let i = 0; i < N; i++) if (out[i] !== f16ToF32(bits[i]!)) throw new Error(`half ${bits[i]!.toString(16)}: ${out[i]} != ${f16ToF32(bits[i]!)}`);
  });

  it('a 16-bit tensor keeps its bits and widens only when asked', () => {
    const bits = Uint16Array.of(0x3c00, 0xc000, 0x0001);
    const t = keepSixteenBit([1, 3], 'F16', bits);
    const m = packMatrix(t, 'f16');
    expect(m.format === 'f16' && m.bits).toBe(bits);
    expect([...t.data]).toEqual([1, -2, 2 ** -24]);
    expect([...unpackMatrix(packMatrix(t, 'bf16'))]).toEqual([1, -2, Math.fround(2 ** -24)]);
  });
});

describe('Q8_0 weights', () => {
  /**
   * d is stored in f16: below f16's normal range it moves by up to half a subnormal step,
   * 2^-25, which moves a quant of 127 by 127 * 2^-25 (and a block whose d rounds to 0 reads
   * back as zeros, off by its max, < 127 * 2^-25)
   */
  const F16_SUBNORMAL_SLACK = 127 * 2 ** -25;
  it('quantize and dequantize round trip within one step (d) per block, plus the f16 rounding of tiny steps; padding quants 0', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 100 }), fc.integer({ min: -20, max: 10 }), (N, K, e) =>
        fc.assert(
          fc.property(f32(N * K, 2 ** e), (w) => {
            const m = packMatrix({ shape: [N, K], data: w }, 'q8_0');
            if (m.format !== 'q8_0') throw new Error('not q8_0');
            const back = unpackMatrix(m), Kp = q8PaddedK(K);
            for (let n = 0; n < N; n++) {
              for (let k = 0; k < Kp; k++) {
                const d = m.scales[n * (Kp / QK) + Math.floor(k / QK)]!;
                if (k >= K) expect(m.quants[n * Kp + k]).toBe(0);
                else if (!(Math.abs(back[n * K + k]! - w[n * K + k]!) <= d + F16_SUBNORMAL_SLACK)) throw new Error(`[${n}, ${k}]: ${w[n * K + k]} -> ${back[n * K + k]} (step ${d})`);
              }
            }
          }),
          { numRuns: 3 },
        ),
      ),
      { numRuns: 60 },
    );
  });

  for (const acts of ['f32', 'q8_0'] as const) {
    it(`x ${acts}: the matmul equals q8Reference bit for bit, and the f64 product within the quantization error`, async () => {
      const be = new CpuBackend({ simd: true, q8Activations: acts });
      await fc.assert(
        fc.asyncProperty(dims.chain((d) => fc.tuple(fc.constant(d), f32(d.T * d.K), f32(d.N * d.K, 1))), async ([{ T, K, N }, x, wf]) => {
          const m = packMatrix({ shape: [N, K], data: wf }, 'q8_0');
          if (m.format !== 'q8_0') throw new Error('not q8_0');
          const got = await matmulOn(be, x, be.uploadWeights(m), T, K, N);
          const Kp = q8PaddedK(K), B = Kp / QK;
          const xq = new Int8Array(T * Kp), xs = new Float32Array(T * B);
          for (let t = 0; t < T; t++) q8Reference.quantizeRow(x, t * K, K, xq, t * Kp, xs, t * B);
          const w = unpackMatrix(m);
          for (let t = 0; t < T; t++) {
            for (let n = 0; n < N; n++) {
              const want = acts === 'f32'
                ? q8Reference.dotF32(x, t * K, K, m.quants, n * Kp, m.scales, n * B)
                : q8Reference.dotQ8(xq, t * Kp, xs, t * B, K, m.quants, n * Kp, m.scales, n * B);
              expect(Object.is(got[t * N + n], want) || `[${t}, ${n}]: ${got[t * N + n]} != ${want}`).toBe(true);
              // f64 product of x with the dequantized weights; quantized x moves each term by at most half its block's step
              let exact = 0, scale = 0, xErr = 0;
              for (let k = 0; k < K; k++) {
                exact += x[t * K + k]! * w[n * K + k]!;
                scale += Math.abs(x[t * K + k]! * w[n * K + k]!);
                if (acts === 'q8_0') xErr += (xs[t * B + Math.floor(k / QK)]! / 2) * Math.abs(w[n * K + k]!);
              }
              const err = Math.abs(got[t * N + n]! - exact);
              if (!(err <= xErr * 1.0001 + 1e-5 * (1 + scale))) throw new Error(`[${t}, ${n}]: ${got[t * N + n]} vs ${exact} (error ${err}, bound ${xErr})`);
            }
          }
        }),
        { numRuns: 200 },
      );
    });
  }
});

describe('the same bits whatever the batch and however the rows are split', () => {
  const arena = new Arena();
  const k = instantiateKernels(arena.memory);
  const put = (a: ArrayBufferView) => {
    const owner = {}, at = arena.alloc(Math.max(a.byteLength, 16), owner);
    new Uint8Array(arena.buffer, at, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    return at;
  };
  const get = (at: number, n: number) => new Float32Array(arena.buffer.slice(at, at + 4 * n));
  const formats: WeightFormat[] = ['f32', 'bf16', 'f16', 'q8_0'];

  /** out (T, N) of rows [n0, n1) of w, by the kernel of `format` (Q8_0: `acts`), x at xAt */
  function run(format: WeightFormat, acts: 'f32' | 'q8_0', w: CpuWeightBuf, xAt: number, T: number, K: number, N: number, n0: number, n1: number): Float32Array {
    const out = put(new Float32Array(T * N)), rows = n1 - n0;
    const o = out + 4 * n0, Kp = q8PaddedK(K);
    if (format === 'f32') k.matmul(o, xAt, w.byteOffset + 4 * n0 * K, T, K, rows, K, K, N);
    else if (format === 'bf16') k.matmulBf16(o, xAt, w.byteOffset + 2 * n0 * K, T, K, rows, K, K, N);
    else if (format === 'f16') k.matmulF16(o, xAt, w.byteOffset + 2 * n0 * K, T, K, rows, K, K, N);
    else if (acts === 'f32') k.matmulQ8F32(o, xAt, w.byteOffset + n0 * Kp, w.scalesOffset + (n0 * Kp) / 8, T, K, rows, K, N);
    else {
      const xq = put(new Int16Array(T * Kp)), xs = put(new Float32Array((T * Kp) / QK));
      k.quantizeQ8(xq, xs, xAt, T, K, K);
      k.matmulQ8Q8(o, xq, xs, w.byteOffset + n0 * Kp, w.scalesOffset + (n0 * Kp) / 8, T, K, rows, N);
    }
    return get(out, T * N);
  }

  it('rows [n0, n1) alone, and each token alone, give the bits of the whole call', () => {
    fc.assert(
      fc.property(
        dims.chain((d) => fc.tuple(fc.constant(d), f32(d.T * d.K), f32(d.N * d.K, 1), fc.integer({ min: 0, max: d.N }), fc.constantFrom(...formats), fc.constantFrom('f32' as const, 'q8_0' as const))),
        ([{ T, K, N }, x, wf, cut, format, acts]) => {
          const w = new CpuWeightBuf(packMatrix({ shape: [N, K], data: wf }, format), arena);
          const xAt = put(x);
          const whole = run(format, acts, w, xAt, T, K, N, 0, N);
          // rows split at `cut`: two calls write the two column ranges of out
          const a = run(format, acts, w, xAt, T, K, N, 0, cut), b = run(format, acts, w, xAt, T, K, N, cut, N);
          for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) expect(Object.is(n < cut ? a[t * N + n] : b[t * N + n], whole[t * N + n])).toBe(true);
          for (let t = 0; t < T; t++) {
            const one = run(format, acts, w, xAt + 4 * t * K, 1, K, N, 0, N);
            sameBits(one, whole.subarray(t * N, t * N + N));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('wide rows: a matrix read in several chunks of rows', () => {
  // The kernels take a batch's rows in chunks of about 64 KiB of weights (a few rows at these
  // K), each chunk meeting every block of tokens: no output may be skipped, counted twice or
  // summed differently at a chunk's edge.
  const wide = fc.record({ T: fc.integer({ min: 1, max: 9 }), K: fc.constantFrom(2049, 3001, 4100, 8191), N: fc.integer({ min: 1, max: 40 }) });
  for (const format of ['f32', 'bf16', 'f16', 'q8_0'] as const) {
    it(`${format}: equals its plain definition on every row and token`, async () => {
      const be = new CpuBackend({ simd: true });
      await fc.assert(
        fc.asyncProperty(wide.chain((d) => fc.tuple(fc.constant(d), f32(d.T * d.K), f32(d.N * d.K, 1))), async ([{ T, K, N }, x, wf]) => {
          const m = packMatrix({ shape: [N, K], data: wf }, format);
          const got = await matmulOn(be, x, be.uploadWeights(m), T, K, N);
          const w = unpackMatrix(m);
          if (format === 'bf16' || format === 'f16') sameBits(got, await matmulOn(be, x, upload(be, w), T, K, N));
          else if (m.format === 'q8_0') {
            const Kp = q8PaddedK(K), B = Kp / QK, xq = new Int8Array(Kp), xs = new Float32Array(B);
            for (let t = 0; t < T; t++) {
              q8Reference.quantizeRow(x, t * K, K, xq, 0, xs, 0);
              for (let n = 0; n < N; n++) {
                const want = q8Reference.dotQ8(xq, 0, xs, 0, K, m.quants, n * Kp, m.scales, n * B);
                expect(Object.is(got[t * N + n], want) || `[${t}, ${n}]: ${got[t * N + n]} != ${want}`).toBe(true);
              }
            }
          } else {
            for (let t = 0; t < T; t++) {
              for (let n = 0; n < N; n++) {
                let want = 0, scale = 0;
                for (let k = 0; k < K; k++) {
                  want += x[t * K + k]! * w[n * K + k]!;
                  scale += Math.abs(x[t * K + k]! * w[n * K + k]!);
                }
                // f32 sums of K terms stay within K ulps of the sum of |terms|
                if (!(Math.abs(got[t * N + n]! - want) <= K * 2 ** -24 * (1 + scale))) throw new Error(`[${t}, ${n}]: ${got[t * N + n]} vs ${want}`);
              }
            }
          }
        }),
        { numRuns: 25 },
      );
    });
  }
});

describe('embedding from a weight matrix', () => {
  it('reads the rows the matrix stands for', async () => {
    const be = new CpuBackend({ simd: true });
    const V = 37, D = 45;
    const table = Float32Array.from({ length: V * D }, (_, i) => Math.sin(i * 1.7) * 0.3);
    const ids = Int32Array.of(3, 0, 36, 3);
    for (const format of ['f32', 'bf16', 'f16', 'q8_0'] as const) {
      const m = packMatrix({ shape: [V, D], data: table }, format);
      const out = be.alloc(ids.length * D);
      be.embedding(out, be.uploadWeights(m), ids, D);
      const want = unpackMatrix(m), got = await download(be, out);
      ids.forEach((id, t) => sameBits(got.subarray(t * D, t * D + D), want.subarray(id * D, id * D + D)));
    }
  });
});

describe('a Llama with 16-bit and Q8_0 weights', () => {
  /** the same weights as a 16-bit file holds them: every tensor narrowed, kept 16-bit */
  function sixteenBit(weights: TensorMap, dtype: 'F16' | 'BF16'): { kept: TensorMap; widened: TensorMap } {
    const kept: TensorMap = new Map(), widened: TensorMap = new Map();
    for (const [name, t] of weights) {
      const bits = Uint16Array.from(t.data, dtype === 'F16' ? f32ToF16 : f32ToBF16);
      const k = keepSixteenBit([...t.shape], dtype, bits);
      kept.set(name, k);
      widened.set(name, { shape: [...t.shape], data: Float32Array.from(k.data) });
    }
    return { kept, widened };
  }
  const prompt = fc.array(fc.nat(), { minLength: 1, maxLength: 6 });

  it('16-bit weights decode greedily exactly as f32 decoding of the same values: the same logits, bit for bit', async () => {
    const be = new CpuBackend({ simd: true });
    await fc.assert(
      fc.asyncProperty(tinyConfig, fc.integer({ min: 0, max: 1000 }), fc.constantFrom('F16' as const, 'BF16' as const), prompt, async (config, seed, dtype, p) => {
        const { kept, widened } = sixteenBit(spreadWeights(config, seed, 1), dtype);
        const narrow = new Llama(be, config, kept, { maxSeq: 24 }), wide = new Llama(be, config, widened, { maxSeq: 24 });
        expect(narrow.weightFormat).toBe(dtype.toLowerCase());
        expect(wide.weightFormat).toBe('f32');
        const ids = p.map((id) => id % config.vocab_size);
        const a = await generate(narrow, ids, { maxNewTokens: 6, eosId: null });
        const b = await generate(wide, ids, { maxNewTokens: 6, eosId: null });
        expect(a.tokens).toEqual(b.tokens);
        sameBits(await narrow.forward([1]), await wide.forward([1]));
      }),
      { numRuns: 40 },
    );
  });

  for (const acts of ['q8_0', 'f32'] as const) {
    it(`Q8_0 weights (x ${acts}): logits near f32 decoding's (within 5% of their range), the same on a tree batch as step by step`, async () => {
      const be = new CpuBackend({ simd: true, q8Activations: acts });
      await fc.assert(
        fc.asyncProperty(tinyConfig, fc.integer({ min: 0, max: 1000 }), prompt, async (config, seed, p) => {
          const w = spreadWeights(config, seed, 1);
          const q8 = new Llama(be, config, w, { maxSeq: 24, weights: 'q8_0' }), f = new Llama(be, config, w, { maxSeq: 24 });
          expect(q8.weightFormat).toBe('q8_0');
          const ids = p.map((id) => id % config.vocab_size);
          const got = Float32Array.from(await q8.forward(ids)), want = await f.forward(ids);
          let lo = Infinity, hi = -Infinity;
          for (const v of want) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
          // a sanity bound, not a derived one (the kernels' own test bounds each product by its quantization
          // error): rounding x and w per block moved logits by up to 2.4% of their range on 4-wide models
          expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(0.05 * (hi - lo) + 1e-6);
          // all of the prompt in one causal batch vs one token at a time: bit for bit
          q8.reset();
          let last = new Float32Array(0);
          for (const id of ids) last = Float32Array.from(await q8.forward([id]));
          sameBits(last, got);
        }),
        { numRuns: 40 },
      );
    });
  }

  it('a backend without weight formats holds f32 and computes as before', async () => {
    const plain = new CpuBackend({ simd: false });
    expect(plain.weightFormats).toBeUndefined();
    const config = fc.sample(tinyConfig, { numRuns: 1, seed: 7 })[0]!;
    const w = spreadWeights(config, 3, 1);
    const asked = new Llama(plain, config, w, { weights: 'q8_0' }), f = new Llama(plain, config, w);
    expect(asked.weightFormat).toBe('f32');
    sameBits(Float32Array.from(await asked.forward([1, 2, 3])), await f.forward([1, 2, 3]));
  });

  it('16-bit and Q8_0 weights let a 1.2B-parameter model fit the wasm32 memory that its f32 weights overflow', () => {
    const config = parseConfig({ hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256, max_position_embeddings: 8192, tie_word_embeddings: true });
    const be = new CpuBackend({ simd: true });
    expect(() => checkFits(be, config, 8192)).toThrow(/GiB of f32 weights.*Narrower weights \(the weights option: f16, bf16, q8_0\)/);
    for (const format of ['bf16', 'f16', 'q8_0'] as const) expect(() => checkFits(be, config, 8192, undefined, format)).not.toThrow();
    expect(modelBytes(config, 1, 1, 'bf16').weights / modelBytes(config, 1, 1, 'f32').weights).toBeCloseTo(0.5, 3);
  });
});

describe('16-bit checkpoints read without widening', () => {
  it('ranged and whole-file reads keep the file\'s bits; a NaN pattern is refused by name; the model releases the host copy', async () => {
    const data = Float32Array.from({ length: 6 * 5 }, (_, i) => Math.cos(i) * 0.7);
    for (const dtype of ['F16', 'BF16'] as const) {
      const bytes = serializeSafetensors(new Map([['m', { shape: [6, 5], data }]]), { dtype });
      const want = Uint16Array.from(data, dtype === 'F16' ? f32ToF16 : f32ToBF16);
      const whole = parseSafetensors(bytes, 'x.safetensors', { keepSixteenBit: true }).tensors.get('m')!;
      const source = { location: 'mem', read: async () => bytes, readRange: async (_: string, a: number, b: number) => bytes.subarray(a, b) };
      const ranged = (await readSafetensorsFile(source, 'model.safetensors', { keepSixteenBit: true, pieceBytes: 8 }))!.get('m')!;
      for (const t of [whole, ranged]) {
        expect(t.stored?.dtype).toBe(dtype);
        expect([...t.stored!.bits]).toEqual([...want]);
      }
      const bad = bytes.slice();
      bad.set([0xff, 0x7f], bytes.length - 2 * 7); // element 23: an all-ones exponent (NaN) in both dtypes
      expect(() => parseSafetensors(bad, 'x.safetensors', { keepSixteenBit: true })).toThrow(/x\.safetensors.*"m".*non-finite value NaN at index 23 \(element \[4, 3\]/);
    }
    const config = fc.sample(tinyConfig, { numRuns: 1, seed: 11 })[0]!;
    const weights = spreadWeights(config, 5, 1), count = weights.size;
    const model = new Llama(new CpuBackend({ simd: true }), config, weights, { releaseHostWeights: true, weights: 'bf16' });
    expect(count).toBeGreaterThan(0);
    expect(weights.size).toBe(0);
    const embed = await model.readWeight('embed');
    expect([...embed.shape]).toEqual([config.vocab_size, config.hidden_size]);
  });
});

describe('Q8_0 tensors kept as a file stores them', () => {
  it('pack to the same quants and scales as quantizing on load, read back as their dequantized values, and become a q8_0 model by default', async () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 4 }), (N, blocks) => {
        const K = blocks * QK, data = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.61 + N) * 0.3);
        const kept = keepQ8_0([N, K], quantizeQ8_0(data));
        const a = packMatrix(kept, 'q8_0'), b = packMatrix({ shape: [N, K], data }, 'q8_0');
        expect(a).toEqual(b);
        expect([...kept.data]).toEqual([...unpackMatrix(b)]);
        expect([...unpackMatrix(packMatrix(kept, 'f32'))]).toEqual([...kept.data]);
      }),
    );
    expect(() => keepQ8_0([2, 48], new Uint8Array(3 * 34))).toThrow(/rows are whole blocks of 32/);
    const config = parseConfig({ hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 64, max_position_embeddings: 16 });
    const w = spreadWeights(config, 2, 1), kept: TensorMap = new Map();
    for (const [name, t] of w) kept.set(name, t.shape.length === 2 ? keepQ8_0([...t.shape], quantizeQ8_0(t.data)) : t);
    const be = new CpuBackend({ simd: true });
    const fromFile = new Llama(be, config, kept), onLoad = new Llama(be, config, w, { weights: 'q8_0' });
    expect(fromFile.weightFormat).toBe('q8_0');
    sameBits(Float32Array.from(await fromFile.forward([3, 1, 4])), await onLoad.forward([3, 1, 4]));
  });
});

describe('16-bit matrices read straight into the backend', () => {
  it('in pieces of any size give the model of the kept-16-bit read, bit for bit; a NaN pattern is refused by name', async () => {
    const config = parseConfig({ hidden_size: 24, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 50, max_position_embeddings: 32, tie_word_embeddings: false });
    const weights = spreadWeights(config, 9, 1);
    for (const dtype of ['BF16', 'F16'] as const) {
      const bytes = serializeSafetensors(weights, { dtype });
      const source = { location: 'mem', read: async () => bytes, readRange: async (_: string, a: number, b: number) => bytes.subarray(a, b) };
      const kept = (await readSafetensorsFile(source, 'model.safetensors', { keepSixteenBit: true }))!;
      const be = new CpuBackend({ simd: true });
      const want = Float32Array.from(await new Llama(be, config, kept).forward([4, 9, 2]));
      for (const pieceBytes of [4, 36, 1 << 20]) {
        const streamed = (await readSafetensorsFile(source, 'model.safetensors', { keepSixteenBit: true, pieceBytes, sixteenBitSink: backendSink(be) }))!;
        expect(streamed.get('model.layers.0.mlp.up_proj.weight')!.held?.format).toBe(dtype.toLowerCase());
        expect(streamed.get('model.norm.weight')!.held).toBeUndefined(); // vectors stay on the host
        expect(() => streamed.get('lm_head.weight')!.data).toThrow(/read straight into the cpu backend/);
        const model = new Llama(be, config, streamed, { releaseHostWeights: true });
        sameBits(await model.forward([4, 9, 2]), want);
        expect((await model.readWeight('lmHead')).data).toEqual(kept.get('lm_head.weight')!.data);
      }
      const bad = bytes.slice();
      const header = Number(new DataView(bytes.buffer).getBigUint64(0, true)) + 8;
      bad.set([0xff, 0x7f], header + 2 * 5); // the first tensor in the file, element 5
      await expect(readSafetensorsFile({ ...source, readRange: async (_: string, a: number, b: number) => bad.subarray(a, b) }, 'model.safetensors', { pieceBytes: 4, sixteenBitSink: backendSink(be) }))
        .rejects.toThrow(/non-finite value NaN at index 5/);
    }
  });
});
