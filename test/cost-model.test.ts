import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import {
  AdaptiveBudget, autoBudget, BackOff, CappedAverage, CPU_TREE_CAP, GPU_TREE_CAP, measureVerifyCost, OUTLIER_CAP, START_NODES, VerifyCostCurve,
} from '../src/decode/cost-model.js';
import { generate } from '../src/decode/generate.js';
import { generateSpeculative } from '../src/decode/speculative.js';
import { buildTree } from '../src/decode/tree.js';
import { garbageDrafter, oracleDrafter, tinyConfig, tinyModel } from '../src/testing/index.js';

const cpu = new CpuBackend();

/**
 * A simulated backend and drafter for the budget: verifying T tokens takes verifyMs(T), a
 * drafting step `draftMs` more; the drafter proposes a chain of as many drafts as allowed,
 * and accepts(step, rank) says whether the draft at that rank is right (the chain is
 * accepted up to its first wrong draft). A clock advances by what each step takes.
 */
interface World {
  verifyMs: (T: number) => number;
  draftMs: number;
  accepts: (step: number, rank: number) => boolean;
  /** a step's wall time, if not verify + draft (an outlier, say) */
  wallMs?: (step: number, verifyMs: number, n: number) => number;
  /** a step's reported verify time, if not verifyMs(T) */
  reportedVerifyMs?: (step: number, T: number) => number;
}

/** a budget on a simulated clock, and the loop that drives it: choose, observe, advance the clock */
function simulation(opts: { maxNodes: number; exploreEvery?: number }) {
  let clock = 0;
  const budget = new AdaptiveBudget({ ...opts, now: () => clock });
  let step = 0;
  const run = (world: World, steps: number, room = opts.maxNodes): number[] => {
    const choices: number[] = [];
    for (let i = 0; i < steps; i++, step++) {
      const n = budget.choose(room);
      choices.push(n);
      const tree = buildTree(n > 0 ? [{ tokens: Array.from({ length: n }, (_, r) => r + 1), score: 0 }] : [], n, { rootToken: 0 });
      const accepted: number[] = [];
      while (accepted.length < n && world.accepts(step, accepted.length)) accepted.push(accepted.length + 1);
      const verifyMs = world.verifyMs(tree.size), draftMs = n > 0 ? world.draftMs : 0;
      clock += world.wallMs?.(step, verifyMs, n) ?? verifyMs + draftMs;
      budget.observe({ tree, accepted, asked: n, draftMs, verifyMs: world.reportedVerifyMs?.(step, tree.size) ?? verifyMs, switchMs: 0 });
    }
    return choices;
  };
  return { budget, run };
}

const drafting = (choices: readonly number[]) => choices.filter((n) => n > 0).length;
const gpuLike = (T: number) => 1 + 0.01 * (T - 1); // 32 nodes cost little more than 1
const cpuLike = (T: number) => 1 + 0.1 * (T - 1); // 11 nodes cost 2 plain steps
const linear = (T: number) => T; // every token costs a plain step (a software rasteriser)
const always = () => true;
const never = () => false;

describe('CappedAverage', () => {
  it('averages the first `memory` samples evenly, and is exact for a constant', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.double({ min: 1, max: 1.4, noNaN: true }), { minLength: 1, maxLength: 20 }), (memory, xs) => {
        const avg = new CappedAverage(memory);
        for (const x of xs) avg.add(x);
        // samples within 1.4x of each other are never capped (the mean is >= 1, the cap 1.5x it)
        const head = xs.slice(0, memory);
        if (xs.length <= memory) expect(avg.valueOr(NaN)).toBeCloseTo(head.reduce((a, b) => a + b, 0) / head.length, 9);
        expect(avg.valueOr(NaN)).toBeGreaterThanOrEqual(Math.min(...xs) - 1e-12);
        expect(avg.valueOr(NaN)).toBeLessThanOrEqual(Math.max(...xs) + 1e-12);
      }),
    );
    expect(new CappedAverage(4).valueOr(-1)).toBe(-1);
  });

  it('one outlier moves the mean by at most (cap - 1) x mean / memory', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 40 }), fc.double({ min: 0.1, max: 10, noNaN: true }), fc.double({ min: 1, max: 1e6, noNaN: true }), (memory, steady, x, outlier) => {
        const avg = new CappedAverage(memory);
        for (let i = 0; i < steady; i++) avg.add(x);
        avg.add(outlier * x);
        expect(avg.valueOr(NaN)).toBeLessThanOrEqual(x * (1 + (OUTLIER_CAP - 1) / Math.min(steady + 1, memory)) * (1 + 1e-12));
      }),
    );
  });

  it('a mean of 0 does not hold the average at 0', () => {
    const avg = new CappedAverage(4);
    avg.add(0);
    avg.add(2);
    expect(avg.valueOr(NaN)).toBe(1);
  });
});

