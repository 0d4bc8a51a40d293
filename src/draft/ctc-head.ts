/**
 * The CTC draft head: from the base model's hidden states of the prefix and the token it just
 * emitted (the root), S output frames over the vocabulary + BLANK; the frames' blank-collapsed
 * paths are the drafts, of any length up to S. Read top to bottom: the drafter (run state,
 * forward, candidates), then its config and weights. Its training forward (autograd) is
 * ctcHeadLogits in src/train/train-drafter.ts and computes exactly the same function.
 *
 *   input     hidden (n, D): the base model's final normed hidden states of the prefix
 *   layer     one Llama decoder layer over the prefix (src/model/decoder-layer.ts: RMSNorm,
 *             causal attention with RoPE at the rows' absolute positions, SwiGLU), with its
 *             own KV cache
 *   z         = layer output of the LAST row + root_proj @ embed[root]
 *             The root (the token the base model just emitted from that last row, not yet
 *             in any cache) is the token the drafted frames follow. The last hidden state
 *             only *predicted* it (a distribution); giving the head the token actually
 *             emitted (through the base's frozen embedding table, then a trained D x D
 *             projection that sets its scale against the residual stream) tells the
 *             frames what they continue, as EAGLE's token input does.
 *   frames    f[s] = z + slots[s], s < S; then f += attention(rmsnorm(f)) over the S frames,
 *             every frame attending to every frame (no mask, no RoPE: the slot embeddings
 *             carry the order), so the frames are correlated; then a final RMSNorm.
 *             No feed-forward block after it: in an ablation one there barely lowered the
 *             validation loss and got no more draft tokens accepted, for about a third more
 *             drafting work.
 *   logits    (S, V + 1) = frames @ [lm_head ; blank_row]^T: the base model's FROZEN LM head
 *             (the tied embedding) plus ONE trained row for BLANK, id V (never a real token)
 *   drafts    'beam': CTC prefix beam search over the frames (src/decode/ctc-beam.ts), the
 *             top-k distinct collapsed drafts by total probability; 'best-path': the argmax
 *             of each frame, collapsed (src/decode/ctc-best-path.ts), one draft
 *
 * Why the CPU backend: the head is tiny. A proposal is about 1.5 million multiply-adds at
 * D = 128, V = 1024 (the S x (V + 1) logits are most of it), less work than one GPU dispatch
 * and readback cost, and the candidates are searched on the host anyway. The KV cache and
 * every activation buffer are allocated once, in the constructor: a step allocates no buffers.
 */
import type { Backend } from '../backend/backend.js';
import { CpuBackend, reference, type CpuBuf } from '../backend/cpu/cpu.js';
import { FormatError } from '../io/errors.js';
import { decoderLayerShapes, type LlamaConfig } from '../model/config.js';
import {
  attentionSublayer, feedForwardSublayer, LayerScratch, loadAttention, loadFeedForward,
  type AttentionWeights, type DecoderLayerWeights,
} from '../model/decoder-layer.js';
import { numel, type TensorMap } from '../tensor/dtype.js';
import * as op from '../tensor/tensor.js';
import { Tensor } from '../tensor/tensor.js';
import { CtcBeamSearch } from '../decode/ctc-beam.js';
import { ctcCollapse } from '../decode/ctc-best-path.js';
import { argmaxRow } from '../util/numeric.js';
import { Rng } from '../util/random.js';
import type { DraftCandidate, Drafter } from './drafter.js';
import { checkHeadWeights, positiveInt, positiveNum, type FrozenBase } from './head-io.js';

// ---- the drafter -------------------------------------------------------------------------

export interface CtcDraftOptions {
  /** 'beam': CTC prefix beam search, top-k distinct drafts by total probability (default); 'best-path': argmax per frame, one draft */
  candidates?: 'beam' | 'best-path';
  /**
   * Merge repeats and drop blanks (default for a CTC-trained head); false: argmax per frame,
   * blanks dropped, repeats KEPT, one draft (the no-collapse ablation; default for loss 'ce')
   */
  collapse?: boolean;
  beamWidth?: number; // prefixes kept per frame, default 8
  topK?: number; // drafts returned by the beam search, default 4
  tokensPerFrame?: number; // classes expanded per frame by the beam search, default 8
  /**
   * Token ids the frames may emit (a draft vocabulary, as in FR-Spec): the frames are
   * projected onto these rows of the LM head (+ BLANK) instead of all V, and normalised over
   * them. Drafts then never hold other tokens; verification is unchanged, so output is too.
   * Default: the whole vocabulary (the method as trained).
   */
  shortlist?: readonly number[];
  /** rows per layer pass when pushing the prefix (default 64) */
  maxBatch?: number;
}

