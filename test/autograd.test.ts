/**
 * Every autograd primitive against its f64 definition (test/autograd-reference.ts):
 * the f32 forward matches, and the backward matches central finite differences of the
 * f64 forward for a random output weighting R, i.e. d sum(R * op(x)) / dx.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { Rng } from '../src/util/random.js';
import * as ag from '../src/train/autograd.js';
import { Tape, type Var } from '../src/train/autograd.js';
import * as ref from './autograd-reference.js';
import { centralDiff, leaf, type F64 } from './autograd-reference.js';

const backend = new CpuBackend();
const tape = new Tape(backend);

interface Input {
  shape: number[];
  data: Float32Array; // f32 values, so f32 op and f64 reference see the same numbers
  grad?: boolean; // default true
}

const randn = (rng: Rng, n: number, std = 1) => Float32Array.from({ length: n }, () => std * rng.normal());

/**
 * Forward and backward of `op` (f32, on the tape) against `def` (f64): the output
 * within fwdTol of the reference, and every input gradient within 1e-3 of the largest
 * finite-difference gradient of that input (so a wrong term of any size shows up).
 */
function checkOp(inputs: Input[], op: (vs: Var[]) => Var, def: (xs: F64[]) => F64, seed: number, fwdTol = 1e-4): void {
  tape.reset();
  const rng = new Rng(seed);
  const vars = inputs.map((x) => (x.grad === false ? tape.input(x.shape, x.data) : leaf(tape, x.shape, x.data)));
  const y = op(vars);
  const xs = inputs.map((x) => Float64Array.from(x.data));
  const y64 = def(xs);
  expect(y.size).toBe(y64.length);
  const yScale = Math.max(1, ...y64.map(Math.abs));
  for (let i = 0; i < y.size; i++) expect(Math.abs(y.data[i]! - y64[i]!)).toBeLessThanOrEqual(fwdTol * yScale);

  const R = randn(rng, y.size);
  tape.backward(y, R);
  const loss = () => def(xs).reduce((s, v, i) => s + v * R[i]!, 0);
  inputs.forEach((x, k) => {
    if (x.grad === false) return;
    const g = vars[k]!.grad;
    expect(g, `input ${k} got no gradient`).not.toBeNull();
    const num = Array.from(xs[k]!, (_, i) => centralDiff(loss, xs[k]!, i));
    const scale = Math.max(1e-3, ...num.map(Math.abs));
    for (let i = 0; i < num.length; i++) {
      expect(Math.abs(g![i]! - num[i]!), `input ${k} [${i}]: ${g![i]} vs ${num[i]}`).toBeLessThanOrEqual(1e-3 * scale);
    }
  });
  tape.reset();
}

const dims = (min: number, max: number) => fc.integer({ min, max });
const opts = { numRuns: 15 };

