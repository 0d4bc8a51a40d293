/**
 * The Llama forward pass, read top to bottom like llama2.c's run.c: weights, run state,
 * forward. Three entry points share one layer loop:
 *   forward(tokens)                      causal prefill / one-token decode with the KV cache
 *   forwardTree(tokens, positions, mask) a batch with an arbitrary mask over cache + batch
 *                                        (tree verification in speculative decoding)
 *   compact(keep)                        keep a chosen subset of the last batch's cache entries
 * Every activation buffer and the KV cache are allocated once, in the constructor.
 */
import type { Backend, Buf } from '../backend/backend.js';
import type { TensorMap } from '../tensor/dtype.js';
import * as op from '../tensor/tensor.js';
import { Tensor } from '../tensor/tensor.js';
import { headDim, weightShapes, type LlamaConfig } from './config.js';

export class ContextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContextError';
  }
}

interface LayerWeights {
  attnNorm: Tensor; // (D)
  wq: Tensor; // (D, D)       [out, in], as nn.Linear stores it
  wk: Tensor; // (KVH*hd, D)
  wv: Tensor; // (KVH*hd, D)
  wo: Tensor; // (D, D)
  ffnNorm: Tensor; // (D)
  gate: Tensor; // (F, D)
  up: Tensor; // (F, D)
  down: Tensor; // (D, F)
  kCache: Tensor; // (maxSeq, KVH, hd)
  vCache: Tensor; // (maxSeq, KVH, hd)
}

/** Activation views for a batch of T tokens over the buffers allocated for maxBatch. */
interface RunState {
  x: Tensor; // (T, D) residual stream
  xb: Tensor; // (T, D) normed input of a sublayer
  q: Tensor; // (T, H, hd)
  k: Tensor; // (T, KVH, hd)
  v: Tensor; // (T, KVH, hd)
  att: Tensor; // (T, H, hd) attention output
  proj: Tensor; // (T, D) sublayer output before the residual add
  gate: Tensor; // (T, F)
  up: Tensor; // (T, F)
  hidden: Tensor; // (T, F) silu(gate) * up
  logits: Tensor; // (T, V)
  lastHidden: Tensor; // (1, D) the last token's normed hidden state
  lastLogits: Tensor; // (1, V)
}

export interface ForwardOptions {
  /**
   * Also return the final hidden states (after the final norm) of every input token,
   * (T, D) row-major, into this array: what a draft head reads. Costs one more readback.
   */
  hiddenOut?: Float32Array;
}

export interface LlamaOptions {
  /** most tokens in one forward (longer causal inputs are split into chunks); default 64 */
  maxBatch?: number;
  /** KV cache length; default config.max_position_embeddings */
  maxSeq?: number;
}

export class Llama {
  readonly config: LlamaConfig;
  readonly backend: Backend;
  readonly maxBatch: number;
  readonly maxSeq: number;
  /** cache slots in use: the number of tokens the model has seen */
  cacheLength = 0;

  private embed: Tensor; // (V, D)
  private layers: LayerWeights[] = [];
  private finalNorm: Tensor; // (D)
  private lmHead: Tensor; // (V, D), embed when tied
  private buffers: Record<keyof RunState, Tensor>;
  private stateCache = new Map<number, RunState>();
  private logitsHost: Float32Array; // (maxBatch, V) host copy returned by forward
  private readSrcs: Buf[] = [];
  private readDsts: Float32Array[] = [];
  private positions: Int32Array;
  private ids: Int32Array;
  private lastBatch = 0;

  constructor(backend: Backend, config: LlamaConfig, weights: TensorMap, opts: LlamaOptions = {}) {
    this.backend = backend;
    this.config = config;
    this.maxBatch = opts.maxBatch ?? 64;
    this.maxSeq = opts.maxSeq ?? config.max_position_embeddings;
    const { hidden_size: D, intermediate_size: F, vocab_size: V, num_attention_heads: H } = config;
    const KVH = config.num_key_value_heads, hd = headDim(config), B = this.maxBatch;

    const shapes = weightShapes(config);
    const load = (name: string): Tensor => {
      const t = weights.get(name);
      const shape = shapes.get(name)!;
      if (!t) throw new Error(`missing weight "${name}"`);
      if (t.shape.join() !== shape.join()) throw new Error(`weight "${name}" has shape [${t.shape}], expected [${shape}]`);
      return Tensor.fromArray(backend, shape, t.data);
    };
    this.embed = load('model.embed_tokens.weight');
    for (let l = 0; l < config.num_hidden_layers; l++) {
      const p = `model.layers.${l}.`;
      this.layers.push({
        attnNorm: load(p + 'input_layernorm.weight'),
        wq: load(p + 'self_attn.q_proj.weight'),
        wk: load(p + 'self_attn.k_proj.weight'),
        wv: load(p + 'self_attn.v_proj.weight'),
        wo: load(p + 'self_attn.o_proj.weight'),
        ffnNorm: load(p + 'post_attention_layernorm.weight'),
        gate: load(p + 'mlp.gate_proj.weight'),
        up: load(p + 'mlp.up_proj.weight'),
        down: load(p + 'mlp.down_proj.weight'),
        kCache: Tensor.zeros(backend, [this.maxSeq, KVH, hd]),
        vCache: Tensor.zeros(backend, [this.maxSeq, KVH, hd]),
      });
    }
    this.finalNorm = load('model.norm.weight');
    this.lmHead = config.tie_word_embeddings ? this.embed : load('lm_head.weight');

    const z = (shape: number[]) => Tensor.zeros(backend, shape);
    this.buffers = {
      x: z([B, D]), xb: z([B, D]), q: z([B, H, hd]), k: z([B, KVH, hd]), v: z([B, KVH, hd]),
      att: z([B, H, hd]), proj: z([B, D]), gate: z([B, F]), up: z([B, F]), hidden: z([B, F]), logits: z([B, V]),
      lastHidden: z([1, D]), lastLogits: z([1, V]),
    };
    this.logitsHost = new Float32Array(B * V);
    this.positions = new Int32Array(B);
    this.ids = new Int32Array(B);
  }