/** One proposal's frames, as the inspection hook CtcHeadDrafter.onFrames hands them out. */
export interface CtcFrames {
  /** the token the frames follow */
  root: number;
  /** S */
  frames: number;
  /** C: V + 1, or the shortlist's size + 1 */
  classes: number;
  /** (S, C) row-major log-probabilities, each frame normalised; a copy the receiver keeps */
  logProbs: Float32Array;
  /** the BLANK class: C - 1 */
  blankClass: number;
  /** class -> token id with a shortlist (null: class i is token i) */
  classToken: Int32Array | null;
}

export class CtcHeadDrafter implements Drafter {
  readonly name: string;
  readonly config: CtcHeadConfig;
  readonly backend: Backend;
  readonly blank: number; // = vocab_size
  /** rows in the head's cache (= tokens in the base cache) */
  cacheLength = 0;
  /**
   * Inspection (visualisations, tests): called at every proposal with a copy of its frames,
   * before the candidates are searched. A listener rather than a "last frames" field because
   * a consumer of TextModel.stream reads a step's event after the generation may already have
   * proposed the next step. null (the default) copies nothing: the token loop allocates nothing.
   */
  onFrames: ((frames: CtcFrames) => void) | null = null;

  private readonly layer: DecoderLayerWeights; // over the prefix, cache of max_position_embeddings slots
  private readonly frameBlock: AttentionWeights; // over the S frames, cache of S slots
  private readonly rootProj: Tensor; // (D, D)
  private readonly slots: Tensor; // (S, D)
  private readonly norm: Tensor; // (D)
  private readonly embed: Tensor; // (V, D) frozen base embedding
  private readonly headExt: Tensor; // (C, D) frozen base LM head rows (all V, or the shortlist's) + trained blank row
  private readonly maxBatch: number;
  private readonly scratch: LayerScratch; // for max(maxBatch, S) rows
  private readonly last: Tensor; // (1, D) layer output of the last cached row
  private readonly rootEmb: Tensor; // (1, D)
  private readonly z: Tensor; // (1, D)
  private readonly frameOut: Tensor; // (S, D)
  private readonly logits: Tensor; // (S, C)
  private readonly hostLogits: Float32Array; // (S, C) host copy of the logits; frameLogProbs normalises it in place
  private readonly frameLse: Float64Array; // (S) log-sum-exp of each frame's logits
  private readonly beamSearch = new CtcBeamSearch(); // keeps its scratch between steps
  private readonly frameIds: Int32Array; // (S) argmax per frame
  private readonly frameMask: Float32Array; // (S, S) zeros: every frame sees every frame
  private readonly positions: Int32Array; // (maxBatch)
  private readonly rootId = new Int32Array(1);
  private readonly opts: Required<Pick<CtcDraftOptions, 'candidates' | 'collapse' | 'beamWidth' | 'topK' | 'tokensPerFrame'>>;
  private readonly classes: number; // C = frame outputs: V (or the shortlist's size) + BLANK, the last
  private readonly classToken: Int32Array | null; // class -> token id with a shortlist

