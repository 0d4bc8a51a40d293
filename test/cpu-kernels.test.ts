/**
 * The CPU kernels against naive, obviously-correct definitions in f64 (the CPU backend
 * is the reference for every other backend, so it is itself checked from first principles).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import type { Buf } from '../src/backend/backend.js';
import { checkHiddenSlotsAddNothing } from './masked-attention.js';
import { ropeInvFreq } from '../src/backend/rope.js';

const be = new CpuBackend();
const f32 = (n: number) => fc.float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true, min: -4, max: 4 });
const up = (a: ArrayLike<number>): Buf => {
  const b = be.alloc(a.length);
  be.write(b, Float32Array.from(a));
  return b;
};
const down = async (b: Buf, n = b.length) => {
  const o = new Float32Array(n);
  await be.read(b, o);
  return o;
};
function close(got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-4) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!, g = got[i]!;
    if (!(Math.abs(g - w) <= tol * (1 + Math.abs(w)))) throw new Error(`index ${i}: got ${g}, want ${w}`);
  }
}
const dims = fc.record({ T: fc.integer({ min: 1, max: 9 }), K: fc.integer({ min: 1, max: 37 }), N: fc.integer({ min: 1, max: 23 }) });

describe('cpu kernels vs naive definitions', () => {
  it('matmul: out[t,n] = sum_k x[t,k] w[n,k] (token blocks of 4 and remainders)', async () => {
    await fc.assert(
      fc.asyncProperty(dims.chain((d) => fc.tuple(fc.constant(d), f32(d.T * d.K), f32(d.N * d.K))), async ([{ T, K, N }, x, w]) => {
        const out = be.alloc(T * N);
        be.matmul(out, up(x), up(w), T, K, N);
        const want = new Float64Array(T * N);
        for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) want[t * N + n]! += x[t * K + k]! * w[n * K + k]!;
        close(await down(out), want, 1e-4);
      }),
    );
  });

  it('rmsnorm, add, mul, siluGate, softmax, argmax, embedding, copy', async () => {
    await fc.assert(
      fc.asyncProperty(dims.chain((d) => fc.tuple(fc.constant(d), f32(d.T * d.K), f32(d.T * d.K), f32(d.K))), async ([{ T, K }, a, b, w]) => {
        const n = T * K, o = be.alloc(n);
        be.rmsnorm(o, up(a), up(w), T, K, 1e-5);
        const want: number[] = [];
        for (let t = 0; t < T; t++) {
          let ss = 0;
          for (let k = 0; k < K; k++) ss += a[t * K + k]! ** 2;
          for (let k = 0; k < K; k++) want.push((a[t * K + k]! / Math.sqrt(ss / K + 1e-5)) * w[k]!);
        }
        close(await down(o), want);
        be.add(o, up(a), up(b), n);
        close(await down(o), Array.from(a, (v, i) => v + b[i]!));
        be.mul(o, up(a), up(b), n);
        close(await down(o), Array.from(a, (v, i) => v * b[i]!));
        be.siluGate(o, up(a), up(b), n);
        close(await down(o), Array.from(a, (v, i) => (v / (1 + Math.exp(-v))) * b[i]!));
        be.softmax(o, up(a), T, K);
        const sm: number[] = [];
        for (let t = 0; t < T; t++) {
          const row = Array.from(a.subarray(t * K, (t + 1) * K));
          const e = row.map((v) => Math.exp(v - Math.max(...row)));
          const s = e.reduce((p, q) => p + q, 0);
          sm.push(...e.map((v) => v / s));
        }
        close(await down(o), sm);
        const am = be.alloc(T);
        be.argmax(am, up(a), T, K);
        const wantAm: number[] = [];
        for (let t = 0; t < T; t++) {
          const row = Array.from(a.subarray(t * K, (t + 1) * K));
          wantAm.push(row.indexOf(Math.max(...row)));
        }
        close(await down(am), wantAm, 0);
        const ids = Int32Array.from({ length: T }, (_, i) => (i * 7) % T);
        const emb = be.alloc(T * K);
        be.embedding(emb, up(a), ids, K);
        close(await down(emb), Array.from(ids).flatMap((id) => Array.from(a.subarray(id * K, (id + 1) * K))), 0);
        const c = up(b);
        be.copy(c, 1, up(a), 0, n - 1);
        close(await down(c), [b[0]!, ...Array.from(a.subarray(0, n - 1))], 0);
      }),
    );
  });

  it('addBias: x[r, c] += bias[c] on every row', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 7 }).chain((R) => fc.integer({ min: 1, max: 19 }).chain((C) => fc.tuple(fc.constant(R), fc.constant(C), f32(R * C), f32(C)))), async ([R, C, x, bias]) => {
        const b = up(x);
        be.addBias(b, up(bias), R, C);
        close(await down(b), Array.from(x, (v, i) => Math.fround(v + bias[i % C]!)), 0); // one f32 add, exactly
      }),
    );
  });

  it('rope rotates each (i, i + hd/2) pair by pos * theta^(-2i/hd), as a complex multiplication', async () => {
    const arb = fc.record({ T: fc.integer({ min: 1, max: 5 }), H: fc.integer({ min: 1, max: 3 }), half: fc.integer({ min: 1, max: 8 }), theta: fc.constantFrom(10000, 100, 1e6) });
    await fc.assert(
      fc.asyncProperty(
        arb.chain((d) => fc.tuple(fc.constant(d), f32(d.T * d.H * 2 * d.half), fc.array(fc.integer({ min: 0, max: 5000 }), { minLength: d.T, maxLength: d.T }))),
        async ([{ T, H, half, theta }, x, pos]) => {
          const hd = 2 * half, b = up(x);
          be.rope(b, Int32Array.from(pos), T, H, hd, ropeInvFreq(hd, theta));
          const want = Array.from(x);
          for (let t = 0; t < T; t++)
            for (let h = 0; h < H; h++)
              for (let i = 0; i < half; i++) {
                const j = (t * H + h) * hd + i, ang = pos[t]! * theta ** (-(2 * i) / hd);
                // (re + i im) * e^{i ang}
                const re = x[j]!, im = x[j + half]!;
                want[j] = re * Math.cos(ang) - im * Math.sin(ang);
                want[j + half] = re * Math.sin(ang) + im * Math.cos(ang);
              }
          close(await down(b), want, 2e-4);
        },
      ),
    );
  });

  it('attention: explicit softmax over visible slots, GQA head mapping, causal and -inf masks', async () => {
    const arb = fc.record({
      T: fc.integer({ min: 1, max: 5 }), past: fc.integer({ min: 0, max: 6 }), kvh: fc.integer({ min: 1, max: 2 }),
      group: fc.integer({ min: 1, max: 3 }), hd: fc.integer({ min: 1, max: 6 }), causal: fc.boolean(), seed: fc.nat(),
    });
    await fc.assert(
      fc.asyncProperty(
        arb.chain((d) => {
          const H = d.kvh * d.group, S = d.past + d.T;
          return fc.tuple(fc.constant(d), f32(d.T * H * d.hd), f32(S * d.kvh * d.hd), f32(S * d.kvh * d.hd), fc.array(fc.boolean(), { minLength: d.T * S, maxLength: d.T * S }));
        }),
        async ([{ T, past, kvh, group, hd, causal }, q, k, v, bits]) => {
          const H = kvh * group, S = past + T;
          const mask = causal ? null : Float32Array.from(bits, (b, i) => (b || i % S === 0 ? 0 : -Infinity));
          const out = be.alloc(T * H * hd);
          be.attention(out, up(q), up(k), up(v), { T, nHeads: H, nKvHeads: kvh, headDim: hd, past, mask });
          const want = new Float64Array(T * H * hd);
          for (let t = 0; t < T; t++)
            for (let h = 0; h < H; h++) {
              const g = Math.floor(h / group);
              const vis = [...Array(S).keys()].filter((s) => (mask ? mask[t * S + s] === 0 : s <= past + t));
              const sc = vis.map((s) => {
                let dot = 0;
                for (let i = 0; i < hd; i++) dot += q[(t * H + h) * hd + i]! * k[(s * kvh + g) * hd + i]!;
                return dot / Math.sqrt(hd);
              });
              const mx = Math.max(...sc), e = sc.map((x) => Math.exp(x - mx)), sum = e.reduce((a, b) => a + b, 0);
              vis.forEach((s, j) => {
                for (let i = 0; i < hd; i++) want[(t * H + h) * hd + i]! += (e[j]! / sum) * v[(s * kvh + g) * hd + i]!;
              });
            }
          close(await down(out), want, 1e-4);
        },
      ),
    );
  });

  it('attention (plain TS reference): hidden slots add nothing, even with Infinity, NaN or 3e38 in their k and v rows', () =>
    checkHiddenSlotsAddNothing(new CpuBackend({ simd: false }), { maxPast: 20, maxHeadDim: 70 }, 200));
});
