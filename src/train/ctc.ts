/**
 * CTC (connectionist temporal classification) loss and its gradient. Standalone: no
 * backend, no autograd; plain f64 arithmetic on host arrays. Decoding (blank-collapse, best
 * path, prefix beam search) is in src/decode/.
 *
 *   ctcLoss(logits, frames, classes, labels, blank, opts?) -> { loss, grad }
 *     logits: (frames, classes) row-major, unnormalised; labels: class ids, never `blank`
 *   ctcLossBatch(logits, batch, frames, classes, labels[], blank, opts?) -> { loss, grad, infinite }
 *     logits: (batch, frames, classes)
 *
 * Math: p(y|x) = sum over frame paths pi with collapse(pi) = y of prod_t softmax(x_t)[pi_t]
 * (collapse: merge runs of equal ids, then drop blanks, as ctcCollapse in src/decode/);
 * loss = -log p(y|x), computed by the forward-backward (alpha-beta) recursion in log space.
 * d loss / d x[t,c] = softmax(x_t)[c] - sum_{s : ext[s] = c} alpha[t,s] beta[t,s] / p(y|x),
 * where ext = [blank, y1, blank, y2, ..., yL, blank] is the extended label sequence.
 *
 * Labels that cannot fit (frames < labels.length + number of equal adjacent labels, since
 * each such pair needs a blank between them), or whose every path goes through a -Infinity
 * logit, have p = 0: by default loss = Infinity and grad = null; with `impossible: 'zero'`
 * loss = 0 and the gradient is zero (PyTorch's zero_infinity).
 *
 * Example:
 *   const logits = new Float32Array(4 * 3);           // 4 frames, 3 classes, all zero: uniform
 *   const { loss, grad } = ctcLoss(logits, 4, 3, [1, 2], 0);
 *   // loss = -log(#paths collapsing to [1, 2] / 3^4); grad: (4, 3), each row sums to 0
 *
 * Logits may be -Infinity (a masked class) but not NaN or +Infinity, and every frame needs
 * at least one finite logit.
 */
import { logAddExp } from '../util/numeric.js';

export type CtcImpossible = 'infinity' | 'zero';
export type CtcReduction = 'sum' | 'mean' | 'none';

export interface CtcLossResult {
  loss: number; // -log p(labels | logits), f64; Infinity (or 0 with impossible 'zero') when p = 0
  grad: Float32Array | null; // (frames, classes); null when p = 0 and impossible is 'infinity'
}

export interface CtcBatchResult {
  loss: number | Float32Array; // a number for 'sum' / 'mean', (batch) per-sequence losses for 'none'
  grad: Float32Array; // (batch, frames, classes): gradient of the reduced loss ('none': of their sum)
  infinite: number[]; // batch indices with p = 0 (their gradient rows are zero)
}

// ---------------------------------------------------------------------------------------
// Validation: every public function checks its arguments and names the bad one.

function checkDims(fn: string, logits: Float32Array, frames: number, classes: number, blank: number, batch = 1): void {
  if (!Number.isInteger(frames) || frames < 1) throw new RangeError(`${fn}: frames must be a positive integer, got ${frames}`);
  if (!Number.isInteger(classes) || classes < 1) throw new RangeError(`${fn}: classes must be a positive integer, got ${classes}`);
  if (!Number.isInteger(blank) || blank < 0 || blank >= classes) {
    throw new RangeError(`${fn}: blank must be an integer in [0, ${classes}), got ${blank}`);
  }
  const want = batch * frames * classes;
  if (logits.length !== want) {
    const shape = batch === 1 && fn !== 'ctcLossBatch' ? `${frames} * ${classes}` : `${batch} * ${frames} * ${classes}`;
    throw new RangeError(`${fn}: logits has length ${logits.length}, expected ${shape} = ${want}`);
  }
}

