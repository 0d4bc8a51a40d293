/**
 * Self-distillation (src/train/distill.ts): batched distillation gives, bit for bit, what
 * distilling one sequence at a time gives; a build stopped after some batches and resumed
 * gives what one uninterrupted build gives; the draft vocabulary counts what a brute-force
 * count finds.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { parseConfig, type LlamaConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { spreadWeights } from '../src/testing/index.js';
import type { TensorMap } from '../src/tensor/dtype.js';
import { defaultDistillBatch, distillInto, distillPrompts, distillSequence, emptyDistillSet, type DistillOptions, type DistillSet } from '../src/train/distill.js';
import { draftVocab } from '../src/train/draft-vocab.js';
import { Rng } from '../src/util/random.js';

const backend = new CpuBackend();

function config(o: { D: number; H: number; KVH: number; V: number }): LlamaConfig {
  return parseConfig({
    hidden_size: o.D, num_hidden_layers: 2, num_attention_heads: o.H, num_key_value_heads: o.KVH, intermediate_size: 24,
    vocab_size: o.V, max_position_embeddings: 40, rope_theta: 10000, rms_norm_eps: 1e-5, tie_word_embeddings: true, bos_token_id: 1,
  });
}

const shapes = fc.constantFrom({ D: 16, H: 2, KVH: 1, V: 24 }, { D: 32, H: 4, KVH: 2, V: 40 }, { D: 8, H: 2, KVH: 2, V: 300 });

function stream(V: number, n: number, seed: number): Uint16Array {
  const rng = new Rng(seed);
  return Uint16Array.from({ length: n }, () => 3 + rng.int(V - 3));
}

/** the reference: each sequence on its own, through forward() as inference runs it */
async function oneAtATime(c: LlamaConfig, w: TensorMap, data: Uint16Array, o: DistillOptions): Promise<DistillSet> {
  const model = new Llama(backend, c, w);
  const set = emptyDistillSet(o, c.hidden_size), N = o.seqLen, D = c.hidden_size;
  const prompts = distillPrompts(data, o, 1);
  for (let n = 0; n < o.sequences; n++) {
    set.promptLens[n] = prompts[n]!.length;
    await distillSequence(model, prompts[n]!, N, set.tokens.subarray(n * N, (n + 1) * N), set.hidden.subarray(n * N * D, (n + 1) * N * D));
  }
  return set;
}

const options = fc
  .record({ sequences: fc.integer({ min: 1, max: 7 }), seqLen: fc.integer({ min: 6, max: 20 }), promptMin: fc.integer({ min: 1, max: 4 }), extra: fc.integer({ min: 0, max: 4 }), seed: fc.integer({ min: 0, max: 1000 }) })
  .map(({ extra, ...o }) => ({ ...o, promptMax: Math.min(o.promptMin + extra, o.seqLen - 1) }));

