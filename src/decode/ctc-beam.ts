/**
 * CTC prefix beam search: the top-k DISTINCT collapsed drafts of S output frames, each with
 * its total probability (the sum over every frame path that collapses to it), not just the
 * probability of its single best path as the per-frame argmax (ctcBestPath) gives.
 *
 *   ctcPrefixBeamSearch(logProbs, frames, classes, blank, { beamWidth, topK, maxLen?, tokensPerFrame? })
 *     logProbs: (frames, classes) row-major; classes = V + 1 with blank = V for a draft head
 *     -> [{ tokens, logProb }], best first, never the empty prefix
 *
 * Bookkeeping (log space), for every prefix y kept after frame t:
 *   pb[y]  = log p(frame paths of length t that collapse to y and END IN BLANK)
 *   pnb[y] = log p(... that END IN y's last token)
 * Frame t+1 with class c and probability q_c:
 *   c = blank:            y      <- (pb + pnb) q_blank           (into pb[y])
 *   c = last(y):          y      <- pnb q_c                      (a repeat merges; into pnb[y])
 *                         y + c  <- pb q_c                       (a blank separated them; into pnb[y+c])
 *   c != last(y):         y + c  <- (pb + pnb) q_c                (into pnb[y+c])
 * and p(y) = pb[y] + pnb[y] after the last frame. Every path is counted exactly once, so with
 * no pruning p(y) is exact; pruning (beamWidth prefixes per frame, tokensPerFrame classes per
 * frame, maxLen) only drops paths, so the reported probabilities are then lower bounds.
 *
 * Rows are log-softmax normalised first (a row of log-probabilities is unchanged by that), so
 * raw logits are accepted too.
 *
 * Example (2 frames, classes {0, 1, blank = 2}):
 *   const lp = Float32Array.from([0.6, 0.1, 0.3, 0.6, 0.1, 0.3].map(Math.log));
 *   ctcPrefixBeamSearch(lp, 2, 3, 2, { beamWidth: 8, topK: 2 });
 *   // [{ tokens: [0], logProb: log(0.36 + 0.18 + 0.18) },   paths 00, 0-, -0
 *   //  { tokens: [1], logProb: log(0.01 + 0.03 + 0.03) }]   paths 11, 1-, -1
 * The argmax path with blank-collapse is ctcBestPath (src/train/ctc.ts).
 */
export interface CtcBeamOptions {
  /** prefixes kept after each frame */
  beamWidth: number;
  /** candidates returned (distinct, non-empty, best first) */
  topK: number;
  /** longest candidate; longer prefixes are not expanded (default: frames) */
  maxLen?: number;
  /** expand only the most likely non-blank classes of each frame (default: all); the blank is always kept */
  tokensPerFrame?: number;
  /**
   * log(sum of exp) of each frame, when the caller has it already (a draft head computes it
   * in wasm): the search then skips that pass over every class, and trusts the values.
   */
  frameLogNorm?: ArrayLike<number>;
}

export interface CtcCandidate {
  tokens: number[];
  logProb: number; // log of the total probability of every frame path collapsing to `tokens`
}

