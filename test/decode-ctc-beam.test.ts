import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CtcBeamSearch, ctcPrefixBeamSearch, ctcPrefixBeamSearchPlain, type CtcBeamOptions } from '../src/decode/ctc-beam.js';
import { ctcCollapse } from '../src/decode/ctc-best-path.js';

/** Every frame path, collapsed: the exact probability of each collapsed sequence (empty included). */
function bruteForce(logProbs: Float32Array, frames: number, classes: number, blank: number): Map<string, { tokens: number[]; p: number }> {
  const out = new Map<string, { tokens: number[]; p: number }>();
  const path = new Array<number>(frames).fill(0);
  for (let n = 0; n < classes ** frames; n++) {
    let p = 1;
    for (let t = 0, k = n; t < frames; t++, k = Math.floor(k / classes)) {
      path[t] = k % classes;
      p *= Math.exp(logProbs[t * classes + path[t]!]!);
    }
    const tokens = ctcCollapse(path, blank), key = tokens.join();
    const e = out.get(key);
    if (e) e.p += p;
    else out.set(key, { tokens, p });
  }
  return out;
}

/** Random (frames, classes) log-softmax rows; a few classes may be impossible (-Infinity). */
const frameLogProbs = fc
  .record({ frames: fc.integer({ min: 1, max: 4 }), classes: fc.integer({ min: 2, max: 4 }), seed: fc.nat() })
  .chain(({ frames, classes }) =>
    fc.tuple(
      fc.constant(frames),
      fc.constant(classes),
      fc.integer({ min: 0, max: classes - 1 }),
      fc.array(fc.oneof({ weight: 9, arbitrary: fc.double({ min: -4, max: 4, noNaN: true }) }, { weight: 1, arbitrary: fc.constant(-Infinity) }), {
        minLength: frames * classes,
        maxLength: frames * classes,
      }),
    ),
  )
  .map(([frames, classes, blank, raw]) => {
    const lp = new Float32Array(raw);
    for (let t = 0; t < frames; t++) {
      const row = lp.subarray(t * classes, (t + 1) * classes);
      if (row.every((v) => v === -Infinity)) row[0] = 0;
      const lse = Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
      for (let c = 0; c < classes; c++) row[c]! -= lse;
    }
    return { frames, classes, blank, lp };
  });

/** float32 log-probabilities sum to 1 only within ~1e-7 (the search renormalises each row in f64) */
const expectClose = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-6 * Math.max(a, b) + 1e-12);

