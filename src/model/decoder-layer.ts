/**
 * One Llama decoder layer, one op a line as in llama2.c's run.c. The base model (llama.ts)
 * stacks these; the CTC draft head (src/draft/ctc-head.ts) runs one over the prefix and the
 * attention half alone over its frames. Two residual sublayers, each on a normed input:
 *
 *   attention     x += wo @ attention(rope(wq @ rmsnorm(x)), rope(wk @ rmsnorm(x)), wv @ rmsnorm(x))
 *   feed-forward  x += down @ (silu(gate @ rmsnorm(x)) * (up @ rmsnorm(x)))           (SwiGLU)
 *
 * Each projection adds its bias where the config has one (Qwen2's q, k, v; Llama's
 * attention_bias and mlp_bias), and RoPE rotates by the layer's frequency table, rope_scaling
 * applied (src/backend/rope.ts). Heads are head_dim wide, which need not be hidden / heads.
 *
 * A batch of T rows writes its keys and values to KV cache slots [past, past + T) and attends
 * over slots [0, past + T). The activations are views of buffers allocated once (LayerScratch),
 * so running a layer allocates nothing.
 */
import type { Backend } from '../backend/backend.js';
import { ropeInvFreq } from '../backend/rope.js';
import * as op from '../tensor/tensor.js';
import { Tensor } from '../tensor/tensor.js';
import { attentionBiases, headDim, type LayerConfig } from './config.js';

export interface AttentionWeights {
  attnNorm: Tensor; // (D)
  wq: Tensor; // (H*hd, D)     [out, in], as nn.Linear stores it
  wk: Tensor; // (KVH*hd, D)
  wv: Tensor; // (KVH*hd, D)
  wo: Tensor; // (D, H*hd)
  bq?: Tensor; // (H*hd)       projection biases, when the config has them (Qwen2: q, k, v)
  bk?: Tensor; // (KVH*hd)
  bv?: Tensor; // (KVH*hd)
  bo?: Tensor; // (D)
  invFreq: Float64Array; // (hd/2) rotary inverse frequencies, rope_scaling applied
  kCache: Tensor; // (slots, KVH, hd)
  vCache: Tensor; // (slots, KVH, hd)
}

export interface FeedForwardWeights {
  ffnNorm: Tensor; // (D)
  gate: Tensor; // (F, D)
  up: Tensor; // (F, D)
  down: Tensor; // (D, F)
  bGate?: Tensor; // (F)   biases, when the config has mlp_bias
  bUp?: Tensor; // (F)
  bDown?: Tensor; // (D)
}

export type DecoderLayerWeights = AttentionWeights & FeedForwardWeights;

/** Activation views for a batch of T rows. */
export interface LayerActivations {
  x: Tensor; // (T, D) residual stream
  xb: Tensor; // (T, D) normed input of a sublayer
  q: Tensor; // (T, H, hd)
  k: Tensor; // (T, KVH, hd)
  v: Tensor; // (T, KVH, hd)
  att: Tensor; // (T, H*hd) attention output, the H heads side by side
  proj: Tensor; // (T, D) sublayer output before the residual add
  gate: Tensor; // (T, F)
  up: Tensor; // (T, F)
  hidden: Tensor; // (T, F) silu(gate) * up
}

/**
 * The attention sublayer over the T rows of s.x, in place. positions: each row's RoPE
 * position, or null for no rotary embedding; mask: additive (T, past + T), or null for causal.
 */
export function attentionSublayer(
  c: LayerConfig, L: AttentionWeights, s: LayerActivations, T: number, past: number,
  positions: Int32Array | null, mask: Float32Array | null,
): void {
  const kvRow = c.num_key_value_heads * headDim(c);
  op.rmsnorm(s.xb, s.x, L.attnNorm, c.rms_norm_eps); // xb = rmsnorm(x)
  op.matmul(s.q, s.xb, L.wq); //                      q = wq @ xb   (T, H * hd) seen as (T, H, hd)
  op.matmul(s.k, s.xb, L.wk); //                      k = wk @ xb   (T, KVH * hd)
  op.matmul(s.v, s.xb, L.wv); //                      v = wv @ xb
  if (L.bq) op.addBias(s.q, L.bq); //                 q += bq (and k, v: Qwen2's biases)
  if (L.bk) op.addBias(s.k, L.bk);
  if (L.bv) op.addBias(s.v, L.bv);
  if (positions) {
    op.rope(s.q, positions, L.invFreq);
    op.rope(s.k, positions, L.invFreq);
  }
  op.copy(L.kCache, past * kvRow, s.k, 0, T * kvRow); // cache slots [past, past + T)
  op.copy(L.vCache, past * kvRow, s.v, 0, T * kvRow);
  op.attention(s.att, s.q, L.kCache, L.vCache, past, mask); // softmax(q k^T / sqrt(hd) + mask) v
  op.matmul(s.proj, s.att, L.wo); //                  proj = wo @ att
  if (L.bo) op.addBias(s.proj, L.bo);
  op.add(s.x, s.x, s.proj); //                        x += proj
}