  /** `backend`: where the head runs (default a CPU backend of its own; see the header for why) */
  constructor(config: CtcHeadConfig, weights: TensorMap, base: FrozenBase, opts: CtcDraftOptions = {}, backend: Backend = new CpuBackend()) {
    const c = (this.config = checkCtcHeadConfig(config));
    checkHeadWeights(ctcHeadShapes(c), weights, 'ctc head');
    const { hidden_size: D, vocab_size: V, frames: S } = c;
    for (const t of [base.embed, base.lmHead]) {
      if (t.shape.join() !== [V, D].join()) throw new FormatError('ctc head', `base tables must be [${V}, ${D}], got [${t.shape}]`);
    }
    this.backend = backend;
    this.blank = V;
    this.maxBatch = opts.maxBatch ?? 64;
    const collapse = opts.collapse ?? c.loss === 'ctc';
    const candidates = opts.candidates ?? 'beam';
    this.opts = { candidates, collapse, beamWidth: opts.beamWidth ?? 8, topK: opts.topK ?? 4, tokensPerFrame: opts.tokensPerFrame ?? 8 };
    const list = opts.shortlist;
    if (list) {
      const seen = new Set<number>();
      for (const id of list) {
        if (!Number.isInteger(id) || id < 0 || id >= V || seen.has(id)) throw new RangeError(`ctc head shortlist: ${id} is not a distinct token id in [0, ${V})`);
        seen.add(id);
      }
      if (list.length === 0) throw new RangeError('ctc head shortlist: empty');
    }
    this.classToken = list ? Int32Array.from(list) : null;
    this.classes = (list ? list.length : V) + 1;
    this.name = `ctc(S=${S}, L=${c.draft_len}, ${c.loss}, ${collapse ? candidates : 'no-collapse'}${list ? `, ${list.length}-token shortlist` : ''})`;

    const w = (name: string): Tensor => Tensor.fromArray(backend, weights.get(name)!.shape, weights.get(name)!.data);
    const layer = (name: string) => w(`ctc.layer.${name}`), frames = (name: string) => w(`ctc.frames.${name}`);
    this.layer = { ...loadAttention(backend, c, c.max_position_embeddings, layer), ...loadFeedForward(layer) };
    this.frameBlock = loadAttention(backend, c, S, frames);
    this.rootProj = w('ctc.root_proj.weight');
    this.slots = w('ctc.slots');
    this.norm = w('ctc.norm.weight');
    this.embed = Tensor.fromArray(backend, [V, D], base.embed.data);
    const C = this.classes, ext = new Float32Array(C * D);
    if (this.classToken) this.classToken.forEach((id, i) => ext.set(base.lmHead.data.subarray(id * D, (id + 1) * D), i * D));
    else ext.set(base.lmHead.data);
    ext.set(weights.get('ctc.blank_row')!.data, (C - 1) * D);
    this.headExt = Tensor.fromArray(backend, [C, D], ext);

    this.scratch = new LayerScratch(backend, c, Math.max(this.maxBatch, S));
    const z = (shape: number[]) => Tensor.zeros(backend, shape);
    this.last = z([1, D]);
    this.rootEmb = z([1, D]);
    this.z = z([1, D]);
    this.frameOut = z([S, D]);
    this.logits = z([S, C]);
    this.hostLogits = new Float32Array(S * C);
    this.frameLse = new Float64Array(S);
    this.frameIds = new Int32Array(S);
    this.frameMask = new Float32Array(S * S);
    this.positions = new Int32Array(this.maxBatch);
  }

  begin(prompt: readonly number[], hidden: Float32Array): void {
    this.cacheLength = 0;
    this.push(prompt.length, hidden);
  }

  accept(tokens: readonly number[], hidden: Float32Array): void {
    this.push(tokens.length, hidden);
  }

  propose(root: number, maxLen: number): DraftCandidate[] | Promise<DraftCandidate[]> {
    if (maxLen <= 0) return [];
    const frames = this.frameLogits(root);
    // on the CPU the frames are ready at once; another backend's come back through a readback
    return frames instanceof Promise ? frames.then(() => this.searchFrames(root, maxLen)) : this.searchFrames(root, maxLen);
  }

  /** hand the frames to onFrames when someone listens, then read the drafts off them */
  private searchFrames(root: number, maxLen: number): DraftCandidate[] {
    if (this.onFrames) this.onFrames(this.framesCopy(root));
    return this.candidates(maxLen);
  }

  /** the frames now in this.hostLogits (logits) as normalised log-probabilities, copied */
  private framesCopy(root: number): CtcFrames {
    const S = this.config.frames, C = this.classes, logProbs = new Float32Array(S * C);
    for (let t = 0; t < S; t++) {
      for (let i = t * C; i < (t + 1) * C; i++) logProbs[i] = this.hostLogits[i]! - this.frameLse[t]!;
    }
    return { root, frames: S, classes: C, logProbs, blankClass: C - 1, classToken: this.classToken && this.classToken.slice() };
  }

