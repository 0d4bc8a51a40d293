/**
 * The Llama forward for training, built only from the autograd primitives, so its
 * backward comes for free. It computes exactly the function of the inference forward in
 * src/model/llama.ts (RMSNorm, rotate-half RoPE, grouped-query causal attention, SwiGLU,
 * tied or untied lm_head), over B independent sequences of T tokens at once.
 */
import type { CpuBackend } from '../backend/cpu/cpu.js';
import { randomWeights } from '../io/weights.js';
import { headDim, weightShapes, type LlamaConfig } from '../model/config.js';
import type { TensorMap } from '../tensor/dtype.js';
import { ShapeError } from '../tensor/tensor.js';
import * as ag from './autograd.js';
import { param, zeroGrad, type Tape, type Var } from './autograd.js';

/** One trainable Var per Hugging Face weight name (shapes from weightShapes: [out, in] for linears). */
export class LlamaParams {
  /** name -> Var, in weightShapes order */
  readonly vars = new Map<string, Var>();

  /** copies `weights`, asserting every key and shape (extra keys are an error too) */
  constructor(
    readonly backend: CpuBackend,
    readonly config: LlamaConfig,
    weights: TensorMap,
  ) {
    const shapes = weightShapes(config);
    for (const name of weights.keys()) if (!shapes.has(name)) throw new ShapeError(`LlamaParams: unexpected weight "${name}"`);
    for (const [name, shape] of shapes) {
      const t = weights.get(name);
      if (!t) throw new ShapeError(`LlamaParams: missing weight "${name}"`);
      if (t.shape.join() !== shape.join()) throw new ShapeError(`LlamaParams: "${name}" has shape [${t.shape}], expected [${shape}]`);
      this.vars.set(name, param(backend, shape, t.data));
    }
  }

  /** GPT-2 style init (std 0.02, residual projections scaled by 1/sqrt(2L), norms 1), seeded */
  static random(backend: CpuBackend, config: LlamaConfig, seed: number): LlamaParams {
    return new LlamaParams(backend, config, randomWeights(config, seed));
  }

  get(name: string): Var {
    const v = this.vars.get(name);
    if (!v) throw new Error(`LlamaParams: no weight "${name}"`);
    return v;
  }

  /** a copy of the current values, ready for safetensors or new Llama(...) */
  toTensorMap(): TensorMap {
    const out: TensorMap = new Map();
    for (const [name, v] of this.vars) out.set(name, { shape: [...v.shape], data: Float32Array.from(v.data) });
    return out;
  }

  zeroGrad(): void {
    zeroGrad(this.vars.values());
  }
}

/** inputs and targets of B rows of T + 1 tokens: ids[b, t] = tokens[b, t], targets[b, t] = tokens[b, t + 1] */
export function splitTokens(tokens: Int32Array, B: number, T: number): { ids: Int32Array; targets: Int32Array } {
  if (tokens.length !== B * (T + 1)) throw new ShapeError(`llama: ${tokens.length} tokens, expected B * (T + 1) = ${B * (T + 1)}`);
  const ids = new Int32Array(B * T), targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      // -1 pads the end of a row: ignored as a target; as an input it reads token 0, seen only by later (padded) positions
      ids[b * T + t] = Math.max(0, tokens[b * (T + 1) + t]!);
      targets[b * T + t] = tokens[b * (T + 1) + t + 1]!;
    }
  }
  return { ids, targets };
}

/**
 * The final normed hidden states (B*T, D) of B sequences of T token ids (B*T), each
 * sequence starting at position 0 (what the inference model's lastHiddenState returns).
 */
export function llamaHidden(p: LlamaParams, c: LlamaConfig, ids: Int32Array, B: number, T: number, tape: Tape): Var {
  if (ids.length !== B * T) throw new ShapeError(`llamaHidden: ${ids.length} ids for B=${B}, T=${T}`);
  const H = c.num_attention_heads, KVH = c.num_key_value_heads, hd = headDim(c), D = c.hidden_size, BT = B * T;
  const eps = c.rms_norm_eps, theta = c.rope_theta;
  const pos = new Int32Array(BT);
  for (let i = 0; i < BT; i++) pos[i] = i % T;

  let x = ag.embedding(tape, p.get('model.embed_tokens.weight'), ids); // (BT, D)
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const w = (name: string) => p.get(`model.layers.${l}.${name}.weight`);
    // attention: x += wo @ attn(rope(wq @ norm(x)), rope(wk @ norm(x)), wv @ norm(x))
    let h = ag.rmsnorm(tape, x, w('input_layernorm'), eps);
    const q = ag.rope(tape, ag.reshape(tape, ag.linear(tape, h, w('self_attn.q_proj')), [BT, H, hd]), pos, theta);
    const k = ag.rope(tape, ag.reshape(tape, ag.linear(tape, h, w('self_attn.k_proj')), [BT, KVH, hd]), pos, theta);
    const v = ag.reshape(tape, ag.linear(tape, h, w('self_attn.v_proj')), [BT, KVH, hd]);
    const att = ag.reshape(tape, ag.causalAttention(tape, q, k, v, B, T), [BT, D]);
    x = ag.add(tape, x, ag.linear(tape, att, w('self_attn.o_proj')));
    // feed-forward: x += down @ (silu(gate @ norm(x)) * (up @ norm(x)))
    h = ag.rmsnorm(tape, x, w('post_attention_layernorm'), eps);
    const ff = ag.siluGate(tape, ag.linear(tape, h, w('mlp.gate_proj')), ag.linear(tape, h, w('mlp.up_proj'))); // (BT, F)
    x = ag.add(tape, x, ag.linear(tape, ff, w('mlp.down_proj')));
  }
  return ag.rmsnorm(tape, x, p.get('model.norm.weight'), eps);
}

/** logits (N, V) = hidden (N, D) @ lm_head^T (embed_tokens when tied) */
export function llamaLogits(p: LlamaParams, c: LlamaConfig, hidden: Var, tape: Tape): Var {
  return ag.linear(tape, hidden, p.get(c.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'));
}

/**
 * Mean next-token cross-entropy over B rows of T + 1 tokens (B*(T+1), row-major):
 * row b feeds tokens[b, 0..T-1] and predicts tokens[b, 1..T]; -1 marks padding.
 */
export function llamaLoss(p: LlamaParams, c: LlamaConfig, tokens: Int32Array, B: number, T: number, tape: Tape): Var {
  const { ids, targets } = splitTokens(tokens, B, T);
  const logits = llamaLogits(p, c, llamaHidden(p, c, ids, B, T, tape), tape); // (BT, V)
  return ag.crossEntropy(tape, logits, targets);
}