describe('BackOff', () => {
  it('waits base, 2 base, 4 base ... up to the cap between due steps, and starts over on reset', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 200 }), (base, max) => {
        const b = new BackOff(base, max);
        const gaps: number[] = [];
        let last = 0;
        for (let step = 1; gaps.length < 8; step++) {
          if (b.due()) {
            gaps.push(step - last);
            last = step;
          }
        }
        gaps.forEach((gap, i) => expect(gap).toBe(Math.max(1, Math.min(base * 2 ** i, max))));
        b.reset();
        let wait = 1;
        while (!b.due()) wait++;
        expect(wait).toBe(Math.max(1, Math.min(base, max)));
      }),
    );
  });

  it('a base of 0 is never due; a scale stretches this wait', () => {
    const off = new BackOff(0);
    for (let i = 0; i < 100; i++) expect(off.due()).toBe(false);
    const b = new BackOff(4);
    let wait = 1;
    while (!b.due(3)) wait++;
    expect(wait).toBe(12);
  });
});

describe('VerifyCostCurve', () => {
  it('recovers a line from the sizes seen, at sizes never seen too', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 50, noNaN: true }),
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.uniqueArray(fc.integer({ min: 1, max: 17 }), { minLength: 2, maxLength: 6 }),
        (a, slope, sizes) => {
          fc.pre(Math.max(...sizes) - Math.min(...sizes) >= 3); // enough spread that the data outweighs the prior slope
          const truth = (T: number) => a + slope * a * (T - 1);
          const curve = new VerifyCostCurve(33);
          for (let i = 0; i < 8; i++) for (const T of sizes) curve.observe(T, truth(T));
          // the prior slope bends the fit a little: within 5% of the largest cost read
          for (const T of [1, 2, 5, 17, 33]) expect(Math.abs(curve.at(T) - truth(T))).toBeLessThanOrEqual(0.05 * truth(33));
        },
      ),
    );
  });

  it('never decreases with T, whatever it is fed, and reads the prior slope off a single size', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 9 }), fc.double({ min: 0.01, max: 100, noNaN: true })), { minLength: 1, maxLength: 40 }), (samples) => {
        const curve = new VerifyCostCurve(9);
        for (const [T, ms] of samples) curve.observe(T, ms);
        for (let T = 2; T <= 9; T++) expect(curve.at(T)).toBeGreaterThanOrEqual(curve.at(T - 1));
      }),
    );
    const one = new VerifyCostCurve(9);
    one.observe(1, 2);
    expect(one.at(5) / one.at(1)).toBeCloseTo(2, 9); // the prior: each node a quarter of c(1)
  });

  it('a measured prior (measureVerifyCost) is read as one sample per size', async () => {
    const config = fc.sample(tinyConfig, { seed: 3, numRuns: 1 })[0]!;
    const cost = await measureVerifyCost(tinyModel(cpu, config, 1, { maxBatch: 16 }), 16, { past: 8, repeats: 1 });
    expect(cost.length).toBe(16);
    for (let i = 1; i < cost.length; i++) expect(cost[i]!).toBeGreaterThanOrEqual(cost[i - 1]!);
    expect(cost[0]!).toBeGreaterThan(0);
    const curve = new VerifyCostCurve(16, Float64Array.from({ length: 16 }, (_, i) => 2 + i));
    expect(curve.at(1)).toBeCloseTo(2, 1);
    expect(curve.at(16)).toBeCloseTo(17, 1);
  });
});