  /**
   * The S frames' log-probabilities (S, C) after `root`, row-major: C = V + 1 classes, BLANK
   * the last (id V); with a shortlist, C = its size + 1, class i being token shortlist[i].
   * The array is reused by the next call.
   */
  async frameLogProbs(root: number): Promise<Float32Array> {
    const out = await this.frameLogits(root), C = this.classes;
    for (let t = 0; t < this.config.frames; t++) {
      for (let i = t * C; i < (t + 1) * C; i++) out[i] = out[i]! - this.frameLse[t]!;
    }
    return out;
  }

  /**
   * The S frames' logits (S, C), into the array frameLogProbs returns, and each frame's
   * log-sum-exp into this.frameLse (in wasm: one vector exp pass over the logits). Drafting
   * reads these directly instead of normalising every entry.
   */
  private frameLogits(root: number): Float32Array | Promise<Float32Array> {
    const c = this.config, { hidden_size: D, frames: S, vocab_size: V } = c;
    if (this.cacheLength === 0) throw new Error('CtcHeadDrafter: propose before begin');
    if (!(Number.isInteger(root) && root >= 0 && root < V)) throw new RangeError(`CtcHeadDrafter: root ${root} outside [0, ${V})`);
    this.rootId[0] = root;
    op.embedding(this.rootEmb, this.embed, this.rootId); // e = embed[root]
    op.matmul(this.z, this.rootEmb, this.rootProj); // z = root_proj @ e
    op.add(this.z, this.z, this.last); // z += layer(prefix)[last]
    const s = this.scratch.rows(S);
    for (let f = 0; f < S; f++) op.copy(s.x, f * D, this.z, 0, D); // frames[f] = z
    op.add(s.x, s.x, this.slots); //          + slots[f]
    attentionSublayer(c, this.frameBlock, s, S, 0, null, this.frameMask); // f += attention(rmsnorm(f)), all frames, no RoPE
    op.rmsnorm(this.frameOut, s.x, this.norm, c.rms_norm_eps);
    op.matmul(this.logits, this.frameOut, this.headExt); // (S, C)
    const out = this.hostLogits;
    if (this.backend instanceof CpuBackend) {
      out.set((this.logits.buf as CpuBuf).data.subarray(0, out.length)); // the CPU backend's read, done synchronously
      this.backend.logSumExpRows(this.logits.buf, S, this.classes, this.frameLse);
      return this.checkedFrames();
    }
    return this.backend.read(this.logits.buf, out).then(() => {
      for (let t = 0; t < S; t++) this.frameLse[t] = reference.logSumExp(out, t * this.classes, this.classes);
      return this.checkedFrames();
    });
  }

  private checkedFrames(): Float32Array {
    for (let t = 0; t < this.config.frames; t++) {
      if (!Number.isFinite(this.frameLse[t]!)) throw new Error(`${this.name}: frame ${t} has non-finite logits (NaN or infinite weights?)`);
    }
    return this.hostLogits;
  }

  /** push n rows of base hidden states through the layer (its KV cache), keeping the last output */
  private push(n: number, hidden: Float32Array): void {
    const D = this.config.hidden_size;
    if (n <= 0) throw new RangeError('CtcHeadDrafter: no rows to push');
    if (hidden.length < n * D) throw new RangeError(`CtcHeadDrafter: hidden holds ${hidden.length} values, ${n} rows x ${D} needed`);
    if (this.cacheLength + n > this.config.max_position_embeddings) {
      throw new RangeError(`CtcHeadDrafter: ${this.cacheLength} + ${n} rows exceed the context of ${this.config.max_position_embeddings}`);
    }
    for (let start = 0; start < n; start += this.maxBatch) {
      const T = Math.min(this.maxBatch, n - start), s = this.scratch.rows(T);
      this.backend.write(s.x.buf, hidden.subarray(start * D, (start + T) * D));
      for (let t = 0; t < T; t++) this.positions[t] = this.cacheLength + t;
      attentionSublayer(this.config, this.layer, s, T, this.cacheLength, this.positions.subarray(0, T), null); // causal
      feedForwardSublayer(this.config, this.layer, s);
      op.copy(this.last, 0, s.x, (T - 1) * D, D);
      this.cacheLength += T;
    }
  }

