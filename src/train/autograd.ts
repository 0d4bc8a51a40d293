/**
 * Reverse-mode automatic differentiation on the CPU backend, micrograd style: every
 * primitive op records its backward right beside its forward, and composite ops (mean,
 * the Llama forward in llama-train.ts) are built from primitives, needing no gradient
 * code of their own.
 *
 * Reading order: Var (a value with an optional gradient), Tape (the recorded backward
 * closures and a buffer pool), then the primitives: linear, embedding, rmsnorm, rope,
 * causalAttention, siluGate, add, mul, scale, sum, reshape, logSoftmax, crossEntropy.
 *
 * Speed: every large product runs through the backend's one matmul kernel
 * (out = x @ w^T, WebAssembly SIMD where available), in the backward too, with
 * transposed copies where the kernel needs them (O(size), cheap beside the O(T*N*K)
 * product). Values and gradients live in backend buffers so that kernel reads them in
 * place. A Tape hands out buffers from its own pool and takes them all back on
 * reset(), so a training step allocates nothing once the first step has run.
 *
 * One rule when reading the kernels below: allocating a buffer may grow the wasm memory,
 * which detaches every Float32Array view taken before it. So each function allocates
 * first and only then takes `.data` views.
 */
import type { CpuBackend, CpuBuf } from '../backend/cpu/cpu.js';
import { ShapeError } from '../tensor/tensor.js';

// ---- Var ------------------------------------------------------------------------------

/** A value of some shape, row-major f32 in a backend buffer, with its gradient once it has one. */
export class Var {
  readonly size: number;
  constructor(
    readonly shape: readonly number[],
    readonly buf: CpuBuf,
    /** whether gradients flow to this value (parameters, and everything computed from them) */
    readonly requiresGrad: boolean,
    /** d loss / d this, same shape; null until a backward pass reaches it */
    public gradBuf: CpuBuf | null = null,
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
    if (buf.length !== this.size) throw new ShapeError(`Var: buffer of ${buf.length} for shape [${shape}]`);
  }
  /** the values (a view: take it again after allocating, see the file comment) */
  get data(): Float32Array {
    return this.buf.data;
  }
  get grad(): Float32Array | null {
    return this.gradBuf ? this.gradBuf.data : null;
  }
}

/**
 * A trainable leaf: values and a gradient buffer of its own (outside any tape), which
 * backward passes accumulate into until zeroGrad.
 */
export function param(backend: CpuBackend, shape: readonly number[], init?: Float32Array): Var {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Var([...shape], backend.alloc(n) as CpuBuf, true, backend.alloc(n) as CpuBuf);
  if (init) {
    if (init.length !== n) throw new ShapeError(`param: ${init.length} values for shape [${shape}]`);
    v.data.set(init);
  }
  return v;
}

export function zeroGrad(vars: Iterable<Var>): void {
  for (const v of vars) v.gradBuf?.data.fill(0);
}

// ---- Tape -----------------------------------------------------------------------------

/**
 * The backward closures of one forward pass, in forward order, and the buffers that
 * pass used. Vars made on a tape (and their gradients) stay valid until reset().
 * Typical step: loss = f(tape); tape.backward(loss); read loss.data[0]; tape.reset().
 */
export class Tape {
  private ops: { out: Var; backward: () => void }[] = [];
  private used: CpuBuf[] = []; // handed out since the last reset
  private pool = new Map<number, CpuBuf[]>(); // free buffers by length
  private recording = true;
  private lastT: { of: Var; t: CpuBuf } | null = null; // see transposedValue

  constructor(readonly backend: CpuBackend) {}

  /** whether ops record their backward (false inside noGrad) */
  get gradEnabled(): boolean {
    return this.recording;
  }

  /** run fn without recording: its Vars need no gradient (evaluation, teacher forwards) */
  noGrad<R>(fn: () => R): R {
    const was = this.recording;
    this.recording = false;
    try {
      return fn();
    } finally {
      this.recording = was;
    }
  }

