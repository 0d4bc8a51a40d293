/**
 * CTC prefix beam search: the top-k DISTINCT collapsed drafts of S output frames, each with
 * its total probability (the sum over every frame path that collapses to it), not just the
 * probability of its single best path as the per-frame argmax (ctcBestPath) gives.
 *
 *   ctcPrefixBeamSearch(logits, frames, classes, blank, { beamWidth, topK, maxLen?, tokensPerFrame?, frameLogNorm? })
 *     logits: (frames, classes) row-major, unnormalised; classes = V + 1 with blank = V for a
 *     draft head -> [{ tokens, logProb }], best first, never the empty prefix
 *   new CtcBeamSearch().search(...)   the same, keeping its scratch between calls (a draft head's)
 *   ctcPrefixBeamSearchPlain(...)     the same search written plainly, a Map of prefixes and
 *                                     the recurrence below line for line: the reference the
 *                                     tests hold the optimised one to
 *
 * Each frame is normalised as it is read: q_c = logits[t, c] - lse_t, with the frame's
 * log-normaliser lse_t = log sum_c exp(logits[t, c]) computed here in f64 or passed in as
 * frameLogNorm. Log-probabilities are accepted as they are (their lse_t is 0, up to rounding).
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
 * Example (2 frames, classes {0, 1, blank = 2}):
 *   const lp = Float32Array.from([0.6, 0.1, 0.3, 0.6, 0.1, 0.3].map(Math.log));
 *   ctcPrefixBeamSearch(lp, 2, 3, 2, { beamWidth: 8, topK: 2 });
 *   // [{ tokens: [0], logProb: log(0.36 + 0.18 + 0.18) },   paths 00, 0-, -0
 *   //  { tokens: [1], logProb: log(0.01 + 0.03 + 0.03) }]   paths 11, 1-, -1
 * The argmax path with blank-collapse is ctcBestPath (ctc-best-path.ts).
 */
import { logAddExp } from '../util/numeric.js';

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

export function ctcPrefixBeamSearch(
  logits: Float32Array,
  frames: number,
  classes: number,
  blank: number,
  opts: CtcBeamOptions,
): CtcCandidate[] {
  return new CtcBeamSearch().search(logits, frames, classes, blank, opts);
}

/**
 * The same search written plainly: prefixes in a Map keyed by their tokens, the header's
 * recurrence line for line. It visits beams, classes and prefixes in the order CtcBeamSearch
 * does, and breaks ties the same way (the prefix first seen wins), so the two agree exactly;
 * this one allocates per frame and skips the input checks, so it is the reference, not the
 * one drafting calls.
 */
