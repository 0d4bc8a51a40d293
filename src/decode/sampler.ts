/**
 * Choosing the next token from logits: greedy (temperature 0) or temperature + top-p
 * (nucleus) sampling with a seeded generator. Scratch arrays are allocated once per
 * vocabulary size, so sampling in the token loop allocates nothing.
 */
import { argmaxRow } from '../util/numeric.js';
import { Rng } from '../util/random.js';

export interface SamplerOptions {
  temperature?: number; // 0 = greedy (default)
  topP?: number; // keep the smallest set of tokens whose probability reaches topP (default 1)
  seed?: number; // default 0
}

export class Sampler {
  readonly temperature: number;
  readonly topP: number;
  private rng: Rng;
  private probs: Float32Array;
  private order: Int32Array;

  constructor(readonly vocabSize: number, opts: SamplerOptions = {}) {
    this.temperature = opts.temperature ?? 0;
    this.topP = opts.topP ?? 1;
    if (!(this.temperature >= 0) || !Number.isFinite(this.temperature)) {
      throw new RangeError(`temperature must be a finite number >= 0, got ${opts.temperature}`);
    }
    if (!(this.topP > 0 && this.topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${opts.topP}`);
    this.rng = new Rng(opts.seed ?? 0);
    this.probs = new Float32Array(vocabSize);
    this.order = new Int32Array(vocabSize);
  }

  /** a uniform number in [0, 1) from this sampler's stream (used by rejection sampling) */
  uniform(): number {
    return this.rng.next();
  }

  /** Probabilities softmax(logits / temperature) with the top-p cut applied, renormalised. */
  distribution(logits: Float32Array, offset = 0): Float32Array {
    const V = this.vocabSize, p = this.probs;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (logits[offset + i]! > max) max = logits[offset + i]!;
    let sum = 0;
    for (let i = 0; i < V; i++) {
      const e = Math.exp((logits[offset + i]! - max) / this.temperature);
      p[i] = e;
      sum += e;
    }
    for (let i = 0; i < V; i++) p[i]! /= sum;
    if (this.topP < 1) this.applyTopP();
    return p;
  }

  private applyTopP(): void {
    const p = this.probs, order = this.order;
    for (let i = 0; i < order.length; i++) order[i] = i;
    order.sort((a, b) => p[b]! - p[a]! || a - b);
    let cum = 0, cut = order.length;
    for (let i = 0; i < order.length; i++) {
      cum += p[order[i]!]!;
      if (cum >= this.topP) {
        cut = i + 1;
        break;
      }
    }
    for (let i = cut; i < order.length; i++) p[order[i]!] = 0;
    for (let i = 0; i < p.length; i++) p[i]! /= cum;
  }

  /** Draw an index from a probability vector. */
  draw(probs: Float32Array): number {
    const r = this.rng.next();
    let cum = 0, lastNonZero = 0;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i]! <= 0) continue;
      cum += probs[i]!;
      lastNonZero = i;
      if (r < cum) return i;
    }
    return lastNonZero; // rounding left cum a hair below r
  }

  /** The next token for one row of logits. */
  sample(logits: Float32Array, offset = 0): number {
    if (this.temperature === 0) return argmaxRow(logits, offset, this.vocabSize);
    return this.draw(this.distribution(logits, offset));
  }
}
