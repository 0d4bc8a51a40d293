/**
 * The Medusa baseline (Cai et al. 2024, Medusa-1): k independent heads on the base model's
 * last final-normed hidden state, each a residual SiLU block followed by its own LM head,
 * a trained copy of the base model's (initialised from it), as in Medusa-1.
 *
 * Offsets, precisely: the hidden state h_i of token i already predicts token i+1 through
 * the base head; that token is the root (emitted, not yet cached). Medusa head j
 * (1-based, j = 1..k) predicts token i+1+j, the j-th token AFTER the root. The heads do not
 * see the root or each other: their guesses are independent, which is the weakness the
 * CTC head addresses.
 *
 *   head j:  r_j = h + silu(W_j h + b_j);   logits_j = lm_head_j @ r_j
 *   at init W_j ~ 0, b_j = 0, lm_head_j = the base LM head: every head starts as the base head
 *
 * Weights (model.safetensors): medusa.{j-1}.linear.weight (D, D), medusa.{j-1}.linear.bias (D),
 * medusa.{j-1}.lm_head.weight (V, D).
 *
 * Why not the frozen base LM head (as the CTC head uses): h already predicts the root with
 * confidence (logits of size ~10 here), and silu's floor of -0.28 cannot cancel that, so a
 * head on the frozen LM head can hardly move off the root. Measured on the base model at
 * step 500 (300 steps x 256 positions, lr 1e-3): validation cross-entropy per head 5.48 nats
 * with the frozen head, 4.97 with trained copies (the targets' unigram entropy is 2.99 nats:
 * from h_i alone, without the root, this small base's future is hard to guess either way).
 * Medusa-1 trains its LM heads; so does this baseline, to be the strongest fair version.
 *
 * Candidates: the top n_j tokens of each head (n = topPerHead, default 3, 2, 2, ...), combined
 * as the cartesian product and scored by the summed log-probabilities; the best
 * `maxCandidates` are returned. Because the scores add up independently, a beam over the
 * heads of width maxCandidates finds exactly the best maxCandidates of the full product.
 *
 * Runs on the CPU backend: per head one D x D and one V x D matrix-vector product.
 */
import type { Backend } from '../backend/backend.js';
import { CpuBackend, reference, type CpuBuf } from '../backend/cpu/cpu.js';
import { FormatError } from '../io/errors.js';
import type { LlamaConfig } from '../model/config.js';
import type { TensorMap } from '../tensor/dtype.js';
import * as op from '../tensor/tensor.js';
import { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/random.js';
import type { DraftCandidate, Drafter } from './drafter.js';
import { checkHeadWeights, positiveInt, type FrozenBase } from './head-io.js';

export interface MedusaConfig {
  kind: 'medusa';
  hidden_size: number; // D, from the base model
  vocab_size: number; // V, from the base model
  heads: number; // k: head j predicts the j-th token after the root
}

export function medusaConfig(base: LlamaConfig, heads = 4): MedusaConfig {
  return checkMedusaConfig({ kind: 'medusa', hidden_size: base.hidden_size, vocab_size: base.vocab_size, heads });
}

export function checkMedusaConfig(raw: unknown, source = 'medusa config'): MedusaConfig {
  if (raw === null || typeof raw !== 'object') throw new FormatError(source, 'expected a JSON object');
  const o = raw as Record<string, unknown>;
  if (o.kind !== 'medusa') throw new FormatError(source, `field "kind" must be "medusa", got ${JSON.stringify(o.kind)}`);
  return { kind: 'medusa', hidden_size: positiveInt(o, 'hidden_size', source), vocab_size: positiveInt(o, 'vocab_size', source), heads: positiveInt(o, 'heads', source) };
}

export function medusaShapes(c: MedusaConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (let j = 0; j < c.heads; j++) {
    m.set(`medusa.${j}.linear.weight`, [c.hidden_size, c.hidden_size]);
    m.set(`medusa.${j}.linear.bias`, [c.hidden_size]);
    m.set(`medusa.${j}.lm_head.weight`, [c.vocab_size, c.hidden_size]);
  }
  return m;
}

/**
 * Initial weights: W ~ N(0, 1e-3) (seeded; Medusa uses zeros, this keeps the heads from being
 * exactly identical), b = 0, each LM head a copy of the base model's.
 */
export function randomMedusaWeights(c: MedusaConfig, seed: number, base: FrozenBase): TensorMap {
  if (base.lmHead.shape.join() !== [c.vocab_size, c.hidden_size].join()) throw new FormatError('medusa heads', `base LM head must be [${c.vocab_size}, ${c.hidden_size}], got [${base.lmHead.shape}]`);
  const rng = new Rng(seed), out: TensorMap = new Map();
  for (const [name, shape] of medusaShapes(c)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('lm_head.weight')) data.set(base.lmHead.data);
    else if (name.endsWith('linear.weight')) for (let i = 0; i < data.length; i++) data[i] = 1e-3 * rng.normal();
    out.set(name, { shape, data });
  }
  return out;
}