  /** a constant input (no gradient), copied from `data` if given */
  input(shape: readonly number[], data?: Float32Array): Var {
    const v = new Var([...shape], this.temp(shape.reduce((a, b) => a * b, 1)), false);
    if (data) {
      if (data.length !== v.size) throw new ShapeError(`input: ${data.length} values for shape [${shape}]`);
      v.data.set(data);
    }
    return v;
  }

  /** the output of an op on `inputs`: needs a gradient when any input does (and we record) */
  result(shape: readonly number[], ...inputs: Var[]): Var {
    const needs = this.recording && inputs.some((v) => v.requiresGrad);
    return new Var([...shape], this.temp(shape.reduce((a, b) => a * b, 1)), needs);
  }

  /** remember how to send out's gradient to its inputs (only for outputs that need one) */
  record(out: Var, backward: () => void): void {
    if (out.requiresGrad) this.ops.push({ out, backward });
  }

  /**
   * Backpropagate from `out`: its gradient is `seed` (default 1, for a scalar loss), and
   * every recorded op runs in reverse order, accumulating into its inputs' gradients.
   * Parameters accumulate across calls until zeroGrad (gradient accumulation); the
   * recorded ops are consumed, so call it once per forward.
   */
  backward(out: Var, seed?: Float32Array): void {
    if (!out.requiresGrad) throw new Error('backward: the output does not depend on any parameter');
    if (!seed && out.size !== 1) throw new ShapeError(`backward: output has ${out.size} values; pass a seed gradient`);
    if (seed && seed.length !== out.size) throw new ShapeError(`backward: seed of ${seed.length} for ${out.size} values`);
    const g = this.gradOf(out)!.data;
    if (seed) for (let i = 0; i < g.length; i++) g[i]! += seed[i]!;
    else g[0]! += 1;
    for (let i = this.ops.length - 1; i >= 0; i--) {
      const op = this.ops[i]!;
      if (op.out.gradBuf) op.backward(); // otherwise the op does not reach `out`
    }
    this.ops = [];
  }

  /** take back every buffer of this pass (its Vars become invalid) and forget its ops */
  reset(): void {
    if (this.lastT) this.give(this.lastT.t);
    this.lastT = null;
    for (const b of this.used) this.give(b);
    this.used = [];
    this.ops = [];
  }

  /** reset, and return the pooled buffers to the backend */
  dispose(): void {
    this.reset();
    for (const list of this.pool.values()) for (const b of list) this.backend.free(b);
    this.pool.clear();
  }

  /** a buffer of n values (contents undefined) that lives until reset() */
  temp(n: number): CpuBuf {
    const b = this.take(n);
    this.used.push(b);
    return b;
  }

  /** a buffer of n values (contents undefined) for use inside one op; hand it back with release() */
  scratch(n: number): CpuBuf {
    return this.take(n);
  }

  release(...bufs: CpuBuf[]): void {
    for (const b of bufs) this.give(b);
  }

  /** v's gradient buffer to add into (zero-filled when new), or null if v needs no gradient */
  gradOf(v: Var): CpuBuf | null {
    if (!v.requiresGrad) return null;
    if (!v.gradBuf) {
      v.gradBuf = this.temp(v.size);
      v.gradBuf.data.fill(0);
    }
    return v.gradBuf;
  }

  /**
   * grad(v) += what `write` stores in a buffer of v's size (write must set every value).
   * A first gradient is written in place; later ones go through scratch and an add.
   */
  accumulate(v: Var, write: (dst: CpuBuf) => void): void {
    if (!v.requiresGrad) return;
    if (!v.gradBuf) {
      v.gradBuf = this.temp(v.size);
      write(v.gradBuf);
      return;
    }
    const s = this.scratch(v.size);
    write(s);
    this.backend.add(v.gradBuf, v.gradBuf, s, v.size);
    this.release(s);
  }

  /** a scratch copy of src (R, C) transposed to (C, R); release it after use */
  transposed(src: CpuBuf, R: number, C: number): CpuBuf {
    const out = this.scratch(R * C);
    transposeInto(out.data, src.data, R, C);
    return out;
  }

