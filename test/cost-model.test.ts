import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { AdaptiveBudget, measureVerifyCost } from '../src/decode/cost-model.js';
import { generate } from '../src/decode/generate.js';
import { generateSpeculative } from '../src/decode/speculative.js';
import { buildTree } from '../src/decode/tree.js';
import { garbageDrafter, oracleDrafter, tinyConfig, tinyModel } from '../src/testing/index.js';

const cpu = new CpuBackend();

describe('tree budget cost model', () => {
  it('measures a non-decreasing verification cost per tree size', async () => {
    const config = fc.sample(tinyConfig, { seed: 3, numRuns: 1 })[0]!;
    const cost = await measureVerifyCost(tinyModel(cpu, config, 1, { maxBatch: 16 }), 16, { past: 8, repeats: 1 });
    expect(cost.length).toBe(16);
    for (let i = 1; i < cost.length; i++) expect(cost[i]!).toBeGreaterThanOrEqual(cost[i - 1]!);
    expect(cost[0]!).toBeGreaterThan(0);
  });

  it('drafts nothing when drafts are never accepted, and the full budget when verification is free and drafts always land', () => {
    // a chain of 8 drafts, best first
    const tree = buildTree([{ tokens: [1, 2, 3, 4, 5, 6, 7, 8], score: 0 }], 8, { rootToken: 0 });
    const linear = Float64Array.from({ length: 9 }, (_, i) => 1 + i); // c(T) = T: a CPU-like cost
    const never = new AdaptiveBudget(linear);
    for (let i = 0; i < 200; i++) never.observe(tree, [], 0.01);
    expect(never.choose(8)).toBe(0);
    const flat = Float64Array.from({ length: 9 }, () => 1); // a GPU-like cost
    const always = new AdaptiveBudget(flat);
    for (let i = 0; i < 200; i++) always.observe(tree, [1, 2, 3, 4, 5, 6, 7, 8], 0.01);
    expect(always.choose(8)).toBe(8);
    expect(always.choose(3)).toBe(3); // never more than the room the loop offers
    // the first two always accepted, the rest never; c(T) = 1 + (T - 1) / 2:
    // rate(0) = 1, rate(1) = 2 / 1.5, rate(2) = 3 / 2 (best), rate(3) = 3 / 2.5
    const two = new AdaptiveBudget(Float64Array.from({ length: 9 }, (_, i) => 1 + i / 2));
    for (let i = 0; i < 200; i++) two.observe(tree, [1, 2], 0);
    expect(two.choose(8)).toBe(2);
  });

  it('speculative decoding with the adaptive budget stays token-for-token equal to plain greedy decoding', async () => {
    await fc.assert(
      fc.asyncProperty(tinyConfig, fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), fc.boolean(), async (config, raw, useOracle) => {
        const prompt = raw.map((x) => x % config.vocab_size);
        const model = tinyModel(cpu, config, 5, { maxBatch: 12 });
        const plain = await generate(model, prompt, { maxNewTokens: 20, eosId: null });
        const cost = Float64Array.from({ length: 12 }, (_, i) => 1 + 0.2 * i);
        const drafter = useOracle ? oracleDrafter([...prompt, ...plain.tokens]) : garbageDrafter(config.vocab_size, 9);
        const spec = await generateSpeculative(model, prompt, drafter, { maxNewTokens: 20, eosId: null, treeBudget: 11, budget: new AdaptiveBudget(cost, { exploreEvery: 4 }) });
        expect(spec.tokens).toEqual(plain.tokens);
        if (useOracle) expect(spec.stats.tokensPerStep).toBeGreaterThan(1.5);
      }),
      { numRuns: 25 },
    );
  });
});
