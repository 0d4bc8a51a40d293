/**
 * Training the draft heads on self-distillation data (distill.ts), runtime-neutral: the
 * heads' training forwards (autograd, the same function as their inference code in
 * src/draft/), the batch sampler, the loop and its checkpoint format. The Node adapter
 * (src/node/train-drafter.ts) adds files, signals and the progress bar.
 *
 * One optimizer step: B sequences of N tokens, M example positions among them (distill.ts
 * says what an example is), one forward, one backward:
 *   ctc    loss = mean over the M examples of CTC(-log p(targets | S frames)) / L
 *   ce     loss = mean over the M*S frames of cross-entropy, frame s < L -> target s,
 *          frame s >= L -> BLANK (the per-slot ablation, same module)
 *   medusa loss = mean over the M examples and k heads of cross-entropy, head j -> target j
 * then global-norm clipping, AdamW, warmup + cosine. CTC and Medusa runs share the data,
 * steps and positions per step: the same budget.
 *
 * The base model is frozen: its hidden states come from the data, and its embedding / LM
 * head enter the CTC head as constants (no gradient is computed for them). Medusa heads
 * train LM-head copies of their own (see src/draft/medusa.ts for why).
 */
import { CpuBackend, type CpuBuf } from '../backend/cpu/cpu.js';
import { ctcPrefixBeamSearch } from '../decode/ctc-beam.js';
import { ctcHeadShapes, randomCtcHeadWeights, type CtcHeadConfig } from '../draft/ctc-head.js';
import { checkHeadWeights, type FrozenBase } from '../draft/head-io.js';
import { medusaShapes, randomMedusaWeights, type MedusaConfig } from '../draft/medusa.js';
import { FormatError } from '../io/errors.js';
import { parseSafetensors, serializeSafetensors } from '../io/safetensors.js';
import type { TensorMap } from '../tensor/dtype.js';
import { ShapeError } from '../tensor/tensor.js';
import { argmaxRow } from '../util/numeric.js';
import { Rng } from '../util/random.js';
import * as ag from './autograd.js';
import { param, Tape, Var } from './autograd.js';
import { checksum, type LossHistory } from './checkpoint.js';
import { examplePositions, type DistillSet } from './distill.js';
import { addRows, concatCols, ctcLossOp, gatherRows, groupAttention, repeatRows, silu } from './draft-ops.js';
import { AdamW, clipGradNorm, cosineLr, type AdamWState } from './optim.js';

export type HeadConfig = CtcHeadConfig | MedusaConfig;

/** the draft length a head is trained for: L targets per example */
export function draftLen(c: HeadConfig): number {
  return c.kind === 'ctc' ? c.draft_len : c.heads;
}

export function headShapes(c: HeadConfig): Map<string, number[]> {
  return c.kind === 'ctc' ? ctcHeadShapes(c) : medusaShapes(c);
}

// ---- hyperparameters -----------------------------------------------------------------------

export interface DrafterHyper {
  steps: number; // optimizer steps
  seqsPerStep: number; // B sequences whose prefixes run through the head's layer
  positionsPerStep: number; // M example positions trained per step (drawn from those B sequences)
  lr: number; // peak learning rate
  minLr: number; // cosine floor
  warmupSteps: number;
  weightDecay: number; // on matrices only
  beta1: number;
  beta2: number;
  eps: number;
  clipNorm: number; // 0 = off
  evalEvery: number; // validation every N steps (and at the start and the end)
  evalPositions: number; // example positions in the fixed validation set
  checkpointEvery: number;
  seed: number; // initial weights and batch sampling
}

/**
 * Defaults, those of the shipped heads: 6000 x 256 positions are ~2.3 passes over the
 * default distillation set (4800 sequences). More data helped far more than more steps: at
 * about 1000 steps, the CTC head trained on 4x the sequences reached a clearly lower
 * validation loss.
 */
export const DRAFTER_HYPER: DrafterHyper = {
  steps: 6000, seqsPerStep: 4, positionsPerStep: 256, lr: 1e-3, minLr: 1e-4, warmupSteps: 50, weightDecay: 0.01,
  beta1: 0.9, beta2: 0.99, eps: 1e-8, clipNorm: 1, evalEvery: 100, evalPositions: 1024, checkpointEvery: 50, seed: 7,
};

