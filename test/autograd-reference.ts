/**
 * Plain f64 definitions of the autograd primitives and of the Llama training loss,
 * independent of src/train: the finite-difference checks differentiate these (in f64,
 * so rounding noise stays far below the tolerance) and compare with the f32 autograd.
 */
import { headDim, type LlamaConfig } from '../src/model/config.js';
import { Var, Tape } from '../src/train/autograd.js';

export type F64 = Float64Array;

export function linear(x: F64, w: F64, T: number, K: number, N: number): F64 {
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += x[t * K + k]! * w[n * K + k]!;
    y[t * N + n] = s;
  }
  return y;
}

export function embedding(table: F64, ids: Int32Array, D: number): F64 {
  const y = new Float64Array(ids.length * D);
  ids.forEach((id, t) => y.set(table.subarray(id * D, id * D + D), t * D));
  return y;
}

export function rmsnorm(x: F64, w: F64, D: number, eps: number): F64 {
  const y = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += D) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[o + i]! ** 2;
    const r = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) y[o + i] = x[o + i]! * r * w[i]!;
  }
  return y;
}

export function rope(x: F64, pos: Int32Array, H: number, hd: number, theta: number): F64 {
  const y = new Float64Array(x.length), half = hd / 2;
  for (let t = 0; t < pos.length; t++) for (let h = 0; h < H; h++) for (let i = 0; i < half; i++) {
    const a = pos[t]! * Math.fround(theta ** (-2 * i / hd)), o = (t * H + h) * hd + i;
    y[o] = x[o]! * Math.cos(a) - x[o + half]! * Math.sin(a);
    y[o + half] = x[o + half]! * Math.cos(a) + x[o]! * Math.sin(a);
  }
  return y;
}

/** q: (B*T, H, hd), k, v: (B*T, KVH, hd), causal within each of the B sequences */
export function attention(q: F64, k: F64, v: F64, B: number, T: number, H: number, KVH: number, hd: number): F64 {
  const y = new Float64Array(q.length), g = H / KVH;
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
    const qo = ((b * T + t) * H + h) * hd, kvh = Math.floor(h / g);
    const s: number[] = [];
    for (let j = 0; j <= t; j++) {
      const ko = ((b * T + j) * KVH + kvh) * hd;
      let d = 0;
      for (let i = 0; i < hd; i++) d += q[qo + i]! * k[ko + i]!;
      s.push(d / Math.sqrt(hd));
    }
    const m = Math.max(...s), e = s.map((x) => Math.exp(x - m)), z = e.reduce((a, c) => a + c, 0);
    for (let j = 0; j <= t; j++) {
      const vo = ((b * T + j) * KVH + kvh) * hd;
      for (let i = 0; i < hd; i++) y[qo + i]! += (e[j]! / z) * v[vo + i]!;
    }
  }
  return y;
}

export const siluGate = (g: F64, u: F64): F64 => g.map((x, i) => (x / (1 + Math.exp(-x))) * u[i]!);
export const add = (a: F64, b: F64): F64 => a.map((x, i) => x + b[i]!);
export const mul = (a: F64, b: F64): F64 => a.map((x, i) => x * b[i]!);

export function logSoftmax(x: F64, V: number): F64 {
  const y = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += V) {
    const row = x.subarray(o, o + V), m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, c) => a + Math.exp(c - m), 0));
    for (let i = 0; i < V; i++) y[o + i] = row[i]! - lse;
  }
  return y;
}

export function crossEntropy(logits: F64, targets: Int32Array, V: number): number {
  const lp = logSoftmax(logits, V);
  let s = 0, n = 0;
  targets.forEach((t, r) => {
    if (t >= 0) (s -= lp[r * V + t]!), n++;
  });
  return n ? s / n : 0;
}

/** the Llama next-token loss of tokens (B, T + 1), written out in f64 */
export function llamaLoss(w: Map<string, F64>, c: LlamaConfig, tokens: Int32Array, B: number, T: number): number {
  const D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, H = c.num_attention_heads;
  const KVH = c.num_key_value_heads, hd = headDim(c), KV = KVH * hd, BT = B * T, eps = c.rms_norm_eps;
  const ids = new Int32Array(BT), targets = new Int32Array(BT), pos = new Int32Array(BT);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) {
    ids[b * T + t] = Math.max(0, tokens[b * (T + 1) + t]!);
    targets[b * T + t] = tokens[b * (T + 1) + t + 1]!;
    pos[b * T + t] = t;
  }
  const W = (n: string) => w.get(n)!;
  let x = embedding(W('model.embed_tokens.weight'), ids, D);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    let h = rmsnorm(x, W(p + 'input_layernorm.weight'), D, eps);
    const q = rope(linear(h, W(p + 'self_attn.q_proj.weight'), BT, D, D), pos, H, hd, c.rope_theta);
    const k = rope(linear(h, W(p + 'self_attn.k_proj.weight'), BT, D, KV), pos, KVH, hd, c.rope_theta);
    const v = linear(h, W(p + 'self_attn.v_proj.weight'), BT, D, KV);
    x = add(x, linear(attention(q, k, v, B, T, H, KVH, hd), W(p + 'self_attn.o_proj.weight'), BT, D, D));
    h = rmsnorm(x, W(p + 'post_attention_layernorm.weight'), D, eps);
    const ff = siluGate(linear(h, W(p + 'mlp.gate_proj.weight'), BT, D, F), linear(h, W(p + 'mlp.up_proj.weight'), BT, D, F));
    x = add(x, linear(ff, W(p + 'mlp.down_proj.weight'), BT, F, D));
  }
  const hidden = rmsnorm(x, W('model.norm.weight'), D, eps);
  const head = W(c.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
  return crossEntropy(linear(hidden, head, BT, D, V), targets, V);
}

/** central difference of f at x[i] in f64 (x is restored) */
export function centralDiff(f: () => number, x: F64, i: number, h = 1e-5): number {
  const x0 = x[i]!;
  x[i] = x0 + h;
  const up = f();
  x[i] = x0 - h;
  const down = f();
  x[i] = x0;
  return (up - down) / (2 * h);
}

/** a leaf Var on the tape that wants a gradient (freed with the tape's other buffers) */
export function leaf(tape: Tape, shape: number[], data: ArrayLike<number>): Var {
  const v = new Var(shape, tape.temp(data.length), true);
  v.data.set(data);
  return v;
}