  /** candidate drafts from the frame logits in this.hostLogits: real tokens only, at most maxLen each, distinct, best first */
  private candidates(maxLen: number): DraftCandidate[] {
    const { frames: S } = this.config, C = this.classes, blankC = C - 1, lp = this.hostLogits, ids = this.frameIds;
    const toTokens = (cls: number[]): number[] => (this.classToken ? cls.map((c) => this.classToken![c]!) : cls); // after BLANK is gone
    if (this.opts.collapse && this.opts.candidates === 'beam') {
      const { beamWidth, topK, tokensPerFrame } = this.opts;
      const found = this.beamSearch.search(lp, S, C, blankC, { beamWidth, topK, maxLen, tokensPerFrame, frameLogNorm: this.frameLse });
      return distinct(found.map((f) => ({ tokens: toTokens(f.tokens), score: f.logProb })), maxLen, this.blank);
    }
    let score = 0; // log-probability of the argmax path: sum over frames of logit - logsumexp
    for (let t = 0; t < S; t++) {
      ids[t] = argmaxRow(lp, t * C, C);
      score += lp[t * C + ids[t]!]! - this.frameLse[t]!;
    }
    // collapse: merge repeats, drop blanks (best path); no collapse: drop blanks, keep repeats
    const tokens = toTokens(this.opts.collapse ? ctcCollapse(ids, blankC) : Array.from(ids).filter((id) => id !== blankC));
    return distinct([{ tokens, score }], maxLen, this.blank);
  }
}

/** truncate to maxLen, drop empty drafts and any BLANK, keep the best-scored copy of each draft, best first */
export function distinct(cands: DraftCandidate[], maxLen: number, blank: number): DraftCandidate[] {
  const seen = new Map<string, DraftCandidate>();
  for (const c of cands) {
    const tokens = c.tokens.filter((t) => t !== blank).slice(0, maxLen);
    if (tokens.length === 0) continue;
    const key = tokens.join(',');
    const prev = seen.get(key);
    if (!prev || c.score > prev.score) seen.set(key, { tokens, score: c.score });
  }
  return [...seen.values()].sort((a, b) => b.score - a.score);
}

// ---- config ------------------------------------------------------------------------------

export interface CtcHeadConfig {
  kind: 'ctc';
  // copied from the base model: the head works in its residual width and vocabulary
  hidden_size: number; // D
  num_attention_heads: number; // H
  num_key_value_heads: number; // KVH
  intermediate_size: number; // F, of the layer's SwiGLU
  vocab_size: number; // V; BLANK is id V
  max_position_embeddings: number; // longest prefix (the base context)
  rope_theta: number;
  rms_norm_eps: number;
  // the head's own
  frames: number; // S output frames
  draft_len: number; // L target tokens per training example (S >= 2L leaves room for blanks between repeats)
  /** what it was trained with: 'ctc' (the method) or 'ce' (per-slot cross-entropy, the ablation) */
  loss: 'ctc' | 'ce';
}

export const CTC_DEFAULTS = { frames: 8, draftLen: 4 };

export function ctcHeadConfig(base: LlamaConfig, o: { frames?: number; draftLen?: number; loss?: 'ctc' | 'ce' } = {}): CtcHeadConfig {
  return checkCtcHeadConfig({
    kind: 'ctc',
    hidden_size: base.hidden_size, num_attention_heads: base.num_attention_heads, num_key_value_heads: base.num_key_value_heads,
    intermediate_size: base.intermediate_size, vocab_size: base.vocab_size, max_position_embeddings: base.max_position_embeddings,
    rope_theta: base.rope_theta, rms_norm_eps: base.rms_norm_eps,
    frames: o.frames ?? CTC_DEFAULTS.frames, draft_len: o.draftLen ?? CTC_DEFAULTS.draftLen, loss: o.loss ?? 'ctc',
  });
}

