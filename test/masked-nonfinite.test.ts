/**
 * Non-finite activations in tree nodes must not reach the rows that do not see them.
 *
 * A token whose embedding row holds Infinity, NaN or 3e38 gives its tree nodes non-finite
 * keys and values (or none, when a norm absorbs the value). A node that has no such token
 * on its root path hides those nodes, so its logits in a tree forward must equal, bit for
 * bit, the logits of decoding its root path step by step: the step-by-step decode never
 * sees the poisoned token at all. Run on the CPU backend and on WebGPU (the software
 * adapter unless CTCSPEC_WEBGPU=gpu; as in webgpu-kernels.test.ts, no adapter is a failure).
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import type { WebGPUBackend } from '../src/backend/webgpu/webgpu.js';
import { buildTree, pathTo, treeAttentionMask, treePositions, type TokenTree } from '../src/decode/tree.js';
import type { DraftCandidate } from '../src/draft/drafter.js';
import type { LlamaConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { createNodeWebGPU } from '../src/node/webgpu.js';
import { spreadWeights, tinyConfig } from './helpers.js';

/** values written into the poisoned token's embedding row */
const POISON = [Infinity, -Infinity, NaN, 3e38, -3e38];
const MAX_CANDIDATES = 6;
const MAX_DRAFT_LEN = 5;
const MAX_TREE_BUDGET = 14;

interface PoisonCase {
  config: LlamaConfig;
  seed: number; // weight seed
  poisonToken: number;
  poison: number[]; // (hidden_size) the value of each embedding element that poisonAt marks
  poisonAt: boolean[]; // (hidden_size) which elements are poisoned (at least one)
  prefix: number[]; // cached tokens before the tree, none of them the poisoned token
  rootToken: number; // not the poisoned token (a poisoned root hides nothing from anyone)
  candidates: DraftCandidate[];
  budget: number;
}

/** a token in [0, V) other than `avoid`, from a draw in [0, V - 1) */
const skipping = (avoid: number) => (t: number) => (t >= avoid ? t + 1 : t);

const poisonCase: fc.Arbitrary<PoisonCase> = tinyConfig.chain((config) => {
  const V = config.vocab_size, D = config.hidden_size;
  return fc.integer({ min: 0, max: V - 1 }).chain((poisonToken) => {
    const other = fc.integer({ min: 0, max: V - 2 }).map(skipping(poisonToken));
    // draft tokens are the poisoned one about a third of the time, so trees mix both kinds
    const draftToken = fc.oneof(fc.constant(poisonToken), fc.integer({ min: 0, max: V - 1 }), other);
    const candidate = fc.record({ tokens: fc.array(draftToken, { minLength: 1, maxLength: MAX_DRAFT_LEN }), score: fc.double({ min: -10, max: 0, noNaN: true }) });
    return fc.record({
      config: fc.constant(config),
      seed: fc.integer({ min: 0, max: 1_000_000 }),
      poisonToken: fc.constant(poisonToken),
      poison: fc.array(fc.constantFrom(...POISON), { minLength: D, maxLength: D }),
      poisonAt: fc.array(fc.boolean(), { minLength: D, maxLength: D }).map((at) => (at.includes(true) ? at : [true, ...at.slice(1)])),
      prefix: fc.array(other, { minLength: 1, maxLength: 8 }),
      rootToken: other,
      candidates: fc.array(candidate, { minLength: 1, maxLength: MAX_CANDIDATES }),
      budget: fc.integer({ min: 1, max: MAX_TREE_BUDGET }),
    });
  });
});

/** the tiny model of a case, with the poisoned token's embedding row overwritten */
function poisonedModel(backend: Backend, c: PoisonCase): Llama {
  const weights = spreadWeights(c.config, c.seed);
  const embed = weights.get('model.embed_tokens.weight')!.data; // (V, D)
  const D = c.config.hidden_size;
  for (let i = 0; i < D; i++) if (c.poisonAt[i]) embed[c.poisonToken * D + i] = c.poison[i]!;
  return new Llama(backend, c.config, weights);
}

/** whether node's root path (root and node included) avoids `token` */
function pathAvoids(tree: TokenTree, node: number, token: number): boolean {
  for (let n = node; n >= 0; n = tree.parent[n]!) if (tree.tokens[n] === token) return false;
  return true;
}

/**
 * For random trees and random non-finite values placed in hidden nodes, every visible row
 * equals step-by-step decoding. Returns how many rows were checked and how many poisoned.
 */
async function checkPoisonedTrees(backend: Backend, numRuns: number): Promise<{ checked: number; poisoned: number }> {
  const seen = { checked: 0, poisoned: 0 };
  await fc.assert(
    fc.asyncProperty(poisonCase, async (c) => {
      const V = c.config.vocab_size, past = c.prefix.length;
      const tree = buildTree(c.candidates, c.budget, { rootToken: c.rootToken });
      const model = poisonedModel(backend, c);
      await model.forward(c.prefix);
      const treeLogits = Float32Array.from(await model.forwardTree(tree.tokens, treePositions(tree, past), treeAttentionMask(tree, past))); // (T, V)
      for (let node = 0; node < tree.size; node++) {
        if (!pathAvoids(tree, node, c.poisonToken)) {
          seen.poisoned++;
          continue;
        }
        seen.checked++;
        model.reset();
        await model.forward(c.prefix);
        let stepLogits = await model.forward([c.rootToken]);
        for (const n of pathTo(tree, node)) stepLogits = await model.forward([tree.tokens[n]!]);
        const want = Array.from(stepLogits);
        // (a tied lm_head scores the poisoned token with its poisoned row: that logit may be anything)
        expect(want.every((x, tok) => tok === c.poisonToken || Number.isFinite(x)), 'the step-by-step decode never sees the poison').toBe(true);
        expect(Array.from(treeLogits.subarray(node * V, (node + 1) * V)), `node ${node} of ${tree.size}`).toEqual(want);
      }
    }),
    { numRuns },
  );
  return seen;
}

describe('poisoned tree nodes leave the nodes that do not see them bit-identical to step-by-step decoding', () => {
  it('CPU (wasm SIMD attention)', async () => {
    const seen = await checkPoisonedTrees(new CpuBackend(), 150);
    // the property is only worth something if trees mix both kinds of node
    expect(seen.checked).toBeGreaterThan(100);
    expect(seen.poisoned).toBeGreaterThan(100);
  });

  it('CPU without SIMD (the plain TS reference attention)', async () => {
    const seen = await checkPoisonedTrees(new CpuBackend({ simd: false }), 60);
    expect(seen.checked).toBeGreaterThan(40);
    expect(seen.poisoned).toBeGreaterThan(40);
  });

  let gpu: WebGPUBackend | undefined;
  afterAll(() => gpu?.destroy());
  it('WebGPU', async () => {
    gpu = await createNodeWebGPU({ fallback: process.env.CTCSPEC_WEBGPU !== 'gpu' });
    const seen = await checkPoisonedTrees(gpu, 30);
    expect(seen.checked).toBeGreaterThan(20);
    expect(seen.poisoned).toBeGreaterThan(20);
  });
});
