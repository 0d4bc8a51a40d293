import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { argmaxRow } from '../src/util/numeric.js';
import { ContextError } from '../src/model/llama.js';
import { generate } from '../src/decode/generate.js';
import { checkTreeEqualsDecode, depths, maxAbsDiff, tinyConfig, tinyModel, treeMask } from './helpers.js';

const cpu = new CpuBackend();
const tokensFor = (V: number, min: number, max: number) => fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: min, maxLength: max });

describe('llama forward (cpu)', () => {
  it('prefill of T tokens equals T one-token decode steps', async () => {
    await fc.assert(
      fc.asyncProperty(
        tinyConfig.chain((c) => fc.tuple(fc.constant(c), tokensFor(c.vocab_size, 1, 20), fc.integer({ min: 1, max: 8 }))),
        async ([config, tokens, maxBatch]) => {
          const a = tinyModel(cpu, config, 1, { maxBatch });
          const b = tinyModel(cpu, config, 1);
          const batched = Float32Array.from(await a.forward(tokens));
          let step = new Float32Array(0);
          for (const t of tokens) step = Float32Array.from(await b.forward([t]));
          expect(maxAbsDiff(batched, step)).toBeLessThan(1e-3 * (1 + Math.max(...step.map(Math.abs))));
          expect(argmaxRow(batched, 0, config.vocab_size)).toBe(argmaxRow(step, 0, config.vocab_size));
          expect(a.cacheLength).toBe(tokens.length);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('a tree forward of a chain equals the causal forward', async () => {
    await fc.assert(
      fc.asyncProperty(
        tinyConfig.chain((c) => fc.tuple(fc.constant(c), tokensFor(c.vocab_size, 1, 10), tokensFor(c.vocab_size, 1, 10))),
        async ([config, prefix, chain]) => {
          const V = config.vocab_size;
          const m = tinyModel(cpu, config, 2);
          await m.forward(prefix);
          const parent = chain.map((_, i) => i - 1);
          const positions = chain.map((_, i) => prefix.length + i);
          const tree = Float32Array.from(await m.forwardTree(chain, positions, treeMask(parent, prefix.length)));
          const ref = tinyModel(cpu, config, 2);
          await ref.forward(prefix);
          for (let i = 0; i < chain.length; i++) {
            const l = await ref.forward([chain[i]!]);
            expect(maxAbsDiff(tree.subarray(i * V, (i + 1) * V), l)).toBeLessThan(1e-3 * (1 + Math.max(...l.map(Math.abs))));
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it('a tree forward gives every node the logits of a sequential decode of its root path, and compaction keeps a path', async () => {
    const treeArb = fc.integer({ min: 1, max: 12 }).chain((n) =>
      fc.tuple(...Array.from({ length: n }, (_, i) => fc.integer({ min: -1, max: i - 1 }))),
    );
    await fc.assert(
      fc.asyncProperty(
        tinyConfig.chain((c) =>
          fc.tuple(fc.constant(c), tokensFor(c.vocab_size, 1, 8), treeArb, fc.array(fc.integer({ min: 0, max: c.vocab_size - 1 }), { minLength: 12, maxLength: 12 }), fc.nat()),
        ),
        async ([config, prefix, parentTuple, tokenPool, pick]) => {
          const V = config.vocab_size;
          const parent = parentTuple as number[];
          const T = parent.length;
          const tokens = tokenPool.slice(0, T);
          const depth = depths(parent);
          const m = tinyModel(cpu, config, 3);
          await m.forward(prefix);
          const tree = Float32Array.from(await m.forwardTree(tokens, depth.map((d) => prefix.length + d), treeMask(parent, prefix.length)));
          const pathOf = (i: number) => {
            const p: number[] = [];
            for (let j = i; j >= 0; j = parent[j]!) p.unshift(j);
            return p;
          };
          const ref = tinyModel(cpu, config, 3);
          for (let i = 0; i < T; i++) {
            ref.reset();
            const l = await ref.forward([...prefix, ...pathOf(i).map((j) => tokens[j]!)]);
            expect(maxAbsDiff(tree.subarray(i * V, (i + 1) * V), l)).toBeLessThan(1e-3 * (1 + Math.max(...l.map(Math.abs))));
          }
          // keep one root path, then continue decoding: must equal a sequential decode
          const path = pathOf(pick % T);
          m.compact(path);
          expect(m.cacheLength).toBe(prefix.length + path.length);
          const next = tokens[0]!;
          const after = Float32Array.from(await m.forward([next]));
          ref.reset();
          const want = await ref.forward([...prefix, ...path.map((j) => tokens[j]!), next]);
          expect(maxAbsDiff(after, want)).toBeLessThan(1e-3 * (1 + Math.max(...want.map(Math.abs))));
        },
      ),
      { numRuns: 30 },
    );
  });

  it('rejects a prompt longer than the context with a clear error', async () => {
    const config = fc.sample(tinyConfig, { seed: 1, numRuns: 1 })[0]!;
    const m = tinyModel(cpu, config, 4, { maxSeq: 8 });
    await expect(generate(m, new Array(9).fill(0), { maxNewTokens: 1 })).rejects.toThrow(ContextError);
    await expect(generate(m, new Array(9).fill(0), { maxNewTokens: 1 })).rejects.toThrow(/longer than the context length 8/);
    await expect(generate(m, [config.vocab_size], { maxNewTokens: 1 })).rejects.toThrow(/not in the vocabulary/);
    const r = await generate(m, [1, 2, 3], { maxNewTokens: 100, eosId: null });
    expect(r.stopReason).toBe('context');
    expect(r.tokens.length).toBe(8 - 3 + 1);
  });

  it('greedy generation is deterministic and sampling is reproducible by seed', async () => {
    const config = fc.sample(tinyConfig, { seed: 7, numRuns: 1 })[0]!;
    const m = tinyModel(cpu, config, 5);
    const a = await generate(m, [1, 2], { maxNewTokens: 10, eosId: null });
    const b = await generate(m, [1, 2], { maxNewTokens: 10, eosId: null });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.stats.steps).toBe(10);
    const s1 = await generate(m, [1, 2], { maxNewTokens: 10, temperature: 1.5, seed: 42, eosId: null });
    const s2 = await generate(m, [1, 2], { maxNewTokens: 10, temperature: 1.5, seed: 42, eosId: null });
    expect(s1.tokens).toEqual(s2.tokens);
  });
});

describe('hidden states', () => {
  it('forward and forwardTree return the final hidden states of every token; the last row matches lastHiddenState', async () => {
    await fc.assert(
      fc.asyncProperty(
        tinyConfig.chain((c) => fc.tuple(fc.constant(c), tokensFor(c.vocab_size, 1, 12), fc.integer({ min: 1, max: 5 }))),
        async ([config, tokens, maxBatch]) => {
          const D = config.hidden_size;
          const m = tinyModel(cpu, config, 8, { maxBatch });
          const all = new Float32Array(tokens.length * D);
          await m.forward(tokens, { hiddenOut: all });
          const ref = tinyModel(cpu, config, 8);
          for (let i = 0; i < tokens.length; i++) {
            await ref.forward([tokens[i]!]);
            const h = await ref.lastHiddenState();
            expect(maxAbsDiff(all.subarray(i * D, (i + 1) * D), h)).toBeLessThan(1e-4 * (1 + Math.max(...h.map(Math.abs))));
          }
          const chain = tokens.slice(0, Math.min(tokens.length, maxBatch));
          ref.reset();
          const treeHidden = new Float32Array(chain.length * D);
          await ref.forwardTree(chain, chain.map((_, i) => i), treeMask(chain.map((_, i) => i - 1), 0), { hiddenOut: treeHidden });
          expect(maxAbsDiff(treeHidden, all.subarray(0, chain.length * D))).toBeLessThan(1e-3);
        },
      ),
      { numRuns: 20 },
    );
  });
});

describe('batch invariance (cpu)', () => {
  it('a tree forward gives every node bit-identical logits to a step-by-step decode of its root path', async () => {
    await checkTreeEqualsDecode(cpu, 40);
  });
});