/** Validate a parsed config.json of a CTC head (every field, named in the error). */
export function checkCtcHeadConfig(raw: unknown, source = 'ctc head config'): CtcHeadConfig {
  if (raw === null || typeof raw !== 'object') throw new FormatError(source, 'expected a JSON object');
  const o = raw as Record<string, unknown>;
  if (o.kind !== 'ctc') throw new FormatError(source, `field "kind" must be "ctc", got ${JSON.stringify(o.kind)}`);
  const c: CtcHeadConfig = {
    kind: 'ctc',
    hidden_size: positiveInt(o, 'hidden_size', source),
    num_attention_heads: positiveInt(o, 'num_attention_heads', source),
    num_key_value_heads: positiveInt(o, 'num_key_value_heads', source),
    intermediate_size: positiveInt(o, 'intermediate_size', source),
    vocab_size: positiveInt(o, 'vocab_size', source),
    max_position_embeddings: positiveInt(o, 'max_position_embeddings', source),
    rope_theta: positiveNum(o, 'rope_theta', source),
    rms_norm_eps: positiveNum(o, 'rms_norm_eps', source),
    frames: positiveInt(o, 'frames', source),
    draft_len: positiveInt(o, 'draft_len', source),
    loss: o.loss === 'ce' ? 'ce' : o.loss === 'ctc' ? 'ctc' : fail(source, `field "loss" must be "ctc" or "ce", got ${JSON.stringify(o.loss)}`),
  };
  const hd = c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(hd) || hd % 2 || c.num_attention_heads % c.num_key_value_heads) {
    fail(source, `hidden_size ${c.hidden_size}, ${c.num_attention_heads} heads, ${c.num_key_value_heads} kv heads: need an even head_dim and heads % kv heads == 0`);
  }
  if (c.frames < 2 * c.draft_len) fail(source, `frames (${c.frames}) must be >= 2 * draft_len (${2 * c.draft_len}): room for a blank between repeated tokens`);
  return c;
}

function fail(source: string, problem: string): never {
  throw new FormatError(source, problem);
}

// ---- weights -----------------------------------------------------------------------------

/**
 * Every trained tensor of the head: name -> shape (D hidden, F intermediate, KV = KVH * hd).
 *   ctc.layer.input_layernorm.weight (D)           ctc.frames.input_layernorm.weight (D)
 *   ctc.layer.self_attn.q_proj.weight (D, D)       ctc.frames.self_attn.q_proj.weight (D, D)
 *   ctc.layer.self_attn.k_proj.weight (KV, D)      ctc.frames.self_attn.k_proj.weight (KV, D)
 *   ctc.layer.self_attn.v_proj.weight (KV, D)      ctc.frames.self_attn.v_proj.weight (KV, D)
 *   ctc.layer.self_attn.o_proj.weight (D, D)       ctc.frames.self_attn.o_proj.weight (D, D)
 *   ctc.layer.post_attention_layernorm.weight (D)
 *   ctc.layer.mlp.gate_proj.weight (F, D)
 *   ctc.layer.mlp.up_proj.weight (F, D)
 *   ctc.layer.mlp.down_proj.weight (D, F)
 *   ctc.root_proj.weight (D, D)   ctc.slots (S, D)   ctc.norm.weight (D)   ctc.blank_row (1, D)
 */
export function ctcHeadShapes(c: CtcHeadConfig): Map<string, number[]> {
  const D = c.hidden_size, m = new Map<string, number[]>();
  for (const [n, s] of decoderLayerShapes(c)) m.set(`ctc.layer.${n}`, s);
  for (const [n, s] of decoderLayerShapes(c, false)) m.set(`ctc.frames.${n}`, s);
  m.set('ctc.root_proj.weight', [D, D]);
  m.set('ctc.slots', [c.frames, D]);
  m.set('ctc.norm.weight', [D]);
  m.set('ctc.blank_row', [1, D]);
  return m;
}

/**
 * Seeded initial weights: matrices N(0, 0.02), the residual projections (o_proj, down_proj)
 * scaled by 1/sqrt(4) as for two layers, norms 1, slots N(0, 0.02) so frames start apart,
 * and the BLANK row zero (BLANK starts as likely as an average token).
 */
export function randomCtcHeadWeights(c: CtcHeadConfig, seed: number): TensorMap {
  const rng = new Rng(seed), out: TensorMap = new Map();
  for (const [name, shape] of ctcHeadShapes(c)) {
    const data = new Float32Array(numel(shape));
    if (name.endsWith('norm.weight')) data.fill(1);
    else if (name !== 'ctc.blank_row') {
      const std = /o_proj|down_proj/.test(name) ? 0.01 : 0.02;
      for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
    }
    out.set(name, { shape, data });
  }
  return out;
}