  /**
   * The transpose (C, R) of a 2-D value (R, C), kept until the next call for another
   * value: linear layers that share an input (q, k, v; gate, up) run their backwards
   * one after another, so they transpose it once. Do not release it.
   */
  transposedValue(v: Var): CpuBuf {
    const c = this.lastT;
    if (c && c.of === v) return c.t;
    if (c) this.give(c.t);
    const [R, C] = v.shape as [number, number];
    const t = this.transposed(v.buf, R, C);
    this.lastT = { of: v, t };
    return t;
  }

  private take(n: number): CpuBuf {
    return this.pool.get(n)?.pop() ?? (this.backend.alloc(n) as CpuBuf);
  }
  private give(b: CpuBuf): void {
    let list = this.pool.get(b.length);
    if (!list) this.pool.set(b.length, (list = []));
    list.push(b);
  }
}

/**
 * dst (C, R) = src (R, C)^T. Eight source rows at a time, so each write fills eight
 * adjacent values of a dst row: the writes stream through memory, which beat square
 * (32 x 32) tiles here.
 */
export function transposeInto(dst: Float32Array, src: Float32Array, R: number, C: number): void {
  let r = 0;
  for (; r + 8 <= R; r += 8) {
    for (let c = 0; c < C; c++) {
      const o = c * R + r, s = r * C + c;
      dst[o] = src[s]!;
      dst[o + 1] = src[s + C]!;
      dst[o + 2] = src[s + 2 * C]!;
      dst[o + 3] = src[s + 3 * C]!;
      dst[o + 4] = src[s + 4 * C]!;
      dst[o + 5] = src[s + 5 * C]!;
      dst[o + 6] = src[s + 6 * C]!;
      dst[o + 7] = src[s + 7 * C]!;
    }
  }
  for (; r < R; r++) for (let c = 0; c < C; c++) dst[c * R + r] = src[r * C + c]!;
}

function expectShape(what: string, v: Var, shape: readonly number[]): void {
  if (v.shape.length !== shape.length || v.shape.some((s, i) => s !== shape[i])) {
    throw new ShapeError(`${what}: expected shape [${shape}], got [${v.shape}]`);
  }
}

// ---- matrix products -------------------------------------------------------------------

/** y (T, N) = x (T, K) @ w (N, K)^T: nn.Linear without bias, w stored [out, in] */
export function linear(tape: Tape, x: Var, w: Var): Var {
  if (w.shape.length !== 2) throw new ShapeError(`linear: weight must be 2-D, got [${w.shape}]`);
  const [N, K] = w.shape as [number, number];
  if (x.shape.length !== 2 || x.shape[1] !== K) throw new ShapeError(`linear: x [${x.shape}] does not match weight [${w.shape}]`);
  const T = x.shape[0]!, be = tape.backend;
  const y = tape.result([T, N], x, w);
  be.matmul(y.buf, x.buf, w.buf, T, K, N);
  tape.record(y, () => {
    const dy = y.gradBuf!;
    tape.accumulate(x, (dx) => {
      const wT = tape.transposed(w.buf, N, K); // (K, N)
      be.matmul(dx, dy, wT, T, N, K); // dx (T, K) = dy (T, N) @ w (N, K)
      tape.release(wT);
    });
    tape.accumulate(w, (dw) => {
      const dyT = tape.transposed(dy, T, N), xT = tape.transposedValue(x); // (N, T), (K, T)
      be.matmul(dw, dyT, xT, N, T, K); // dw (N, K) = dy^T (N, T) @ x (T, K)
      tape.release(dyT);
    });
  });
  return y;
}

/** y (T, D) = table[ids]: rows of an embedding table (V, D) */
export function embedding(tape: Tape, table: Var, ids: Int32Array): Var {
  const [V, D] = table.shape as [number, number];
  for (const id of ids) if (!(id >= 0 && id < V)) throw new RangeError(`embedding: id ${id} outside [0, ${V})`);
  const y = tape.result([ids.length, D], table);
  tape.backend.embedding(y.buf, table.buf, ids, D);
  tape.record(y, () => {
    const g = tape.gradOf(table)!; // scatter-add: d table[ids[t]] += dy[t]
    const gs = g.data, dy = y.gradBuf!.data;
    for (let t = 0; t < ids.length; t++) {
      const go = ids[t]! * D, yo = t * D;
      for (let i = 0; i < D; i++) gs[go + i]! += dy[yo + i]!;
    }
  });
  return y;
}

