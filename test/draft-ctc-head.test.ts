/**
 * The CTC draft head: its training loss's gradient vs finite differences, the inference
 * drafter (incremental begin/accept) vs the training forward and vs a full recomputation,
 * and what propose may return.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { CtcHeadDrafter, ctcHeadConfig, ctcHeadShapes, distinct, randomCtcHeadWeights } from '../src/draft/ctc-head.js';
import { Tape } from '../src/train/autograd.js';
import { ctcBestPath } from '../src/decode/ctc-best-path.js';
import { FrozenVars, HeadParams, headLoss, makeBatch, ctcHeadLogits } from '../src/train/train-drafter.js';
import { Rng } from '../src/util/random.js';
import { tinyBase, tinyBaseConfig, tinyDistill } from './draft-helpers.js';

const backend = new CpuBackend();

/** head weights with larger values than the init, so every path carries gradient */
function spreadHead(cfg: ReturnType<typeof ctcHeadConfig>, seed: number, scale: number) {
  const w = randomCtcHeadWeights(cfg, seed);
  const rng = new Rng(seed + 1);
  for (const [name, t] of w) {
    if (name.endsWith('norm.weight')) for (let i = 0; i < t.data.length; i++) t.data[i] = 1 + 0.3 * (rng.next() - 0.5);
    else for (let i = 0; i < t.data.length; i++) t.data[i] = t.data[i]! * scale + (name === 'ctc.blank_row' ? 0.3 * (rng.next() - 0.5) : 0);
  }
  return w;
}

describe('CTC head training loss', () => {
  it.each(['ctc', 'ce'] as const)('%s: gradient matches central finite differences on sampled parameters', async (lossKind) => {
    const base = tinyBase(tinyBaseConfig({ D: 8, H: 2, KVH: 1, V: 12 }), 3);
    const set = await tinyDistill(base, 2, 16);
    const cfg = ctcHeadConfig(base.config, { frames: 4, draftLen: 2, loss: lossKind });
    const params = new HeadParams(backend, cfg, spreadHead(cfg, 11, 20));
    const frozen = new FrozenVars(backend, base.frozen);
    const batch = makeBatch(set, [0, 1], [[0, 9], [1, 8], [1, 11], [0, 12]], 2);
    const tape = new Tape(backend);
    const lossAt = (): number => {
      const v = tape.noGrad(() => headLoss(params, frozen, batch, tape).loss.data[0]!);
      tape.reset();
      return v;
    };
    for (const v of params.vars.values()) v.gradBuf!.data.fill(0);
    const { loss } = headLoss(params, frozen, batch, tape);
    tape.backward(loss);
    tape.reset();

    const rng = new Rng(42);
    let checked = 0;
    for (const [name, v] of params.vars) {
      for (let n = 0; n < 2; n++) {
        const i = rng.int(v.size), g = v.grad![i]!, x0 = v.data[i]!, h = 1e-2;
        v.data[i] = x0 + h;
        const up = lossAt();
        v.data[i] = x0 - h;
        const down = lossAt();
        v.data[i] = x0;
        const fd = (up - down) / (2 * h);
        expect(Math.abs(fd - g), `${name}[${i}]: fd ${fd} vs autograd ${g}`).toBeLessThan(2e-4 + 0.02 * Math.abs(g));
        checked++;
      }
    }
    expect(checked).toBe(2 * ctcHeadShapes(cfg).size);
  });
});