/**
 * Peak learning rate by head. CTC: picked from 300-step runs on a partly trained base model
 * (step 500) with an earlier variant of the head: validation loss 3.15 at 3e-3 vs 3.72 at
 * 1e-3. Medusa, re-tuned on the shipped base model and the 4800-sequence set, 1500 steps:
 * lowest validation loss 4.67 at 1e-4 (step 900; 4.71 at the end), 4.71 at 3e-4 (step 400;
 * 4.87 at the end), 4.90 at 1e-3 (about step 350, then rising to 5.3-5.4): the heads' LM-head
 * copies overfit, so lower is better. Top-draft acceptance stayed 0.05-0.07 tokens for all.
 */
export const DEFAULT_LR: Record<HeadConfig['kind'], number> = { ctc: 3e-3, medusa: 1e-4 };

export function checkDrafterHyper(raw: unknown): DrafterHyper {
  if (raw === null || typeof raw !== 'object') throw new RangeError('drafter hyperparameters: expected an object');
  const o = raw as Record<string, unknown>, h: Record<string, number> = {};
  for (const k of Object.keys(DRAFTER_HYPER)) {
    const v = o[k];
    const intField = ['steps', 'seqsPerStep', 'positionsPerStep', 'evalEvery', 'evalPositions', 'checkpointEvery'].includes(k);
    const ok = typeof v === 'number' && Number.isFinite(v) && (intField ? Number.isInteger(v) && v > 0 : v >= 0);
    if (!ok) throw new RangeError(`drafter hyperparameter "${k}" must be ${intField ? 'a positive integer' : 'a number >= 0'}, got ${JSON.stringify(v)}`);
    h[k] = v as number;
  }
  if (h.lr! <= 0 || h.minLr! > h.lr! || h.beta1! >= 1 || h.beta2! >= 1) throw new RangeError('drafter hyperparameters: need 0 <= minLr <= lr, lr > 0, betas < 1');
  return h as unknown as DrafterHyper;
}

// ---- parameters ----------------------------------------------------------------------------

/** One trainable Var per head tensor, every key and shape asserted. */
export class HeadParams {
  readonly vars = new Map<string, Var>();
  constructor(
    readonly backend: CpuBackend,
    readonly config: HeadConfig,
    weights: TensorMap,
  ) {
    const shapes = headShapes(config);
    checkHeadWeights(shapes, weights, `${config.kind} head`);
    for (const [name, shape] of shapes) this.vars.set(name, param(backend, shape, weights.get(name)!.data));
  }

  /** seeded initial weights (Medusa's LM heads start as copies of the base model's) */
  static random(backend: CpuBackend, config: HeadConfig, seed: number, base: FrozenBase): HeadParams {
    return new HeadParams(backend, config, config.kind === 'ctc' ? randomCtcHeadWeights(config, seed) : randomMedusaWeights(config, seed, base));
  }

  get(name: string): Var {
    const v = this.vars.get(name);
    if (!v) throw new Error(`HeadParams: no tensor "${name}"`);
    return v;
  }

  toTensorMap(): TensorMap {
    const out: TensorMap = new Map();
    for (const [name, v] of this.vars) out.set(name, { shape: [...v.shape], data: Float32Array.from(v.data) });
    return out;
  }
}

/** The frozen base tables as constant Vars (no gradient), kept for the whole run. */
export class FrozenVars {
  readonly embed: Float32Array; // (V, D) host copy, for root embeddings
  readonly lmHead: Var; // (V, D)
  constructor(backend: CpuBackend, base: FrozenBase) {
    this.embed = base.embed.data;
    const buf = backend.alloc(base.lmHead.data.length) as CpuBuf;
    buf.data.set(base.lmHead.data);
    this.lmHead = new Var([...base.lmHead.shape], buf, false);
  }
}

// ---- batches -------------------------------------------------------------------------------