function checkLabels(fn: string, name: string, labels: readonly number[], classes: number, blank: number): void {
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= classes) {
      throw new RangeError(`${fn}: ${name}[${i}] = ${y} is out of range: labels must be integers in [0, ${classes})`);
    }
    if (y === blank) throw new RangeError(`${fn}: ${name}[${i}] equals the blank id ${blank}; labels never contain the blank`);
  }
}

/** Throws on NaN / +Infinity and on frames whose logits are all -Infinity. */
function checkLogitValues(fn: string, logits: Float32Array, frames: number, classes: number, where: (t: number) => string): void {
  for (let t = 0; t < frames; t++) {
    let anyFinite = false;
    for (let c = 0; c < classes; c++) {
      const v = logits[t * classes + c]!;
      if (Number.isNaN(v) || v === Infinity) throw new RangeError(`${fn}: logits${where(t)}[${c}] is ${v}; logits must be finite or -Infinity`);
      if (v !== -Infinity) anyFinite = true;
    }
    if (!anyFinite) throw new RangeError(`${fn}: logits${where(t)} is -Infinity for every class; a frame needs one finite logit`);
  }
}

// ---------------------------------------------------------------------------------------
// Building blocks, in f64.

/**
 * Softmax of each frame of the (frames, classes) block at `offset`, kept as two parts so
 * that each logit costs one exp: exps[t,c] = e^(x[t,c] - max_t), and lse[t] = log sum_c e^x[t,c].
 * Then softmax = exps[t,c] * e^(max_t - lse[t]) and log-softmax = x[t,c] - lse[t].
 */
function softmaxRows(exps: Float64Array, lse: Float64Array, invSum: Float64Array, x: Float32Array, offset: number, frames: number, classes: number): void {
  for (let t = 0; t < frames; t++) {
    const row = offset + t * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) if (x[row + c]! > max) max = x[row + c]!;
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += exps[t * classes + c] = Math.exp(x[row + c]! - max);
    lse[t] = max + Math.log(sum);
    invSum[t] = 1 / sum;
  }
}

/** The fewest frames that can emit `labels`: one per label plus a blank between equal neighbours. */
export function ctcMinFrames(labels: readonly number[]): number {
  let n = labels.length;
  for (let i = 1; i < labels.length; i++) if (labels[i] === labels[i - 1]) n++;
  return n;
}

/** Scratch arrays for one sequence, sized once per batch (no allocation per sequence). */
interface Workspace {
  exps: Float64Array; // (frames, classes) e^(logit - frame max)
  lse: Float64Array; // (frames) log sum_c e^logit: log-softmax = logit - lse
  invSum: Float64Array; // (frames) 1 / sum_c exps: softmax = exps * invSum
  logp: Float64Array; // (frames, maxStates) log-softmax of ext[s] at frame t
  alpha: Float64Array; // (frames, maxStates) log p(frames 0..t emitted, in state s at t)
  beta: Float64Array; // (frames, maxStates) log p(frames t+1.. emitted | in state s at t)
  ext: Int32Array; // (maxStates) extended labels [blank, y1, blank, ..., yL, blank]
  occupancy: Float64Array; // (classes) posterior occupancy of each class at one frame (ext classes only)
}

function makeWorkspace(frames: number, classes: number, maxLabels: number): Workspace {
  const states = 2 * maxLabels + 1;
  return {
    exps: new Float64Array(frames * classes),
    lse: new Float64Array(frames),
    invSum: new Float64Array(frames),
    logp: new Float64Array(frames * states),
    alpha: new Float64Array(frames * states),
    beta: new Float64Array(frames * states),
    ext: new Int32Array(states),
    occupancy: new Float64Array(classes),
  };
}

/**
 * The core: -log p(labels | logits) for the block at `offset`, and, when p > 0, writes
 * scale * d loss / d logits into grad[offset ..]. Returns Infinity (grad untouched) when p = 0.
 */
