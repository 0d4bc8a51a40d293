/**
 * The Medusa baseline: the inference heads compute the training forward, and propose
 * returns exactly the best candidates of the cartesian product of each head's top tokens.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { MedusaDrafter, medusaConfig, randomMedusaWeights, topIndices } from '../src/draft/medusa.js';
import { Tape } from '../src/train/autograd.js';
import { HeadParams, makeBatch, medusaLogits } from '../src/train/train-drafter.js';
import { Rng } from '../src/util/random.js';
import { tinyBase, tinyBaseConfig, tinyDistill } from './draft-helpers.js';

const backend = new CpuBackend();

describe('MedusaDrafter', () => {
  it('equals the training forward and proposes the best of the product of top tokens', async () => {
    const base = tinyBase(tinyBaseConfig({ D: 16, V: 12 }), 2, 20);
    const set = await tinyDistill(base, 1, 20, 2);
    await fc.assert(
      fc.asyncProperty(
        fc.record({ seed: fc.nat(1000), k: fc.integer({ min: 1, max: 4 }), maxLen: fc.integer({ min: 0, max: 5 }), top: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }), cap: fc.integer({ min: 1, max: 20 }), i: fc.integer({ min: 2, max: 12 }) }),
        async ({ seed, k, maxLen, top, cap, i }) => {
          const cfg = medusaConfig(base.config, k), V = cfg.vocab_size, D = cfg.hidden_size;
          const w = randomMedusaWeights(cfg, seed, base.frozen);
          const rng = new Rng(seed);
          for (const t of w.values()) for (let j = 0; j < t.data.length; j++) t.data[j] = 0.5 * rng.normal();
          const d = new MedusaDrafter(cfg, w, base.frozen, { topPerHead: top, maxCandidates: cap }, backend);
          d.begin(Array.from(set.tokens.subarray(0, i + 1)), set.hidden.subarray(0, (i + 1) * D));
          const cands = await d.propose(0, maxLen);
          const lp = Float32Array.from(await d.headLogProbs());

          const tape = new Tape(backend);
          const logits = tape.noGrad(() => medusaLogits(new HeadParams(backend, cfg, w), cfg, makeBatch(set, [0], [[0, i]], k), tape));
          for (let j = 0; j < k; j++) {
            const row = logits[j]!.data, m = Math.max(...row), lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
            for (let v = 0; v < V; v++) expect(Math.abs(lp[j * V + v]! - (row[v]! - lse))).toBeLessThan(1e-4);
          }
          tape.dispose();

          // brute force: every sequence of per-head top tokens, scored by summed log-probs
          const n = Math.min(k, maxLen);
          let all: { tokens: number[]; score: number }[] = n > 0 ? [{ tokens: [], score: 0 }] : [];
          for (let j = 0; j < n; j++) {
            const best = topIndices(lp, j * V, V, Math.min(V, top[Math.min(j, top.length - 1)]!));
            all = all.flatMap((p) => best.map((t) => ({ tokens: [...p.tokens, t], score: p.score + lp[j * V + t]! })));
          }
          all.sort((a, b) => b.score - a.score);
          expect(cands.map((c) => c.score)).toEqual(all.slice(0, cap).map((c) => c.score));
          expect(new Set(cands.map((c) => c.tokens.join())).size).toBe(cands.length);
          for (const c of cands) expect(c.tokens.length).toBe(n);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('topIndices: the n largest, largest first, lowest index on ties', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 5 }), (xs, n) => {
        const x = Float32Array.from(xs);
        const want = [...xs.keys()].sort((a, b) => xs[b]! - xs[a]! || a - b).slice(0, n);
        expect(topIndices(x, 0, x.length, n)).toEqual(want);
      }),
    );
  });
});