/** B sequences of T rows and M examples among them. */
export interface DraftBatch {
  B: number;
  T: number;
  hidden: Float32Array; // (B*T, D) base hidden states of the B sequences
  rows: Int32Array; // (M) example row b*T + i (the last prefix row)
  roots: Int32Array; // (M) tokens[i + 1]
  targets: Int32Array; // (M, L) tokens[i + 2 .. i + L + 1]
}

/** Fill a batch from sequences `seqs` of `set`, at the chosen (seq slot b, position i) examples. */
export function makeBatch(set: DistillSet, seqs: readonly number[], examples: readonly [number, number][], L: number): DraftBatch {
  const T = set.seqLen, D = set.D, B = seqs.length, M = examples.length;
  const batch: DraftBatch = { B, T, hidden: new Float32Array(B * T * D), rows: new Int32Array(M), roots: new Int32Array(M), targets: new Int32Array(M * L) };
  seqs.forEach((n, b) => batch.hidden.set(set.hidden.subarray(n * T * D, (n + 1) * T * D), b * T * D));
  examples.forEach(([b, i], m) => {
    const tok = set.tokens.subarray(seqs[b]! * T, (seqs[b]! + 1) * T);
    batch.rows[m] = b * T + i;
    batch.roots[m] = tok[i + 1]!;
    for (let j = 0; j < L; j++) batch.targets[m * L + j] = tok[i + 2 + j]!;
  });
  return batch;
}

/**
 * Random training batches, a seeded PRNG whose state is the sampler's whole state: B distinct
 * sequences, then M distinct example positions drawn from all of theirs (all when fewer).
 */
export class DraftSampler {
  private rng: Rng;
  constructor(
    private readonly set: DistillSet,
    private readonly L: number,
    private readonly B: number,
    private readonly M: number,
    state: number,
  ) {
    if (set.count < 1) throw new RangeError('DraftSampler: no training sequences');
    for (let n = 0; n < set.count; n++) {
      const { first, last } = examplePositions(set, n, L);
      if (last < first) throw new RangeError(`DraftSampler: sequence ${n} has no example positions for L = ${L} (prompt ${set.promptLens[n]}, length ${set.seqLen})`);
    }
    this.rng = new Rng(state);
  }
  get state(): number {
    return this.rng.state;
  }
  next(): DraftBatch {
    const B = Math.min(this.B, this.set.count), seqs: number[] = [];
    while (seqs.length < B) {
      const n = this.rng.int(this.set.count);
      if (!seqs.includes(n)) seqs.push(n);
    }
    const all: [number, number][] = [];
    seqs.forEach((n, b) => {
      const { first, last } = examplePositions(this.set, n, this.L);
      for (let i = first; i <= last; i++) all.push([b, i]);
    });
    for (let k = 0; k < Math.min(this.M, all.length); k++) {
      const j = k + this.rng.int(all.length - k); // partial Fisher-Yates
      [all[k], all[j]] = [all[j]!, all[k]!];
    }
    return makeBatch(this.set, seqs, all.slice(0, this.M), this.L);
  }
}

/**
 * The fixed validation batches: about `positions` examples spread evenly over the set, in
 * batches of B sequences, or fewer where a batch reaches `perPass` examples (then every
 * batch but the last holds exactly `perPass`, so a pass's buffers come in one size).
 */
export function validationDraftBatches(set: DistillSet, L: number, B: number, positions: number, perPass = Infinity): DraftBatch[] {
  let total = 0;
  for (let n = 0; n < set.count; n++) {
    const { first, last } = examplePositions(set, n, L);
    total += Math.max(0, last - first + 1);
  }
  const stride = Math.max(1, Math.floor(total / positions));
  const bySequences = perPass >= total; // every batch fits a pass: B sequences each
  const batches: DraftBatch[] = [];
  let seqs: number[] = [], examples: [number, number][] = [];
  const flush = () => {
    if (examples.length) batches.push(makeBatch(set, seqs, examples, L));
    seqs = [];
    examples = [];
  };
  for (let n = 0; n < set.count; n++) {
    const { first, last } = examplePositions(set, n, L);
    for (let i = first; i <= last; i += stride) {
      if (seqs[seqs.length - 1] !== n) seqs.push(n);
      examples.push([seqs.length - 1, i]);
      if (examples.length === perPass) flush();
    }
    if (bySequences && (n + 1) % B === 0) flush();
  }
  flush();
  return batches;
}

