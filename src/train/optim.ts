/**
 * Optimisation: AdamW (decoupled weight decay, as torch.optim.AdamW), global-norm
 * gradient clipping, the learning-rate schedule (linear warmup, cosine to a floor) and
 * gradient accumulation (backward passes add into .grad; scaleGrads averages them).
 *
 * A training step with accumulation over M micro-batches:
 *   params.zeroGrad();
 *   for (m of micro) { loss = llamaLoss(...); tape.backward(loss); tape.reset(); }
 *   scaleGrads(vars, 1 / M); const norm = clipGradNorm(vars, 1.0);
 *   opt.step(cosineLr(opt.stepCount, schedule));
 */
import type { Var } from './autograd.js';

/** grads *= c (average accumulated micro-batch gradients with c = 1 / micro-batches) */
export function scaleGrads(vars: Iterable<Var>, c: number): void {
  for (const v of vars) {
    const g = v.grad;
    if (g) for (let i = 0; i < g.length; i++) g[i]! *= c;
  }
}

/** the L2 norm of all gradients together (f64 sum of squares) */
export function gradNorm(vars: Iterable<Var>): number {
  let ss = 0;
  for (const v of vars) {
    const g = v.grad;
    if (g) for (let i = 0; i < g.length; i++) ss += g[i]! * g[i]!;
  }
  return Math.sqrt(ss);
}

/** scale all gradients down so their global norm is at most maxNorm; returns the norm before clipping */
export function clipGradNorm(vars: Iterable<Var>, maxNorm: number): number {
  const list = [...vars];
  const norm = gradNorm(list);
  if (Number.isFinite(norm) && norm > maxNorm) scaleGrads(list, maxNorm / norm);
  return norm;
}

export interface Schedule {
  peak: number; // learning rate at the end of warmup
  warmup: number; // steps of linear warmup from 0 (step 0 gets peak / warmup)
  total: number; // steps in all; after warmup the rate follows a half cosine down to floor at `total`
  floor: number; // the final learning rate
}

/** learning rate for 0-based `step`: (step + 1) / warmup * peak, then cosine from peak to floor, then floor */
export function cosineLr(step: number, s: Schedule): number {
  if (step < s.warmup) return (s.peak * (step + 1)) / s.warmup;
  if (step >= s.total) return s.floor;
  const progress = (step - s.warmup) / Math.max(1, s.total - s.warmup); // 0 .. 1
  return s.floor + 0.5 * (s.peak - s.floor) * (1 + Math.cos(Math.PI * progress));
}

export interface AdamWOptions {
  beta1?: number; // default 0.9
  beta2?: number; // default 0.95
  eps?: number; // default 1e-8
  weightDecay?: number; // default 0.1, applied only where `decay(name)` says
  /** which parameters decay; default: all but norm weights (names ending "norm.weight") */
  decay?: (name: string) => boolean;
}

/** no decay on norm weights; embeddings (and a tied lm_head) decay only when asked */
export function decayRule(decayEmbeddings: boolean): (name: string) => boolean {
  return (name) => !name.endsWith('norm.weight') && (decayEmbeddings || name !== 'model.embed_tokens.weight');
}

/** everything needed to resume AdamW exactly: the step count and both moments per parameter */
export interface AdamWState {
  step: number;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

/**
 * AdamW over named parameters. One step with learning rate lr, per element (t = steps so far + 1):
 *   p -= lr * wd * p  (decoupled decay)
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 */
export class AdamW {
  private readonly params: [string, Var][];
  private m = new Map<string, Float32Array>();
  private v = new Map<string, Float32Array>();
  private readonly b1: number;
  private readonly b2: number;
  private readonly eps: number;
  private readonly wd: number;
  private readonly decays: (name: string) => boolean;
  /** steps taken so far */
  stepCount = 0;

  constructor(params: Iterable<[string, Var]>, opts: AdamWOptions = {}) {
    this.params = [...params];
    this.b1 = opts.beta1 ?? 0.9;
    this.b2 = opts.beta2 ?? 0.95;
    this.eps = opts.eps ?? 1e-8;
    this.wd = opts.weightDecay ?? 0.1;
    this.decays = opts.decay ?? decayRule(true);
    for (const [name, p] of this.params) {
      this.m.set(name, new Float32Array(p.size));
      this.v.set(name, new Float32Array(p.size));
    }
  }

  step(lr: number): void {
    const t = ++this.stepCount, b1 = this.b1, b2 = this.b2, eps = this.eps;
    const c1 = 1 - Math.pow(b1, t), c2 = 1 - Math.pow(b2, t);
    for (const [name, p] of this.params) {
      const g = p.grad;
      if (!g) continue;
      const x = p.data, m = this.m.get(name)!, v = this.v.get(name)!;
      const keep = this.decays(name) ? 1 - lr * this.wd : 1;
      for (let i = 0; i < x.length; i++) {
        const gi = g[i]!;
        const mi = (m[i] = b1 * m[i]! + (1 - b1) * gi);
        const vi = (v[i] = b2 * v[i]! + (1 - b2) * gi * gi);
        x[i] = x[i]! * keep - (lr * (mi / c1)) / (Math.sqrt(vi / c2) + eps);
      }
    }
  }

  /** a copy of the optimiser state */
  state(): AdamWState {
    const copy = (mm: Map<string, Float32Array>) => Object.fromEntries([...mm].map(([k, a]) => [k, Float32Array.from(a)]));
    return { step: this.stepCount, m: copy(this.m), v: copy(this.v) };
  }

  /** restore a state(), checking every parameter name and size */
  loadState(s: AdamWState): void {
    for (const [name, p] of this.params) {
      for (const [which, src] of [['m', s.m[name]], ['v', s.v[name]]] as const) {
        if (!src || src.length !== p.size) throw new Error(`AdamW.loadState: ${which} of "${name}" missing or of the wrong size`);
      }
    }
    for (const [name] of this.params) {
      this.m.get(name)!.set(s.m[name]!);
      this.v.get(name)!.set(s.v[name]!);
    }
    this.stepCount = s.step;
  }
}