  /** Forget the sequence (the cache contents are simply overwritten later). */
  reset(): void {
    this.cacheLength = 0;
    this.lastBatch = 0;
  }

  /**
   * Causal forward of `tokens` appended after the cache (positions cacheLength, ...).
   * Returns the logits (V) of the last token; the array is reused by the next call.
   */
  async forward(tokens: ArrayLike<number>, opts: ForwardOptions = {}): Promise<Float32Array> {
    if (tokens.length === 0) throw new RangeError('forward: no tokens');
    this.checkRoom(tokens.length);
    const D = this.config.hidden_size;
    this.checkHiddenOut(opts.hiddenOut, tokens.length);
    for (let start = 0; start < tokens.length; start += this.maxBatch) {
      const T = Math.min(this.maxBatch, tokens.length - start);
      for (let t = 0; t < T; t++) {
        this.ids[t] = tokens[start + t]!;
        this.positions[t] = this.cacheLength + t;
      }
      this.run(T, null, 'last');
      const hidden = opts.hiddenOut?.subarray(start * D, (start + T) * D);
      if (hidden && start + T < tokens.length) await this.backend.read(this.buffers.xb.buf, hidden);
      else if (hidden) await this.readWithLogits(this.buffers.xb.buf, hidden, this.buffers.lastLogits.buf, this.logitsHost.subarray(0, this.config.vocab_size));
    }
    const out = this.logitsHost.subarray(0, this.config.vocab_size);
    if (!opts.hiddenOut) await this.backend.read(this.buffers.lastLogits.buf, out);
    return out;
  }

  /**
   * One forward over a batch of T tokens with explicit positions and an additive mask
   * (T, cacheLength + T): row t says which cache slots and which batch tokens token t sees.
   * The batch's keys and values go to slots [cacheLength, cacheLength + T). Returns the
   * logits (T, V) of every token, row-major; the array is reused by the next call.
   */
  async forwardTree(tokens: ArrayLike<number>, positions: ArrayLike<number>, mask: Float32Array, opts: ForwardOptions = {}): Promise<Float32Array> {
    const T = tokens.length;
    if (T === 0) throw new RangeError('forwardTree: no tokens');
    if (T > this.maxBatch) throw new RangeError(`forwardTree: ${T} tokens exceed maxBatch ${this.maxBatch}`);
    if (positions.length !== T) throw new RangeError(`forwardTree: ${positions.length} positions for ${T} tokens`);
    this.checkRoom(T);
    for (let t = 0; t < T; t++) {
      this.ids[t] = tokens[t]!;
      this.positions[t] = positions[t]!;
    }
    this.checkHiddenOut(opts.hiddenOut, T);
    this.run(T, mask, 'all');
    const out = this.logitsHost.subarray(0, T * this.config.vocab_size);
    if (opts.hiddenOut) await this.readWithLogits(this.buffers.xb.buf, opts.hiddenOut.subarray(0, T * this.config.hidden_size), this.buffers.logits.buf, out);
    else await this.backend.read(this.buffers.logits.buf, out);
    return out;
  }

  /**
   * Keep only the last batch's entries at indices `keep` (increasing, relative to the
   * batch), moved to the slots right after the earlier cache: the accepted path of a tree.
   */
  compact(keep: readonly number[]): void {
    const past = this.cacheLength - this.lastBatch;
    for (let i = 0; i < keep.length; i++) {
      if (!Number.isInteger(keep[i]) || keep[i]! < 0 || keep[i]! >= this.lastBatch || (i > 0 && keep[i]! <= keep[i - 1]!)) {
        throw new RangeError(`compact: keep must be increasing indices into the last batch of ${this.lastBatch}, got [${keep}]`);
      }
    }
    const row = this.config.num_key_value_heads * headDim(this.config);
    for (const layer of this.layers) {
      for (let i = 0; i < keep.length; i++) {
        if (keep[i] === i) continue; // already in place
        op.copy(layer.kCache, (past + i) * row, layer.kCache, (past + keep[i]!) * row, row);
        op.copy(layer.vCache, (past + i) * row, layer.vCache, (past + keep[i]!) * row, row);
      }
    }
    this.cacheLength = past + keep.length;
    this.lastBatch = keep.length;
  }