/** the examples [from, to) of a batch, as a batch over the same sequences */
export function batchExamples(batch: DraftBatch, from: number, to: number, L: number): DraftBatch {
  return { B: batch.B, T: batch.T, hidden: batch.hidden, rows: batch.rows.subarray(from, to), roots: batch.roots.subarray(from, to), targets: batch.targets.subarray(from * L, to * L) };
}

/**
 * Logit values one forward and backward pass may hold in one tensor: a step's examples run
 * in passes of at most examplesPerPass, their gradients summed, so that a real vocabulary
 * (S frames x 50K-150K tokens per example, several such tensors in a pass) fits the CPU
 * backend's 4 GiB of wasm memory; 2^24 values are 64 MB. A step of the shipped model (V =
 * 1024) is one pass.
 */
const LOGITS_PER_PASS = 1 << 24;

/** examples in one pass of a head's training or validation (see LOGITS_PER_PASS) */
export function examplesPerPass(c: HeadConfig): number {
  const logitsPerExample = c.kind === 'ctc' ? c.frames * (c.vocab_size + 1) : c.heads * c.vocab_size;
  return Math.max(1, Math.floor(LOGITS_PER_PASS / logitsPerExample));
}

// ---- training forwards -----------------------------------------------------------------------

/**
 * One decoder layer (as a base layer) over rows x (R, D): pre-norm attention, pre-norm
 * SwiGLU (unless mlp is false: the frame block), both residual. `attend` is the attention
 * pattern (causal over the prefix, or full within groups of frames); `positions` the RoPE
 * positions, or null for none.
 */
function decoderLayer(
  tape: Tape, p: HeadParams, prefix: string, x: Var, c: CtcHeadConfig,
  positions: Int32Array | null, attend: (q: Var, k: Var, v: Var) => Var, mlp: boolean,
): Var {
  const R = x.shape[0]!, D = c.hidden_size, H = c.num_attention_heads, KVH = c.num_key_value_heads, hd = D / H;
  const w = (n: string) => p.get(prefix + n);
  let h = ag.rmsnorm(tape, x, w('input_layernorm.weight'), c.rms_norm_eps);
  let q = ag.reshape(tape, ag.linear(tape, h, w('self_attn.q_proj.weight')), [R, H, hd]);
  let k = ag.reshape(tape, ag.linear(tape, h, w('self_attn.k_proj.weight')), [R, KVH, hd]);
  const v = ag.reshape(tape, ag.linear(tape, h, w('self_attn.v_proj.weight')), [R, KVH, hd]);
  if (positions) {
    q = ag.rope(tape, q, positions, c.rope_theta);
    k = ag.rope(tape, k, positions, c.rope_theta);
  }
  const att = ag.reshape(tape, attend(q, k, v), [R, D]);
  x = ag.add(tape, x, ag.linear(tape, att, w('self_attn.o_proj.weight')));
  if (!mlp) return x;
  h = ag.rmsnorm(tape, x, w('post_attention_layernorm.weight'), c.rms_norm_eps);
  const ff = ag.siluGate(tape, ag.linear(tape, h, w('mlp.gate_proj.weight')), ag.linear(tape, h, w('mlp.up_proj.weight')));
  return ag.add(tape, x, ag.linear(tape, ff, w('mlp.down_proj.weight')));
}

/** rows of the frozen embedding table, as a constant (M, D) */
function rootEmbeddings(tape: Tape, frozen: FrozenVars, roots: Int32Array, D: number): Var {
  const e = tape.input([roots.length, D]);
  const es = e.data;
  for (let m = 0; m < roots.length; m++) es.set(frozen.embed.subarray(roots[m]! * D, roots[m]! * D + D), m * D);
  return e;
}

