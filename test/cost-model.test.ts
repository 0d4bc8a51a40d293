import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { AdaptiveBudget, PROBE_STEPS, measureVerifyCost } from '../src/decode/cost-model.js';
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
    for (let i = 0; i < 200; i++) never.observe({ tree: tree, accepted: [], asked: tree.size - 1, draftMs: 0.01, verifyMs: 1, switchMs: 0 });
    expect(never.choose(8)).toBe(0);
    const flat = Float64Array.from({ length: 9 }, () => 1); // a GPU-like cost
    const always = new AdaptiveBudget(flat);
    for (let i = 0; i < 200; i++) always.observe({ tree: tree, accepted: [1, 2, 3, 4, 5, 6, 7, 8], asked: tree.size - 1, draftMs: 0.01, verifyMs: 1, switchMs: 0 });
    expect(always.choose(8)).toBe(8);
    expect(always.choose(3)).toBe(3); // never more than the room the loop offers
    // the first two always accepted, the rest never; c(T) = 1 + (T - 1) / 2:
    // rate(0) = 1, rate(1) = 2 / 1.5, rate(2) = 3 / 2 (best), rate(3) = 3 / 2.5
    const two = new AdaptiveBudget(Float64Array.from({ length: 9 }, (_, i) => 1 + i / 2));
    for (let i = 0; i < 200; i++) two.observe({ tree: tree, accepted: [1, 2], asked: tree.size - 1, draftMs: 0, verifyMs: 1, switchMs: 0 });
    expect(two.choose(8)).toBe(2);
  });

  it('a drafter that proposes nothing (the allowed ranks stay empty) drives the budget to 0', () => {
    const flat = Float64Array.from({ length: 9 }, () => 1); // drafting would be free
    const empty = buildTree([], 8, { rootToken: 0 });
    const b = new AdaptiveBudget(flat);
    expect(b.choose(8)).toBeGreaterThan(0); // the prior is optimistic
    for (let i = 0; i < 300; i++) b.observe({ tree: empty, accepted: [], asked: 8, draftMs: 0.01, verifyMs: 1, switchMs: 0 });
    expect(b.choose(8)).toBe(0);
  });

  it('the realized-speed guard: drafting steps that emit tokens more slowly than plain steps switch drafting off', () => {
    let clock = 0;
    const spy = vi.spyOn(performance, 'now').mockImplementation(() => clock);
    try {
      const tree = buildTree([{ tokens: [1, 2, 3, 4], score: 0 }], 4, { rootToken: 0 });
      // the model says drafting pays: free verification, every draft accepted
      const b = new AdaptiveBudget(Float64Array.from({ length: 9 }, () => 1));
      for (let i = 0; i < 50; i++) b.observe({ tree: tree, accepted: [1, 2, 3, 4], asked: tree.size - 1, draftMs: 0.01, verifyMs: 1, switchMs: 0 });
      expect(b.choose(4)).toBe(4);
      // reality: a drafting step takes 10 ms for its 5 tokens (2 ms/token), a plain step 1 ms
      const single = buildTree([], 0, { rootToken: 0 });
      const choices: number[] = [];
      for (let i = 0; i < 60; i++) {
        const n = b.choose(4);
        choices.push(n);
        if (n > 0) {
          clock += 10;
          b.observe({ tree: tree, accepted: [1, 2, 3, 4], asked: n, draftMs: 0.01, verifyMs: 1, switchMs: 0 });
        } else {
          clock += 1;
          b.observe({ tree: single, accepted: [], asked: 0, draftMs: 0, verifyMs: 1, switchMs: 0 });
        }
      }
      expect(choices[0]).toBe(4); // the model's choice, until the measured overhead and the guard say otherwise
      expect(b.stepOverheadMs(1)).toBeGreaterThan(5); // 10 ms steps of which 1 ms verifying: the model charges the rest
      expect(b.stepOverheadMs(0)).toBeLessThan(0.5);
      expect(choices.slice(-20).every((n) => n === 0)).toBe(true);
      // with exploreEvery, the held-off choice is re-tested in runs of PROBE_STEPS drafting steps, after
      // exploreEvery plain steps, then twice as many each time the re-test fails
      const e = new AdaptiveBudget(Float64Array.from({ length: 9 }, () => 1), { exploreEvery: 5 });
      for (let i = 0; i < 50; i++) e.observe({ tree: tree, accepted: [1, 2, 3, 4], asked: tree.size - 1, draftMs: 0.01, verifyMs: 1, switchMs: 0 });
      const retest: number[] = [];
      for (let i = 0; i < 100; i++) {
        const n = e.choose(4);
        retest.push(n);
        clock += n > 0 ? 10 : 1;
        e.observe({ tree: n > 0 ? tree : single, accepted: n > 0 ? [1, 2, 3, 4] : [], asked: n, draftMs: n > 0 ? 0.01 : 0, verifyMs: 1, switchMs: 0 });
      }
      // seen: 2 drafting steps (then the model, charging the measured overhead, says no), and
      // from then on probes: runs of PROBE_STEPS drafting steps after 4, 9, 19, 39 ...
      // plain steps (the wait doubles while drafting keeps losing clearly)
      const runs: [number, number][] = []; // [plain steps before, drafting steps]
      let plain = 0;
      for (const n of retest) {
        if (n === 0) plain++;
        else if (plain > 0 || runs.length === 0) {
          runs.push([plain, 1]);
          plain = 0;
        } else runs[runs.length - 1]![1]++;
      }
      const probes = runs.slice(1);
      expect(probes.length).toBeGreaterThanOrEqual(3);
      for (const [, len] of probes.slice(0, -1)) expect(len).toBe(PROBE_STEPS);
      for (let i = 1; i < probes.length; i++) expect(probes[i]![0]).toBeGreaterThan(1.8 * probes[i - 1]![0]); // the waits double
      expect(plain).toBeLessThanOrEqual(2 * probes[probes.length - 1]![0] + 1);
    } finally {
      spy.mockRestore();
    }
  });

  it('the guard weighs drafting steps by the tokens they emit (total ms over total tokens, not a mean of per-step ratios)', () => {
    let clock = 0;
    const spy = vi.spyOn(performance, 'now').mockImplementation(() => clock);
    try {
      // drafting steps take 2 ms and alternately emit 1 token (2 ms/token) and 4 tokens
      // (0.5 ms/token): 0.8 ms per token in all, faster than plain steps' 1 ms. A mean of the
      // per-step ratios (1.25 ms) would call drafting slower and switch it off.
      const tree = buildTree([{ tokens: [1, 2, 3], score: 0 }], 3, { rootToken: 0 });
      const b = new AdaptiveBudget(Float64Array.from({ length: 9 }, () => 1)); // no probes: the guard alone
      for (let i = 0; i < 50; i++) b.observe({ tree: tree, accepted: [1, 2], asked: tree.size - 1, draftMs: 0.01, verifyMs: 1, switchMs: 0 });
      const single = buildTree([], 0, { rootToken: 0 });
      for (let i = 0; i < 20; i++) {
        b.choose(0); // budget 0 allowed: plain steps, 1 ms each
        clock += 1;
        b.observe({ tree: single, accepted: [], asked: 0, draftMs: 0, verifyMs: 1, switchMs: 0 });
      }
      const choices: number[] = [];
      for (let i = 0; i < 80; i++) {
        const n = b.choose(3);
        choices.push(n);
        if (n > 0) {
          clock += 2;
          b.observe({ tree: tree, accepted: i % 2 ? [1, 2, 3] : [], asked: n, draftMs: 0.01, verifyMs: 1, switchMs: 0 });
        } else {
          clock += 1;
          b.observe({ tree: single, accepted: [], asked: 0, draftMs: 0, verifyMs: 1, switchMs: 0 });
        }
      }
      expect(b.realizedMsPerToken(1)).toBeCloseTo(0.8, 1);
      expect(b.realizedMsPerToken(0)).toBeCloseTo(1, 5);
      expect(choices.slice(-20).every((n) => n > 0)).toBe(true);
    } finally {
      spy.mockRestore();
    }
  });

  it('trees grow past a pessimistic prior: a node beyond the chosen size is verified now and then, so its rank is measured', () => {
    // verifying costs a little more per node; every drafted node is accepted
    const cost = Float64Array.from({ length: 9 }, (_, i) => 1 + 0.05 * (i + 1));
    const b = new AdaptiveBudget(cost, { exploreEvery: 8, prior: 0.6 });
    const first = b.choose(8);
    expect(first).toBeLessThan(8); // the prior (0.6, halved per rank) stops the tree early
    let n = first;
    const last: number[] = [];
    for (let step = 0; step < 400; step++) {
      const tree = buildTree([{ tokens: Array.from({ length: 8 }, (_, i) => i + 1), score: 0 }], n, { rootToken: 0 });
      b.observe({ tree: tree, accepted: Array.from({ length: tree.size - 1 }, (_, i) => i + 1), asked: n, draftMs: 0.01, verifyMs: cost[tree.size - 1], switchMs: 0 });
      n = b.choose(8);
      if (step >= 380) last.push(n);
    }
    expect(b.acceptance(7)).toBeGreaterThan(0.9);
    expect(Math.max(...last)).toBe(8);
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
