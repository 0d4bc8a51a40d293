/**
 * The few autograd primitives the draft heads need beyond src/train/autograd.ts, in the
 * same style: each forward with its backward beside it, built on Tape's public API.
 *
 *   gatherRows(x, rows)            pick rows of a (N, D) value (the positions trained this step)
 *   repeatRows(x, S)               (M, D) -> (M*S, D), each row S times (one copy per CTC frame)
 *   addRows(x, b)                  x (N, D) + b (R, D) broadcast: row n gets b[n % R] (slots, biases)
 *   silu(x)                        x * sigmoid(x) (Medusa's residual block)
 *   concatCols(a, b)               (N, A) | (N, B) -> (N, A + B) (vocab logits | BLANK logit)
 *   groupAttention(q, k, v, G, S)  full (bidirectional) attention inside G groups of S rows
 *   ctcLossOp(logits, M, S, C, labels, blank)  mean CTC loss of M sequences of S frames
 */
import type { CpuBuf } from '../backend/cpu/cpu.js';
import { ShapeError } from '../tensor/tensor.js';
import type { Tape, Var } from './autograd.js';
import { ctcLossBatch } from './ctc.js';

/** y (M, D) = x[rows]   x: (N, D); backward scatter-adds dy into the picked rows */
export function gatherRows(tape: Tape, x: Var, rows: Int32Array): Var {
  if (x.shape.length !== 2) throw new ShapeError(`gatherRows: x must be 2-D, got [${x.shape}]`);
  const [N, D] = x.shape as [number, number];
  for (const r of rows) if (!(r >= 0 && r < N)) throw new RangeError(`gatherRows: row ${r} outside [0, ${N})`);
  const y = tape.result([rows.length, D], x);
  const xs = x.data, ys = y.data;
  for (let m = 0; m < rows.length; m++) ys.set(xs.subarray(rows[m]! * D, rows[m]! * D + D), m * D);
  tape.record(y, () => {
    const g = tape.gradOf(x)!;
    const gx = g.data, dy = y.gradBuf!.data;
    for (let m = 0; m < rows.length; m++) {
      const o = rows[m]! * D;
      for (let i = 0; i < D; i++) gx[o + i]! += dy[m * D + i]!;
    }
  });
  return y;
}

/** y (M*S, D): y[m*S + s] = x[m]   x: (M, D); backward sums the S copies */
export function repeatRows(tape: Tape, x: Var, S: number): Var {
  const [M, D] = x.shape as [number, number];
  const y = tape.result([M * S, D], x);
  const xs = x.data, ys = y.data;
  for (let m = 0; m < M; m++) for (let s = 0; s < S; s++) ys.set(xs.subarray(m * D, m * D + D), (m * S + s) * D);
  tape.record(y, () =>
    tape.accumulate(x, (dx) => {
      const d = dx.data, dy = y.gradBuf!.data;
      d.fill(0);
      for (let m = 0; m < M; m++) for (let s = 0; s < S; s++) for (let i = 0; i < D; i++) d[m * D + i]! += dy[(m * S + s) * D + i]!;
    }),
  );
  return y;
}

/** y (N, D) = x + b[n % R]   x: (N, D), b: (R, D) with N % R == 0 (or b: (D), R = 1) */
export function addRows(tape: Tape, x: Var, b: Var): Var {
  const D = x.shape[x.shape.length - 1]!, N = x.size / D, R = b.size / D;
  if (b.shape[b.shape.length - 1] !== D || N % R !== 0) throw new ShapeError(`addRows: x [${x.shape}], b [${b.shape}]`);
  const y = tape.result(x.shape, x, b);
  const xs = x.data, bs = b.data, ys = y.data;
  for (let n = 0; n < N; n++) {
    const o = n * D, bo = (n % R) * D;
    for (let i = 0; i < D; i++) ys[o + i] = xs[o + i]! + bs[bo + i]!;
  }
  tape.record(y, () => {
    tape.accumulate(x, (dx) => tape.backend.copy(dx, 0, y.gradBuf!, 0, y.size));
    const gb = tape.gradOf(b);
    if (gb) {
      const db = gb.data, dy = y.gradBuf!.data;
      for (let n = 0; n < N; n++) for (let i = 0, bo = (n % R) * D; i < D; i++) db[bo + i]! += dy[n * D + i]!;
    }
  });
  return y;
}