/** The CTC head's frame logits (M*S, V + 1) for a batch: the function of CtcHeadDrafter.frameLogProbs (before the log-softmax). */
export function ctcHeadLogits(p: HeadParams, c: CtcHeadConfig, frozen: FrozenVars, batch: DraftBatch, tape: Tape): Var {
  const { B, T } = batch, D = c.hidden_size, S = c.frames, M = batch.rows.length;
  const pos = new Int32Array(B * T);
  for (let r = 0; r < B * T; r++) pos[r] = r % T;
  const x0 = tape.input([B * T, D], batch.hidden);
  const x = decoderLayer(tape, p, 'ctc.layer.', x0, c, pos, (q, k, v) => ag.causalAttention(tape, q, k, v, B, T), true); // (B*T, D)
  const z = ag.add(tape, gatherRows(tape, x, batch.rows), ag.linear(tape, rootEmbeddings(tape, frozen, batch.roots, D), p.get('ctc.root_proj.weight'))); // (M, D)
  let f = addRows(tape, repeatRows(tape, z, S), p.get('ctc.slots')); // (M*S, D): f[m, s] = z[m] + slots[s]
  f = decoderLayer(tape, p, 'ctc.frames.', f, c, null, (q, k, v) => groupAttention(tape, q, k, v, M, S), false);
  const out = ag.rmsnorm(tape, f, p.get('ctc.norm.weight'), c.rms_norm_eps);
  return concatCols(tape, ag.linear(tape, out, frozen.lmHead), ag.linear(tape, out, p.get('ctc.blank_row'))); // (M*S, V + 1)
}

/** The Medusa heads' logits (k, M, V) as k Vars of (M, V): head j = lm_head_j @ (h + silu(W_j h + b_j)). */
export function medusaLogits(p: HeadParams, c: MedusaConfig, batch: DraftBatch, tape: Tape): Var[] {
  const D = c.hidden_size, M = batch.rows.length;
  const h = tape.input([M, D]);
  const hs = h.data;
  for (let m = 0; m < M; m++) hs.set(batch.hidden.subarray(batch.rows[m]! * D, batch.rows[m]! * D + D), m * D);
  const out: Var[] = [];
  for (let j = 0; j < c.heads; j++) {
    const pre = addRows(tape, ag.linear(tape, h, p.get(`medusa.${j}.linear.weight`)), p.get(`medusa.${j}.linear.bias`));
    out.push(ag.linear(tape, ag.add(tape, h, silu(tape, pre)), p.get(`medusa.${j}.lm_head.weight`)));
  }
  return out;
}

/** The training loss of a batch (see the file comment) and the logits it came from. */
export function headLoss(p: HeadParams, frozen: FrozenVars, batch: DraftBatch, tape: Tape): { loss: Var; logits: Var[] } {
  const c = p.config, M = batch.rows.length;
  if (c.kind === 'medusa') {
    const logits = medusaLogits(p, c, batch, tape);
    const targets = new Int32Array(M);
    let total: Var | null = null;
    logits.forEach((lj, j) => {
      for (let m = 0; m < M; m++) targets[m] = batch.targets[m * c.heads + j]!;
      const l = ag.crossEntropy(tape, lj, targets);
      total = total ? ag.add(tape, total, l) : l;
    });
    return { loss: ag.scale(tape, total!, 1 / c.heads), logits };
  }
  const S = c.frames, L = c.draft_len, logits = ctcHeadLogits(p, c, frozen, batch, tape);
  if (c.loss === 'ce') {
    const targets = new Int32Array(M * S);
    for (let m = 0; m < M; m++) for (let s = 0; s < S; s++) targets[m * S + s] = s < L ? batch.targets[m * L + s]! : c.vocab_size;
    return { loss: ag.crossEntropy(tape, logits, targets), logits: [logits] };
  }
  const labels: number[][] = [];
  for (let m = 0; m < M; m++) labels.push(Array.from(batch.targets.subarray(m * L, (m + 1) * L)));
  return { loss: ctcLossOp(tape, logits, M, S, labels, c.vocab_size), logits: [logits] };
}

/**
 * The top draft of each example, as the drafter proposes it by default, and how many of its
 * leading tokens match the targets (what greedy verification of that one draft accepts,
 * bonus not counted):
 *   ctc, loss 'ctc': the best candidate of the CTC prefix beam search (most probable
 *        non-empty collapsed draft; the argmax path is often all BLANK early in training)
 *   ctc, loss 'ce': argmax per frame, blanks dropped, repeats kept (no collapse)
 *   medusa: argmax of each head
 */