describe('AdaptiveBudget', () => {
  it('drafts at once, a small tree, with no measurement before the first step', () => {
    const { budget } = simulation({ maxNodes: 16 });
    expect(budget.choose(16)).toBe(START_NODES);
  });

  it('drafts the full budget where verifying is nearly free and drafts always land', () => {
    const { run } = simulation({ maxNodes: 32 });
    const choices = run({ verifyMs: gpuLike, draftMs: 0.1, accepts: always }, 300);
    expect(choices.slice(-100).filter((n) => n === 32).length).toBeGreaterThan(90); // the rest: probes of plain steps
    expect(choices.slice(-100).every((n) => n === 32 || n === 0)).toBe(true);
  });

  it('picks the size the formula picks: two ranks always land, the rest never, each node half a plain step', () => {
    // rate(0) = 1, rate(1) = 2 / 1.5, rate(2) = 3 / 2 (best), rate(3) = 3 / 2.5
    const { run } = simulation({ maxNodes: 8, exploreEvery: 0 });
    const last = run({ verifyMs: (T) => 1 + (T - 1) / 2, draftMs: 0, accepts: (_, r) => r < 2 }, 300).slice(-100);
    // now and then one node more: the third rank, untried for a while, has drifted back toward its prior
    expect(last.filter((n) => n === 2).length).toBeGreaterThanOrEqual(95);
    expect(last.every((n) => n === 2 || n === 3)).toBe(true);
  });

  it('goes plain and stays mostly plain where verifying is linear and drafts never land', () => {
    const { run } = simulation({ maxNodes: 16 });
    const choices = run({ verifyMs: linear, draftMs: 0.1, accepts: never }, 2000);
    expect(drafting(choices.slice(0, 16))).toBeLessThanOrEqual(3); // the start-up's trees (one cold, two measured); the costs rule out more
    expect(drafting(choices)).toBeLessThanOrEqual(20); // probes only, seldom
  });

  it('drafts little in a short generation where the costs alone rule drafting out (a good drafter on a linear cost)', () => {
    // a software rasteriser: T tokens cost T plain steps; a drafter right 40% of the time
    for (const seed of [1, 2, 3]) {
      const { run } = simulation({ maxNodes: 32 });
      const accepts = (step: number, rank: number) => ((step * 7919 + rank * 104729 + seed * 31) % 100) < 40;
      const choices = run({ verifyMs: linear, draftMs: 0.05, accepts }, 256);
      expect(drafting(choices)).toBeLessThanOrEqual(4);
    }
  });

  it('recovers when acceptance improves: probes find the better drafter', () => {
    const { run } = simulation({ maxNodes: 16 });
    const bad = run({ verifyMs: cpuLike, draftMs: 0.3, accepts: never }, 400);
    expect(drafting(bad.slice(-200))).toBeLessThan(30);
    const good = run({ verifyMs: cpuLike, draftMs: 0.3, accepts: always }, 600);
    const firstDraft = good.findIndex((n) => n > 2);
    expect(firstDraft).toBeGreaterThanOrEqual(0);
    expect(drafting(good.slice(firstDraft + 50))).toBeGreaterThan(0.9 * (good.length - firstDraft - 50));
  });

  it('an outlier step (a 50x pause) does not flip the decision', () => {
    // drafting pays: every draft lands, each node a tenth of a plain step; an average that
    // took the pause in full would see the 4-node tree cost about 6 plain steps
    const { run } = simulation({ maxNodes: 4, exploreEvery: 0 });
    const world: World = { verifyMs: cpuLike, draftMs: 0.3, accepts: always };
    expect(run(world, 100).slice(-20).every((n) => n === 4)).toBe(true);
    const pause = 105;
    const slow = (step: number) => (step === pause ? 50 : 1);
    const after = run({ ...world, wallMs: (step, v, n) => slow(step) * (v + (n > 0 ? 0.3 : 0)), reportedVerifyMs: (step, T) => slow(step) * cpuLike(T) }, 40);
    expect(after.every((n) => n === 4)).toBe(true);
  });

  it('the realized-speed guard: drafting that the model still rates well, but the clock says is slower, goes off before the model catches up', () => {
    // drafts always land, then never: the acceptance memory (32 drafting steps) takes a while
    // to forget the good steps; the tokens the steps really emit per ms show it sooner
    const { budget, run } = simulation({ maxNodes: 4, exploreEvery: 0 });
    const world: World = { verifyMs: cpuLike, draftMs: 0.3, accepts: always };
    expect(run(world, 300).slice(-20).every((n) => n === 4)).toBe(true);
    let off = -1;
    for (let k = 0; k < 60 && off < 0; k++) {
      const [n] = run({ ...world, accepts: never }, 1);
      if (n === 0) {
        off = k;
        expect(budget.rate(4)).toBeGreaterThan(1.2 * budget.rate(0)); // the model alone would still draft
      }
    }
    expect(off).toBeGreaterThan(5);
    expect(off).toBeLessThan(40);
    expect(budget.realizedMsPerToken(1)).toBeGreaterThan(budget.realizedMsPerToken(0));
  });

  it('the guard weighs drafting steps by the tokens they emit (total ms over total tokens, not a mean of per-step ratios)', () => {
    // drafting steps take 2 ms and alternately emit 1 token (2 ms/token) and 4 tokens
    // (0.5 ms/token): 0.8 ms per token in all, faster than plain steps' 1 ms. A mean of the
    // per-step ratios (1.25 ms) would call drafting slower and switch it off.
    const { budget, run } = simulation({ maxNodes: 3, exploreEvery: 0 });
    const world: World = { verifyMs: () => 1, draftMs: 1, accepts: (step) => step % 2 === 1 };
    const choices = run(world, 200);
    expect(budget.realizedMsPerToken(1)).toBeCloseTo(0.8, 1);
    expect(budget.realizedMsPerToken(0)).toBeCloseTo(1, 5); // from the start-up's plain steps
    expect(choices.slice(-100).every((n) => n === 3)).toBe(true);
  });

  it('trees grow from the start size to the full budget as the deeper ranks are measured', () => {
    const { budget, run } = simulation({ maxNodes: 8, exploreEvery: 0 });
    const choices = run({ verifyMs: cpuLike, draftMs: 0.1, accepts: always }, 100);
    expect(choices[0]).toBe(START_NODES);
    expect(choices.slice(-20).every((n) => n === 8)).toBe(true);
    expect(budget.acceptanceOf(7)).toBeGreaterThan(0.9);
  });

  it('a drafter that proposes nothing drives the budget to 0', () => {
    let clock = 0;
    const b = new AdaptiveBudget({ maxNodes: 8, now: () => clock });
    const empty = buildTree([], 8, { rootToken: 0 });
    const choices: number[] = [];
    for (let i = 0; i < 300; i++) {
      const n = b.choose(8);
      choices.push(n);
      clock += 1 + (n > 0 ? 0.1 : 0);
      b.observe({ tree: empty, accepted: [], asked: n, draftMs: n > 0 ? 0.1 : 0, verifyMs: 1, switchMs: 0 });
    }
    expect(drafting(choices.slice(-200))).toBeLessThan(20);
  });

  it('autoBudget: the tree cap of the backend', () => {
    expect(autoBudget('cpu').maxNodes).toBe(CPU_TREE_CAP);
    expect(autoBudget('webgpu').maxNodes).toBe(GPU_TREE_CAP);
    expect(() => new AdaptiveBudget({ maxNodes: -1 })).toThrow(/maxNodes/);
  });

  it('speculative decoding with the adaptive budget stays token-for-token equal to plain greedy decoding', async () => {
    await fc.assert(
      fc.asyncProperty(tinyConfig, fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), fc.boolean(), async (config, raw, useOracle) => {
        const prompt = raw.map((x) => x % config.vocab_size);
        const model = tinyModel(cpu, config, 5, { maxBatch: 12 });
        const plain = await generate(model, prompt, { maxNewTokens: 20, eosId: null });
        const drafter = useOracle ? oracleDrafter([...prompt, ...plain.tokens]) : garbageDrafter(config.vocab_size, 9);
        const spec = await generateSpeculative(model, prompt, drafter, { maxNewTokens: 20, eosId: null, treeBudget: 11, budget: new AdaptiveBudget({ maxNodes: 11, exploreEvery: 4 }) });
        expect(spec.tokens).toEqual(plain.tokens);
      }),
      { numRuns: 25 },
    );
  });
});