/** y = x sigmoid(x); dy/dx = sigmoid(x) (1 + x (1 - sigmoid(x))) */
export function silu(tape: Tape, x: Var): Var {
  const y = tape.result(x.shape, x);
  const xs = x.data, ys = y.data;
  for (let i = 0; i < y.size; i++) ys[i] = xs[i]! / (1 + Math.exp(-xs[i]!)); // as the backend's siluGate
  tape.record(y, () =>
    tape.accumulate(x, (dx) => {
      const d = dx.data, dy = y.gradBuf!.data, xs = x.data;
      for (let i = 0; i < y.size; i++) {
        const s = 1 / (1 + Math.exp(-xs[i]!));
        d[i] = dy[i]! * s * (1 + xs[i]! * (1 - s));
      }
    }),
  );
  return y;
}

/** y (N, A + B) = [a | b]   a: (N, A), b: (N, B) */
export function concatCols(tape: Tape, a: Var, b: Var): Var {
  const [N, A] = a.shape as [number, number], B = b.shape[1]!;
  if (a.shape.length !== 2 || b.shape.length !== 2 || b.shape[0] !== N) throw new ShapeError(`concatCols: [${a.shape}] and [${b.shape}]`);
  const C = A + B;
  const y = tape.result([N, C], a, b);
  const as = a.data, bs = b.data, ys = y.data;
  for (let n = 0; n < N; n++) {
    ys.set(as.subarray(n * A, n * A + A), n * C);
    ys.set(bs.subarray(n * B, n * B + B), n * C + A);
  }
  tape.record(y, () => {
    tape.accumulate(a, (da) => {
      const d = da.data, dy = y.gradBuf!.data;
      for (let n = 0; n < N; n++) d.set(dy.subarray(n * C, n * C + A), n * A);
    });
    tape.accumulate(b, (db) => {
      const d = db.data, dy = y.gradBuf!.data;
      for (let n = 0; n < N; n++) d.set(dy.subarray(n * C + A, n * C + C), n * B);
    });
  });
  return y;
}

/**
 * Full attention inside each of G groups of S rows (every frame sees every frame of its
 * group, none of another):
 *   out[g,s,h] = sum_r P[g,h,s,r] v[g,r,h/grp],  P = softmax_r(q[g,s,h] . k[g,r,h/grp] / sqrt(hd))
 * q, out: (G*S, H, hd); k, v: (G*S, KVH, hd). S is small (the CTC frames), so plain loops.
 * Backward: dP = dO v^T, dS = P * (dP - rowsum(P * dP)) / sqrt(hd), dq = dS k, dk = dS^T q, dv = P^T dO.
 */