function sequenceLoss(
  w: Workspace,
  logits: Float32Array,
  offset: number,
  frames: number,
  classes: number,
  labels: readonly number[],
  blank: number,
  grad: Float32Array,
  scale: number,
): number {
  const { exps, lse, invSum, logp, alpha, beta, ext, occupancy } = w;
  softmaxRows(exps, lse, invSum, logits, offset, frames, classes);
  if (frames < ctcMinFrames(labels)) return Infinity;

  const S = 2 * labels.length + 1; // states in the extended label sequence
  for (let s = 0; s < S; s++) ext[s] = s % 2 === 0 ? blank : labels[(s - 1) >> 1]!;
  // logp[t,s] = log softmax(x_t)[ext[s]]: the only log-probabilities the recursions read
  for (let t = 0; t < frames; t++) {
    for (let s = 0; s < S; s++) logp[t * S + s] = logits[offset + t * classes + ext[s]!]! - lse[t]!;
  }
  // s-2 -> s skips a blank; allowed only into a label that differs from the one before it
  const canSkip = (s: number) => s >= 2 && ext[s] !== blank && ext[s] !== ext[s - 2];

  // forward: alpha[t,s] = logp[t,s] + lse(alpha[t-1, s], alpha[t-1, s-1], alpha[t-1, s-2] if canSkip)
  for (let s = 0; s < S; s++) alpha[s] = s < 2 ? logp[s]! : -Infinity;
  for (let t = 1; t < frames; t++) {
    const prev = (t - 1) * S, cur = t * S;
    for (let s = 0; s < S; s++) {
      let a = alpha[prev + s]!;
      if (s >= 1) a = logAddExp(a, alpha[prev + s - 1]!);
      if (canSkip(s)) a = logAddExp(a, alpha[prev + s - 2]!);
      alpha[cur + s] = a + logp[cur + s]!;
    }
  }
  const last = (frames - 1) * S;
  const logLik = S >= 2 ? logAddExp(alpha[last + S - 1]!, alpha[last + S - 2]!) : alpha[last]!;
  if (logLik === -Infinity) return Infinity; // every path crosses a -Infinity logit

  // backward: beta[t,s] = lse over reachable s' of (logp[t+1, s'] + beta[t+1, s'])
  for (let s = 0; s < S; s++) beta[last + s] = s >= S - 2 ? 0 : -Infinity;
  for (let t = frames - 2; t >= 0; t--) {
    const cur = t * S, next = (t + 1) * S;
    for (let s = 0; s < S; s++) {
      let b = beta[next + s]! + logp[next + s]!;
      if (s + 1 < S) b = logAddExp(b, beta[next + s + 1]! + logp[next + s + 1]!);
      if (s + 2 < S && canSkip(s + 2)) b = logAddExp(b, beta[next + s + 2]! + logp[next + s + 2]!);
      beta[cur + s] = b;
    }
  }

  // gradient: softmax minus the posterior occupancy alpha*beta/p of each class, per frame;
  // only the classes in ext have occupancy, so the other classes get the softmax alone
  for (let t = 0; t < frames; t++) {
    const e = t * classes, g = offset + e, z = scale * invSum[t]!;
    for (let c = 0; c < classes; c++) grad[g + c] = z * exps[e + c]!;
    for (let s = 0; s < S; s++) occupancy[ext[s]!] = 0;
    for (let s = 0; s < S; s++) occupancy[ext[s]!]! += Math.exp(alpha[t * S + s]! + beta[t * S + s]! - logLik);
    for (let s = 0; s < S; s++) {
      const c = ext[s]!; // subtract in f64, round once (repeated classes rewrite the same value)
      grad[g + c] = scale * (exps[e + c]! * invSum[t]! - occupancy[c]!);
    }
  }
  return -logLik;
}

// ---------------------------------------------------------------------------------------
// Public API.

/**
 * CTC loss of ONE sequence: -log p(labels | logits) and its gradient w.r.t. the logits.
 * logits: (frames, classes), unnormalised; labels: class ids, never `blank`, may be empty.
 */
