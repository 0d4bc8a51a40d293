/**
 * Prompt lookup (n-gram copy) drafting: text often repeats itself (code, quotes, lists,
 * summaries of the prompt), so the tokens that followed an earlier occurrence of the
 * current suffix are a cheap guess of what comes next. No model, no training.
 *
 * propose(root, maxLen): in history = prompt + emitted tokens + root, for n = maxNgram down
 * to minNgram, find earlier occurrences of the last n tokens, most recent first, and propose
 * the maxLen tokens that followed each one (continuing periodically past the end of the text,
 * see copyAfter); distinct continuations only, at most maxCandidates of them. Score: longer
 * matches first, then more recent ones.
 *
 * Example: history [1 2 3 9 1 2 3 7 4 1 2] + root 3: the 3-gram [1 2 3] occurred at 4 and at 0,
 *   so with maxLen 5 the candidates are [7, 4, 1, 2, 3] (score 3) and [9, 1, 2, 3, 7] (score 3 - 1/5);
 *   with maxLen 7 the first is [7, 4, 1, 2, 3, 7, 4] (the copy goes on with period 5).
 */
import type { DraftCandidate, Drafter } from './drafter.js';

export interface PromptLookupOptions {
  maxNgram?: number; // longest suffix to match (default 3)
  minNgram?: number; // shortest suffix to match (default 1)
  maxCandidates?: number; // distinct continuations proposed (default 4)
}

export class PromptLookupDrafter implements Drafter {
  readonly name = 'lookup';
  readonly usesHidden = false;
  readonly maxNgram: number;
  readonly minNgram: number;
  readonly maxCandidates: number;
  private history: number[] = []; // prompt + tokens that entered the cache

  constructor(opts: PromptLookupOptions = {}) {
    this.maxNgram = opts.maxNgram ?? 3;
    this.minNgram = opts.minNgram ?? 1;
    this.maxCandidates = opts.maxCandidates ?? 4;
    if (!(Number.isInteger(this.minNgram) && this.minNgram >= 1 && Number.isInteger(this.maxNgram) && this.maxNgram >= this.minNgram)) {
      throw new RangeError(`PromptLookupDrafter: need integers 1 <= minNgram <= maxNgram, got ${this.minNgram}, ${this.maxNgram}`);
    }
    if (!(Number.isInteger(this.maxCandidates) && this.maxCandidates >= 1)) {
      throw new RangeError(`PromptLookupDrafter: maxCandidates must be an integer >= 1, got ${this.maxCandidates}`);
    }
  }

  begin(prompt: readonly number[]): void {
    this.history = prompt.slice();
  }

  accept(tokens: readonly number[]): void {
    for (const t of tokens) this.history.push(t);
  }

  propose(root: number, maxLen: number): DraftCandidate[] {
    const h = this.history;
    h.push(root); // searched as the end of the text; popped before returning
    const L = h.length, out: DraftCandidate[] = [];
    const seen = new Set<string>();
    for (let n = Math.min(this.maxNgram, L - 1); n >= this.minNgram && out.length < this.maxCandidates; n--) {
      // an occurrence at [i, i + n) must end before the suffix does and have a token after it
      let rank = 0;
      for (let i = L - n - 1; i >= 0 && out.length < this.maxCandidates; i--) {
        let match = true;
        for (let k = 0; k < n && match; k++) match = h[i + k] === h[L - n + k];
        if (!match) continue;
        const tokens = copyAfter(h, i + n, L - n - i, maxLen);
        const key = tokens.join();
        if (tokens.length === 0 || seen.has(key)) continue;
        seen.add(key);
        out.push({ tokens, score: n - rank++ / (this.maxCandidates + 1) }); // within (n - 1, n]
      }
    }
    h.pop();
    return out;
  }
}

/**
 * The `maxLen` tokens from `start` on, as an LZ77 copy: the text is assumed to go on as it did
 * `shift` tokens earlier, so past the end of `h` the copy repeats its own output (a suffix
 * matched at distance `shift` inside a periodic run continues the period, not just to the end).
 */
function copyAfter(h: readonly number[], start: number, shift: number, maxLen: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < maxLen; k++) {
    const j = start + k;
    out.push(j < h.length ? h[j]! : out[k - shift]!); // j - shift >= start, so k - shift >= 0
  }
  return out;
}