export function ctcPrefixBeamSearchPlain(logits: Float32Array, frames: number, classes: number, blank: number, opts: CtcBeamOptions): CtcCandidate[] {
  interface Beam { tokens: number[]; pb: number; pnb: number }
  const maxLen = opts.maxLen ?? frames, perFrame = Math.min(opts.tokensPerFrame ?? classes - 1, classes - 1);
  const total = (y: Beam): number => logAddExp(y.pb, y.pnb);
  const seen = new Map<string, number>([['', 0]]); // prefix -> when first seen, for ties
  let beams: Beam[] = [{ tokens: [], pb: 0, pnb: -Infinity }];
  for (let t = 0; t < frames; t++) {
    const row = logits.subarray(t * classes, (t + 1) * classes);
    const lse = opts.frameLogNorm ? opts.frameLogNorm[t]! : logSumExp(row);
    const top = [...row.keys()].filter((c) => c !== blank).sort((a, b) => row[b]! - row[a]! || a - b).slice(0, perFrame);
    const next = new Map<string, Beam>();
    const at = (tokens: number[]): Beam => {
      const key = tokens.join();
      if (!seen.has(key)) seen.set(key, seen.size);
      if (!next.has(key)) next.set(key, { tokens, pb: -Infinity, pnb: -Infinity });
      return next.get(key)!;
    };
    for (const y of beams) {
      const self = at(y.tokens), last = y.tokens[y.tokens.length - 1], canGrow = y.tokens.length < maxLen;
      const qBlank = row[blank]! - lse;
      self.pb = logAddExp(self.pb, total(y) + qBlank); //                 c = blank:    y <- (pb + pnb) q_blank
      for (const c of top) {
        const q = row[c]! - lse;
        if (q === -Infinity) continue;
        if (c === last) {
          self.pnb = logAddExp(self.pnb, y.pnb + q); //                   c = last(y):  y <- pnb q_c
          if (!canGrow || y.pb === -Infinity) continue;
          const grown = at([...y.tokens, c]); //                                        y + c <- pb q_c
          grown.pnb = logAddExp(grown.pnb, y.pb + q);
        } else if (canGrow) {
          const grown = at([...y.tokens, c]); //                          c != last(y): y + c <- (pb + pnb) q_c
          grown.pnb = logAddExp(grown.pnb, total(y) + q);
        }
      }
    }
    const order = (a: Beam, b: Beam): number => total(b) - total(a) || seen.get(a.tokens.join())! - seen.get(b.tokens.join())!;
    beams = [...next.values()].filter((y) => total(y) > -Infinity).sort(order).slice(0, opts.beamWidth);
  }
  return beams.filter((y) => y.tokens.length > 0).slice(0, opts.topK).map((y) => ({ tokens: y.tokens, logProb: total(y) }));
}

/** log sum_c exp(row[c]), in f64, largest term first factored out */
function logSumExp(row: Float32Array): number {
  let max = -Infinity, sum = 0;
  for (const v of row) if (v > max) max = v;
  for (const v of row) sum += Math.exp(v - max);
  return max + Math.log(sum);
}

/**
 * The search with its scratch kept between calls (a draft head searches every step): flat
 * typed arrays for the trie and the per-prefix sums, grown only when a bigger search comes.
 * Prefixes live in a trie (parent pointer + last token; children as a sibling list), and
 * the sums of the frame being built sit on the trie nodes, reset lazily by a frame stamp.
 */
export class CtcBeamSearch {
  private cap = 0;
  // the trie, node 0 = the empty prefix
  private parent = new Int32Array(0);
  private token = new Int32Array(0);
  private len = new Int32Array(0);
  private firstChild = new Int32Array(0);
  private nextSibling = new Int32Array(0);
  private nodes = 0;
  // the next frame's sums per node, valid where stamp == the frame
  private pb = new Float64Array(0);
  private pnb = new Float64Array(0);
  private stamp = new Int32Array(0);
  private touched = new Int32Array(0);
  private nTouched = 0;
  // the kept prefixes (beams) of the last frame, best first
  private bNode = new Int32Array(0);
  private bPb = new Float64Array(0);
  private bPnb = new Float64Array(0);
  private bTotal = new Float64Array(0);
  private top = new Int32Array(0);

