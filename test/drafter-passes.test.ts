/**
 * A drafter training step in several passes (a real vocabulary's logits do not fit one):
 * the loss and the updated weights are one pass's, up to rounding, for every head kind;
 * validation in batches of a pass's size sees the same examples.
 */
import { describe, expect, it } from 'vitest';
import { ctcHeadConfig } from '../src/draft/ctc-head.js';
import { medusaConfig } from '../src/draft/medusa.js';
import { sliceDistillSet } from '../src/train/distill.js';
import { DRAFTER_HYPER, DrafterTrainer, examplesPerPass, validationDraftBatches, type HeadConfig } from '../src/train/train-drafter.js';
import { tinyBase, tinyBaseConfig, tinyDistill } from './draft-helpers.js';

const base = tinyBase(tinyBaseConfig({ D: 16, H: 2, KVH: 1, V: 20 }), 8, 10);
const hyper = { ...DRAFTER_HYPER, steps: 4, seqsPerStep: 3, positionsPerStep: 20, evalPositions: 30, evalEvery: 2, checkpointEvery: 100 };

describe('drafter training in passes', () => {
  it.each([
    ['ctc', ctcHeadConfig(base.config, { frames: 4, draftLen: 2 })],
    ['ce', ctcHeadConfig(base.config, { frames: 4, draftLen: 2, loss: 'ce' })],
    ['medusa', medusaConfig(base.config, 2)],
  ] as [string, HeadConfig][])('%s: losses and weights equal one pass per step', async (_, config) => {
    const train = await tinyDistill(base, 10, 24, 4);
    const data = { train, val: sliceDistillSet(train, 0, 3), id: 'tiny' };
    const trainer = (perPass: number) => new DrafterTrainer(config, hyper, data, base.frozen, undefined, perPass);
    const whole = trainer(1000), passes = trainer(3);
    for (let step = 0; step < hyper.steps; step++) {
      expect(passes.trainStep().loss).toBeCloseTo(whole.trainStep().loss, 5);
    }
    expect(passes.evaluate().loss).toBeCloseTo(whole.evaluate().loss, 5);
    for (const [name, v] of whole.params.vars) {
      const other = passes.params.vars.get(name)!.data;
      v.data.forEach((x, i) => expect(other[i]).toBeCloseTo(x, 4));
    }
  });

  it('validation batches of a pass size hold the same examples, each batch but the last exactly that many', async () => {
    const set = await tinyDistill(base, 9, 24, 6);
    const key = (b: ReturnType<typeof validationDraftBatches>[number], m: number) => [...b.hidden.subarray(b.rows[m]! * 16, b.rows[m]! * 16 + 16), b.roots[m]].join();
    const examples = (bs: ReturnType<typeof validationDraftBatches>) => bs.flatMap((b) => Array.from(b.rows, (_, m) => key(b, m))).sort();
    const bySequences = validationDraftBatches(set, 2, 3, 50);
    for (const perPass of [1, 4, 7]) {
      const batches = validationDraftBatches(set, 2, 3, 50, perPass);
      expect(examples(batches)).toEqual(examples(bySequences));
      batches.slice(0, -1).forEach((b) => expect(b.rows.length).toBe(perPass));
    }
  });

  it('a real vocabulary runs in passes; the shipped model in one', () => {
    expect(examplesPerPass(ctcHeadConfig({ ...base.config, vocab_size: 49152 }, { frames: 8, draftLen: 4 }))).toBe(42);
    expect(examplesPerPass(ctcHeadConfig({ ...base.config, vocab_size: 1024 }, { frames: 8, draftLen: 4 }))).toBeGreaterThanOrEqual(DRAFTER_HYPER.positionsPerStep);
  });
});