describe('ctcPrefixBeamSearch', () => {
  it('the hand example: totals over all paths, not the best path', () => {
    const lp = Float32Array.from([0.6, 0.1, 0.3, 0.6, 0.1, 0.3].map(Math.log));
    const out = ctcPrefixBeamSearch(lp, 2, 3, 2, { beamWidth: 8, topK: 2 });
    expect(out.map((c) => c.tokens)).toEqual([[0], [1]]);
    expect(Math.exp(out[0]!.logProb)).toBeCloseTo(0.72, 6);
    expect(Math.exp(out[1]!.logProb)).toBeCloseTo(0.07, 6);
    // the best single path is blank-blank (0.09 < 0.36 = p(0 0)), but [0] wins as a total
    const repeat = Float32Array.from([0.3, 0.0001, 0.6999, 0.3, 0.0001, 0.6999].map(Math.log));
    const r = ctcPrefixBeamSearch(repeat, 2, 3, 2, { beamWidth: 8, topK: 3 });
    expect(r[0]!.tokens).toEqual([0]);
    expect(Math.exp(r[0]!.logProb)).toBeCloseTo(0.09 + 2 * 0.3 * 0.6999, 5);
  });

  it('with a wide beam: each candidate has its brute-force total, and the list is the brute-force top-k', () => {
    fc.assert(
      fc.property(frameLogProbs, fc.integer({ min: 1, max: 6 }), ({ frames, classes, blank, lp }, topK) => {
        const exact = [...bruteForce(lp, frames, classes, blank).values()].filter((e) => e.tokens.length > 0 && e.p > 0);
        exact.sort((a, b) => b.p - a.p);
        const out = ctcPrefixBeamSearch(lp, frames, classes, blank, { beamWidth: 1000, topK });
        expect(out.length).toBe(Math.min(topK, exact.length));
        const byKey = new Map(exact.map((e) => [e.tokens.join(), e.p]));
        for (let i = 0; i < out.length; i++) {
          const p = byKey.get(out[i]!.tokens.join());
          expect(p, `candidate [${out[i]!.tokens}]`).toBeDefined();
          expectClose(Math.exp(out[i]!.logProb), p!);
          expectClose(Math.exp(out[i]!.logProb), exact[i]!.p); // the i-th best (ties may swap equal ones)
        }
        expect(new Set(out.map((c) => c.tokens.join())).size).toBe(out.length); // distinct
      }),
      { numRuns: 300, seed: 1 },
    );
  });

  it('maxLen: candidates are no longer, and keep their exact totals', () => {
    fc.assert(
      fc.property(frameLogProbs, fc.integer({ min: 0, max: 3 }), ({ frames, classes, blank, lp }, maxLen) => {
        const exact = bruteForce(lp, frames, classes, blank);
        const out = ctcPrefixBeamSearch(lp, frames, classes, blank, { beamWidth: 1000, topK: 100, maxLen });
        const want = [...exact.values()].filter((e) => e.tokens.length > 0 && e.tokens.length <= maxLen && e.p > 0);
        expect(out.length).toBe(want.length);
        for (const c of out) expectClose(Math.exp(c.logProb), exact.get(c.tokens.join())!.p);
      }),
      { numRuns: 200, seed: 2 },
    );
  });

  it('pruning (narrow beam, few tokens per frame) gives distinct candidates with lower-bound totals', () => {
    fc.assert(
      fc.property(frameLogProbs, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 }), ({ frames, classes, blank, lp }, beamWidth, perFrame) => {
        const exact = bruteForce(lp, frames, classes, blank);
        const out = ctcPrefixBeamSearch(lp, frames, classes, blank, { beamWidth, topK: 4, tokensPerFrame: perFrame });
        expect(new Set(out.map((c) => c.tokens.join())).size).toBe(out.length);
        for (let i = 0; i < out.length; i++) {
          expect(Math.exp(out[i]!.logProb)).toBeLessThanOrEqual(exact.get(out[i]!.tokens.join())!.p * (1 + 1e-6));
          if (i > 0) expect(out[i]!.logProb).toBeLessThanOrEqual(out[i - 1]!.logProb);
        }
      }),
      { numRuns: 200, seed: 3 },
    );
  });

  it('raw logits are normalised per frame; bad input is rejected', () => {
    const logits = Float32Array.from([2, 0, 1, 2, 0, 1]);
    const lp = logits.map((v) => v - Math.log(Math.exp(2) + 1 + Math.exp(1)));
    const a = ctcPrefixBeamSearch(logits, 2, 3, 2, { beamWidth: 4, topK: 2 }), b = ctcPrefixBeamSearch(lp, 2, 3, 2, { beamWidth: 4, topK: 2 });
    expect(a.map((c) => c.tokens)).toEqual(b.map((c) => c.tokens));
    for (let i = 0; i < a.length; i++) expect(a[i]!.logProb).toBeCloseTo(b[i]!.logProb, 6);
    expect(() => ctcPrefixBeamSearch(logits, 3, 3, 2, { beamWidth: 4, topK: 2 })).toThrow(/length 6/);
    expect(() => ctcPrefixBeamSearch(logits, 2, 3, 3, { beamWidth: 4, topK: 2 })).toThrow(/blank/);
    expect(() => ctcPrefixBeamSearch(Float32Array.from([NaN, 0, 0]), 1, 3, 2, { beamWidth: 4, topK: 2 })).toThrow(/NaN/);
  });

  it('the optimised search returns what the plain Map-of-prefixes search does: same drafts, same order, same scores', () => {
    // Logits from a few integer levels (ties between classes and between prefixes are common,
    // so the tie-breaking is exercised) or any double, some -Infinity; every frame keeps one
    // finite logit. One CtcBeamSearch serves every run, so reused scratch is exercised too.
    const searcher = new CtcBeamSearch();
    const level = fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: -3, max: 3 }) },
      { weight: 4, arbitrary: fc.double({ min: -20, max: 20, noNaN: true }) },
      { weight: 1, arbitrary: fc.constant(-Infinity) },
    );
    const problem = fc
      .record({ frames: fc.integer({ min: 1, max: 9 }), classes: fc.integer({ min: 2, max: 9 }) })
      .chain(({ frames, classes }) =>
        fc.record({
          frames: fc.constant(frames),
          classes: fc.constant(classes),
          blank: fc.integer({ min: 0, max: classes - 1 }),
          raw: fc.array(level, { minLength: frames * classes, maxLength: frames * classes }),
          beamWidth: fc.integer({ min: 1, max: 10 }),
          topK: fc.integer({ min: 1, max: 8 }),
          maxLen: fc.option(fc.integer({ min: 0, max: frames + 1 }), { nil: undefined }),
          tokensPerFrame: fc.option(fc.integer({ min: 1, max: classes }), { nil: undefined }),
          passNorm: fc.boolean(),
        }),
      );
    fc.assert(
      fc.property(problem, ({ frames, classes, blank, raw, beamWidth, topK, maxLen, tokensPerFrame, passNorm }) => {
        const logits = new Float32Array(raw);
        for (let t = 0; t < frames; t++) if (logits.subarray(t * classes, (t + 1) * classes).every((v) => v === -Infinity)) logits[t * classes] = 0;
        const opts: CtcBeamOptions = { beamWidth, topK, maxLen, tokensPerFrame };
        if (passNorm) {
          opts.frameLogNorm = Array.from({ length: frames }, (_, t) => {
            const row = Array.from(logits.subarray(t * classes, (t + 1) * classes)), max = Math.max(...row);
            return max + Math.log(row.reduce((sum, v) => sum + Math.exp(v - max), 0));
          });
        }
        const fast = searcher.search(logits, frames, classes, blank, opts);
        const plain = ctcPrefixBeamSearchPlain(logits, frames, classes, blank, opts);
        expect(fast.map((c) => c.tokens)).toEqual(plain.map((c) => c.tokens));
        for (let i = 0; i < fast.length; i++) {
          expect(Math.abs(fast[i]!.logProb - plain[i]!.logProb)).toBeLessThanOrEqual(1e-9 * Math.abs(plain[i]!.logProb) + 1e-12);
        }
      }),
      { numRuns: 1000, seed: 4 },
    );
  });
});
