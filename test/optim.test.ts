import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { param, Tape, type Var } from '../src/train/autograd.js';
import { LlamaParams, llamaLoss } from '../src/train/llama-train.js';
import { AdamW, clipGradNorm, cosineLr, decayRule, gradNorm, scaleGrads } from '../src/train/optim.js';
import { Rng } from '../src/util/random.js';
import { tinyConfig } from './helpers.js';

const backend = new CpuBackend();

/** named params of the quadratic loss 0.5 sum a (p - c)^2, with its gradient set */
function quadratic(seed: number) {
  const rng = new Rng(seed);
  const names = ['model.layers.0.mlp.up_proj.weight', 'model.norm.weight', 'model.embed_tokens.weight'];
  const vars = names.map((n) => [n, param(backend, [5], Float32Array.from({ length: 5 }, () => rng.normal()))] as [string, Var]);
  const a = Float64Array.from({ length: 5 }, () => 0.5 + rng.next()), c = Float64Array.from({ length: 5 }, () => rng.normal());
  const setGrads = () => {
    for (const [, v] of vars) for (let i = 0; i < 5; i++) v.grad![i] = a[i]! * (v.data[i]! - c[i]!);
  };
  return { vars, a, c, setGrads };
}

describe('AdamW', () => {
  it('matches a hand-written f64 AdamW (torch formula) on a quadratic, with decay only where the rule says', () => {
    fc.assert(
      fc.property(fc.nat(), fc.boolean(), (seed, decayEmb) => {
        const { vars, a, c, setGrads } = quadratic(seed);
        const lr = 0.05, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
        const decays = decayRule(decayEmb);
        const opt = new AdamW(vars, { beta1: b1, beta2: b2, eps, weightDecay: wd, decay: decays });
        const ref = vars.map(([name, v]) => ({ name, p: Float64Array.from(v.data), m: new Float64Array(5), v: new Float64Array(5) }));
        for (let t = 1; t <= 20; t++) {
          setGrads();
          opt.step(lr);
          for (const r of ref) {
            for (let i = 0; i < 5; i++) {
              const g = a[i]! * (r.p[i]! - c[i]!);
              if (decays(r.name)) r.p[i]! *= 1 - lr * wd;
              r.m[i] = b1 * r.m[i]! + (1 - b1) * g;
              r.v[i] = b2 * r.v[i]! + (1 - b2) * g * g;
              r.p[i]! -= (lr * r.m[i]!) / (1 - b1 ** t) / (Math.sqrt(r.v[i]! / (1 - b2 ** t)) + eps);
            }
          }
        }
        vars.forEach(([, v], k) => {
          for (let i = 0; i < 5; i++) expect(Math.abs(v.data[i]! - ref[k]!.p[i]!)).toBeLessThan(1e-5);
        });
        expect(decays('model.norm.weight')).toBe(false);
        expect(decays('model.layers.3.input_layernorm.weight')).toBe(false);
        expect(decays('model.embed_tokens.weight')).toBe(decayEmb);
        expect(decays('lm_head.weight')).toBe(true);
      }),
      { numRuns: 20 },
    );
  });

  it('state() / loadState() resumes to bit-identical steps', () => {
    const run = (q: ReturnType<typeof quadratic>, opt: AdamW, steps: number) => {
      for (let s = 0; s < steps; s++) {
        q.setGrads();
        opt.step(cosineLr(opt.stepCount, { peak: 0.1, warmup: 2, total: 8, floor: 0.01 }));
      }
    };
    const q1 = quadratic(5), o1 = new AdamW(q1.vars);
    run(q1, o1, 3);
    const saved = o1.state(), values = q1.vars.map(([, v]) => Float32Array.from(v.data));
    run(q1, o1, 4);
    const q2 = quadratic(5), o2 = new AdamW(q2.vars);
    q2.vars.forEach(([, v], k) => v.data.set(values[k]!));
    o2.loadState(saved);
    expect(o2.stepCount).toBe(3);
    run(q2, o2, 4);
    q1.vars.forEach(([, v], k) => expect(Array.from(q2.vars[k]![1].data)).toEqual(Array.from(v.data)));
    expect(o2.state()).toEqual(o1.state());
    // the saved state is a copy, and a state of the wrong size is refused
    expect(saved.step).toBe(3);
    const bad = o1.state();
    bad.m['model.norm.weight'] = new Float32Array(4);
    expect(() => o2.loadState(bad)).toThrow(/model.norm.weight/);
  });
});

