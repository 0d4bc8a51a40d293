import { describe, expect, it } from 'vitest';
import { PromptLookupDrafter } from '../src/draft/lookup.js';
import { NoDrafter } from '../src/draft/none.js';

const noHidden = new Float32Array(0);

describe('PromptLookupDrafter', () => {
  it('the header example: most recent match of the longest n-gram first, then older, then shorter', () => {
    const d = new PromptLookupDrafter({ maxNgram: 3, maxCandidates: 4 });
    d.begin([1, 2, 3, 9, 1, 2, 3, 7, 4, 1, 2], noHidden);
    const c = d.propose(3, 5);
    expect(c[0]).toEqual({ tokens: [7, 4, 1, 2, 3], score: 3 });
    expect(c[1]).toEqual({ tokens: [9, 1, 2, 3, 7], score: 3 - 1 / 5 });
    // 2-gram [2 3] and 1-gram [3] occur only where the 3-gram did: nothing new from them
    expect(c.length).toBe(2);
    expect(c.every((x) => x.tokens.length <= 5)).toBe(true);
  });

  it('falls back to shorter n-grams, follows accepted tokens, and proposes nothing without a match', () => {
    const d = new PromptLookupDrafter({ maxNgram: 3 });
    d.begin([5, 6, 7], noHidden);
    expect(d.propose(8, 4)).toEqual([]);
    d.accept([8, 6], noHidden); // history 5 6 7 8 6, root next
    expect(d.propose(1, 4)).toEqual([]); // [6 1] and [1] never occurred
    expect(d.propose(7, 2)).toEqual([{ tokens: [8, 6], score: 2 }]); // [6 7] matched at 1
    const short = new PromptLookupDrafter({ maxNgram: 2, maxCandidates: 1 });
    short.begin([4, 4, 4], noHidden);
    expect(short.propose(4, 3)).toEqual([{ tokens: [4, 4, 4], score: 2 }]); // [4 4] at 1, copied on periodically
    const periodic = new PromptLookupDrafter({ maxNgram: 3, maxCandidates: 1 });
    periodic.begin([1, 2, 3, 9, 1, 2, 3, 7, 4, 1, 2], noHidden);
    expect(periodic.propose(3, 7)).toEqual([{ tokens: [7, 4, 1, 2, 3, 7, 4], score: 3 }]);
  });

  it('validates its options', () => {
    expect(() => new PromptLookupDrafter({ maxNgram: 0 })).toThrow(/minNgram <= maxNgram/);
    expect(() => new PromptLookupDrafter({ maxCandidates: 0 })).toThrow(/maxCandidates/);
  });
});

describe('NoDrafter', () => {
  it('proposes nothing', () => {
    const d = new NoDrafter();
    d.begin();
    expect(d.propose()).toEqual([]);
  });
});