// ---- normalisation and position ---------------------------------------------------------

/** y[t] = x[t] * r[t] * w, r[t] = 1 / sqrt(mean(x[t]^2) + eps)   x: (T, D), w: (D) */
export function rmsnorm(tape: Tape, x: Var, w: Var, eps: number): Var {
  const D = w.size, T = x.size / D;
  if (x.shape[x.shape.length - 1] !== D || w.shape.length !== 1) throw new ShapeError(`rmsnorm: x [${x.shape}], w [${w.shape}]`);
  const y = tape.result(x.shape, x, w);
  const rb = tape.temp(T); // r per row, for the backward
  const xs = x.data, ws = w.data, ys = y.data, r = rb.data;
  for (let t = 0; t < T; t++) {
    const o = t * D;
    let ss = 0;
    for (let i = 0; i < D; i++) ss += xs[o + i]! * xs[o + i]!;
    const s = 1 / Math.sqrt(ss / D + eps); // f64, exactly as the inference kernel
    for (let i = 0; i < D; i++) ys[o + i] = xs[o + i]! * s * ws[i]!;
    r[t] = s;
  }
  tape.record(y, () => {
    // with g = dy * w:  dx = r g - r^3 x (g . x) / D,   dw = sum_t dy * x * r
    const gx = tape.gradOf(x), gw = tape.gradOf(w);
    const dy = y.gradBuf!.data, xs = x.data, ws = w.data, r = rb.data;
    const dx = gx?.data, dw = gw?.data;
    for (let t = 0; t < T; t++) {
      const o = t * D, rt = r[t]!;
      if (dx) {
        let dot = 0;
        for (let i = 0; i < D; i++) dot += dy[o + i]! * ws[i]! * xs[o + i]!;
        const c = (rt * rt * rt * dot) / D;
        for (let i = 0; i < D; i++) dx[o + i]! += rt * dy[o + i]! * ws[i]! - c * xs[o + i]!;
      }
      if (dw) for (let i = 0; i < D; i++) dw[i]! += dy[o + i]! * xs[o + i]! * rt;
    }
  });
  return y;
}

/**
 * Rotary embedding, Hugging Face "rotate half" layout, as a new value: in head h of
 * token t the pair (i, i + hd/2) rotates by pos[t] * theta^(-2i/hd). A rotation's
 * transpose is the rotation by minus the angle, so that is the backward.   x: (T, H, hd)
 */
export function rope(tape: Tape, x: Var, positions: Int32Array, theta: number): Var {
  if (x.shape.length !== 3 || x.shape[2]! % 2 !== 0) throw new ShapeError(`rope: x must be (T, H, even hd), got [${x.shape}]`);
  const [T, H, hd] = x.shape as [number, number, number], half = hd / 2;
  if (positions.length !== T) throw new ShapeError(`rope: ${positions.length} positions for ${T} tokens`);
  const y = tape.result(x.shape, x);
  const cb = tape.temp(T * half), sb = tape.temp(T * half); // cos, sin (T, hd/2)
  const cos = cb.data, sin = sb.data, xs = x.data, ys = y.data;
  for (let i = 0; i < half; i++) {
    const invFreq = Math.fround(Math.pow(theta, (-2 * i) / hd)); // rounded to f32 as the CPU backend does
    for (let t = 0; t < T; t++) {
      const a = positions[t]! * invFreq;
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  }
  rotate(ys, xs, cos, sin, T, H, hd, 1);
  tape.record(y, () => tape.accumulate(x, (dx) => rotate(dx.data, y.gradBuf!.data, cb.data, sb.data, T, H, hd, -1)));
  return y;
}

/** out = x rotated by sign * angle (see rope) */
function rotate(out: Float32Array, x: Float32Array, cos: Float32Array, sin: Float32Array, T: number, H: number, hd: number, sign: number): void {
  const half = hd / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const o = (t * H + h) * hd;
      for (let i = 0; i < half; i++) {
        const c = cos[t * half + i]!, s = sign * sin[t * half + i]!;
        const a = x[o + i]!, b = x[o + i + half]!;
        out[o + i] = a * c - b * s; // x1' = x1 cos - x2 sin
        out[o + i + half] = b * c + a * s; // x2' = x2 cos + x1 sin
      }
    }
  }
}

