/**
 * The Llama forward pass, read top to bottom like llama2.c's run.c: weights, run state,
 * forward. The decoder layer itself (attention and feed-forward sublayers) is in
 * decoder-layer.ts. Three entry points share one layer loop:
 *   forward(tokens)                      causal prefill / one-token decode with the KV cache
 *   forwardTree(tokens, positions, mask) a batch with an arbitrary mask over cache + batch
 *                                        (tree verification in speculative decoding)
 *   compact(keep)                        keep a chosen subset of the last batch's cache entries
 * Every activation buffer and the KV cache are allocated once, in the constructor.
 */
import type { Backend, Buf } from '../backend/backend.js';
import { numel, type HostTensor, type TensorMap } from '../tensor/dtype.js';
import { packedBytes, storedFormat, type WeightFormat } from '../tensor/weight-format.js';
import type { ReadOptions } from '../io/checkpoint.js';
import * as op from '../tensor/tensor.js';
import { Tensor } from '../tensor/tensor.js';
import { headDim, paramCount, weightShapes, type LlamaConfig } from './config.js';
import {
  attentionSublayer, feedForwardSublayer, LayerScratch, loadAttention, loadFeedForward,
  type DecoderLayerWeights, type LayerActivations,
} from './decoder-layer.js';

export class ContextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContextError';
  }
}

/** A model that its backend cannot hold (checked before anything is allocated). */
export class CapacityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CapacityError';
  }
}

/**
 * The KV cache's default length: the model's max_position_embeddings, up to this many tokens.
 * Real models allow 32K-128K positions, whose cache alone would outgrow a CPU backend's memory.
 */
export const DEFAULT_MAX_SEQ = 8192;
const DEFAULT_MAX_BATCH = 64;
const F32_BYTES = 4;
const GIB = 2 ** 30;

/** Activation views for a batch of T tokens: the layers' and the final ones. */
interface RunState extends LayerActivations {
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
  /** KV cache length; default config.max_position_embeddings, at most DEFAULT_MAX_SEQ */
  maxSeq?: number;
  /**
   * the weight matrices' format in memory (src/tensor/weight-format.ts): 'f32', 'f16',
   * 'bf16' or 'q8_0'; default: as stored (a 16-bit file stays 16-bit). Where the backend does
   * not hold the format (Backend.weightFormats), f32. Norms and biases are always f32.
   */
  weights?: WeightFormat;
  /**
   * delete each tensor from the `weights` map once the backend holds it, so the host's copy
   * can go while the next is uploaded (a 16-bit model then peaks near its file size, not
   * twice it). Only for a map nothing else reads; `readWeight` gives the embedding and LM head back.
   */
  releaseHostWeights?: boolean;
}

/** the tensors held in a weight format: every 2-D matrix (projections, embedding, LM head) */
export const isWeightMatrix = (name: string): boolean => /(_proj|embed_tokens|lm_head)\.weight$/.test(name);

/**
 * For the checkpoint reader (ReadOptions.sixteenBitSink): the 16-bit weight matrices go
 * straight from the file into `backend` (Backend.allocWeights), piece by piece, when it holds
 * them as stored and `format` asks for nothing else; a Llama on that backend adopts them.
 * Undefined when the backend cannot.
 */
export function backendSink(backend: Backend, format?: WeightFormat): ReadOptions['sixteenBitSink'] {
  const alloc = backend.allocWeights?.bind(backend), write = backend.writeWeights?.bind(backend);
  if (!alloc || !write) return undefined;
  return ({ name, dtype, shape }) => {
    const held = dtype === 'F16' ? 'f16' : 'bf16';
    if (!isWeightMatrix(name) || shape.length !== 2 || (format !== undefined && format !== held) || !backend.weightFormats?.includes(held)) return undefined;
    const buf = alloc(held, shape[0]!, shape[1]!);
    const tensor: HostTensor = {
      shape,
      held: { buf, format: held },
      get data(): Float32Array {
        throw new Error(`"${name}" was read straight into the ${backend.name} backend: read it back with Llama.readWeight`);
      },
    };
    return { write: (bytes, byteOffset) => write(buf, bytes, byteOffset), tensor };
  };
}

export class Llama {
  readonly config: LlamaConfig;
  readonly backend: Backend;
  readonly maxBatch: number;
  readonly maxSeq: number;
  /** cache slots in use: the number of tokens the model has seen */
  cacheLength = 0;

