/**
 * llama2.c's legacy (version 0) checkpoint, the `.bin` file that run.c reads.
 *
 *   header: 7 little-endian int32
 *     dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *     (vocab_size < 0 means the classifier is NOT shared: a separate wcls follows)
 *   then f32 arrays, in this order, each matrix an nn.Linear weight (out, in) row-major,
 *   i.e. exactly the Hugging Face layout:
 *     token_embedding_table (vocab, dim)                      model.embed_tokens
 *     rms_att_weight  (layer, dim)                            input_layernorm
 *     wq  (layer, n_heads*head_size, dim)    [rows permuted]  self_attn.q_proj
 *     wk  (layer, n_kv_heads*head_size, dim) [rows permuted]  self_attn.k_proj
 *     wv  (layer, n_kv_heads*head_size, dim)                  self_attn.v_proj
 *     wo  (layer, dim, n_heads*head_size)                     self_attn.o_proj
 *     rms_ffn_weight (layer, dim)                             post_attention_layernorm
 *     w1  (layer, hidden_dim, dim)                            mlp.gate_proj
 *     w2  (layer, dim, hidden_dim)                            mlp.down_proj
 *     w3  (layer, hidden_dim, dim)                            mlp.up_proj
 *     rms_final_weight (dim)                                  model.norm
 *     freq_cis_real (seq_len, head_size/2)   legacy RoPE table: cos, skipped on read
 *     freq_cis_imag (seq_len, head_size/2)   legacy RoPE table: sin, skipped on read
 *     wcls (vocab, dim), only if vocab_size < 0               lm_head
 *
 * run.c hard-codes rope_theta = 10000 and rms_norm_eps = 1e-5, so the file has no field
 * for them; a config with other values cannot be written.
 *
 * Rotary layout. Hugging Face's rotate_half rotates the pair (i, i + hd/2) of each head;
 * run.c rotates adjacent pairs (2i, 2i+1), both with frequency theta^(-2i/hd). The two
 * agree once the rows of wq and wk are permuted within each head, which llama2.c's
 * export.py does (permute_reverse) when converting HF -> llama2.c:
 *     llama2c_row(h*hd + 2i)     = hf_row(h*hd + i)
 *     llama2c_row(h*hd + 2i + 1) = hf_row(h*hd + i + hd/2)        for i in [0, hd/2)
 * so that q_l2c = P q_hf and rope_interleaved(P q) = P rope_rotate_half(q); attention
 * scores q.k are unchanged because q and k are permuted alike. Reading undoes P (per query
 * head for wq, per kv head for wk); writing applies it. No other tensor is permuted.
 */
import { attentionBiases, ConfigError, headDim, parseConfig, type LlamaConfig } from '../model/config.js';
import { numel, type TensorMap } from '../tensor/dtype.js';
import { describeNonFinite, firstNonFinite, readF32, writeF32 } from './bytes.js';
import { FormatError } from './errors.js';
import { checkWeights } from './weights.js';

const HEADER_FIELDS = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'] as const;
const HEADER_BYTES = HEADER_FIELDS.length * 4;
/** 0x616b3432 ("ak42" in hex): the first u32 of llama2.c's versioned (v1/v2) exports, struct.pack("I", 0x616b3432) */
const VERSIONED_MAGIC = 0x616b3432;
/** run.c hard-codes these */
const ROPE_THETA = 10000;
const RMS_NORM_EPS = 1e-5;

/** llama2c_row(2i) = hf_row(i), llama2c_row(2i+1) = hf_row(i + hd/2), within each head. */
export function hfToLlama2cRows(w: Float32Array, heads: number, headSize: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headSize / 2;
  for (let h = 0; h < heads; h++) {
    const base = h * headSize;
    for (let i = 0; i < half; i++) {
      out.set(w.subarray((base + i) * cols, (base + i + 1) * cols), (base + 2 * i) * cols);
      out.set(w.subarray((base + i + half) * cols, (base + i + half + 1) * cols), (base + 2 * i + 1) * cols);
    }
  }
  return out;
}

/** The inverse of hfToLlama2cRows: hf_row(i) = llama2c_row(2i), hf_row(i + hd/2) = llama2c_row(2i+1). */
export function llama2cToHfRows(w: Float32Array, heads: number, headSize: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headSize / 2;
  for (let h = 0; h < heads; h++) {
    const base = h * headSize;
    for (let i = 0; i < half; i++) {
      out.set(w.subarray((base + 2 * i) * cols, (base + 2 * i + 1) * cols), (base + i) * cols);
      out.set(w.subarray((base + 2 * i + 1) * cols, (base + 2 * i + 2) * cols), (base + i + half) * cols);
    }
  }
  return out;
}

/** One f32 array of the file, in file order. `hf` is null for the legacy RoPE tables. */
interface Segment {
  field: string; // llama2.c name, for messages
  hf: string | null;
  shape: number[];
  rotaryHeads?: number; // rows are permuted per head (wq: n_heads, wk: n_kv_heads)
}