// ---- attention ----------------------------------------------------------------------------

/**
 * Causal grouped-query attention over B independent sequences of T tokens:
 *   out[b,t,h] = sum_{s<=t} P[b,h,t,s] v[b,s,h/g],  P = softmax_s(q[b,t,h] . k[b,s,h/g] / sqrt(hd))
 * with g = H / KVH query heads per key/value head.   q, out: (B*T, H, hd); k, v: (B*T, KVH, hd)
 *
 * Per (sequence, head) the scores, P @ V and all four backward products are (T x T)
 * matmuls on gathered copies of that head. P is kept for the backward:
 *   dP = dO V^T,  dS = P * (dP - rowsum(P * dP)),  dQ = dS K / sqrt(hd),  dK = dS^T Q / sqrt(hd),  dV = P^T dO
 */
export function causalAttention(tape: Tape, q: Var, k: Var, v: Var, B: number, T: number): Var {
  if (q.shape.length !== 3) throw new ShapeError(`causalAttention: q must be (B*T, H, hd), got [${q.shape}]`);
  const [BT, H, hd] = q.shape as [number, number, number], KVH = k.shape[1]!;
  if (BT !== B * T) throw new ShapeError(`causalAttention: ${BT} rows for B=${B}, T=${T}`);
  expectShape('causalAttention k', k, [BT, KVH, hd]);
  expectShape('causalAttention v', v, [BT, KVH, hd]);
  if (H % KVH !== 0) throw new ShapeError(`causalAttention: ${H} heads not divisible by ${KVH} kv heads`);
  const be = tape.backend, group = H / KVH, scale = 1 / Math.sqrt(hd);
  const y = tape.result(q.shape, q, k, v);
  const probs: CpuBuf[] = []; // P per (b, h), (T, T), kept for the backward
  for (let i = 0; i < B * H; i++) probs.push(tape.temp(T * T));
  const qh = tape.scratch(T * hd), kh = tape.scratch(T * hd), vhT = tape.scratch(hd * T), oh = tape.scratch(T * hd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const P = probs[b * H + h]!, kvh = Math.floor(h / group);
      gatherHead(qh.data, q.data, b * T, T, H, h, hd, false);
      gatherHead(kh.data, k.data, b * T, T, KVH, kvh, hd, false);
      gatherHead(vhT.data, v.data, b * T, T, KVH, kvh, hd, true);
      be.matmul(P, qh, kh, T, hd, T); // S (T, T) = q k^T
      causalSoftmax(P.data, T, scale);
      be.matmul(oh, P, vhT, T, T, hd); // out (T, hd) = P v
      scatterHead(y.data, oh.data, b * T, T, H, h, hd, false);
    }
  }
  tape.release(qh, kh, vhT, oh);

  tape.record(y, () => {
    const gq = tape.gradOf(q), gk = tape.gradOf(k), gv = tape.gradOf(v);
    const n = T * hd, TT = T * T;
    const [dOh, dOhT, vh, khT, qhT, dP, PT, dST, dqh, dkh, dvh] = [n, n, n, n, n, TT, TT, TT, n, n, n].map((s) => tape.scratch(s)) as [
      CpuBuf, CpuBuf, CpuBuf, CpuBuf, CpuBuf, CpuBuf, CpuBuf, CpuBuf, CpuBuf, CpuBuf, CpuBuf,
    ];
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const P = probs[b * H + h]!, kvh = Math.floor(h / group), dy = y.gradBuf!.data;
        gatherHead(dOh.data, dy, b * T, T, H, h, hd, false);
        gatherHead(dOhT.data, dy, b * T, T, H, h, hd, true);
        gatherHead(vh.data, v.data, b * T, T, KVH, kvh, hd, false);
        gatherHead(khT.data, k.data, b * T, T, KVH, kvh, hd, true);
        gatherHead(qhT.data, q.data, b * T, T, H, h, hd, true);
        be.matmul(dP, dOh, vh, T, hd, T); // dP (T, T) = dO v^T
        softmaxBackward(dP.data, P.data, T, scale); // dP -> dS / sqrt(hd)
        transposeInto(PT.data, P.data, T, T);
        transposeInto(dST.data, dP.data, T, T);
        be.matmul(dvh, PT, dOhT, T, T, hd); // dv (T, hd) = P^T dO
        be.matmul(dqh, dP, khT, T, T, hd); // dq (T, hd) = dS k
        be.matmul(dkh, dST, qhT, T, T, hd); // dk (T, hd) = dS^T q
        if (gq) scatterHead(gq.data, dqh.data, b * T, T, H, h, hd, true);
        if (gk) scatterHead(gk.data, dkh.data, b * T, T, KVH, kvh, hd, true);
        if (gv) scatterHead(gv.data, dvh.data, b * T, T, KVH, kvh, hd, true);
      }
    }
    tape.release(dOh, dOhT, vh, khT, qhT, dP, PT, dST, dqh, dkh, dvh);
  });
  return y;
}