describe('autograd primitives vs f64 finite differences', () => {
  it('linear', () => {
    fc.assert(
      fc.property(dims(1, 7), dims(1, 9), dims(1, 8), fc.nat(), (T, K, N, seed) => {
        const rng = new Rng(seed);
        checkOp(
          [{ shape: [T, K], data: randn(rng, T * K) }, { shape: [N, K], data: randn(rng, N * K) }],
          ([x, w]) => ag.linear(tape, x!, w!),
          ([x, w]) => ref.linear(x!, w!, T, K, N),
          seed,
        );
      }),
      opts,
    );
  });

  it('embedding (repeated ids accumulate)', () => {
    fc.assert(
      fc.property(dims(1, 6), dims(1, 5), fc.array(fc.nat(), { minLength: 1, maxLength: 10 }), fc.nat(), (V, D, raw, seed) => {
        const ids = Int32Array.from(raw, (i) => i % V);
        checkOp(
          [{ shape: [V, D], data: randn(new Rng(seed), V * D) }],
          ([t]) => ag.embedding(tape, t!, ids),
          ([t]) => ref.embedding(t!, ids, D),
          seed,
        );
      }),
      opts,
    );
  });

  it('rmsnorm', () => {
    fc.assert(
      fc.property(dims(1, 5), dims(1, 9), fc.constantFrom(1e-5, 1e-2), fc.nat(), (T, D, eps, seed) => {
        const rng = new Rng(seed);
        checkOp(
          [{ shape: [T, D], data: randn(rng, T * D) }, { shape: [D], data: randn(rng, D) }],
          ([x, w]) => ag.rmsnorm(tape, x!, w!, eps),
          ([x, w]) => ref.rmsnorm(x!, w!, D, eps),
          seed,
        );
      }),
      opts,
    );
  });

  it('rope', () => {
    fc.assert(
      fc.property(dims(1, 5), dims(1, 3), fc.constantFrom(2, 4, 8), fc.constantFrom(10000, 500), fc.nat(), (T, H, hd, theta, seed) => {
        const rng = new Rng(seed);
        const pos = Int32Array.from({ length: T }, () => rng.int(50));
        checkOp(
          [{ shape: [T, H, hd], data: randn(rng, T * H * hd) }],
          ([x]) => ag.rope(tape, x!, pos, theta),
          ([x]) => ref.rope(x!, pos, H, hd, theta),
          seed,
        );
      }),
      opts,
    );
  });

  it('causalAttention (grouped-query, several sequences)', () => {
    fc.assert(
      fc.property(dims(1, 3), dims(1, 6), dims(1, 2), dims(1, 3), fc.constantFrom(2, 4, 6), fc.nat(), (B, T, KVH, group, hd, seed) => {
        const rng = new Rng(seed), H = KVH * group, BT = B * T;
        checkOp(
          [
            { shape: [BT, H, hd], data: randn(rng, BT * H * hd) },
            { shape: [BT, KVH, hd], data: randn(rng, BT * KVH * hd) },
            { shape: [BT, KVH, hd], data: randn(rng, BT * KVH * hd) },
          ],
          ([q, k, v]) => ag.causalAttention(tape, q!, k!, v!, B, T),
          ([q, k, v]) => ref.attention(q!, k!, v!, B, T, H, KVH, hd),
          seed,
        );
      }),
      opts,
    );
  });

  it('siluGate, add, mul, scale, sum, mean, reshape', () => {
    fc.assert(
      fc.property(dims(1, 12), fc.nat(), (n, seed) => {
        const rng = new Rng(seed);
        const two = (): Input[] => [{ shape: [n], data: randn(rng, n, 2) }, { shape: [n], data: randn(rng, n, 2) }];
        checkOp(two(), ([g, u]) => ag.siluGate(tape, g!, u!), ([g, u]) => ref.siluGate(g!, u!), seed);
        checkOp(two(), ([a, b]) => ag.add(tape, a!, b!), ([a, b]) => ref.add(a!, b!), seed);
        checkOp(two(), ([a, b]) => ag.mul(tape, a!, b!), ([a, b]) => ref.mul(a!, b!), seed);
        // the same Var on both sides: gradients from both uses add up
        checkOp(two().slice(1), ([a]) => ag.mul(tape, a!, a!), ([a]) => ref.mul(a!, a!), seed);
        checkOp(two().slice(1), ([a]) => ag.scale(tape, a!, -1.5), ([a]) => a!.map((x) => -1.5 * x), seed);
        checkOp(two().slice(1), ([a]) => ag.sum(tape, a!), ([a]) => Float64Array.of(a!.reduce((s, x) => s + x, 0)), seed);
        checkOp(two().slice(1), ([a]) => ag.mean(tape, a!), ([a]) => Float64Array.of(a!.reduce((s, x) => s + x, 0) / n), seed);
        checkOp(two().slice(1), ([a]) => ag.reshape(tape, a!, [1, n, 1]), ([a]) => a!.slice(), seed);
      }),
      opts,
    );
  });

  it('a constant input gets no gradient; the other input still does', () => {
    const rng = new Rng(3);
    checkOp(
      [{ shape: [2, 3], data: randn(rng, 6), grad: false }, { shape: [4, 3], data: randn(rng, 12) }],
      ([x, w]) => ag.linear(tape, x!, w!),
      ([x, w]) => ref.linear(x!, w!, 2, 3, 4),
      3,
    );
  });

  it('logSoftmax', () => {
    fc.assert(
      fc.property(dims(1, 4), dims(1, 9), fc.nat(), (N, V, seed) => {
        checkOp(
          [{ shape: [N, V], data: randn(new Rng(seed), N * V, 3) }],
          ([x]) => ag.logSoftmax(tape, x!),
          ([x]) => ref.logSoftmax(x!, V),
          seed,
        );
      }),
      opts,
    );
  });

  it('crossEntropy (with ignored targets)', () => {
    fc.assert(
      fc.property(dims(1, 6), dims(1, 9), fc.nat(), (N, V, seed) => {
        const rng = new Rng(seed);
        const targets = Int32Array.from({ length: N }, () => rng.int(V + 1) - 1); // -1 = ignore
        checkOp(
          [{ shape: [N, V], data: randn(rng, N * V, 3) }],
          ([x]) => ag.crossEntropy(tape, x!, targets),
          ([x]) => Float64Array.of(ref.crossEntropy(x!, targets, V)),
          seed,
        );
      }),
      opts,
    );
  });
});