  search(logits: Float32Array, frames: number, classes: number, blank: number, opts: CtcBeamOptions): CtcCandidate[] {
    const fn = 'ctcPrefixBeamSearch';
    if (!Number.isInteger(frames) || frames < 1) throw new RangeError(`${fn}: frames must be a positive integer, got ${frames}`);
    if (!Number.isInteger(classes) || classes < 2) throw new RangeError(`${fn}: classes must be an integer >= 2, got ${classes}`);
    if (!Number.isInteger(blank) || blank < 0 || blank >= classes) throw new RangeError(`${fn}: blank must be in [0, ${classes}), got ${blank}`);
    if (logits.length !== frames * classes) {
      throw new RangeError(`${fn}: logits has length ${logits.length}, expected ${frames} * ${classes}`);
    }
    const { beamWidth, topK } = opts;
    const maxLen = opts.maxLen ?? frames;
    const perFrame = Math.min(opts.tokensPerFrame ?? classes - 1, classes - 1);
    if (!(Number.isInteger(beamWidth) && beamWidth >= 1)) throw new RangeError(`${fn}: beamWidth must be an integer >= 1, got ${beamWidth}`);
    if (!(Number.isInteger(topK) && topK >= 1)) throw new RangeError(`${fn}: topK must be an integer >= 1, got ${topK}`);
    if (!(Number.isInteger(maxLen) && maxLen >= 0)) throw new RangeError(`${fn}: maxLen must be an integer >= 0, got ${maxLen}`);
    if (!(Number.isInteger(perFrame) && perFrame >= 1)) throw new RangeError(`${fn}: tokensPerFrame must be an integer >= 1, got ${opts.tokensPerFrame}`);
    if (opts.frameLogNorm && opts.frameLogNorm.length < frames) throw new RangeError(`${fn}: frameLogNorm has ${opts.frameLogNorm.length} values for ${frames} frames`);

    // each kept prefix grows at most perFrame children per frame
    this.reserve(1 + frames * beamWidth * perFrame, beamWidth * (perFrame + 1), beamWidth, perFrame);
    const { parent, token, len, firstChild, pb, pnb, stamp, touched, bNode, bPb, bPnb, bTotal, top } = this;
    this.nodes = 1;
    parent[0] = -1;
    token[0] = -1;
    len[0] = 0;
    firstChild[0] = -1;
    stamp.fill(-1, 0, 1);
    let nBeams = 1;
    bNode[0] = 0;
    bPb[0] = 0;
    bPnb[0] = -Infinity;
    bTotal[0] = 0;

    for (let t = 0; t < frames; t++) {
      const off = t * classes;
      const lse = opts.frameLogNorm ? opts.frameLogNorm[t]! : frameLogSumExp(logits, off, classes, fn, t); // q_c = logits[off + c] - lse
      const nTop = topClasses(top, perFrame, logits, off, classes, blank);
      const qBlank = logits[off + blank]! - lse;
      this.nTouched = 0;
      for (let i = 0; i < nBeams; i++) {
        const node = bNode[i]!, beamPb = bPb[i]!, beamPnb = bPnb[i]!, total = bTotal[i]!;
        this.touch(node, t);
        pb[node] = logAddExp(pb[node]!, total + qBlank);
        const last = token[node]!;
        const canGrow = len[node]! < maxLen;
        for (let k = 0; k < nTop; k++) {
          const c = top[k]!, q = logits[off + c]! - lse;
          if (q === -Infinity) continue;
          if (c === last) {
            pnb[node] = logAddExp(pnb[node]!, beamPnb + q);
            if (canGrow && beamPb !== -Infinity) {
              const grown = this.touch(this.child(node, c), t);
              pnb[grown] = logAddExp(pnb[grown]!, beamPb + q);
            }
          } else if (canGrow) {
            const grown = this.touch(this.child(node, c), t);
            pnb[grown] = logAddExp(pnb[grown]!, total + q);
          }
        }
      }
      // keep the beamWidth best touched prefixes: by total, then by node id (creation order)
      nBeams = 0;
      for (let j = 0; j < this.nTouched; j++) {
        const node = touched[j]!, tot = logAddExp(pb[node]!, pnb[node]!);
        if (tot === -Infinity) continue;
        if (nBeams === beamWidth && !better(tot, node, bTotal[nBeams - 1]!, bNode[nBeams - 1]!)) continue;
        let i = nBeams < beamWidth ? nBeams++ : nBeams - 1; // insertion into the sorted kept set
        while (i > 0 && better(tot, node, bTotal[i - 1]!, bNode[i - 1]!)) {
          bNode[i] = bNode[i - 1]!;
          bPb[i] = bPb[i - 1]!;
          bPnb[i] = bPnb[i - 1]!;
          bTotal[i] = bTotal[i - 1]!;
          i--;
        }
        bNode[i] = node;
        bPb[i] = pb[node]!;
        bPnb[i] = pnb[node]!;
        bTotal[i] = tot;
      }
    }

    const out: CtcCandidate[] = [];
    for (let i = 0; i < nBeams && out.length < topK; i++) {
      if (bNode[i] === 0) continue; // the empty draft proposes nothing
      const tokens = new Array<number>(len[bNode[i]!]!);
      for (let n = bNode[i]!, j = tokens.length - 1; n > 0; n = parent[n]!, j--) tokens[j] = token[n]!;
      out.push({ tokens, logProb: bTotal[i]! });
    }
    return out;
  }