  private embed: Tensor; // (V, D)
  private layers: DecoderLayerWeights[] = [];
  private finalNorm: Tensor; // (D)
  private lmHead: Tensor; // (V, D), embed when tied
  /** the format the weight matrices are held in (the embedding's; every matrix of a checkpoint shares it) */
  get weightFormat(): WeightFormat {
    return this.embed.format;
  }
  private scratch: LayerScratch; // the layers' activations for up to maxBatch tokens
  private logitsAll: Tensor; // (maxBatch, V)
  private lastHidden: Tensor; // (1, D)
  private lastLogits: Tensor; // (1, V)
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
    this.maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
    this.maxSeq = opts.maxSeq ?? defaultMaxSeq(config);
    const { hidden_size: D, vocab_size: V } = config, B = this.maxBatch;
    const embedTensor = weights.get('model.embed_tokens.weight');
    const format = opts.weights ?? (embedTensor ? storedFormat(embedTensor) : 'f32');
    checkFits(backend, config, this.maxSeq, B, format);

    const shapes = weightShapes(config);
    const load = (name: string): Tensor => {
      const t = weights.get(name);
      const shape = shapes.get(name)!;
      if (!t) throw new Error(`missing weight "${name}"`);
      if (t.shape.join() !== shape.join()) throw new Error(`weight "${name}" has shape [${t.shape}], expected [${shape}]`);
      const held = isWeightMatrix(name) ? Tensor.weights(backend, t, opts.weights) : Tensor.fromArray(backend, shape, t.data);
      if (opts.releaseHostWeights) weights.delete(name);
      return held;
    };
    this.embed = load('model.embed_tokens.weight');
    for (let l = 0; l < config.num_hidden_layers; l++) {
      const layer = (name: string) => load(`model.layers.${l}.${name}`);
      this.layers.push({ ...loadAttention(backend, config, this.maxSeq, layer), ...loadFeedForward(layer, config) });
    }
    this.finalNorm = load('model.norm.weight');
    this.lmHead = config.tie_word_embeddings ? this.embed : load('lm_head.weight');

    this.scratch = new LayerScratch(backend, config, B);
    this.logitsAll = Tensor.zeros(backend, [B, V]);
    this.lastHidden = Tensor.zeros(backend, [1, D]);
    this.lastLogits = Tensor.zeros(backend, [1, V]);
    this.logitsHost = new Float32Array(B * V);
    this.positions = new Int32Array(B);
    this.ids = new Int32Array(B);
  }

  /** The embedding or the LM head as f32, the values the backend holds (16-bit: exactly the file's). */
  async readWeight(which: 'embed' | 'lmHead'): Promise<HostTensor> {
    const t = which === 'embed' ? this.embed : this.lmHead;
    return { shape: [...t.shape], data: await t.toArray() };
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
      const s = this.run(T, null, 'last');
      const hidden = opts.hiddenOut?.subarray(start * D, (start + T) * D);
      if (hidden && start + T < tokens.length) await this.backend.read(s.xb.buf, hidden);
      else if (hidden) await this.readWithLogits(s.xb.buf, hidden, s.lastLogits.buf, this.logitsHost.subarray(0, this.config.vocab_size));
    }
    const out = this.logitsHost.subarray(0, this.config.vocab_size);
    if (!opts.hiddenOut) await this.backend.read(this.lastLogits.buf, out);
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
    const s = this.run(T, mask, 'all');
    const out = this.logitsHost.subarray(0, T * this.config.vocab_size);
    if (opts.hiddenOut) await this.readWithLogits(s.xb.buf, opts.hiddenOut.subarray(0, T * this.config.hidden_size), s.logits.buf, out);
    else await this.backend.read(s.logits.buf, out);
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
    await this.backend.read(this.lastHidden.buf, out);
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
      const cap = this.maxSeq < this.config.max_position_embeddings ? ` (the KV cache's length, LlamaOptions.maxSeq; the model allows ${this.config.max_position_embeddings})` : '';
      throw new ContextError(
        `context full: ${this.cacheLength} tokens in the cache + ${T} new exceed the context length ${this.maxSeq}${cap}`,
      );
    }
  }

  private state(T: number): RunState {
    let s = this.stateCache.get(T);
    if (!s) {
      const logits = this.logitsAll.view([T, this.config.vocab_size]);
      s = { ...this.scratch.rows(T), logits, lastHidden: this.lastHidden, lastLogits: this.lastLogits };
      this.stateCache.set(T, s);
    }
    return s;
  }

  /** The layer loop for T tokens already in this.ids / this.positions; returns the activations it wrote. */
  private run(T: number, mask: Float32Array | null, logits: 'last' | 'all'): RunState {
    const c = this.config, s = this.state(T), past = this.cacheLength, D = c.hidden_size;
    const ids = this.ids.subarray(0, T), pos = this.positions.subarray(0, T);

    op.embedding(s.x, this.embed, ids); // x = embed[ids]
    for (const L of this.layers) {
      attentionSublayer(c, L, s, T, past, pos, mask); // x += wo @ attn(rope(wq @ norm(x)), rope(wk @ norm(x)), wv @ norm(x))
      feedForwardSublayer(c, L, s); //                  x += down @ (silu(gate @ norm(x)) * (up @ norm(x)))
    }
    op.rmsnorm(s.xb, s.x, this.finalNorm, c.rms_norm_eps); // xb = norm(x): the final hidden states
    op.copy(s.lastHidden, 0, s.xb, (T - 1) * D, D);
    if (logits === 'all') op.matmul(s.logits, s.xb, this.lmHead); // (T, V)
    else op.matmul(s.lastLogits, s.lastHidden, this.lmHead); //       (1, V)
    this.cacheLength += T;
    this.lastBatch = T;
    return s;
  }
}