  /** The last token's final hidden state (after the final norm), (D). */
  async lastHiddenState(out = new Float32Array(this.config.hidden_size)): Promise<Float32Array> {
    await this.backend.read(this.buffers.lastHidden.buf, out);
    return out;
  }

  /** hidden states and logits in one wait (one GPU round trip instead of two) */
  private readWithLogits(hiddenBuf: Buf, hidden: Float32Array, logitsBuf: Buf, logits: Float32Array): Promise<void> {
    this.readSrcs[0] = hiddenBuf;
    this.readSrcs[1] = logitsBuf;
    this.readDsts[0] = hidden;
    this.readDsts[1] = logits;
    return this.backend.readMany(this.readSrcs, this.readDsts);
  }

  private checkHiddenOut(h: Float32Array | undefined, T: number): void {
    if (h && h.length < T * this.config.hidden_size) {
      throw new RangeError(`hiddenOut holds ${h.length} values, ${T} tokens x ${this.config.hidden_size} needed`);
    }
  }

  private checkRoom(T: number): void {
    if (this.cacheLength + T > this.maxSeq) {
      throw new ContextError(
        `context full: ${this.cacheLength} tokens in the cache + ${T} new exceed the context length ${this.maxSeq}`,
      );
    }
  }

  private state(T: number): RunState {
    let s = this.stateCache.get(T);
    if (!s) {
      const { hidden_size: D, intermediate_size: F, vocab_size: V, num_attention_heads: H } = this.config;
      const KVH = this.config.num_key_value_heads, hd = headDim(this.config), b = this.buffers;
      s = {
        x: b.x.view([T, D]), xb: b.xb.view([T, D]), q: b.q.view([T, H, hd]), k: b.k.view([T, KVH, hd]),
        v: b.v.view([T, KVH, hd]), att: b.att.view([T, H, hd]), proj: b.proj.view([T, D]),
        gate: b.gate.view([T, F]), up: b.up.view([T, F]), hidden: b.hidden.view([T, F]), logits: b.logits.view([T, V]),
        lastHidden: b.lastHidden, lastLogits: b.lastLogits,
      };
      this.stateCache.set(T, s);
    }
    return s;
  }

  /** The layer loop for T tokens already in this.ids / this.positions. */
  private run(T: number, mask: Float32Array | null, logits: 'last' | 'all'): void {
    const c = this.config, s = this.state(T), past = this.cacheLength;
    const D = c.hidden_size, kvRow = c.num_key_value_heads * headDim(c);
    const ids = this.ids.subarray(0, T), pos = this.positions.subarray(0, T);

    op.embedding(s.x, this.embed, ids); // x = embed[ids]
    for (const L of this.layers) {
      // attention: x += wo @ attn(rope(wq @ norm(x)), rope(wk @ norm(x)), wv @ norm(x))
      op.rmsnorm(s.xb, s.x, L.attnNorm, c.rms_norm_eps);
      op.matmul(s.q.view([T, D]), s.xb, L.wq);
      op.matmul(s.k.view([T, kvRow]), s.xb, L.wk);
      op.matmul(s.v.view([T, kvRow]), s.xb, L.wv);
      op.rope(s.q, pos, c.rope_theta);
      op.rope(s.k, pos, c.rope_theta);
      op.copy(L.kCache, past * kvRow, s.k, 0, T * kvRow); // cache slots [past, past + T)
      op.copy(L.vCache, past * kvRow, s.v, 0, T * kvRow);
      op.attention(s.att, s.q, L.kCache, L.vCache, past, mask);
      op.matmul(s.proj, s.att.view([T, D]), L.wo);
      op.add(s.x, s.x, s.proj);
      // feed-forward: x += down @ (silu(gate @ norm(x)) * (up @ norm(x)))
      op.rmsnorm(s.xb, s.x, L.ffnNorm, c.rms_norm_eps);
      op.matmul(s.gate, s.xb, L.gate);
      op.matmul(s.up, s.xb, L.up);
      op.siluGate(s.hidden, s.gate, s.up);
      op.matmul(s.proj, s.hidden, L.down);
      op.add(s.x, s.x, s.proj);
    }
    op.rmsnorm(s.xb, s.x, this.finalNorm, c.rms_norm_eps);
    op.copy(s.lastHidden, 0, s.xb, (T - 1) * D, D);
    if (logits === 'all') op.matmul(s.logits, s.xb, this.lmHead);
    else op.matmul(s.lastLogits, s.lastHidden, this.lmHead);
    this.cacheLength += T;
    this.lastBatch = T;
  }
}