  /** mark `node` as part of frame t's next set (its sums start at log 0); returns node */
  private touch(node: number, t: number): number {
    if (this.stamp[node] !== t) {
      this.stamp[node] = t;
      this.pb[node] = -Infinity;
      this.pnb[node] = -Infinity;
      this.touched[this.nTouched++] = node;
    }
    return node;
  }

  /** the trie child of `node` for token c, created if new */
  private child(node: number, c: number): number {
    for (let ch = this.firstChild[node]!; ch >= 0; ch = this.nextSibling[ch]!) if (this.token[ch] === c) return ch;
    const ch = this.nodes++;
    this.parent[ch] = node;
    this.token[ch] = c;
    this.len[ch] = this.len[node]! + 1;
    this.firstChild[ch] = -1;
    this.nextSibling[ch] = this.firstChild[node]!;
    this.firstChild[node] = ch;
    this.stamp[ch] = -1;
    return ch;
  }

  private reserve(nodes: number, touched: number, beams: number, perFrame: number): void {
    if (nodes > this.cap) {
      this.cap = nodes;
      this.parent = new Int32Array(nodes);
      this.token = new Int32Array(nodes);
      this.len = new Int32Array(nodes);
      this.firstChild = new Int32Array(nodes);
      this.nextSibling = new Int32Array(nodes);
      this.pb = new Float64Array(nodes);
      this.pnb = new Float64Array(nodes);
      this.stamp = new Int32Array(nodes);
    }
    if (touched > this.touched.length) this.touched = new Int32Array(touched);
    if (beams > this.bNode.length) {
      this.bNode = new Int32Array(beams);
      this.bPb = new Float64Array(beams);
      this.bPnb = new Float64Array(beams);
      this.bTotal = new Float64Array(beams);
    }
    if (perFrame > this.top.length) this.top = new Int32Array(perFrame);
  }
}

/** prefix (total a, node na) ranks before (b, nb): higher total, then the older node */
function better(a: number, na: number, b: number, nb: number): boolean {
  return a > b || (a === b && na < nb);
}

/** log-sum-exp of the frame at `offset` (f64), rejecting NaN and +Infinity. */
function frameLogSumExp(x: Float32Array, offset: number, classes: number, fn: string, t: number): number {
  let max = -Infinity;
  for (let c = 0; c < classes; c++) {
    const v = x[offset + c]!;
    if (Number.isNaN(v) || v === Infinity) throw new RangeError(`${fn}: logits[frame ${t}][${c}] is ${v}`);
    if (v > max) max = v;
  }
  if (max === -Infinity) throw new RangeError(`${fn}: logits[frame ${t}] is -Infinity for every class`);
  let sum = 0;
  for (let c = 0; c < classes; c++) sum += Math.exp(x[offset + c]! - max);
  return max + Math.log(sum);
}

/** The k largest non-blank classes of the frame at `offset` into top, best first (ties: lower id); returns the count. */
function topClasses(top: Int32Array, k: number, x: Float32Array, offset: number, classes: number, blank: number): number {
  let n = 0;
  for (let c = 0; c < classes; c++) {
    if (c === blank) continue;
    const v = x[offset + c]!;
    if (n === k && v <= x[offset + top[n - 1]!]!) continue;
    let i = n < k ? n++ : n - 1; // insertion sort into the kept set
    while (i > 0 && x[offset + top[i - 1]!]! < v) {
      top[i] = top[i - 1]!;
      i--;
    }
    top[i] = c;
  }
  return n;
}