/** The KV cache's length when LlamaOptions.maxSeq is not given. */
export function defaultMaxSeq(config: LlamaConfig): number {
  return Math.min(config.max_position_embeddings, DEFAULT_MAX_SEQ);
}

/**
 * Bytes a model needs on its backend: weights (matrices in `format`, the rest f32), KV cache
 * and the largest activations (f32).
 */
export function modelBytes(config: LlamaConfig, maxSeq: number, maxBatch = DEFAULT_MAX_BATCH, format: WeightFormat = 'f32'): { weights: number; kvCache: number; activations: number } {
  const hd = headDim(config), H = config.num_attention_heads, KVH = config.num_key_value_heads;
  const kvCache = 2 * config.num_hidden_layers * maxSeq * KVH * hd * F32_BYTES;
  const perRow = 3 * config.hidden_size + 2 * (H + KVH) * hd + 3 * config.intermediate_size + config.vocab_size; // LayerScratch + logits
  let weights = 0;
  for (const [name, shape] of weightShapes(config)) {
    weights += isWeightMatrix(name) && shape.length === 2 ? packedBytes(format, shape[0]!, shape[1]!) : numel(shape) * F32_BYTES;
  }
  return { weights, kvCache, activations: maxBatch * perRow * F32_BYTES };
}

/**
 * Throw a CapacityError naming the limit when `backend` cannot hold the model: all of its f32
 * storage against the backend's total (the CPU backend's wasm32 memory), each weight tensor
 * against its per-buffer limit (WebGPU). Called before anything is allocated.
 */
export function checkFits(backend: Backend, config: LlamaConfig, maxSeq: number, maxBatch = DEFAULT_MAX_BATCH, format: WeightFormat = 'f32'): void {
  const cap = backend.capacity;
  if (!cap) return;
  const gib = (bytes: number) => `${(bytes / GIB).toFixed(2)} GiB`;
  const held = backend.weightFormats?.includes(format) ? format : 'f32';
  if (cap.totalBytes !== undefined) {
    const need = modelBytes(config, maxSeq, maxBatch, held);
    const total = need.weights + need.kvCache + need.activations;
    if (total > cap.totalBytes) {
      throw new CapacityError(
        `the model does not fit the ${backend.name} backend: ${paramCount(config).toLocaleString('en-US')} parameters are ` +
          `${gib(need.weights)} of ${held} weights, + ${gib(need.kvCache)} of KV cache for ${maxSeq} positions ` +
          `+ ${gib(need.activations)} of activations = ${gib(total)}, over the ${gib(cap.totalBytes)} limit (${cap.why}). ` +
          (held === 'q8_0'
            ? 'A shorter maxSeq'
            : `Narrower weights (the weights option: ${backend.weightFormats ? backend.weightFormats.filter((f) => f !== held).join(', ') : 'f32 only on this backend'}), a shorter maxSeq`) +
          `, the WebGPU backend, or CpuBackend({ simd: false }) (plain arrays, no shared limit, slower) can hold more`,
      );
    }
  }
  if (cap.bufferBytes !== undefined) {
    for (const [name, shape] of weightShapes(config)) {
      const bytes = numel(shape) * F32_BYTES;
      if (bytes > cap.bufferBytes) {
        throw new CapacityError(
          `the model does not fit the ${backend.name} backend: weight "${name}" [${shape.join(', ')}] is ${bytes} bytes in f32, ` +
            `over the ${cap.bufferBytes}-byte limit on one buffer (${cap.why})`,
        );
      }
    }
  }
}