describe('CtcHeadDrafter', () => {
  it('computes the training forward; begin + accept in pieces equals one begin over all rows', async () => {
    await fc.assert(
      fc.asyncProperty(fc.record({ seed: fc.nat(1000), KVH: fc.constantFrom(1, 2), cut: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }) }), async ({ seed, KVH, cut }) => {
        const base = tinyBase(tinyBaseConfig({ D: 16, H: 2, KVH, V: 20 }), seed);
        const set = await tinyDistill(base, 1, 24, seed);
        const cfg = ctcHeadConfig(base.config, { frames: 6, draftLen: 3 });
        const weights = spreadHead(cfg, seed, 10);
        const D = cfg.hidden_size, C = cfg.vocab_size + 1;

        // position i: rows 0..i pushed as begin(first piece) + accept(pieces...)
        const i = Math.min(set.seqLen - 2, 2 + cut.reduce((a, b) => a + b, 0));
        const tokens = Array.from(set.tokens), hidden = set.hidden;
        const root = tokens[i + 1]!;
        const drafter = new CtcHeadDrafter(cfg, weights, base.frozen, {}, backend);
        let at = Math.min(3, i + 1);
        drafter.begin(tokens.slice(0, at), hidden.subarray(0, at * D));
        for (const n of cut) {
          const m = Math.min(n, i + 1 - at);
          if (m <= 0) break;
          drafter.accept(tokens.slice(at, at + m), hidden.subarray(at * D, (at + m) * D));
          at += m;
        }
        if (at < i + 1) drafter.accept(tokens.slice(at, i + 1), hidden.subarray(at * D, (i + 1) * D));
        const incremental = Float32Array.from(await drafter.frameLogProbs(root));

        const full = new CtcHeadDrafter(cfg, weights, base.frozen, { maxBatch: 4 }, backend); // chunks of 4 rows
        full.begin(tokens.slice(0, i + 1), hidden.subarray(0, (i + 1) * D));
        const once = await full.frameLogProbs(root);

        const tape = new Tape(backend);
        const params = new HeadParams(backend, cfg, weights);
        const logits = tape.noGrad(() => ctcHeadLogits(params, cfg, new FrozenVars(backend, base.frozen), makeBatch(set, [0], [[0, i]], 3), tape)).data;
        for (let s = 0; s < cfg.frames; s++) {
          let max = -Infinity, sum = 0;
          for (let k = 0; k < C; k++) max = Math.max(max, logits[s * C + k]!);
          for (let k = 0; k < C; k++) sum += Math.exp(logits[s * C + k]! - max);
          for (let k = 0; k < C; k++) {
            const ref = logits[s * C + k]! - max - Math.log(sum);
            expect(Math.abs(incremental[s * C + k]! - ref)).toBeLessThan(2e-4 * Math.max(1, Math.abs(ref)));
            expect(Math.abs(once[s * C + k]! - incremental[s * C + k]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref)));
          }
        }
        tape.dispose();
      }),
      { numRuns: 12 },
    );
  });

  it('proposes only real tokens, at most maxLen each, distinct, best first', async () => {
    const base = tinyBase(tinyBaseConfig({ D: 16, V: 10 }), 9);
    const cfg = ctcHeadConfig(base.config, { frames: 8, draftLen: 4 });
    const set = await tinyDistill(base, 1, 16, 9);
    let multi = 0; // beam steps that found several drafts
    await fc.assert(
      fc.asyncProperty(
        fc.record({ seed: fc.nat(500), root: fc.nat(9), maxLen: fc.integer({ min: 0, max: 10 }), mode: fc.constantFrom('best-path', 'no-collapse', 'beam') }),
        async ({ seed, root, maxLen, mode }) => {
          const opts = mode === 'beam' ? { topK: 6 } : { candidates: 'best-path' as const, collapse: mode !== 'no-collapse' };
          const d = new CtcHeadDrafter(cfg, spreadHead(cfg, seed, 30), base.frozen, opts, backend);
          d.begin(Array.from(set.tokens.subarray(0, 5)), set.hidden.subarray(0, 5 * cfg.hidden_size));
          const cands = await d.propose(root, maxLen);
          if (maxLen === 0) expect(cands).toEqual([]);
          const keys = new Set<string>();
          for (const c of cands) {
            expect(c.tokens.length).toBeGreaterThan(0);
            expect(c.tokens.length).toBeLessThanOrEqual(maxLen);
            for (const t of c.tokens) expect(Number.isInteger(t) && t >= 0 && t < cfg.vocab_size).toBe(true);
            keys.add(c.tokens.join());
          }
          expect(keys.size).toBe(cands.length);
          for (let k = 1; k < cands.length; k++) expect(cands[k - 1]!.score).toBeGreaterThanOrEqual(cands[k]!.score);
          if (mode === 'beam') multi += cands.length > 1 ? 1 : 0;
          if (mode === 'best-path' && maxLen > 0) {
            const best = ctcBestPath(await d.frameLogProbs(root), cfg.frames, cfg.vocab_size + 1, cfg.vocab_size).slice(0, maxLen);
            expect(cands.map((c) => c.tokens)).toEqual(best.length ? [best] : []);
          }
        },
      ),
      { numRuns: 60 },
    );
    expect(multi).toBeGreaterThan(0);
  });

  it('with a shortlist: frame logits are the full head\'s columns for those tokens (+ BLANK), drafts use only them', async () => {
    const base = tinyBase(tinyBaseConfig({ D: 16, V: 10 }), 9);
    const cfg = ctcHeadConfig(base.config, { frames: 8, draftLen: 4 });
    const set = await tinyDistill(base, 1, 16, 9);
    await fc.assert(
      fc.asyncProperty(
        fc.record({ seed: fc.nat(500), root: fc.nat(9), list: fc.uniqueArray(fc.nat(9), { minLength: 1, maxLength: 10 }), best: fc.boolean() }),
        async ({ seed, root, list, best }) => {
          const w = spreadHead(cfg, seed, 30), opts = best ? { candidates: 'best-path' as const } : { topK: 6 };
          const full = new CtcHeadDrafter(cfg, w, base.frozen, opts, backend);
          const short = new CtcHeadDrafter(cfg, w, base.frozen, { ...opts, shortlist: list }, backend);
          for (const d of [full, short]) d.begin(Array.from(set.tokens.subarray(0, 5)), set.hidden.subarray(0, 5 * cfg.hidden_size));
          const C = cfg.vocab_size + 1, M = list.length + 1;
          const fl = Float32Array.from(await full.frameLogProbs(root)), sl = await short.frameLogProbs(root);
          for (let f = 0; f < cfg.frames; f++) {
            // the same logits, normalised over fewer classes: differences are one constant per frame
            const shift = sl[f * M + M - 1]! - fl[f * C + C - 1]!;
            list.forEach((id, i) => expect(Math.abs(sl[f * M + i]! - fl[f * C + id]! - shift)).toBeLessThan(1e-4));
          }
          for (const c of await short.propose(root, 6)) for (const t of c.tokens) expect(list).toContain(t);
        },
      ),
      { numRuns: 40 },
    );
    expect(() => new CtcHeadDrafter(cfg, spreadHead(cfg, 1, 1), base.frozen, { shortlist: [3, 3] }, backend)).toThrow(/distinct token id/);
    expect(() => new CtcHeadDrafter(cfg, spreadHead(cfg, 1, 1), base.frozen, { shortlist: [10] }, backend)).toThrow(/distinct token id/);
  });

  it('distinct: truncation to maxLen merges equal drafts, keeping the best score', () => {
    expect(distinct([{ tokens: [5, 5, 6], score: 0 }, { tokens: [5, 5, 6, 7], score: 1 }], 3, 9)).toEqual([{ tokens: [5, 5, 6], score: 1 }]);
  });

  it('rejects mismatched weights and configs with S < 2L', () => {
    const base = tinyBase(tinyBaseConfig(), 1);
    expect(() => ctcHeadConfig(base.config, { frames: 7, draftLen: 4 })).toThrow(/2 \* draft_len/);
    const cfg = ctcHeadConfig(base.config);
    const w = randomCtcHeadWeights(cfg, 1);
    w.delete('ctc.slots');
    expect(() => new CtcHeadDrafter(cfg, w, base.frozen)).toThrow(/missing ctc.slots/);
    const d = new CtcHeadDrafter(cfg, randomCtcHeadWeights(cfg, 1), base.frozen);
    expect(() => d.propose(1, 4)).toThrow(/before begin/);
  });
});