/** dst = head h of rows [row0, row0 + T) of x (rows, nh, hd), as (T, hd) or transposed (hd, T) */
function gatherHead(dst: Float32Array, x: Float32Array, row0: number, T: number, nh: number, h: number, hd: number, transpose: boolean): void {
  for (let t = 0; t < T; t++) {
    const o = ((row0 + t) * nh + h) * hd;
    if (transpose) for (let i = 0; i < hd; i++) dst[i * T + t] = x[o + i]!;
    else for (let i = 0; i < hd; i++) dst[t * hd + i] = x[o + i]!;
  }
}

/** head h of rows [row0, row0 + T) of x (rows, nh, hd) = src (T, hd), or += when add */
function scatterHead(x: Float32Array, src: Float32Array, row0: number, T: number, nh: number, h: number, hd: number, add: boolean): void {
  for (let t = 0; t < T; t++) {
    const o = ((row0 + t) * nh + h) * hd;
    if (add) for (let i = 0; i < hd; i++) x[o + i]! += src[t * hd + i]!;
    else for (let i = 0; i < hd; i++) x[o + i] = src[t * hd + i]!;
  }
}

/** in place on scores (T, T): row t becomes softmax(scale * s[t, 0..t]), zero after t */
function causalSoftmax(s: Float32Array, T: number, scale: number): void {
  for (let t = 0; t < T; t++) {
    const o = t * T;
    let max = -Infinity;
    for (let j = 0; j <= t; j++) max = Math.max(max, s[o + j]! * scale);
    let sum = 0;
    for (let j = 0; j <= t; j++) {
      const e = Math.exp(s[o + j]! * scale - max);
      s[o + j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let j = 0; j <= t; j++) s[o + j]! *= inv;
    s.fill(0, o + t + 1, o + T);
  }
}

/** in place: dP (T, T) becomes scale * P * (dP - rowsum(P * dP)), the gradient of the scaled scores */
function softmaxBackward(dP: Float32Array, P: Float32Array, T: number, scale: number): void {
  for (let t = 0; t < T; t++) {
    const o = t * T;
    let dot = 0;
    for (let j = 0; j <= t; j++) dot += P[o + j]! * dP[o + j]!;
    for (let j = 0; j <= t; j++) dP[o + j] = scale * P[o + j]! * (dP[o + j]! - dot);
    dP.fill(0, o + t + 1, o + T);
  }
}

// ---- elementwise ---------------------------------------------------------------------------

function sameShape(what: string, a: Var, b: Var): void {
  if (a.size !== b.size || a.shape.join() !== b.shape.join()) throw new ShapeError(`${what}: shapes [${a.shape}] and [${b.shape}] differ`);
}

/** y = silu(gate) * up, silu(g) = g sigmoid(g)   (the SwiGLU gate) */
export function siluGate(tape: Tape, gate: Var, up: Var): Var {
  sameShape('siluGate', gate, up);
  const y = tape.result(gate.shape, gate, up);
  const sb = tape.temp(y.size); // sigmoid(gate), for the backward
  const ys = y.data, sig = sb.data, g = gate.data, u = up.data;
  for (let i = 0; i < y.size; i++) {
    const e = 1 + Math.exp(-g[i]!);
    ys[i] = (g[i]! / e) * u[i]!; // as the backend's siluGate
    sig[i] = 1 / e;
  }
  tape.record(y, () => {
    // d up = dy silu(g);  d gate = dy up sigmoid(g) (1 + g (1 - sigmoid(g)))
    tape.accumulate(up, (du) => {
      const d = du.data, dy = y.gradBuf!.data, g = gate.data, sig = sb.data;
      for (let i = 0; i < y.size; i++) d[i] = dy[i]! * g[i]! * sig[i]!;
    });
    tape.accumulate(gate, (dg) => {
      const d = dg.data, dy = y.gradBuf!.data, g = gate.data, u = up.data, sig = sb.data;
      for (let i = 0; i < y.size; i++) {
        const s = sig[i]!;
        d[i] = dy[i]! * u[i]! * s * (1 + g[i]! * (1 - s));
      }
    });
  });
  return y;
}

/** y = a + b (same shape) */
export function add(tape: Tape, a: Var, b: Var): Var {
  sameShape('add', a, b);
  const y = tape.result(a.shape, a, b);
  tape.backend.add(y.buf, a.buf, b.buf, y.size);
  tape.record(y, () => {
    for (const x of [a, b]) tape.accumulate(x, (dx) => tape.backend.copy(dx, 0, y.gradBuf!, 0, y.size));
  });
  return y;
}

/** y = a * b elementwise (same shape) */
export function mul(tape: Tape, a: Var, b: Var): Var {
  sameShape('mul', a, b);
  const y = tape.result(a.shape, a, b);
  tape.backend.mul(y.buf, a.buf, b.buf, y.size);
  tape.record(y, () => {
    const ga = tape.gradOf(a), gb = tape.gradOf(b);
    const dy = y.gradBuf!.data, as = a.data, bs = b.data, da = ga?.data, db = gb?.data;
    for (let i = 0; i < y.size; i++) {
      if (da) da[i]! += dy[i]! * bs[i]!;
      if (db) db[i]! += dy[i]! * as[i]!;
    }
  });
  return y;
}

/** y = c * x for a constant c */
export function scale(tape: Tape, x: Var, c: number): Var {
  const y = tape.result(x.shape, x);
  const xs = x.data, ys = y.data;
  for (let i = 0; i < y.size; i++) ys[i] = c * xs[i]!;
  tape.record(y, () => {
    const g = tape.gradOf(x)!;
    const dx = g.data, dy = y.gradBuf!.data;
    for (let i = 0; i < y.size; i++) dx[i]! += c * dy[i]!;
  });
  return y;
}

/** y (1) = sum of all values of x (accumulated in f64) */
export function sum(tape: Tape, x: Var): Var {
  const y = tape.result([1], x);
  const xs = x.data;
  let s = 0;
  for (let i = 0; i < x.size; i++) s += xs[i]!;
  y.data[0] = s;
  tape.record(y, () => {
    const g = tape.gradOf(x)!;
    const dx = g.data, d = y.gradBuf!.data[0]!;
    for (let i = 0; i < x.size; i++) dx[i]! += d;
  });
  return y;
}

/** mean of all values: a composite, sum then scale */
export function mean(tape: Tape, x: Var): Var {
  return scale(tape, sum(tape, x), 1 / x.size);
}

/**
 * The same values under another shape of equal size: a view sharing x's buffer. Its
 * gradient becomes x's gradient buffer too when x has none yet (no copy); otherwise it
 * is added in.
 */
export function reshape(tape: Tape, x: Var, shape: readonly number[]): Var {
  const y = new Var([...shape], x.buf, tape.gradEnabled && x.requiresGrad);
  tape.record(y, () => {
    if (!x.gradBuf) x.gradBuf = y.gradBuf;
    else tape.backend.add(x.gradBuf, x.gradBuf, y.gradBuf!, x.size);
  });
  return y;
}

// ---- softmax losses -------------------------------------------------------------------------

/** log-sum-exp of row r of x (rows, V), in f64 */
function logSumExp(x: Float32Array, o: number, V: number): number {
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (x[o + i]! > max) max = x[o + i]!;
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(x[o + i]! - max);
  return max + Math.log(s);
}

/** y[n] = x[n] - logsumexp(x[n]) row-wise   x: (N, V); backward dx = dy - softmax(x) * sum(dy) */
export function logSoftmax(tape: Tape, x: Var): Var {
  const V = x.shape[x.shape.length - 1]!, N = x.size / V;
  const y = tape.result(x.shape, x);
  const xs = x.data, ys = y.data;
  for (let n = 0; n < N; n++) {
    const o = n * V, lse = logSumExp(xs, o, V);
    for (let i = 0; i < V; i++) ys[o + i] = xs[o + i]! - lse;
  }
  tape.record(y, () => {
    const g = tape.gradOf(x)!;
    const dx = g.data, dy = y.gradBuf!.data, ys = y.data;
    for (let n = 0; n < N; n++) {
      const o = n * V;
      let s = 0;
      for (let i = 0; i < V; i++) s += dy[o + i]!;
      for (let i = 0; i < V; i++) dx[o + i]! += dy[o + i]! - Math.exp(ys[o + i]!) * s;
    }
  });
  return y;
}

/**
 * Mean cross-entropy of logits (N, V) against targets (N), -1 = ignore:
 *   loss = mean over kept n of (logsumexp(x[n]) - x[n, target[n]])   (0 when none is kept)
 * The forward keeps softmax(x) for the backward: dx[n] = (softmax(x[n]) - onehot(target[n])) / kept.
 */
export function crossEntropy(tape: Tape, logits: Var, targets: Int32Array): Var {
  if (logits.shape.length !== 2) throw new ShapeError(`crossEntropy: logits must be (N, V), got [${logits.shape}]`);
  const [N, V] = logits.shape as [number, number];
  if (targets.length !== N) throw new ShapeError(`crossEntropy: ${targets.length} targets for ${N} rows`);
  for (const t of targets) if (!(t >= -1 && t < V)) throw new RangeError(`crossEntropy: target ${t} outside [-1, ${V})`);
  const y = tape.result([1], logits);
  const pb = tape.temp(N * V); // softmax(logits) of kept rows, for the backward
  const xs = logits.data, p = pb.data;
  let total = 0, kept = 0;
  for (let n = 0; n < N; n++) {
    if (targets[n]! < 0) continue;
    const o = n * V;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (xs[o + i]! > max) max = xs[o + i]!;
    let s = 0;
    for (let i = 0; i < V; i++) s += p[o + i] = Math.exp(xs[o + i]! - max);
    for (let i = 0; i < V; i++) p[o + i]! /= s;
    total += max + Math.log(s) - xs[o + targets[n]!]!; // logsumexp - x[target]
    kept++;
  }
  y.data[0] = kept ? total / kept : 0;
  tape.record(y, () =>
    tape.accumulate(logits, (dx) => {
      const d = dx.data, p = pb.data, c = kept ? y.gradBuf!.data[0]! / kept : 0;
      for (let n = 0; n < N; n++) {
        const t = targets[n]!, o = n * V;
        if (t < 0) d.fill(0, o, o + V);
        else for (let i = 0; i < V; i++) d[o + i] = c * p[o + i]!;
        if (t >= 0) d[o + t]! -= c;
      }
    }),
  );
  return y;
}