export function acceptedLengths(c: HeadConfig, logits: Var[], batch: DraftBatch): number[] {
  const M = batch.rows.length, L = draftLen(c), out: number[] = [];
  for (let m = 0; m < M; m++) {
    let draft: number[];
    if (c.kind === 'medusa') {
      const V = c.vocab_size;
      draft = logits.map((lj) => argmaxRow(lj.data, m * V, V));
    } else {
      const C = c.vocab_size + 1, S = c.frames, rows = logits[0]!.data.subarray(m * S * C, (m + 1) * S * C);
      if (c.loss === 'ctc') {
        draft = ctcPrefixBeamSearch(rows, S, C, c.vocab_size, { beamWidth: 8, topK: 1, maxLen: L, tokensPerFrame: 8 })[0]?.tokens ?? [];
      } else {
        draft = [];
        for (let s = 0; s < S; s++) {
          const id = argmaxRow(rows, s * C, C);
          if (id !== c.vocab_size) draft.push(id);
        }
      }
    }
    let n = 0;
    while (n < Math.min(L, draft.length) && draft[n] === batch.targets[m * L + n]) n++;
    out.push(n);
  }
  return out;
}

// ---- the trainer -----------------------------------------------------------------------------

export interface DrafterHistory extends LossHistory {
  /** [step, mean accepted draft tokens] on the validation set */
  valAccept: [number, number][];
}

export interface DrafterCheckpoint {
  config: HeadConfig;
  hyper: DrafterHyper;
  step: number;
  samplerState: number;
  positionsSeen: number;
  elapsedSeconds: number;
  history: DrafterHistory;
  dataId: string; // the distillation data this run trains on
  params: TensorMap;
  optimizer: AdamWState;
}

export interface DrafterStep {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
}

/** matrices decay; norms, slots, the blank row and biases do not */
const decays = (name: string): boolean => name.endsWith('proj.weight') || name.endsWith('linear.weight') || name.endsWith('lm_head.weight');

export class DrafterTrainer {
  readonly params: HeadParams;
  readonly history: DrafterHistory;
  step: number;
  positionsSeen: number;
  elapsedSeconds: number;
  private readonly frozen: FrozenVars;
  private readonly opt: AdamW;
  private readonly sampler: DraftSampler;
  private readonly tape: Tape;
  private readonly valBatches: DraftBatch[];
  private readonly perPass: number; // examples per forward and backward pass
  private readonly share = new Float32Array(1); // a pass's share of the step's loss: its backward's seed

  constructor(
    readonly config: HeadConfig,
    readonly hyper: DrafterHyper,
    readonly data: { train: DistillSet; val: DistillSet; id: string },
    base: FrozenBase,
    from?: DrafterCheckpoint,
    /** examples per forward and backward pass (default examplesPerPass(config)); the steps' results do not depend on it beyond rounding */
    perPass = examplesPerPass(config),
  ) {
    const h = hyper, backend = new CpuBackend(), L = draftLen(config);
    if (from && from.dataId !== data.id) throw new FormatError('checkpoint', `trained on data "${from.dataId}", but the data is "${data.id}"`);
    if (data.train.D !== config.hidden_size) throw new ShapeError(`distillation data has hidden size ${data.train.D}, the head ${config.hidden_size}`);
    this.params = from ? new HeadParams(backend, config, from.params) : HeadParams.random(backend, config, h.seed, base);
    this.frozen = new FrozenVars(backend, base);
    this.opt = new AdamW(this.params.vars, { beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay, decay: decays });
    if (from) this.opt.loadState(from.optimizer);
    this.sampler = new DraftSampler(data.train, L, h.seqsPerStep, h.positionsPerStep, from ? from.samplerState : h.seed);
    this.tape = new Tape(backend);
    if (!(Number.isInteger(perPass) && perPass >= 1)) throw new RangeError(`examples per pass must be an integer >= 1, got ${perPass}`);
    this.perPass = perPass;
    this.valBatches = validationDraftBatches(data.val, L, h.seqsPerStep, h.evalPositions, this.perPass);
    this.step = from?.step ?? 0;
    this.positionsSeen = from?.positionsSeen ?? 0;
    this.elapsedSeconds = from?.elapsedSeconds ?? 0;
    this.history = from ? structuredClone(from.history) : { train: [], val: [], valAccept: [] };
  }

