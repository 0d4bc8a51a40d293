/**
 * The CTC loss against first principles: brute-force enumeration of every frame path
 * (value and gradient), central finite differences, the softmax row-sum identity, and
 * hand-counted cases; the batch wrapper against per-sequence calls; blank-collapse laws.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ctcBestPath, ctcCollapse } from '../src/decode/ctc-best-path.js';
import { ctcLoss, ctcLossBatch, ctcMinFrames } from '../src/train/ctc.js';

// ---------------------------------------------------------------------------------------
// Independent reference: enumerate all classes^frames paths, in log space (so large logits
// do not underflow), keep those that collapse to the labels.

function logSoftmax64(x: ArrayLike<number>, frames: number, classes: number): Float64Array {
  const out = new Float64Array(frames * classes);
  for (let t = 0; t < frames; t++) {
    let m = -Infinity;
    for (let c = 0; c < classes; c++) m = Math.max(m, x[t * classes + c]!);
    let z = 0;
    for (let c = 0; c < classes; c++) z += Math.exp(x[t * classes + c]! - m);
    for (let c = 0; c < classes; c++) out[t * classes + c] = x[t * classes + c]! - m - Math.log(z);
  }
  return out;
}

/** -log p and d(-log p)/dx by enumeration; grad null when p = 0. */
function bruteForce(x: Float32Array, frames: number, classes: number, labels: number[], blank: number) {
  const logp = logSoftmax64(x, frames, classes);
  const paths: { ids: number[]; lp: number }[] = [];
  const ids = new Array<number>(frames).fill(0);
  for (let k = 0; k < classes ** frames; k++) {
    let r = k, lp = 0;
    for (let t = 0; t < frames; t++) {
      ids[t] = r % classes;
      r = Math.floor(r / classes);
      lp += logp[t * classes + ids[t]!]!;
    }
    if (sameSeq(ctcCollapse(ids, blank), labels)) paths.push({ ids: ids.slice(), lp });
  }
  if (paths.length === 0) return { loss: Infinity, grad: null, paths: 0 };
  const m = Math.max(...paths.map((p) => p.lp));
  const logLik = m + Math.log(paths.reduce((a, p) => a + Math.exp(p.lp - m), 0));
  const grad = Float64Array.from(logp, Math.exp);
  for (const p of paths) {
    const post = Math.exp(p.lp - logLik); // posterior of this path given the labels
    for (let t = 0; t < frames; t++) grad[t * classes + p.ids[t]!]! -= post;
  }
  return { loss: -logLik, grad, paths: paths.length };
}

const sameSeq = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

function closeTo(got: number, want: number, rel: number, abs: number, what: string) {
  if (!(Math.abs(got - want) <= abs + rel * Math.abs(want))) throw new Error(`${what}: got ${got}, want ${want}`);
}

// ---------------------------------------------------------------------------------------
// Arbitraries: small problems with repeated labels likely (few classes) and sometimes
// impossible (labels longer than the frames allow).

interface Problem {
  frames: number;
  classes: number;
  blank: number;
  labels: number[];
  logits: Float32Array;
}

const problem = (maxFrames: number, maxClasses: number, logitMax: number): fc.Arbitrary<Problem> =>
  fc
    .record({ frames: fc.integer({ min: 1, max: maxFrames }), classes: fc.integer({ min: 1, max: maxClasses }) })
    .chain(({ frames, classes }) =>
      fc.record({
        frames: fc.constant(frames),
        classes: fc.constant(classes),
        blank: fc.integer({ min: 0, max: classes - 1 }),
        // label slots in [0, classes - 1), shifted past the blank below
        slots: classes > 1 ? fc.array(fc.integer({ min: 0, max: classes - 2 }), { maxLength: frames + 1 }) : fc.constant<number[]>([]),
        logits: fc.array(fc.double({ min: -logitMax, max: logitMax, noNaN: true }), { minLength: frames * classes, maxLength: frames * classes }),
      }),
    )
    .map(({ frames, classes, blank, slots, logits }) => ({
      frames,
      classes,
      blank,
      labels: slots.map((s) => (s >= blank ? s + 1 : s)),
      logits: Float32Array.from(logits),
    }));