describe('gradient tools', () => {
  it('clipGradNorm returns the global norm and scales down to maxNorm only when above it', () => {
    fc.assert(
      fc.property(fc.nat(), fc.double({ min: 0.01, max: 10, noNaN: true }), (seed, maxNorm) => {
        const rng = new Rng(seed);
        const vars = [3, 7, 1].map((n) => param(backend, [n]));
        for (const v of vars) for (let i = 0; i < v.size; i++) v.grad![i] = rng.normal();
        const before = vars.map((v) => Float32Array.from(v.grad!));
        const expected = Math.sqrt(before.reduce((s, g) => s + g.reduce((t, x) => t + x * x, 0), 0));
        const norm = clipGradNorm(vars, maxNorm);
        expect(norm).toBeCloseTo(expected, 5);
        expect(gradNorm(vars)).toBeCloseTo(Math.min(expected, maxNorm), 4);
        const f = expected > maxNorm ? maxNorm / expected : 1;
        vars.forEach((v, k) => v.grad!.forEach((g, i) => expect(g).toBeCloseTo(before[k]![i]! * f, 5)));
      }),
    );
  });

  it('cosineLr: linear warmup to the peak, half-way down at the cosine midpoint, the floor at the end', () => {
    const s = { peak: 1e-3, warmup: 10, total: 110, floor: 1e-4 };
    expect(cosineLr(0, s)).toBeCloseTo(1e-4, 12);
    expect(cosineLr(4, s)).toBeCloseTo(5e-4, 12);
    expect(cosineLr(9, s)).toBeCloseTo(1e-3, 12); // last warmup step reaches the peak
    expect(cosineLr(10, s)).toBeCloseTo(1e-3, 12);
    expect(cosineLr(60, s)).toBeCloseTo((1e-3 + 1e-4) / 2, 12);
    expect(cosineLr(110, s)).toBeCloseTo(1e-4, 12);
    expect(cosineLr(500, s)).toBe(1e-4);
    for (let t = 10; t < 110; t++) expect(cosineLr(t + 1, s)).toBeLessThanOrEqual(cosineLr(t, s));
  });

  it('gradient accumulation: two half batches, scaled by 1/2, give the full batch gradient', () => {
    fc.assert(
      fc.property(tinyConfig, fc.nat(), (config, seed) => {
        const tape = new Tape(backend);
        const p = LlamaParams.random(backend, config, seed % 100);
        const rng = new Rng(seed), B = 2, T = 4;
        const tokens = Int32Array.from({ length: B * (T + 1) }, () => rng.int(config.vocab_size));
        p.zeroGrad();
        tape.backward(llamaLoss(p, config, tokens, B, T, tape));
        tape.reset();
        const full = [...p.vars.values()].map((v) => Float32Array.from(v.grad!));
        p.zeroGrad();
        for (let b = 0; b < B; b++) {
          tape.backward(llamaLoss(p, config, tokens.subarray(b * (T + 1), (b + 1) * (T + 1)), 1, T, tape));
          tape.reset();
        }
        scaleGrads(p.vars.values(), 1 / B);
        [...p.vars.values()].forEach((v, k) => {
          const scale = Math.max(1e-6, ...full[k]!.map(Math.abs));
          v.grad!.forEach((g, i) => expect(Math.abs(g - full[k]![i]!)).toBeLessThan(1e-4 * scale));
        });
      }),
      { numRuns: 15 },
    );
  });
});