export interface MedusaDraftOptions {
  /** tokens kept per head (default 3 for the first, 2 for the rest); missing entries repeat the last */
  topPerHead?: number[];
  /** candidates returned (default 16) */
  maxCandidates?: number;
}

export class MedusaDrafter implements Drafter {
  readonly name: string;
  readonly config: MedusaConfig;
  private readonly W: Tensor[] = []; // (D, D) per head
  private readonly b: Tensor[] = []; // (1, D) per head
  private readonly lmHeads: Tensor[] = []; // (V, D) per head
  private readonly h: Tensor; // (1, D) last hidden state
  private readonly pre: Tensor; // (1, D)
  private readonly rj: Tensor; // (1, D)
  private readonly ones: Tensor; // (1, D) silu(x) = siluGate(x, 1)
  private readonly logits: Tensor[] = []; // (1, V) per head
  private readonly logProbs: Float32Array; // (k, V)
  private readonly lse = new Float64Array(1); // one head's log-sum-exp
  private readonly top: number[];
  private readonly maxCandidates: number;
  private started = false;

  /** `base`: the base model the heads were trained on (its LM head's shape is checked against the heads') */
  constructor(config: MedusaConfig, weights: TensorMap, base: FrozenBase, opts: MedusaDraftOptions = {}, readonly backend: Backend = new CpuBackend()) {
    const c = (this.config = checkMedusaConfig(config));
    checkHeadWeights(medusaShapes(c), weights, 'medusa heads');
    const { hidden_size: D, vocab_size: V, heads: k } = c;
    if (base.lmHead.shape.join() !== [V, D].join()) throw new FormatError('medusa heads', `trained for [${V}, ${D}], but the base LM head is [${base.lmHead.shape}]`);
    for (let j = 0; j < k; j++) {
      this.W.push(Tensor.fromArray(backend, [D, D], weights.get(`medusa.${j}.linear.weight`)!.data));
      this.b.push(Tensor.fromArray(backend, [1, D], weights.get(`medusa.${j}.linear.bias`)!.data));
      this.lmHeads.push(Tensor.fromArray(backend, [V, D], weights.get(`medusa.${j}.lm_head.weight`)!.data));
    }
    this.h = Tensor.zeros(backend, [1, D]);
    this.pre = Tensor.zeros(backend, [1, D]);
    this.rj = Tensor.zeros(backend, [1, D]);
    this.ones = Tensor.fromArray(backend, [1, D], new Float32Array(D).fill(1));
    for (let j = 0; j < k; j++) this.logits.push(Tensor.zeros(backend, [1, V]));
    this.logProbs = new Float32Array(k * V);
    const tops = opts.topPerHead ?? [3, 2];
    this.top = Array.from({ length: k }, (_, j) => Math.max(1, Math.min(V, tops[Math.min(j, tops.length - 1)]!)));
    this.maxCandidates = opts.maxCandidates ?? 16;
    this.name = `medusa(k=${k}, top ${this.top.join('/')})`;
  }

  begin(prompt: readonly number[], hidden: Float32Array): void {
    this.keepLast(prompt.length, hidden);
  }

  accept(tokens: readonly number[], hidden: Float32Array): void {
    this.keepLast(tokens.length, hidden);
  }