/** The feed-forward (SwiGLU) sublayer over the rows of s.x, in place. */
export function feedForwardSublayer(c: LayerConfig, L: FeedForwardWeights, s: LayerActivations): void {
  op.rmsnorm(s.xb, s.x, L.ffnNorm, c.rms_norm_eps); // xb = rmsnorm(x)
  op.matmul(s.gate, s.xb, L.gate); //                 gate = wgate @ xb   (T, F)
  op.matmul(s.up, s.xb, L.up); //                     up = wup @ xb       (T, F)
  if (L.bGate) op.addBias(s.gate, L.bGate); //        (+ biases with mlp_bias)
  if (L.bUp) op.addBias(s.up, L.bUp);
  op.siluGate(s.hidden, s.gate, s.up); //             hidden = silu(gate) * up
  op.matmul(s.proj, s.hidden, L.down); //             proj = wdown @ hidden   (T, D)
  if (L.bDown) op.addBias(s.proj, L.bDown);
  op.add(s.x, s.x, s.proj); //                        x += proj
}

/**
 * The attention tensors of a layer, by their Hugging Face names under the layer's prefix
 * (`get('self_attn.q_proj.weight')`, and the biases the config has), its rotary frequencies,
 * and an empty KV cache of `slots` rows.
 */
export function loadAttention(backend: Backend, c: LayerConfig, slots: number, get: (name: string) => Tensor): AttentionWeights {
  const KVH = c.num_key_value_heads, hd = headDim(c), bias = attentionBiases(c);
  const w: AttentionWeights = {
    attnNorm: get('input_layernorm.weight'),
    wq: get('self_attn.q_proj.weight'),
    wk: get('self_attn.k_proj.weight'),
    wv: get('self_attn.v_proj.weight'),
    wo: get('self_attn.o_proj.weight'),
    invFreq: ropeInvFreq(hd, c.rope_theta, c.rope_scaling),
    kCache: Tensor.zeros(backend, [slots, KVH, hd]),
    vCache: Tensor.zeros(backend, [slots, KVH, hd]),
  };
  if (bias.qkv) {
    w.bq = get('self_attn.q_proj.bias');
    w.bk = get('self_attn.k_proj.bias');
    w.bv = get('self_attn.v_proj.bias');
  }
  if (bias.o) w.bo = get('self_attn.o_proj.bias');
  return w;
}

/** The feed-forward tensors of a layer, by their Hugging Face names under the layer's prefix. */
export function loadFeedForward(get: (name: string) => Tensor, c?: Pick<LayerConfig, 'mlp_bias'>): FeedForwardWeights {
  const w: FeedForwardWeights = {
    ffnNorm: get('post_attention_layernorm.weight'),
    gate: get('mlp.gate_proj.weight'),
    up: get('mlp.up_proj.weight'),
    down: get('mlp.down_proj.weight'),
  };
  if (c?.mlp_bias) {
    w.bGate = get('mlp.gate_proj.bias');
    w.bUp = get('mlp.up_proj.bias');
    w.bDown = get('mlp.down_proj.bias');
  }
  return w;
}

/** A layer's activation buffers, allocated once for up to maxRows rows, and their views for T rows (made once per T). */
export class LayerScratch {
  private readonly buffers: LayerActivations;
  private readonly views = new Map<number, LayerActivations>();

  constructor(
    backend: Backend,
    private readonly c: LayerConfig,
    readonly maxRows: number,
  ) {
    this.buffers = this.shaped(maxRows, (shape) => Tensor.zeros(backend, shape));
  }

  rows(T: number): LayerActivations {
    if (T > this.maxRows) throw new RangeError(`LayerScratch: ${T} rows exceed the ${this.maxRows} allocated`);
    let s = this.views.get(T);
    if (!s) {
      const b = this.buffers;
      s = this.shaped(T, (shape, name) => b[name].view(shape));
      this.views.set(T, s);
    }
    return s;
  }

  private shaped(T: number, make: (shape: number[], name: keyof LayerActivations) => Tensor): LayerActivations {
    const c = this.c, D = c.hidden_size, F = c.intermediate_size, H = c.num_attention_heads, KVH = c.num_key_value_heads, hd = headDim(c);
    return {
      x: make([T, D], 'x'), xb: make([T, D], 'xb'),
      q: make([T, H, hd], 'q'), k: make([T, KVH, hd], 'k'), v: make([T, KVH, hd], 'v'),
      att: make([T, H * hd], 'att'), proj: make([T, D], 'proj'),
      gate: make([T, F], 'gate'), up: make([T, F], 'up'), hidden: make([T, F], 'hidden'),
    };
  }
}
