/**
 * Llama model configuration, with the field names of a Hugging Face `config.json`
 * (LlamaConfig, and Qwen2Config / MistralConfig where their math is Llama's). `parseConfig`
 * validates every field, fills in Hugging Face's defaults for missing ones, and refuses, by
 * name, any field that would change the math in a way this engine does not implement, so a
 * model either runs as Hugging Face runs it or fails here with a message saying why.
 *
 * A field that keeps its default is left out of the parsed config (head_dim, rope_scaling,
 * attention_bias, mlp_bias, model_type), so a plain Llama config reads back as it was written.
 */
import type { RopeScaling } from '../backend/rope.js';

export type { RopeScaling } from '../backend/rope.js';

export interface LlamaConfig {
  hidden_size: number; // D: width of the residual stream
  num_hidden_layers: number; // L
  num_attention_heads: number; // H: query heads
  num_key_value_heads: number; // KVH: key/value heads (grouped-query attention), H % KVH == 0
  intermediate_size: number; // F: SwiGLU hidden width
  vocab_size: number; // V
  max_position_embeddings: number; // longest sequence (prompt + generated)
  rope_theta: number;
  rms_norm_eps: number;
  tie_word_embeddings: boolean; // lm_head shares embed_tokens
  bos_token_id?: number;
  /** the token, or tokens, that end a sequence (Llama 3 instruct models name several) */
  eos_token_id?: number | number[];
  /** hd: size of one attention head, when the file gives it (default hidden_size / num_attention_heads) */
  head_dim?: number;
  /** rotary frequency rescaling (absent: plain theta^(-2i/hd)) */
  rope_scaling?: RopeScaling;
  /** Llama's attention_bias: biases on the q, k, v and o projections */
  attention_bias?: boolean;
  /** biases on gate_proj, up_proj and down_proj */
  mlp_bias?: boolean;
  /** the architecture when it is not plain Llama: 'qwen2' (q, k and v projections always carry biases) */
  model_type?: 'qwen2';
  /** generation_config.json beside config.json, when there is one (written back to its own file) */
  generation_config?: GenerationConfig;
}

/**
 * The decoding defaults of a Hugging Face generation_config.json: what the model's authors
 * sample with. Fields this library does not use (top_k, repetition_penalty, max_length) are
 * kept so a caller can read them.
 */