  get done(): boolean {
    return this.step >= this.hyper.steps;
  }

  lrAt(step: number): number {
    const h = this.hyper;
    return cosineLr(step, { peak: h.lr, warmup: h.warmupSteps, total: h.steps, floor: h.minLr });
  }

  /** One optimizer step: the batch's loss and its gradient, in passes of at most perPass examples (the mean over all of them either way). */
  trainStep(): DrafterStep {
    const t0 = performance.now();
    const batch = this.sampler.next(), M = batch.rows.length, L = draftLen(this.config);
    for (const v of this.params.vars.values()) v.gradBuf?.data.fill(0);
    let value = 0;
    for (let from = 0; from < M; from += this.perPass) {
      const part = from === 0 && M <= this.perPass ? batch : batchExamples(batch, from, Math.min(M, from + this.perPass), L);
      const { loss } = headLoss(this.params, this.frozen, part, this.tape);
      this.share[0] = part.rows.length / M; // the mean over M examples is the passes' means, weighted
      value += loss.data[0]! * this.share[0]!;
      this.tape.backward(loss, this.share);
      this.tape.reset();
    }
    const gradNorm = this.hyper.clipNorm > 0 ? clipGradNorm(this.params.vars.values(), this.hyper.clipNorm) : Number.NaN;
    const lr = this.lrAt(this.step);
    this.opt.step(lr);
    this.step++;
    this.positionsSeen += batch.rows.length;
    if (!Number.isFinite(value)) throw new Error(`drafter training diverged: loss ${value} at step ${this.step}`);
    this.history.train.push([this.step, value]);
    this.elapsedSeconds += (performance.now() - t0) / 1000;
    return { step: this.step, loss: value, lr, gradNorm };
  }

  /** validation loss (mean over examples) and mean accepted greedy-draft length; recorded in the history */
  evaluate(): { loss: number; accept: number } {
    const t0 = performance.now();
    let loss = 0, accepted = 0, n = 0;
    for (const batch of this.valBatches) {
      const M = batch.rows.length;
      this.tape.noGrad(() => {
        const r = headLoss(this.params, this.frozen, batch, this.tape);
        loss += r.loss.data[0]! * M;
        accepted += acceptedLengths(this.config, r.logits, batch).reduce((a, b) => a + b, 0);
      });
      this.tape.reset();
      n += M;
    }
    const out = { loss: loss / n, accept: accepted / n };
    if (this.history.val[this.history.val.length - 1]?.[0] !== this.step) {
      this.history.val.push([this.step, out.loss]);
      this.history.valAccept.push([this.step, out.accept]);
    }
    this.elapsedSeconds += (performance.now() - t0) / 1000;
    return out;
  }

  toCheckpoint(): DrafterCheckpoint {
    return {
      config: this.config, hyper: this.hyper, step: this.step, samplerState: this.sampler.state, positionsSeen: this.positionsSeen,
      elapsedSeconds: this.elapsedSeconds, history: structuredClone(this.history), dataId: this.data.id,
      params: this.params.toTensorMap(), optimizer: this.opt.state(),
    };
  }
}

export interface DrafterHooks {
  shouldStop?: () => boolean;
  onStep?: (r: DrafterStep, t: DrafterTrainer) => void;
  onEval?: (step: number, r: { loss: number; accept: number }, t: DrafterTrainer) => void;
  save?: (c: DrafterCheckpoint) => Promise<void>;
}