export function ctcLoss(
  logits: Float32Array,
  frames: number,
  classes: number,
  labels: readonly number[],
  blank: number,
  opts: { impossible?: CtcImpossible } = {},
): CtcLossResult {
  const fn = 'ctcLoss';
  checkDims(fn, logits, frames, classes, blank);
  checkLabels(fn, 'labels', labels, classes, blank);
  checkLogitValues(fn, logits, frames, classes, (t) => `[frame ${t}]`);
  const impossible = checkImpossible(fn, opts.impossible);
  const grad = new Float32Array(frames * classes);
  const loss = sequenceLoss(makeWorkspace(frames, classes, labels.length), logits, 0, frames, classes, labels, blank, grad, 1);
  if (loss !== Infinity) return { loss, grad };
  return impossible === 'zero' ? { loss: 0, grad } : { loss: Infinity, grad: null };
}

/**
 * CTC loss of a batch of sequences with equal frame counts: logits (batch, frames, classes),
 * labels[b] the labels of sequence b (lengths may differ).
 * reduction 'mean' (default, as PyTorch): mean over the batch of loss_b / max(1, labels[b].length);
 * 'sum': sum of loss_b; 'none': the per-sequence losses, with grad = d(sum of losses)/d logits.
 * Sequences with p = 0 are listed in `infinite` and get zero gradient rows; their loss is
 * Infinity (so a 'sum' / 'mean' is Infinity) or, with impossible 'zero', 0.
 */
export function ctcLossBatch(
  logits: Float32Array,
  batch: number,
  frames: number,
  classes: number,
  labels: readonly (readonly number[])[],
  blank: number,
  opts: { impossible?: CtcImpossible; reduction?: CtcReduction } = {},
): CtcBatchResult {
  const fn = 'ctcLossBatch';
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`${fn}: batch must be a positive integer, got ${batch}`);
  checkDims(fn, logits, frames, classes, blank, batch);
  if (labels.length !== batch) throw new RangeError(`${fn}: labels has ${labels.length} sequences, expected batch = ${batch}`);
  let maxLabels = 0;
  for (let b = 0; b < batch; b++) {
    checkLabels(fn, `labels[${b}]`, labels[b]!, classes, blank);
    maxLabels = Math.max(maxLabels, labels[b]!.length);
  }
  for (let b = 0; b < batch; b++) {
    checkLogitValues(fn, logits.subarray(b * frames * classes, (b + 1) * frames * classes), frames, classes, (t) => `[batch ${b}][frame ${t}]`);
  }
  const impossible = checkImpossible(fn, opts.impossible);
  const reduction = opts.reduction ?? 'mean';
  if (reduction !== 'sum' && reduction !== 'mean' && reduction !== 'none') {
    throw new RangeError(`${fn}: reduction must be 'sum', 'mean' or 'none', got ${String(reduction)}`);
  }

  const w = makeWorkspace(frames, classes, maxLabels);
  const grad = new Float32Array(batch * frames * classes); // rows of impossible sequences stay 0
  const losses = new Float64Array(batch);
  const infinite: number[] = [];
  for (let b = 0; b < batch; b++) {
    // the weight of sequence b in the reduced loss, applied to its gradient as it is written
    const weight = reduction === 'mean' ? 1 / (Math.max(1, labels[b]!.length) * batch) : 1;
    const loss = sequenceLoss(w, logits, b * frames * classes, frames, classes, labels[b]!, blank, grad, weight);
    if (loss === Infinity) infinite.push(b);
    losses[b] = loss === Infinity && impossible === 'zero' ? 0 : loss;
  }

  if (reduction === 'none') return { loss: Float32Array.from(losses), grad, infinite };
  let total = 0;
  for (let b = 0; b < batch; b++) total += reduction === 'mean' ? losses[b]! / Math.max(1, labels[b]!.length) : losses[b]!;
  return { loss: reduction === 'mean' ? total / batch : total, grad, infinite };
}

function checkImpossible(fn: string, v: CtcImpossible | undefined): CtcImpossible {
  if (v === undefined) return 'infinity';
  if (v !== 'infinity' && v !== 'zero') throw new RangeError(`${fn}: impossible must be 'infinity' or 'zero', got ${String(v)}`);
  return v;
}