export interface GenerationConfig {
  do_sample?: boolean;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  repetition_penalty?: number;
  max_new_tokens?: number;
  max_length?: number;
  bos_token_id?: number;
  eos_token_id?: number | number[];
  pad_token_id?: number;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The fields a decoder layer reads: a base model's config, or a draft head's copy of them. */
export type LayerConfig = Pick<
  LlamaConfig,
  | 'hidden_size' | 'num_attention_heads' | 'num_key_value_heads' | 'intermediate_size' | 'rope_theta' | 'rms_norm_eps'
  | 'head_dim' | 'rope_scaling' | 'attention_bias' | 'mlp_bias' | 'model_type'
>;

/** hd: head_dim when the config gives it, else hidden_size / num_attention_heads */
export function headDim(c: Pick<LlamaConfig, 'hidden_size' | 'num_attention_heads' | 'head_dim'>): number {
  return c.head_dim ?? c.hidden_size / c.num_attention_heads;
}

/** Which attention projections carry a bias: Qwen2's q, k, v; Llama's attention_bias all four. */
export function attentionBiases(c: Pick<LlamaConfig, 'attention_bias' | 'model_type'>): { qkv: boolean; o: boolean } {
  if (c.model_type === 'qwen2') return { qkv: true, o: false };
  return { qkv: c.attention_bias === true, o: c.attention_bias === true };
}

/** Hugging Face's LlamaConfig defaults for the fields a file may leave out. */
export const HF_DEFAULTS = { rope_theta: 10000, rms_norm_eps: 1e-6, tie_word_embeddings: false, hidden_act: 'silu' } as const;

const INT_FIELDS = [
  'hidden_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'intermediate_size',
  'vocab_size',
  'max_position_embeddings',
] as const;

/** MistralConfig's sliding_window when the file leaves it out */
const MISTRAL_DEFAULT_WINDOW = 4096;

/** model_type values whose forward pass is this engine's; others are refused by name */
const SUPPORTED_MODEL_TYPES = ['llama', 'qwen2', 'mistral'];

/**
 * Fields of other architectures that change the forward pass and are not implemented here:
 * refused when set to anything but their neutral value.
 */
const UNSUPPORTED_WHEN_SET: Record<string, unknown> = {
  partial_rotary_factor: 1, // RoPE on part of each head
  attn_logit_softcapping: null,
  final_logit_softcapping: null,
  qk_layernorm: false, // qk-norm
  use_qk_norm: false,
  query_pre_attn_scalar: null,
  embedding_multiplier: 1,
  residual_multiplier: 1,
  attention_multiplier: 1,
  logits_scaling: 1,
};

/**
 * Check and normalise a config object (for example `JSON.parse` of config.json).
 * `source` names where it came from, for error messages.
 */
export function parseConfig(raw: unknown, source = 'config'): LlamaConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${source}: expected a JSON object`);
  }
  const o = raw as Record<string, unknown>;
  const fail = (problem: string): never => {
    throw new ConfigError(`${source}: ${problem}`);
  };
  const modelType = parseModelType(o, fail);
  const c: Partial<LlamaConfig> = {};
  for (const k of INT_FIELDS) {
    // Hugging Face omits num_key_value_heads for plain multi-head attention
    const v = k === 'num_key_value_heads' && o[k] == null ? o.num_attention_heads : o[k];
    c[k] = positiveInt(v, k, fail);
  }
  const rope = parseRope(o, fail);
  c.rope_theta = rope.theta;
  c.rms_norm_eps = positiveNum(o.rms_norm_eps ?? HF_DEFAULTS.rms_norm_eps, 'rms_norm_eps', fail);
  const tie = o.tie_word_embeddings ?? HF_DEFAULTS.tie_word_embeddings;
  if (typeof tie !== 'boolean') fail('field "tie_word_embeddings" must be a boolean');
  c.tie_word_embeddings = tie as boolean;
  const bos = tokenIds(o.bos_token_id, 'bos_token_id', c.vocab_size!, fail, false);
  if (bos !== undefined) c.bos_token_id = bos as number;
  const eos = tokenIds(o.eos_token_id, 'eos_token_id', c.vocab_size!, fail, true);
  if (eos !== undefined) c.eos_token_id = eos;
  if (o.head_dim != null) c.head_dim = positiveInt(o.head_dim, 'head_dim', fail);
  if (rope.scaling) c.rope_scaling = rope.scaling;
  for (const k of ['attention_bias', 'mlp_bias'] as const) {
    const v = o[k] ?? false;
    if (typeof v !== 'boolean') fail(`field "${k}" must be a boolean, got ${JSON.stringify(v)}`);
    if (v) c[k] = true;
  }
  if (modelType === 'qwen2') c.model_type = 'qwen2';
  checkUnsupported(o, modelType, c.max_position_embeddings!, fail);

  const cfg = c as LlamaConfig;
  if (cfg.head_dim === undefined && cfg.hidden_size % cfg.num_attention_heads !== 0) {
    fail(`hidden_size ${cfg.hidden_size} is not divisible by num_attention_heads ${cfg.num_attention_heads} (and no head_dim is given)`);
  }
  if (cfg.num_attention_heads % cfg.num_key_value_heads !== 0) {
    fail(`num_attention_heads ${cfg.num_attention_heads} is not divisible by num_key_value_heads ${cfg.num_key_value_heads}`);
  }
  if (headDim(cfg) % 2 !== 0) fail(`head_dim ${headDim(cfg)} must be even for rotary embeddings`);
  return cfg;
}

function positiveInt(v: unknown, k: string, fail: (p: string) => never): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`field "${k}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}

function positiveNum(v: unknown, k: string, fail: (p: string) => never): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`field "${k}" must be a positive number, got ${JSON.stringify(v)}`);
  return v as number;
}

/** one token id, or (with allowList) a list of them; null, absent and [] are undefined */
function tokenIds(v: unknown, k: string, vocab: number, fail: (p: string) => never, allowList: boolean): number | number[] | undefined {
  if (v == null) return undefined;
  const isId = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < vocab;
  if (allowList && Array.isArray(v)) {
    const bad = v.find((x) => !isId(x));
    if (bad !== undefined) fail(`field "${k}" lists ${JSON.stringify(bad)}, not a token id in [0, ${vocab})`);
    return v.length === 0 ? undefined : [...(v as number[])];
  }
  if (!isId(v)) fail(`field "${k}" must be a token id in [0, ${vocab})${allowList ? ' or a list of them' : ''}, got ${JSON.stringify(v)}`);
  return v as number;
}