function fileLayout(c: LlamaConfig): Segment[] {
  const D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, L = c.num_hidden_layers;
  const hd = headDim(c), KV = c.num_key_value_heads * hd;
  const segs: Segment[] = [{ field: 'token_embedding_table', hf: 'model.embed_tokens.weight', shape: [V, D] }];
  const perLayer = (field: string, hf: string, shape: number[], rotaryHeads?: number): void => {
    for (let l = 0; l < L; l++) {
      const seg: Segment = { field: `${field}[${l}]`, hf: `model.layers.${l}.${hf}.weight`, shape };
      if (rotaryHeads !== undefined) seg.rotaryHeads = rotaryHeads;
      segs.push(seg);
    }
  };
  perLayer('rms_att_weight', 'input_layernorm', [D]);
  perLayer('wq', 'self_attn.q_proj', [D, D], c.num_attention_heads);
  perLayer('wk', 'self_attn.k_proj', [KV, D], c.num_key_value_heads);
  perLayer('wv', 'self_attn.v_proj', [KV, D]);
  perLayer('wo', 'self_attn.o_proj', [D, D]);
  perLayer('rms_ffn_weight', 'post_attention_layernorm', [D]);
  perLayer('w1', 'mlp.gate_proj', [F, D]);
  perLayer('w2', 'mlp.down_proj', [D, F]);
  perLayer('w3', 'mlp.up_proj', [F, D]);
  segs.push({ field: 'rms_final_weight', hf: 'model.norm.weight', shape: [D] });
  segs.push({ field: 'freq_cis_real', hf: null, shape: [c.max_position_embeddings, hd / 2] });
  segs.push({ field: 'freq_cis_imag', hf: null, shape: [c.max_position_embeddings, hd / 2] });
  if (!c.tie_word_embeddings) segs.push({ field: 'wcls', hf: 'lm_head.weight', shape: [V, D] });
  return segs;
}

function fileBytes(segs: Segment[]): number {
  return HEADER_BYTES + 4 * segs.reduce((n, s) => n + numel(s.shape), 0);
}

/**
 * fileBytes(fileLayout(c)) in closed form. The reader checks the size with this before
 * building the layout, so a corrupt header claiming 2^31 layers fails fast instead of
 * allocating a 2^31-entry layout.
 */
function expectedFileBytes(c: LlamaConfig): number {
  const D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const hd = headDim(c), KV = c.num_key_value_heads * hd;
  const perLayer = D + D * D + 2 * KV * D + D * D + D + 3 * F * D;
  const floats = V * D + c.num_hidden_layers * perLayer + D + c.max_position_embeddings * hd + (c.tie_word_embeddings ? 0 : V * D);
  return HEADER_BYTES + 4 * floats;
}

/** Read a legacy llama2.c checkpoint into a config and Hugging Face-named tensors. */
export function readLlama2cCheckpoint(bytes: Uint8Array, source: string): { config: LlamaConfig; tensors: TensorMap } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= 4 && dv.getUint32(0, true) === VERSIONED_MAGIC) {
    throw new FormatError(
      source,
      'starts with magic "ak42": this is a llama2.c version 1/2 export, which is not supported; ' +
        'export with --version 0 (legacy) instead',
    );
  }
  if (bytes.length < HEADER_BYTES) {
    throw new FormatError(source, `file is ${bytes.length} bytes, too short for the ${HEADER_BYTES}-byte header`);
  }
  const h = {} as Record<(typeof HEADER_FIELDS)[number], number>;
  HEADER_FIELDS.forEach((f, i) => (h[f] = dv.getInt32(4 * i, true)));
  for (const f of HEADER_FIELDS) {
    if (f === 'vocab_size' ? h[f] === 0 : h[f] <= 0) {
      throw new FormatError(source, `header field ${f} = ${h[f]} must be ${f === 'vocab_size' ? 'non-zero' : 'positive'}`);
    }
  }
  const headerText = HEADER_FIELDS.map((f) => `${f}=${h[f]}`).join(' ');
  if (h.dim % h.n_heads !== 0) throw new FormatError(source, `dim ${h.dim} is not divisible by n_heads ${h.n_heads}`);
  if (h.n_heads % h.n_kv_heads !== 0) {
    throw new FormatError(source, `n_heads ${h.n_heads} is not divisible by n_kv_heads ${h.n_kv_heads}`);
  }
  if ((h.dim / h.n_heads) % 2 !== 0) {
    throw new FormatError(source, `head_size ${h.dim / h.n_heads} must be even for rotary embeddings`);
  }

  let config: LlamaConfig;
  try {
    config = parseConfig(
      {
        hidden_size: h.dim,
        intermediate_size: h.hidden_dim,
        num_hidden_layers: h.n_layers,
        num_attention_heads: h.n_heads,
        num_key_value_heads: h.n_kv_heads,
        vocab_size: Math.abs(h.vocab_size),
        max_position_embeddings: h.seq_len,
        rope_theta: ROPE_THETA,
        rms_norm_eps: RMS_NORM_EPS,
        tie_word_embeddings: h.vocab_size > 0,
      },
      source,
    );
  } catch (e) {
    if (e instanceof ConfigError) throw new FormatError(source, `header (${headerText}): ${e.message}`);
    throw e;
  }

  const expected = expectedFileBytes(config);
  if (expected > Number.MAX_SAFE_INTEGER) {
    throw new FormatError(source, `header (${headerText}) implies a file of more than 2^53 bytes`);
  }
  if (bytes.length !== expected) {
    const diff = bytes.length < expected ? `truncated by ${expected - bytes.length} bytes` : `${bytes.length - expected} extra bytes`;
    throw new FormatError(source, `file is ${bytes.length} bytes but the header (${headerText}) implies ${expected}: ${diff}`);
  }

  const tensors: TensorMap = new Map();
  const hd = headDim(config);
  let offset = HEADER_BYTES;
  for (const seg of fileLayout(config)) {
    const n = numel(seg.shape);
    if (seg.hf !== null) {
      let data = readF32(bytes, offset, n);
      const bad = firstNonFinite(data);
      if (bad >= 0) throw new FormatError(source, `(llama2.c ${seg.field}) ${describeNonFinite(data, seg.shape, bad)}`, seg.hf);
      if (seg.rotaryHeads !== undefined) data = llama2cToHfRows(data, seg.rotaryHeads, hd, seg.shape[1]!);
      tensors.set(seg.hf, { shape: [...seg.shape], data });
    }
    offset += 4 * n;
  }
  return { config, tensors };
}

