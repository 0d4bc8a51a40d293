/**
 * Llama model configuration, with the field names of a Hugging Face `config.json`
 * (LlamaConfig). `parseConfig` validates every field, so a bad file fails here with
 * a message naming the field, not later inside a kernel.
 */
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
  eos_token_id?: number;
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
  'hidden_size' | 'num_attention_heads' | 'num_key_value_heads' | 'intermediate_size' | 'rope_theta' | 'rms_norm_eps'
>;

/** head_dim = hidden_size / num_attention_heads */
export function headDim(c: Pick<LlamaConfig, 'hidden_size' | 'num_attention_heads'>): number {
  return c.hidden_size / c.num_attention_heads;
}

const INT_FIELDS = [
  'hidden_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'intermediate_size',
  'vocab_size',
  'max_position_embeddings',
] as const;

/**
 * Check and normalise a config object (for example `JSON.parse` of config.json).
 * `source` names where it came from, for error messages.
 */
export function parseConfig(raw: unknown, source = 'config'): LlamaConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${source}: expected a JSON object`);
  }
  const o = raw as Record<string, unknown>;
  const c: Partial<LlamaConfig> = {};
  for (const k of INT_FIELDS) {
    // Hugging Face omits num_key_value_heads for plain multi-head attention
    const v = k === 'num_key_value_heads' && o[k] === undefined ? o.num_attention_heads : o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new ConfigError(`${source}: field "${k}" must be a positive integer, got ${JSON.stringify(v)}`);
    }
    c[k] = v;
  }
  const num = (k: string, dflt: number): number => {
    const v = o[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new ConfigError(`${source}: field "${k}" must be a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  c.rope_theta = num('rope_theta', 10000);
  c.rms_norm_eps = num('rms_norm_eps', 1e-5);
  const tie = o.tie_word_embeddings ?? false;
  if (typeof tie !== 'boolean') throw new ConfigError(`${source}: field "tie_word_embeddings" must be a boolean`);
  c.tie_word_embeddings = tie;
  for (const k of ['bos_token_id', 'eos_token_id'] as const) {
    const v = o[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= c.vocab_size!) {
      throw new ConfigError(`${source}: field "${k}" must be a token id in [0, ${c.vocab_size}), got ${JSON.stringify(v)}`);
    }
    c[k] = v;
  }
  const cfg = c as LlamaConfig;
  if (cfg.hidden_size % cfg.num_attention_heads !== 0) {
    throw new ConfigError(
      `${source}: hidden_size ${cfg.hidden_size} is not divisible by num_attention_heads ${cfg.num_attention_heads}`,
    );
  }
  if (cfg.num_attention_heads % cfg.num_key_value_heads !== 0) {
    throw new ConfigError(
      `${source}: num_attention_heads ${cfg.num_attention_heads} is not divisible by num_key_value_heads ${cfg.num_key_value_heads}`,
    );
  }
  if (headDim(cfg) % 2 !== 0) {
    throw new ConfigError(`${source}: head_dim ${headDim(cfg)} must be even for rotary embeddings`);
  }
  return cfg;
}

/**
 * The tensor names (under a layer's prefix) and shapes of one decoder layer, [out, in] for
 * linear layers; with feedForward false, its attention half only.
 */
export function decoderLayerShapes(c: LayerConfig, feedForward = true): [string, number[]][] {
  const D = c.hidden_size, F = c.intermediate_size, KV = c.num_key_value_heads * headDim(c);
  const attention: [string, number[]][] = [
    ['input_layernorm.weight', [D]],
    ['self_attn.q_proj.weight', [D, D]],
    ['self_attn.k_proj.weight', [KV, D]],
    ['self_attn.v_proj.weight', [KV, D]],
    ['self_attn.o_proj.weight', [D, D]],
  ];
  if (!feedForward) return attention;
  return [
    ...attention,
    ['post_attention_layernorm.weight', [D]],
    ['mlp.gate_proj.weight', [F, D]],
    ['mlp.up_proj.weight', [F, D]],
    ['mlp.down_proj.weight', [D, F]],
  ];
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