function parseModelType(o: Record<string, unknown>, fail: (p: string) => never): string {
  const t = o.model_type ?? 'llama';
  if (typeof t !== 'string' || !SUPPORTED_MODEL_TYPES.includes(t)) {
    fail(`model_type ${JSON.stringify(t)} is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
  return t as string;
}

/**
 * rope_theta and rope_scaling, from either layout: the classic top-level fields, or the newer
 * rope_parameters object (rope_theta and rope_type inside it). Both at once must agree.
 */
function parseRope(o: Record<string, unknown>, fail: (p: string) => never): { theta: number; scaling?: RopeScaling } {
  const params = o.rope_parameters;
  if (params != null) {
    if (typeof params !== 'object' || Array.isArray(params)) fail('field "rope_parameters" must be an object');
    const p = params as Record<string, unknown>;
    const theta = positiveNum(p.rope_theta ?? o.rope_theta ?? HF_DEFAULTS.rope_theta, 'rope_parameters.rope_theta', fail);
    if (o.rope_theta != null && o.rope_theta !== theta) fail(`rope_theta ${o.rope_theta} disagrees with rope_parameters.rope_theta ${theta}`);
    const scaling = parseScaling(p, 'rope_parameters', fail);
    if (o.rope_scaling != null && JSON.stringify(parseScaling(o.rope_scaling, 'rope_scaling', fail)) !== JSON.stringify(scaling)) {
      fail('rope_scaling disagrees with rope_parameters');
    }
    return scaling ? { theta, scaling } : { theta };
  }
  const theta = positiveNum(o.rope_theta ?? HF_DEFAULTS.rope_theta, 'rope_theta', fail);
  const scaling = o.rope_scaling == null ? undefined : parseScaling(o.rope_scaling, 'rope_scaling', fail);
  return scaling ? { theta, scaling } : { theta };
}

/** A rope_scaling object (rope_type, or the older "type"); undefined for the default type. */
function parseScaling(raw: unknown, field: string, fail: (p: string) => never): RopeScaling | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return fail(`field "${field}" must be an object or null`);
  const s = raw as Record<string, unknown>;
  if (s.rope_type != null && s.type != null && s.rope_type !== s.type) {
    fail(`${field}: rope_type ${JSON.stringify(s.rope_type)} and type ${JSON.stringify(s.type)} disagree`);
  }
  const type = s.rope_type ?? s.type ?? 'default';
  const num = (k: string) => positiveNum(s[k], `${field}.${k}`, fail);
  if (type === 'default') return undefined;
  if (type === 'linear') return { rope_type: 'linear', factor: num('factor') };
  if (type === 'llama3') {
    const scaling: RopeScaling = {
      rope_type: 'llama3',
      factor: num('factor'),
      low_freq_factor: num('low_freq_factor'),
      high_freq_factor: num('high_freq_factor'),
      original_max_position_embeddings: positiveInt(s.original_max_position_embeddings, `${field}.original_max_position_embeddings`, fail),
    };
    if (scaling.high_freq_factor <= scaling.low_freq_factor) {
      fail(`${field}: high_freq_factor ${scaling.high_freq_factor} must be above low_freq_factor ${scaling.low_freq_factor}`);
    }
    return scaling;
  }
  return fail(`${field}: rope type ${JSON.stringify(type)} is not supported (supported: default, linear, llama3)`);
}

/** Refuse, by name, what would change the math and is not implemented. */
function checkUnsupported(o: Record<string, unknown>, modelType: string, maxPositions: number, fail: (p: string) => never): void {
  const act = o.hidden_act ?? o.hidden_activation ?? HF_DEFAULTS.hidden_act;
  if (act !== 'silu') fail(`hidden_act ${JSON.stringify(act)} is not supported (only "silu", the SwiGLU of Llama)`);
  for (const [k, neutral] of Object.entries(UNSUPPORTED_WHEN_SET)) {
    const v = o[k];
    if (v !== undefined && v !== null && v !== neutral) fail(`field "${k}" = ${JSON.stringify(v)} changes the forward pass and is not supported`);
  }
  // a window at least as long as the context never cuts anything
  const window = o.sliding_window === undefined && modelType === 'mistral' ? MISTRAL_DEFAULT_WINDOW : typeof o.sliding_window === 'number' ? o.sliding_window : Infinity;
  const windowed = modelType === 'mistral' || (modelType === 'qwen2' && o.use_sliding_window === true);
  if (windowed && window < maxPositions) {
    fail(`sliding_window ${window} is shorter than max_position_embeddings ${maxPositions}${modelType === 'qwen2' ? ' and use_sliding_window is true' : ''}: sliding-window attention is not supported`);
  }
}

/**
 * Check a parsed generation_config.json object. `source` names it in messages; token ids
 * are checked against the model's vocabulary.
 */
export function parseGenerationConfig(raw: unknown, vocabSize: number, source = 'generation_config'): GenerationConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${source}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const fail = (problem: string): never => {
    throw new ConfigError(`${source}: ${problem}`);
  };
  const g: GenerationConfig = {};
  if (o.do_sample != null) {
    if (typeof o.do_sample !== 'boolean') fail(`field "do_sample" must be a boolean, got ${JSON.stringify(o.do_sample)}`);
    g.do_sample = o.do_sample as boolean;
  }
  const number = (k: 'temperature' | 'top_p' | 'repetition_penalty', ok: (v: number) => boolean, what: string) => {
    const v = o[k];
    if (v == null) return;
    if (typeof v !== 'number' || !ok(v)) fail(`field "${k}" must be ${what}, got ${JSON.stringify(v)}`);
    g[k] = v as number;
  };
  number('temperature', (v) => Number.isFinite(v) && v >= 0, 'a number >= 0');
  number('top_p', (v) => v > 0 && v <= 1, 'in (0, 1]');
  number('repetition_penalty', (v) => Number.isFinite(v) && v > 0, 'a positive number');
  for (const k of ['top_k', 'max_new_tokens', 'max_length'] as const) {
    const v = o[k];
    if (v == null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(`field "${k}" must be a non-negative integer, got ${JSON.stringify(v)}`);
    g[k] = v as number;
  }
  const bos = tokenIds(o.bos_token_id, 'bos_token_id', vocabSize, fail, false);
  if (bos !== undefined) g.bos_token_id = bos as number;
  const eos = tokenIds(o.eos_token_id, 'eos_token_id', vocabSize, fail, true);
  if (eos !== undefined) g.eos_token_id = eos;
  const pad = tokenIds(o.pad_token_id, 'pad_token_id', vocabSize, fail, false);
  if (pad !== undefined) g.pad_token_id = pad as number;
  return g;
}

/** The tokens that end a generation by default: generation_config.json's, else config.json's. */
export function defaultStopIds(c: Pick<LlamaConfig, 'eos_token_id' | 'generation_config'>): number | number[] | undefined {
  return c.generation_config?.eos_token_id ?? c.eos_token_id;
}

/**
 * The tensor names (under a layer's prefix) and shapes of one decoder layer, [out, in] for
 * linear layers, biases (out) when the config has them; with feedForward false, its attention
 * half only.
 */
export function decoderLayerShapes(c: LayerConfig, feedForward = true): [string, number[]][] {
  const D = c.hidden_size, F = c.intermediate_size, hd = headDim(c);
  const Q = c.num_attention_heads * hd, KV = c.num_key_value_heads * hd;
  const bias = attentionBiases(c);
  const attention: [string, number[]][] = [
    ['input_layernorm.weight', [D]],
    ['self_attn.q_proj.weight', [Q, D]],
    ['self_attn.k_proj.weight', [KV, D]],
    ['self_attn.v_proj.weight', [KV, D]],
    ['self_attn.o_proj.weight', [D, Q]],
  ];
  if (bias.qkv) attention.push(['self_attn.q_proj.bias', [Q]], ['self_attn.k_proj.bias', [KV]], ['self_attn.v_proj.bias', [KV]]);
  if (bias.o) attention.push(['self_attn.o_proj.bias', [D]]);
  if (!feedForward) return attention;
  const ffn: [string, number[]][] = [
    ['post_attention_layernorm.weight', [D]],
    ['mlp.gate_proj.weight', [F, D]],
    ['mlp.up_proj.weight', [F, D]],
    ['mlp.down_proj.weight', [D, F]],
  ];
  if (c.mlp_bias) ffn.push(['mlp.gate_proj.bias', [F]], ['mlp.up_proj.bias', [F]], ['mlp.down_proj.bias', [D]]);
  return [...attention, ...ffn];
}

/** The Hugging Face tensor names and shapes ([out, in] for linear layers) of a Llama model. */
export function weightShapes(c: LlamaConfig): Map<string, number[]> {
  const D = c.hidden_size, V = c.vocab_size;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [V, D]);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    for (const [name, shape] of decoderLayerShapes(c)) m.set(`model.layers.${l}.${name}`, shape);
  }
  m.set('model.norm.weight', [D]);
  if (!c.tie_word_embeddings) m.set('lm_head.weight', [V, D]);
  return m;
}

export function paramCount(c: LlamaConfig): number {
  let n = 0;
  for (const s of weightShapes(c).values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}