/**
 * Write a config and Hugging Face-named tensors as a legacy llama2.c checkpoint that
 * run.c can load. The tensors are checked against the config first.
 */
export function writeLlama2cCheckpoint(config: LlamaConfig, tensors: TensorMap, source = 'llama2.c checkpoint'): Uint8Array {
  if (config.rope_theta !== ROPE_THETA) {
    throw new FormatError(source, `config field "rope_theta" is ${config.rope_theta}, but run.c hard-codes ${ROPE_THETA}`);
  }
  if (config.rms_norm_eps !== RMS_NORM_EPS) {
    throw new FormatError(source, `config field "rms_norm_eps" is ${config.rms_norm_eps}, but run.c hard-codes ${RMS_NORM_EPS}`);
  }
  // run.c's layer has no biases, no rescaled RoPE, and heads of dim / n_heads
  const unsupported = [
    config.rope_scaling && `rope_scaling (${config.rope_scaling.rope_type})`,
    config.head_dim !== undefined && config.head_dim !== config.hidden_size / config.num_attention_heads && `head_dim ${config.head_dim}`,
    attentionBiases(config).qkv && (config.model_type === 'qwen2' ? 'model_type qwen2 (q/k/v biases)' : 'attention_bias'),
    config.mlp_bias && 'mlp_bias',
  ].filter(Boolean);
  if (unsupported.length) throw new FormatError(source, `run.c cannot represent ${unsupported.join(', ')}`);
  const header = [
    config.hidden_size,
    config.intermediate_size,
    config.num_hidden_layers,
    config.num_attention_heads,
    config.num_key_value_heads,
    config.tie_word_embeddings ? config.vocab_size : -config.vocab_size,
    config.max_position_embeddings,
  ];
  header.forEach((v, i) => {
    if (!Number.isInteger(v) || Math.abs(v) > 0x7fffffff) {
      throw new FormatError(source, `header field ${HEADER_FIELDS[i]} = ${v} does not fit an int32`);
    }
  });
  checkWeights(config, tensors, source);

  const segs = fileLayout(config);
  const out = new Uint8Array(expectedFileBytes(config));
  if (out.length !== fileBytes(segs)) throw new Error('llama2c: expectedFileBytes disagrees with fileLayout'); // a bug here, not in the input
  const dv = new DataView(out.buffer);
  header.forEach((v, i) => dv.setInt32(4 * i, v, true));
  const hd = headDim(config);
  let offset = HEADER_BYTES;
  for (const seg of segs) {
    let data: Float32Array;
    if (seg.hf === null) {
      data = ropeTable(config.max_position_embeddings, hd, seg.field === 'freq_cis_real' ? Math.cos : Math.sin);
    } else {
      data = tensors.get(seg.hf)!.data;
      const bad = firstNonFinite(data);
      if (bad >= 0) throw new FormatError(source, describeNonFinite(data, seg.shape, bad), seg.hf);
      if (seg.rotaryHeads !== undefined) data = hfToLlama2cRows(data, seg.rotaryHeads, hd, seg.shape[1]!);
    }
    writeF32(out, offset, data);
    offset += data.byteLength;
  }
  return out;
}

/** The legacy freq_cis table (seq_len, hd/2): fn(pos * theta^(-2i/hd)), as export.py wrote it. */
function ropeTable(seqLen: number, hd: number, fn: (x: number) => number): Float32Array {
  const half = hd / 2;
  const out = new Float32Array(seqLen * half);
  for (let pos = 0; pos < seqLen; pos++) {
    for (let i = 0; i < half; i++) out[pos * half + i] = fn(pos * ROPE_THETA ** ((-2 * i) / hd));
  }
  return out;
}