/** Logits on a 2^-6 grid in [-4, 4], so x +- 2^-12 is exact in f32 (finite differences). */
const gridProblem: fc.Arbitrary<Problem> = problem(5, 4, 4).map((p) => ({ ...p, logits: p.logits.map((v) => Math.round(v * 64) / 64) }));

// ---------------------------------------------------------------------------------------

describe('ctcLoss vs brute-force enumeration of all frame paths', () => {
  it('loss and gradient match for frames <= 5, classes <= 4 (repeats, empty labels, T = 1, impossible)', () => {
    fc.assert(
      fc.property(problem(5, 4, 30), ({ frames, classes, blank, labels, logits }) => {
        const want = bruteForce(logits, frames, classes, labels, blank);
        const got = ctcLoss(logits, frames, classes, labels, blank);
        // the length rule says exactly when no path exists (finite logits)
        expect(want.paths === 0).toBe(frames < ctcMinFrames(labels));
        if (want.grad === null) {
          expect(got.loss).toBe(Infinity);
          expect(got.grad).toBeNull();
          return;
        }
        closeTo(got.loss, want.loss, 1e-6, 1e-9, 'loss');
        for (let i = 0; i < want.grad.length; i++) closeTo(got.grad![i]!, want.grad[i]!, 0, 1e-6, `grad[${i}]`);
      }),
      { numRuns: 400 },
    );
  });

  it('the examples include repeated labels, empty labels, T = 1 and impossible cases', () => {
    // deterministic coverage of the corners the random search might visit rarely
    const x = Float32Array.from({ length: 5 * 3 }, (_, i) => Math.sin(i * 1.7) * 3);
    for (const [frames, labels] of [[1, []], [1, [1]], [1, [1, 2]], [2, [1, 1]], [3, [1, 1]], [5, [2, 2, 2]], [4, [2, 2, 2]], [5, []], [5, [1, 2, 1]]] as [number, number[]][]) {
      const xs = x.subarray(0, frames * 3);
      const want = bruteForce(xs, frames, 3, labels, 0);
      const got = ctcLoss(xs, frames, 3, labels, 0);
      if (want.grad === null) expect(got.loss, `${frames} ${labels}`).toBe(Infinity);
      else closeTo(got.loss, want.loss, 1e-6, 1e-9, `frames ${frames} labels [${labels}]`);
    }
  });
});