describe('tape', () => {
  it('composite ops chain: the gradient of a small network through every primitive', () => {
    const rng = new Rng(7);
    const T = 3, D = 4, N = 5;
    checkOp(
      [{ shape: [T, D], data: randn(rng, T * D) }, { shape: [D], data: randn(rng, D) }, { shape: [N, D], data: randn(rng, N * D) }],
      ([x, g, w]) => {
        const h = ag.rmsnorm(tape, x!, g!, 1e-5);
        const y = ag.linear(tape, h, w!);
        return ag.logSoftmax(tape, ag.add(tape, y, ag.mul(tape, y, y)));
      },
      ([x, g, w]) => {
        const y = ref.linear(ref.rmsnorm(x!, g!, D, 1e-5), w!, T, D, N);
        return ref.logSoftmax(ref.add(y, ref.mul(y, y)), N);
      },
      7,
    );
  });

  it('parameters accumulate over backward passes until zeroGrad; reused pool buffers give identical results', () => {
    const rng = new Rng(11);
    const w = ag.param(backend, [6, 4], randn(rng, 24));
    const x = randn(rng, 12);
    const run = () => {
      const loss = ag.crossEntropy(tape, ag.linear(tape, tape.input([3, 4], x), w), Int32Array.of(1, -1, 5));
      tape.backward(loss);
      const l = loss.data[0]!;
      tape.reset();
      return l;
    };
    const l1 = run();
    const once = Float32Array.from(w.grad!);
    const l2 = run();
    expect(l2).toBe(l1);
    expect(Array.from(w.grad!)).toEqual(Array.from(once, (g) => Math.fround(2 * g)));
    ag.zeroGrad([w]);
    run();
    expect(Array.from(w.grad!)).toEqual(Array.from(once));
  });

  it('noGrad records nothing and its outputs need no gradient', () => {
    const w = ag.param(backend, [2, 2], Float32Array.of(1, 2, 3, 4));
    const y = tape.noGrad(() => ag.linear(tape, tape.input([1, 2], Float32Array.of(1, 1)), w));
    expect(y.requiresGrad).toBe(false);
    expect(Array.from(y.data)).toEqual([3, 7]);
    expect(() => tape.backward(ag.sum(tape, y))).toThrow(/does not depend/);
    tape.reset();
  });

  it('shape errors name the op', () => {
    const w = ag.param(backend, [3, 4]);
    expect(() => ag.linear(tape, tape.input([2, 5]), w)).toThrow(/linear/);
    expect(() => ag.crossEntropy(tape, tape.input([2, 3]), Int32Array.of(0, 3))).toThrow(/target 3/);
    expect(() => ag.embedding(tape, w, Int32Array.of(3))).toThrow(/id 3/);
    tape.reset();
  });
});