/** The loop of trainer.ts's runTraining, for a drafter: evaluate, step, checkpoint, stop on request. */
export async function runDrafterTraining(t: DrafterTrainer, hooks: DrafterHooks = {}): Promise<'done' | 'stopped'> {
  const evaluate = (): void => hooks.onEval?.(t.step, t.evaluate(), t);
  if (t.history.val.length === 0) evaluate();
  while (!t.done) {
    const r = t.trainStep();
    hooks.onStep?.(r, t);
    if (r.step % t.hyper.evalEvery === 0 || t.done) evaluate();
    if (t.done) break;
    if (hooks.shouldStop?.()) {
      await hooks.save?.(t.toCheckpoint());
      return 'stopped';
    }
    if (r.step % t.hyper.checkpointEvery === 0) await hooks.save?.(t.toCheckpoint());
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await hooks.save?.(t.toCheckpoint());
  return 'done';
}

// ---- checkpoint format -------------------------------------------------------------------------

const DRAFTER_CKPT_KEY = 'ctcspec.drafter-checkpoint';
const CHECKSUM_KEY = 'ctcspec.checksum';

/**
 * One safetensors file, as the base trainer's checkpoint.ts: "params/<name>", "optim/m/<name>",
 * "optim/v/<name>" (F32), metadata "ctcspec.drafter-checkpoint" (JSON of the rest) and
 * "ctcspec.checksum" (FNV-1a of every tensor, checkpoint.ts's checksum).
 */
export function serializeDrafterCheckpoint(c: DrafterCheckpoint): Uint8Array {
  const tensors: TensorMap = new Map();
  for (const [name, t] of c.params) {
    tensors.set(`params/${name}`, t);
    tensors.set(`optim/m/${name}`, { shape: t.shape, data: c.optimizer.m[name]! });
    tensors.set(`optim/v/${name}`, { shape: t.shape, data: c.optimizer.v[name]! });
  }
  const meta = {
    version: 1, config: c.config, hyper: c.hyper, step: c.step, optimizerStep: c.optimizer.step, samplerState: c.samplerState,
    positionsSeen: c.positionsSeen, elapsedSeconds: c.elapsedSeconds, history: c.history, dataId: c.dataId,
  };
  return serializeSafetensors(tensors, { dtype: 'F32', metadata: { format: 'pt', [DRAFTER_CKPT_KEY]: JSON.stringify(meta), [CHECKSUM_KEY]: checksum(tensors) }, source: 'drafter checkpoint' });
}

/** Parse a drafter checkpoint; `checkConfig` validates the head config (ctc or medusa). */
export function parseDrafterCheckpoint(bytes: Uint8Array, source: string, checkConfig: (raw: unknown) => HeadConfig): DrafterCheckpoint {
  const { tensors, metadata } = parseSafetensors(bytes, source);
  const json = metadata[DRAFTER_CKPT_KEY];
  if (json === undefined) throw new FormatError(source, `not a drafter checkpoint: no "${DRAFTER_CKPT_KEY}" metadata`);
  if (metadata[CHECKSUM_KEY] !== checksum(tensors)) throw new FormatError(source, 'checksum mismatch: the file is corrupt');
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(json) as Record<string, unknown>;
  } catch (e) {
    throw new FormatError(source, `metadata is not valid JSON (${(e as Error).message})`);
  }
  if (meta.version !== 1) throw new FormatError(source, `drafter checkpoint version ${JSON.stringify(meta.version)} is not supported`);
  const config = checkConfig(meta.config);
  const params: TensorMap = new Map(), m: Record<string, Float32Array> = {}, v: Record<string, Float32Array> = {};
  for (const [name, t] of tensors) {
    if (name.startsWith('params/')) params.set(name.slice(7), t);
    else if (name.startsWith('optim/m/')) m[name.slice(8)] = t.data;
    else if (name.startsWith('optim/v/')) v[name.slice(8)] = t.data;
    else throw new FormatError(source, 'unexpected tensor', name);
  }
  checkHeadWeights(headShapes(config), params, source);
  const num = (k: string): number => {
    if (typeof meta[k] !== 'number' || !Number.isFinite(meta[k])) throw new FormatError(source, `"${k}" must be a number`);
    return meta[k] as number;
  };
  const history = meta.history as DrafterHistory;
  if (!history || !Array.isArray(history.train) || history.train.length !== num('step')) throw new FormatError(source, 'loss history does not match the step count');
  return {
    config, hyper: checkDrafterHyper(meta.hyper), step: num('step'), samplerState: num('samplerState'), positionsSeen: num('positionsSeen'),
    elapsedSeconds: num('elapsedSeconds'), history, dataId: String(meta.dataId), params, optimizer: { step: num('optimizerStep'), m, v },
  };
}