describe('ctcLoss gradient', () => {
  it('matches central finite differences in f64', () => {
    const h = 2 ** -12;
    fc.assert(
      fc.property(gridProblem, ({ frames, classes, blank, labels, logits }) => {
        const got = ctcLoss(logits, frames, classes, labels, blank);
        fc.pre(got.grad !== null);
        const x = logits.slice();
        for (let i = 0; i < x.length; i++) {
          const v = x[i]!;
          x[i] = v + h;
          const up = ctcLoss(x, frames, classes, labels, blank).loss;
          x[i] = v - h;
          const down = ctcLoss(x, frames, classes, labels, blank).loss;
          x[i] = v;
          closeTo(got.grad![i]!, (up - down) / (2 * h), 0, 1e-6, `d loss / d logits[${i}]`);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('rows sum to 0 per frame; impossible labels give a zero gradient in zero mode', () => {
    fc.assert(
      fc.property(problem(8, 6, 20), ({ frames, classes, blank, labels, logits }) => {
        const inf = ctcLoss(logits, frames, classes, labels, blank);
        const zero = ctcLoss(logits, frames, classes, labels, blank, { impossible: 'zero' });
        if (frames < ctcMinFrames(labels)) {
          expect(inf).toEqual({ loss: Infinity, grad: null });
          expect(zero.loss).toBe(0);
          expect(zero.grad!.every((g) => g === 0)).toBe(true);
          expect(zero.grad!.length).toBe(frames * classes);
          return;
        }
        expect(zero.loss).toBe(inf.loss);
        expect(zero.grad).toEqual(inf.grad);
        expect(inf.loss).toBeGreaterThanOrEqual(0);
        for (let t = 0; t < frames; t++) {
          let sum = 0;
          for (let c = 0; c < classes; c++) sum += inf.grad![t * classes + c]!;
          // the gradient is stored in f32: each entry (|g| <= 1) carries up to 2^-24 rounding,
          // so a row of `classes` entries sums to 0 within classes * 2^-24 (plus f64 slack)
          closeTo(sum, 0, 0, classes * 2 ** -24 + 1e-7, `row ${t} sum`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('stays finite with extreme logits (log space, stable log-softmax)', () => {
    const frames = 6, classes = 5;
    const x = Float32Array.from({ length: frames * classes }, (_, i) => ((i * 7919) % 13) * 300 - 1800);
    const { loss, grad } = ctcLoss(x, frames, classes, [1, 2, 2], 0);
    expect(Number.isFinite(loss)).toBe(true);
    expect(grad!.every(Number.isFinite)).toBe(true);
    // -Infinity masks a class; a label that is masked on every frame is impossible
    const masked = new Float32Array(3 * 3);
    for (let t = 0; t < 3; t++) masked[t * 3 + 2] = -Infinity;
    expect(ctcLoss(masked, 3, 3, [2], 0).loss).toBe(Infinity);
    const ok = ctcLoss(masked, 3, 3, [1], 0);
    closeTo(ok.loss, -Math.log(6 / 8), 1e-12, 0, 'masked'); // 2 classes left: paths 1__,11_,111,_1_,_11,__1 of 8
    expect(ok.grad!.filter((_, i) => i % 3 === 2).every((g) => g === 0)).toBe(true);
  });
});

describe('ctcLoss hand-checked cases (uniform logits: p = #paths / classes^frames)', () => {
  const uniform = (frames: number, classes: number) => new Float32Array(frames * classes);

  it('[1, 1] needs a blank between the repeats: impossible in 2 frames, one path (1 _ 1) in 3', () => {
    expect(ctcMinFrames([1, 1])).toBe(3);
    expect(ctcLoss(uniform(2, 3), 2, 3, [1, 1], 0)).toEqual({ loss: Infinity, grad: null });
    closeTo(ctcLoss(uniform(3, 3), 3, 3, [1, 1], 0).loss, Math.log(27), 1e-12, 0, '[1,1] T=3');
  });

  it('[1, 2]: one path in 2 frames; 5 paths in 3 frames (112 122 _12 1_2 12_)', () => {
    closeTo(ctcLoss(uniform(2, 3), 2, 3, [1, 2], 0).loss, Math.log(9), 1e-12, 0, '[1,2] T=2');
    closeTo(ctcLoss(uniform(3, 3), 3, 3, [1, 2], 0).loss, Math.log(27 / 5), 1e-12, 0, '[1,2] T=3');
  });

  it('empty labels: only the all-blank path, loss = -sum_t log p(blank at t)', () => {
    closeTo(ctcLoss(uniform(4, 5), 4, 5, [], 2).loss, 4 * Math.log(5), 1e-12, 0, 'uniform');
    const x = Float32Array.from([0.5, -1, 2, 3, 0, 0]); // 2 frames, 3 classes, blank 1
    const lp = logSoftmax64(x, 2, 3);
    closeTo(ctcLoss(x, 2, 3, [], 1).loss, -(lp[1]! + lp[4]!), 1e-12, 0, 'non-uniform');
  });

  it('T = 1: the single frame emits the label or, for empty labels, the blank', () => {
    const x = Float32Array.from([1, 2, 0.5]);
    const lp = logSoftmax64(x, 1, 3);
    closeTo(ctcLoss(x, 1, 3, [2], 0).loss, -lp[2]!, 1e-12, 0, 'T=1 label');
    closeTo(ctcLoss(x, 1, 3, [], 0).loss, -lp[0]!, 1e-12, 0, 'T=1 empty');
    expect(ctcLoss(x, 1, 3, [1, 2], 0).loss).toBe(Infinity);
  });
});

describe('ctcLossBatch', () => {
  const batchProblem = fc
    .record({ batch: fc.integer({ min: 1, max: 4 }), frames: fc.integer({ min: 1, max: 6 }), classes: fc.integer({ min: 2, max: 5 }) })
    .chain(({ batch, frames, classes }) =>
      fc.record({
        batch: fc.constant(batch),
        frames: fc.constant(frames),
        classes: fc.constant(classes),
        labels: fc.array(fc.array(fc.integer({ min: 1, max: classes - 1 }), { maxLength: frames + 1 }), { minLength: batch, maxLength: batch }),
        logits: fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: batch * frames * classes, maxLength: batch * frames * classes }),
        impossible: fc.constantFrom('infinity' as const, 'zero' as const),
        reduction: fc.constantFrom('sum' as const, 'mean' as const, 'none' as const),
      }),
    );

  it('equals per-sequence ctcLoss combined by the reduction', () => {
    fc.assert(
      fc.property(batchProblem, ({ batch, frames, classes, labels, logits, impossible, reduction }) => {
        const x = Float32Array.from(logits), n = frames * classes;
        const got = ctcLossBatch(x, batch, frames, classes, labels, 0, { impossible, reduction });
        const per = labels.map((l, b) => ctcLoss(x.subarray(b * n, (b + 1) * n), frames, classes, l, 0, { impossible }));
        const weight = (b: number) => (reduction === 'mean' ? 1 / (Math.max(1, labels[b]!.length) * batch) : 1);
        expect(got.infinite).toEqual(labels.flatMap((l, b) => (frames < ctcMinFrames(l) ? [b] : [])));
        if (reduction === 'none') expect(got.loss).toEqual(Float32Array.from(per, (p) => p.loss));
        else {
          const want = per.reduce((a, p, b) => a + p.loss * (reduction === 'mean' ? weight(b) : 1), 0);
          if (want === Infinity) expect(got.loss).toBe(Infinity);
          else closeTo(got.loss as number, want, 1e-12, 1e-15, 'reduced loss');
        }
        for (let b = 0; b < batch; b++) {
          const g = per[b]!.grad;
          for (let i = 0; i < n; i++) closeTo(got.grad[b * n + i]!, g === null ? 0 : g[i]! * weight(b), 1e-6, 1e-12, `grad[${b}][${i}]`);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("'mean' divides by label length (min 1) then by batch, by hand", () => {
    const frames = 4, classes = 3, x = new Float32Array(3 * frames * classes);
    const labels = [[1, 2], [], [2, 2, 2]]; // the third is impossible in 4 frames (needs 5)
    const l0 = ctcLoss(new Float32Array(12), 4, 3, [1, 2], 0).loss, l1 = 4 * Math.log(3);
    const zero = ctcLossBatch(x, 3, frames, classes, labels, 0, { reduction: 'mean', impossible: 'zero' });
    closeTo(zero.loss as number, (l0 / 2 + l1 / 1 + 0) / 3, 1e-12, 0, 'mean');
    expect(zero.infinite).toEqual([2]);
    expect(zero.grad.subarray(24).every((g) => g === 0)).toBe(true);
    const inf = ctcLossBatch(x, 3, frames, classes, labels, 0, { reduction: 'mean' });
    expect(inf.loss).toBe(Infinity);
    const sum = ctcLossBatch(x, 3, frames, classes, labels, 0, { reduction: 'sum', impossible: 'zero' });
    closeTo(sum.loss as number, l0 + l1, 1e-12, 0, 'sum');
    const none = ctcLossBatch(x, 3, frames, classes, labels, 0, { reduction: 'none' });
    expect(Array.from(none.loss as Float32Array)).toEqual([Math.fround(l0), Math.fround(l1), Infinity]);
  });
});

describe('input validation names the argument', () => {
  const x = new Float32Array(2 * 3);
  it.each([
    ['labels[1] = 3 is out of range', () => ctcLoss(x, 2, 3, [1, 3], 0)],
    ['labels[0] = -1 is out of range', () => ctcLoss(x, 2, 3, [-1], 0)],
    ['labels[0] = 1.5 is out of range', () => ctcLoss(x, 2, 3, [1.5], 0)],
    ['labels[0] equals the blank', () => ctcLoss(x, 2, 3, [0], 0)],
    ['logits has length 6, expected 3 * 3', () => ctcLoss(x, 3, 3, [1], 0)],
    ['frames must be a positive integer, got 1.5', () => ctcLoss(x, 1.5, 3, [1], 0)],
    ['frames must be a positive integer, got 0', () => ctcLoss(new Float32Array(0), 0, 3, [], 0)],
    ['classes must be a positive integer', () => ctcLoss(x, 2, NaN, [1], 0)],
    ['blank must be an integer in [0, 3)', () => ctcLoss(x, 2, 3, [1], 3)],
    ['logits[frame 1][2] is NaN', () => ctcLoss(Float32Array.from([0, 0, 0, 0, 0, NaN]), 2, 3, [1], 0)],
    ['logits[frame 0][1] is Infinity', () => ctcLoss(Float32Array.from([0, Infinity, 0, 0, 0, 0]), 2, 3, [1], 0)],
    ['logits[frame 0] is -Infinity for every class', () => ctcLoss(Float32Array.from([-Infinity, -Infinity, -Infinity, 0, 0, 0]), 2, 3, [1], 0)],
    ["impossible must be 'infinity' or 'zero'", () => ctcLoss(x, 2, 3, [1], 0, { impossible: 'nan' as never })],
    ['labels[1][0] = 5 is out of range', () => ctcLossBatch(x, 2, 1, 3, [[1], [5]], 0)],
    ['labels has 1 sequences, expected batch = 2', () => ctcLossBatch(x, 2, 1, 3, [[1]], 0)],
    ['logits has length 6, expected 3 * 1 * 3', () => ctcLossBatch(x, 3, 1, 3, [[1], [1], [1]], 0)],
    ['batch must be a positive integer', () => ctcLossBatch(x, 0.5, 1, 3, [], 0)],
    ['logits[batch 1][frame 0][0] is NaN', () => ctcLossBatch(Float32Array.from([0, 0, 0, NaN, 0, 0]), 2, 1, 3, [[1], [1]], 0)],
    ["reduction must be 'sum', 'mean' or 'none'", () => ctcLossBatch(x, 2, 1, 3, [[1], [1]], 0, { reduction: 'avg' as never })],
    ['ctcBestPath: logits has length 6', () => ctcBestPath(x, 4, 3, 0)],
  ])('%s', (message, call) => {
    expect(call).toThrow(RangeError);
    expect(call).toThrow(message);
  });
});

describe('blank-collapse decoding', () => {
  const frameIds = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 12 });
  const hasAdjacentRepeat = (a: number[]) => a.some((v, i) => i > 0 && v === a[i - 1]);

  it('a sequence with no blank and no equal neighbours is a fixed point', () => {
    fc.assert(
      fc.property(frameIds, (ids) => {
        const seq = ids.filter((v) => v !== 0).filter((v, i, a) => i === 0 || v !== a[i - 1]);
        expect(ctcCollapse(seq, 0)).toEqual(seq);
      }),
    );
  });

  it('collapse(collapse(x)) = collapse(x) exactly when collapse(x) has no equal neighbours', () => {
    // Not idempotent in general: [1 _ 1] -> [1 1] -> [1]; the blank was what kept the repeat.
    expect(ctcCollapse(ctcCollapse([1, 0, 1], 0), 0)).toEqual([1]);
    fc.assert(
      fc.property(frameIds, (ids) => {
        const once = ctcCollapse(ids, 0);
        expect(sameSeq(ctcCollapse(once, 0), once)).toBe(!hasAdjacentRepeat(once));
        expect(once).not.toContain(0);
      }),
    );
  });

  it('hand cases', () => {
    expect(ctcCollapse([1, 1, 0, 2, 2], 0)).toEqual([1, 2]);
    expect(ctcCollapse([0, 0, 0], 0)).toEqual([]);
    expect(ctcCollapse([], 0)).toEqual([]);
    expect(ctcCollapse([3, 3, 1, 3, 3], 1)).toEqual([3, 3]);
  });

  it('ctcBestPath = collapse(argmax per frame), and its labels are always possible', () => {
    fc.assert(
      fc.property(problem(8, 5, 10), ({ frames, classes, blank, logits }) => {
        const argmax = Array.from({ length: frames }, (_, t) => {
          const row = Array.from(logits.subarray(t * classes, (t + 1) * classes));
          return row.indexOf(Math.max(...row));
        });
        const best = ctcBestPath(logits, frames, classes, blank);
        expect(best).toEqual(ctcCollapse(argmax, blank));
        expect(Number.isFinite(ctcLoss(logits, frames, classes, best, blank).loss)).toBe(true);
      }),
    );
  });
});