export function groupAttention(tape: Tape, q: Var, k: Var, v: Var, G: number, S: number): Var {
  const [GS, H, hd] = q.shape as [number, number, number], KVH = k.shape[1]!;
  if (q.shape.length !== 3 || GS !== G * S || k.shape.join() !== [GS, KVH, hd].join() || v.shape.join() !== k.shape.join() || H % KVH) {
    throw new ShapeError(`groupAttention: q [${q.shape}], k [${k.shape}], v [${v.shape}] for G=${G}, S=${S}`);
  }
  const grp = H / KVH, scale = 1 / Math.sqrt(hd);
  const y = tape.result(q.shape, q, k, v);
  const pb: CpuBuf = tape.temp(G * H * S * S); // P (G, H, S, S), kept for the backward
  const P = pb.data, qs = q.data, ks = k.data, vs = v.data, ys = y.data;
  const qo = (g: number, s: number, h: number) => ((g * S + s) * H + h) * hd;
  const ko = (g: number, r: number, h: number) => ((g * S + r) * KVH + Math.floor(h / grp)) * hd;
  for (let g = 0; g < G; g++) {
    for (let h = 0; h < H; h++) {
      for (let s = 0; s < S; s++) {
        const row = ((g * H + h) * S + s) * S, qi = qo(g, s, h);
        let max = -Infinity;
        for (let r = 0; r < S; r++) {
          let dot = 0;
          for (let i = 0, kj = ko(g, r, h); i < hd; i++) dot += qs[qi + i]! * ks[kj + i]!;
          P[row + r] = dot * scale;
          if (dot * scale > max) max = dot * scale;
        }
        let sum = 0;
        for (let r = 0; r < S; r++) sum += P[row + r] = Math.exp(P[row + r]! - max);
        for (let r = 0; r < S; r++) P[row + r]! /= sum;
        ys.fill(0, qi, qi + hd);
        for (let r = 0; r < S; r++) {
          const p = P[row + r]!;
          for (let i = 0, vj = ko(g, r, h); i < hd; i++) ys[qi + i]! += p * vs[vj + i]!;
        }
      }
    }
  }
  tape.record(y, () => {
    const gq = tape.gradOf(q)?.data, gk = tape.gradOf(k)?.data, gv = tape.gradOf(v)?.data;
    const dy = y.gradBuf!.data, P = pb.data, qs = q.data, ks = k.data, vs = v.data;
    const dS = new Float64Array(S);
    for (let g = 0; g < G; g++) {
      for (let h = 0; h < H; h++) {
        for (let s = 0; s < S; s++) {
          const row = ((g * H + h) * S + s) * S, qi = qo(g, s, h);
          let dot = 0;
          for (let r = 0; r < S; r++) {
            let dp = 0; // dP[s, r] = dO[s] . v[r]
            for (let i = 0, vj = ko(g, r, h); i < hd; i++) dp += dy[qi + i]! * vs[vj + i]!;
            dS[r] = dp;
            dot += P[row + r]! * dp;
          }
          for (let r = 0; r < S; r++) {
            const p = P[row + r]!, ds = p * (dS[r]! - dot) * scale, kj = ko(g, r, h);
            for (let i = 0; i < hd; i++) {
              if (gq) gq[qi + i]! += ds * ks[kj + i]!;
              if (gk) gk[kj + i]! += ds * qs[qi + i]!;
              if (gv) gv[kj + i]! += p * dy[qi + i]!;
            }
          }
        }
      }
    }
  });
  return y;
}

/**
 * Mean CTC loss (per target token, as ctcLossBatch's 'mean') of M sequences of S frames
 * over C classes: logits (M*S, C) -> (1). Sequences whose labels cannot fit count 0 and
 * send no gradient (zero_infinity); with S >= 2L that never happens.
 */
export function ctcLossOp(tape: Tape, logits: Var, M: number, S: number, labels: readonly (readonly number[])[], blank: number): Var {
  const C = logits.shape[1]!;
  if (logits.shape.length !== 2 || logits.shape[0] !== M * S) throw new ShapeError(`ctcLossOp: logits [${logits.shape}] for M=${M}, S=${S}`);
  const r = ctcLossBatch(logits.data, M, S, C, labels, blank, { reduction: 'mean', impossible: 'zero' });
  const y = tape.result([1], logits);
  y.data[0] = r.loss as number;
  const grad = r.grad; // d mean / d logits, host memory
  tape.record(y, () =>
    tape.accumulate(logits, (dx) => {
      const d = dx.data, c = y.gradBuf!.data[0]!;
      for (let i = 0; i < d.length; i++) d[i] = c * grad[i]!;
    }),
  );
  return y;
}