describe('batched distillation', () => {
  it('equals distilling one sequence at a time, tokens and hidden states bit for bit', async () => {
    await fc.assert(
      fc.asyncProperty(shapes, fc.integer({ min: 0, max: 999 }), options, fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 24 }), async (shape, seed, o, batch, maxBatch) => {
        const c = config(shape), w = spreadWeights(c, seed, 10), data = stream(c.vocab_size, 200, seed);
        const expected = await oneAtATime(c, w, data, o);
        // a cache for `batch` sequences; maxBatch rows per forward splits prefills and batches
        const model = new Llama(backend, c, w, { maxSeq: batch * o.seqLen, maxBatch });
        const set = emptyDistillSet(o, c.hidden_size);
        expect(await distillInto(model, data, o, set, { batch, bos: 1 })).toBe(o.sequences);
        expect(set.promptLens).toEqual(expected.promptLens);
        expect(set.tokens).toEqual(expected.tokens);
        expect(set.hidden).toEqual(expected.hidden);
      }),
      { numRuns: 25 },
    );
  }, 60_000);

  it('stopped after some batches and resumed (with any batch size) gives the uninterrupted data', async () => {
    await fc.assert(
      fc.asyncProperty(shapes, fc.integer({ min: 0, max: 999 }), options, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), async (shape, seed, o, batchesBefore, batch, batchAfter) => {
        const c = config(shape), w = spreadWeights(c, seed, 10), data = stream(c.vocab_size, 200, seed);
        const model = (b: number) => new Llama(backend, c, w, { maxSeq: b * o.seqLen });
        const whole = emptyDistillSet(o, c.hidden_size);
        await distillInto(model(batch), data, o, whole, { batch });
        const part = emptyDistillSet(o, c.hidden_size);
        let batches = 0;
        const done = await distillInto(model(batch), data, o, part, { batch, shouldStop: () => ++batches >= batchesBefore });
        const even = Math.ceil(o.sequences / Math.ceil(o.sequences / batch)); // the batches' size: as few as `batch` allows, even
        expect(done).toBe(Math.min(o.sequences, batchesBefore * even));
        // what a resumed run has: the finished sequences only (as read back from disk)
        const N = o.seqLen, D = c.hidden_size;
        const resumed = emptyDistillSet(o, D);
        resumed.tokens.set(part.tokens.subarray(0, done * N));
        resumed.hidden.set(part.hidden.subarray(0, done * N * D));
        expect(await distillInto(model(batchAfter), data, o, resumed, { batch: batchAfter, from: done })).toBe(o.sequences);
        expect(resumed).toEqual(whole);
      }),
      { numRuns: 20 },
    );
  }, 60_000);
});

describe('defaultDistillBatch', () => {
  it('batches a model whose weights outweigh the attention over the shared cache, and not one whose attention does', () => {
    const smol = parseConfig({ hidden_size: 576, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, intermediate_size: 1536, vocab_size: 49152, max_position_embeddings: 2048, tie_word_embeddings: true });
    const shipped = parseConfig({ hidden_size: 128, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 4, intermediate_size: 352, vocab_size: 1024, max_position_embeddings: 256, tie_word_embeddings: true });
    expect(defaultDistillBatch(smol, 64)).toBe(15);
    expect(defaultDistillBatch(smol, 192)).toBe(5); // longer sequences: a larger cache to score
    expect(defaultDistillBatch(shipped, 192)).toBe(1);
    for (let N = 1; N < 2048; N *= 2) expect(defaultDistillBatch(smol, 2 * N)).toBeLessThanOrEqual(defaultDistillBatch(smol, N));
  });
});

describe('draftVocab', () => {
  it('keeps the most frequent continuation tokens (ties to the lower id), as a brute-force count finds', () => {
    const sets = fc.record({ count: fc.integer({ min: 1, max: 6 }), N: fc.integer({ min: 2, max: 12 }), V: fc.integer({ min: 2, max: 12 }), size: fc.integer({ min: 1, max: 14 }), seed: fc.nat() });
    fc.assert(
      fc.property(sets, ({ count, N, V, size, seed }) => {
        const rng = new Rng(seed);
        const set: DistillSet = {
          count, seqLen: N, D: 1, hidden: new Float32Array(count * N),
          tokens: Int32Array.from({ length: count * N }, () => rng.int(V)), promptLens: Int32Array.from({ length: count }, () => 1 + rng.int(N - 1)),
        };
        const counts = new Map<number, number>();
        let total = 0;
        for (let n = 0; n < count; n++) {
          for (let t = set.promptLens[n]!; t < N; t++) {
            const id = set.tokens[n * N + t]!;
            counts.set(id, (counts.get(id) ?? 0) + 1);
            total++;
          }
        }
        const ranked = [...counts.keys()].sort((a, b) => counts.get(b)! - counts.get(a)! || a - b).slice(0, size);
        const v = draftVocab(set, size, 'key');
        expect(v.tokens).toEqual([...ranked].sort((a, b) => a - b));
        expect(v.coverage).toBeCloseTo(ranked.reduce((s, id) => s + counts.get(id)!, 0) / total, 12);
      }),
    );
  });
});