  /** the heads' log-probabilities (k, V): row j-1 is head j's guess of the j-th token after the root */
  async headLogProbs(): Promise<Float32Array> {
    this.runHeads();
    await this.readHeads();
    return this.logProbs;
  }

  /** logits_j = lm_head_j @ (h + silu(W_j h + b_j)) for every head, on the backend */
  private runHeads(): void {
    if (!this.started) throw new Error('MedusaDrafter: propose before begin');
    const pre = this.pre, rj = this.rj;
    for (let j = 0; j < this.config.heads; j++) {
      op.matmul(pre, this.h, this.W[j]!); // pre = W_j h
      op.add(pre, pre, this.b[j]!); //      + b_j
      op.siluGate(rj, pre, this.ones); // silu(pre)
      op.add(rj, rj, this.h); // r_j = h + silu(W_j h + b_j)
      op.matmul(this.logits[j]!, rj, this.lmHeads[j]!); // logits_j = lm_head_j @ r_j
    }
  }

  /** the heads' logits into this.logProbs, normalised: synchronous on the CPU, a readback elsewhere */
  private readHeads(): void | Promise<void> {
    const { vocab_size: V, heads: k } = this.config;
    const normalise = (j: number, lse: number) => {
      for (let i = j * V; i < (j + 1) * V; i++) this.logProbs[i] = this.logProbs[i]! - lse;
    };
    if (this.backend instanceof CpuBackend) {
      for (let j = 0; j < k; j++) {
        this.logProbs.set((this.logits[j]!.buf as CpuBuf).data.subarray(0, V), j * V); // the CPU backend's read, synchronous
        this.backend.logSumExpRows(this.logits[j]!.buf, 1, V, this.lse); // in wasm: a vector exp pass
        normalise(j, this.lse[0]!);
      }
      return;
    }
    const rows = Array.from({ length: k }, (_, j) => this.logProbs.subarray(j * V, (j + 1) * V));
    return this.backend.readMany(this.logits.map((t) => t.buf), rows).then(() => {
      for (let j = 0; j < k; j++) normalise(j, reference.logSumExp(this.logProbs, j * V, V));
    });
  }

  propose(_root: number, maxLen: number): DraftCandidate[] | Promise<DraftCandidate[]> {
    const n = Math.min(this.config.heads, maxLen);
    if (n <= 0) return [];
    this.runHeads();
    const read = this.readHeads();
    return read instanceof Promise ? read.then(() => this.beam(n)) : this.beam(n);
  }

  /** the top drafts over the first n heads: each head's top tokens, combined, best first */
  private beam(n: number): DraftCandidate[] {
    const lp = this.logProbs, V = this.config.vocab_size;
    let beam: DraftCandidate[] = [{ tokens: [], score: 0 }];
    for (let j = 0; j < n; j++) {
      const best = topIndices(lp, j * V, V, this.top[j]!);
      const next: DraftCandidate[] = [];
      for (const p of beam) for (const t of best) next.push({ tokens: [...p.tokens, t], score: p.score + lp[j * V + t]! });
      next.sort((a, b) => b.score - a.score);
      beam = next.slice(0, this.maxCandidates);
    }
    return beam;
  }

  private keepLast(n: number, hidden: Float32Array): void {
    const D = this.config.hidden_size;
    if (n <= 0 || hidden.length < n * D) throw new RangeError(`MedusaDrafter: need ${n} >= 1 rows of ${D} hidden values, got ${hidden.length} values`);
    this.backend.write(this.h.buf, hidden.subarray((n - 1) * D, n * D));
    this.started = true;
  }
}

/** indices of the n largest x[o .. o + V), largest first (lowest index on ties) */
export function topIndices(x: Float32Array, o: number, V: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < V; i++) {
    const v = x[o + i]!;
    if (out.length === n && v <= x[o + out[n - 1]!]!) continue;
    let p = out.length < n ? out.length : n - 1;
    while (p > 0 && x[o + out[p - 1]!]! < v) p--;
    out.splice(p, 0, i);
    if (out.length > n) out.pop();
  }
  return out;
}