/** log(e^a + e^b); -Infinity is log 0. */
function logAdd(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

/** A prefix in the search: its tokens live in a shared trie (parent pointer + last token). */
interface Beam {
  node: number; // trie node of the prefix (0 = empty prefix)
  pb: number; // log p(paths ending in blank)
  pnb: number; // log p(paths ending in the last token)
  total: number; // log(e^pb + e^pnb), set once the frame is done
}

export function ctcPrefixBeamSearch(
  logProbs: Float32Array,
  frames: number,
  classes: number,
  blank: number,
  opts: CtcBeamOptions,
): CtcCandidate[] {
  const fn = 'ctcPrefixBeamSearch';
  if (!Number.isInteger(frames) || frames < 1) throw new RangeError(`${fn}: frames must be a positive integer, got ${frames}`);
  if (!Number.isInteger(classes) || classes < 2) throw new RangeError(`${fn}: classes must be an integer >= 2, got ${classes}`);
  if (!Number.isInteger(blank) || blank < 0 || blank >= classes) throw new RangeError(`${fn}: blank must be in [0, ${classes}), got ${blank}`);
  if (logProbs.length !== frames * classes) {
    throw new RangeError(`${fn}: logProbs has length ${logProbs.length}, expected ${frames} * ${classes}`);
  }
  const { beamWidth, topK } = opts;
  const maxLen = opts.maxLen ?? frames;
  const perFrame = Math.min(opts.tokensPerFrame ?? classes - 1, classes - 1);
  if (!(Number.isInteger(beamWidth) && beamWidth >= 1)) throw new RangeError(`${fn}: beamWidth must be an integer >= 1, got ${beamWidth}`);
  if (!(Number.isInteger(topK) && topK >= 1)) throw new RangeError(`${fn}: topK must be an integer >= 1, got ${topK}`);
  if (!(Number.isInteger(maxLen) && maxLen >= 0)) throw new RangeError(`${fn}: maxLen must be an integer >= 0, got ${maxLen}`);
  if (!(Number.isInteger(perFrame) && perFrame >= 1)) throw new RangeError(`${fn}: tokensPerFrame must be an integer >= 1, got ${opts.tokensPerFrame}`);
  if (opts.frameLogNorm && opts.frameLogNorm.length < frames) throw new RangeError(`${fn}: frameLogNorm has ${opts.frameLogNorm.length} values for ${frames} frames`);

  // The trie of every prefix ever created: node 0 is the empty prefix.
  const trieParent = [-1], trieToken = [-1], trieLen = [0];
  const trieChild = new Map<number, number>(); // node * classes + token -> child node
  const extend = (node: number, c: number): number => {
    const key = node * classes + c;
    let child = trieChild.get(key);
    if (child === undefined) {
      child = trieParent.length;
      trieParent.push(node);
      trieToken.push(c);
      trieLen.push(trieLen[node]! + 1);
      trieChild.set(key, child);
    }
    return child;
  };

  const top = new Int32Array(perFrame); // the frame's best non-blank classes
  let beams: Beam[] = [{ node: 0, pb: 0, pnb: -Infinity, total: 0 }];
  const next = new Map<number, Beam>();
  const at = (node: number): Beam => {
    let b = next.get(node);
    if (!b) next.set(node, (b = { node, pb: -Infinity, pnb: -Infinity, total: -Infinity }));
    return b;
  };

  for (let t = 0; t < frames; t++) {
    const off = t * classes;
    const lse = opts.frameLogNorm ? opts.frameLogNorm[t]! : frameLogSumExp(logProbs, off, classes, fn, t); // q_c = logProbs[off + c] - lse
    const nTop = topClasses(top, logProbs, off, classes, blank);
    const qBlank = logProbs[off + blank]! - lse;
    next.clear();
    for (const { node, pb, pnb, total } of beams) {
      const same = at(node);
      same.pb = logAdd(same.pb, total + qBlank);
      const last = trieToken[node]!;
      const canGrow = trieLen[node]! < maxLen;
      for (let k = 0; k < nTop; k++) {
        const c = top[k]!, q = logProbs[off + c]! - lse;
        if (q === -Infinity) continue;
        if (c === last) {
          same.pnb = logAdd(same.pnb, pnb + q);
          if (canGrow && pb !== -Infinity) {
            const grown = at(extend(node, c));
            grown.pnb = logAdd(grown.pnb, pb + q);
          }
        } else if (canGrow) {
          const grown = at(extend(node, c));
          grown.pnb = logAdd(grown.pnb, total + q);
        }
      }
    }
    beams = [];
    for (const b of next.values()) {
      b.total = logAdd(b.pb, b.pnb); // once per prefix, not once per comparison
      if (b.total !== -Infinity) beams.push(b);
    }
    beams.sort((a, b) => b.total - a.total || a.node - b.node);
    if (beams.length > beamWidth) beams.length = beamWidth;
  }

  const out: CtcCandidate[] = [];
  for (const b of beams) {
    if (b.node === 0) continue; // the empty draft proposes nothing
    const tokens: number[] = [];
    for (let n = b.node; n > 0; n = trieParent[n]!) tokens.push(trieToken[n]!);
    out.push({ tokens: tokens.reverse(), logProb: b.total });
    if (out.length === topK) break;
  }
  return out;
}

/** log-sum-exp of the frame at `offset` (f64), rejecting NaN and +Infinity. */
function frameLogSumExp(x: Float32Array, offset: number, classes: number, fn: string, t: number): number {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) {
    const v = x[offset + c]!;
    if (Number.isNaN(v) || v === Infinity) throw new RangeError(`${fn}: logProbs[frame ${t}][${c}] is ${v}`);
    if (v > max) max = v;
  }
  if (max === -Infinity) throw new RangeError(`${fn}: logProbs[frame ${t}] is -Infinity for every class`);
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(x[offset + c]! - max);
  return max + Math.log(sum);
}

/** The top.length largest non-blank classes of the frame at `offset`, best first (ties: lower id); returns the count. */
function topClasses(top: Int32Array, x: Float32Array, offset: number, classes: number, blank: number): number {
  let n = 0;
  for (let c = 0; c < classes; c++) {
    if (c === blank) continue;
    const v = x[offset + c]!;
    if (n === top.length && v <= x[offset + top[n - 1]!]!) continue;
    let i = n < top.length ? n++ : n - 1; // insertion sort into the kept set
    while (i > 0 && x[offset + top[i - 1]!]! < v) {
      top[i] = top[i - 1]!;
      i--;
    }
    top[i] = c;
  }
  return n;
}
