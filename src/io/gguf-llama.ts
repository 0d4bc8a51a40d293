/**
 * What a Llama model is called in GGUF: llama.cpp's metadata keys and tensor names, mapped
 * to our config (Hugging Face's config.json fields) and tensor names, and the rotary
 * permutation of the q and k projections between the two layouts.
 *
 *   general.architecture            'llama' ('qwen2' for model_type qwen2)
 *   <arch>.context_length           max_position_embeddings
 *   <arch>.embedding_length         hidden_size
 *   <arch>.block_count              num_hidden_layers
 *   <arch>.feed_forward_length      intermediate_size
 *   <arch>.attention.head_count     num_attention_heads
 *   <arch>.attention.head_count_kv  num_key_value_heads
 *   <arch>.attention.key_length     head_dim (written when the config gives one)
 *   <arch>.rope.dimension_count     head_dim (the whole head rotates)
 *   <arch>.rope.freq_base           rope_theta
 *   <arch>.attention.layer_norm_rms_epsilon   rms_norm_eps
 *   <arch>.vocab_size               vocab_size
 *   <arch>.rope.scaling.type/factor linear rope scaling
 *   rope_freqs.weight               llama3 rope scaling, as llama.cpp's converter writes it:
 *                                   one divisor per rotated pair (ctcspec.rope.* keep the
 *                                   four numbers it came from, so it reads back exactly)
 *   ctcspec.eos_token_ids           eos_token_id when it lists several (tokenizer.ggml.eos_token_id: the first)
 *   ctcspec.generation_config       generation_config.json's text, when the model has one
 *
 *   token_embd.weight            model.embed_tokens.weight
 *   blk.N.attn_norm.weight       model.layers.N.input_layernorm.weight
 *   blk.N.attn_q / attn_k / attn_v / attn_output .weight/.bias   self_attn.q/k/v/o_proj
 *   blk.N.ffn_norm.weight        model.layers.N.post_attention_layernorm.weight
 *   blk.N.ffn_gate / ffn_up / ffn_down .weight/.bias            mlp.gate/up/down_proj
 *   output_norm.weight           model.norm.weight
 *   output.weight                lm_head.weight (absent when the embeddings are tied)
 */
import { ropeInvFreq, type RopeScaling } from '../backend/rope.js';
import { headDim, type LlamaConfig } from '../model/config.js';
import type { GgufValue } from './gguf-file.js';

export type GgufArchitecture = 'llama' | 'qwen2';

/** the architecture of a config; it decides the keys' prefix and whether q and k are permuted */
export function architectureOf(config: LlamaConfig): GgufArchitecture {
  return config.model_type === 'qwen2' ? 'qwen2' : 'llama';
}

/** our own keys, for what GGUF has no key for */
export const OWN_KEYS = {
  llama3Factor: 'ctcspec.rope.llama3.factor',
  llama3Low: 'ctcspec.rope.llama3.low_freq_factor',
  llama3High: 'ctcspec.rope.llama3.high_freq_factor',
  llama3Context: 'ctcspec.rope.llama3.original_context_length',
  eosList: 'ctcspec.eos_token_ids',
  /** generation_config.json, as its JSON text */
  generationConfig: 'ctcspec.generation_config',
} as const;

export const ROPE_FREQS = 'rope_freqs.weight';

const u32 = (value: number): GgufValue => ({ type: 'u32', value });
const f32 = (value: number): GgufValue => ({ type: 'f32', value });
const f64 = (value: number): GgufValue => ({ type: 'f64', value });
const str = (value: string): GgufValue => ({ type: 'string', value });

/** The model's metadata entries (the tokenizer's come from gguf-tokenizer.ts). */
export function configMetadata(config: LlamaConfig): [string, GgufValue][] {
  const arch = architectureOf(config);
  const k = (key: string) => `${arch}.${key}`;
  const hd = headDim(config);
  const entries: [string, GgufValue][] = [
    ['general.architecture', str(arch)],
    [k('context_length'), u32(config.max_position_embeddings)],
    [k('embedding_length'), u32(config.hidden_size)],
    [k('block_count'), u32(config.num_hidden_layers)],
    [k('feed_forward_length'), u32(config.intermediate_size)],
    [k('attention.head_count'), u32(config.num_attention_heads)],
    [k('attention.head_count_kv'), u32(config.num_key_value_heads)],
    [k('rope.dimension_count'), u32(hd)],
    [k('rope.freq_base'), f32(config.rope_theta)],
    [k('attention.layer_norm_rms_epsilon'), f32(config.rms_norm_eps)],
    [k('vocab_size'), u32(config.vocab_size)],
  ];
  if (config.head_dim !== undefined) entries.push([k('attention.key_length'), u32(hd)], [k('attention.value_length'), u32(hd)]);
  const s = config.rope_scaling;
  if (s?.rope_type === 'linear') entries.push([k('rope.scaling.type'), str('linear')], [k('rope.scaling.factor'), f32(s.factor)]);
  if (s?.rope_type === 'llama3') {
    entries.push(
      [OWN_KEYS.llama3Factor, f64(s.factor)], [OWN_KEYS.llama3Low, f64(s.low_freq_factor)],
      [OWN_KEYS.llama3High, f64(s.high_freq_factor)], [OWN_KEYS.llama3Context, u32(s.original_max_position_embeddings)],
    );
  }
  if (config.generation_config) entries.push([OWN_KEYS.generationConfig, str(JSON.stringify(config.generation_config))]);
  return entries;
}

/**
 * llama3 rope scaling as llama.cpp applies it: each pair's frequency divided by a factor,
 * theta^(-2i/hd) / factor[i]; ours rescales the frequency, so factor[i] = plain / rescaled.
 */
export function llama3RopeFactors(config: LlamaConfig): Float32Array {
  const hd = headDim(config);
  const plain = ropeInvFreq(hd, config.rope_theta), scaled = ropeInvFreq(hd, config.rope_theta, config.rope_scaling);
  return Float32Array.from(plain, (f, i) => f / scaled[i]!);
}

/** GGUF tensor name of a Hugging Face one, or undefined for a name this model does not have. */
export function ggufTensorName(hfName: string): string | undefined {
  const fixed: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'lm_head.weight': 'output.weight',
  };
  if (fixed[hfName]) return fixed[hfName];
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hfName);
  const part = m && LAYER_PARTS[m[2]!];
  return part ? `blk.${m![1]}.${part}.${m![3]}` : undefined;
}

const LAYER_PARTS: Record<string, string> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

/** GGUF dims (fastest first) of a row-major shape, and back: the same list reversed */
export const ggufDims = (shape: readonly number[]): number[] => [...shape].reverse();

/**
 * The heads whose rows the rotary permutation reorders in this tensor (q: the query heads,
 * k: the key/value heads), or 0 when it is left as it is. Only the llama architecture
 * permutes: llama.cpp runs qwen2 with rotate-half (NEOX) rope, as Hugging Face does.
 */
export function permutedHeads(config: LlamaConfig, hfName: string): number {
  if (architectureOf(config) !== 'llama') return 0;
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return config.num_attention_heads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return config.num_key_value_heads;
  return 0;
}

/**
 * The rotary permutation of q and k rows, as llama.cpp's converter applies it.
 *
 * Rotary embedding turns pairs of a head's hd features by an angle. Hugging Face pairs
 * feature i with feature i + hd/2 (rotate-half); GGML's llama rope pairs adjacent features
 * 2i and 2i + 1. The projection's rows are reordered so the same pairs rotate together: in
 * each head, row 2i + j of the GGUF tensor is row j * hd/2 + i of ours (j = 0, 1). For
 * hd = 4, our rows r0 r1 r2 r3 with pairs (r0, r2) and (r1, r3) become r0 r2 r1 r3, pairs
 * (r0, r2) and (r1, r3) again, now adjacent. Since q.k sums over all features, reordering
 * q and k the same way leaves every attention score unchanged.
 *
 * `data` is [heads * hd, cols] row-major (cols = 1 for a bias); `toGguf` false undoes it.
 */
export function permuteRotaryRows<T extends Float32Array | Uint8Array>(data: T, heads: number, rowLength: number, toGguf: boolean): T {
  const rows = data.length / rowLength;
  const hd = rows / heads, half = hd / 2;
  const out = new (data.constructor as { new (n: number): T })(data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const gguf = h * hd + 2 * i + j, ours = h * hd + j * half + i;
        const [to, from] = toGguf ? [gguf, ours] : [ours, gguf];
        out.set(data.subarray(from * rowLength, (from + 1) * rowLength), to * rowLength);
      }
    }
  }
  return out;
}

/** The metadata as a config.json object, for parseConfig to check (it fills defaults and refuses what is unsupported). */
export function configObject(meta: Map<string, GgufValue>, ropeFactorsPresent: boolean, fail: (problem: string) => never): Record<string, unknown> {
  const archValue = meta.get('general.architecture');
  if (archValue === undefined) fail('no general.architecture key');
  if (archValue!.type !== 'string' || (archValue!.value !== 'llama' && archValue!.value !== 'qwen2')) {
    fail(`general.architecture ${JSON.stringify(archValue!.value)} is not supported (supported: llama, qwen2)`);
  }
  const arch = archValue!.value as GgufArchitecture;
  const num = (key: string, required: boolean): number | undefined => {
    const v = meta.get(key);
    if (v === undefined) {
      if (required) fail(`no ${key} key (a ${arch} model needs it)`);
      return undefined;
    }
    if (typeof v.value !== 'number') fail(`${key} must be a number, got a ${v.type}${v.type === 'array' ? '' : ` ${JSON.stringify(v.value)}`}`);
    return v.type === 'f32' ? shortestF32(v.value as number) : (v.value as number);
  };
  const k = (key: string) => `${arch}.${key}`;
  const o: Record<string, unknown> = {
    model_type: arch,
    max_position_embeddings: num(k('context_length'), true),
    hidden_size: num(k('embedding_length'), true),
    num_hidden_layers: num(k('block_count'), true),
    intermediate_size: num(k('feed_forward_length'), true),
    num_attention_heads: num(k('attention.head_count'), true),
    num_key_value_heads: num(k('attention.head_count_kv'), false),
    rope_theta: num(k('rope.freq_base'), false),
    rms_norm_eps: num(k('attention.layer_norm_rms_epsilon'), true),
  };
  const keyLength = num(k('attention.key_length'), false), valueLength = num(k('attention.value_length'), false);
  if (keyLength !== undefined && valueLength !== undefined && keyLength !== valueLength) fail(`${k('attention.key_length')} ${keyLength} and ${k('attention.value_length')} ${valueLength} differ (not supported)`);
  const hd = keyLength ?? (o.hidden_size as number) / (o.num_attention_heads as number);
  if (keyLength !== undefined) o.head_dim = keyLength;
  const ropeDims = num(k('rope.dimension_count'), false);
  if (ropeDims !== undefined && ropeDims !== hd) fail(`${k('rope.dimension_count')} ${ropeDims} differs from the head size ${hd}: partial rotary embeddings are not supported`);
  const scalingType = meta.get(k('rope.scaling.type'));
  const type = scalingType?.value ?? 'none';
  if (type === 'linear') o.rope_scaling = { rope_type: 'linear', factor: num(k('rope.scaling.factor'), true) };
  else if (type !== 'none') fail(`${k('rope.scaling.type')} ${JSON.stringify(type)} is not supported (supported: none, linear)`);
  if (meta.has(OWN_KEYS.llama3Factor)) {
    o.rope_scaling = {
      rope_type: 'llama3', factor: num(OWN_KEYS.llama3Factor, true), low_freq_factor: num(OWN_KEYS.llama3Low, true),
      high_freq_factor: num(OWN_KEYS.llama3High, true), original_max_position_embeddings: num(OWN_KEYS.llama3Context, true),
    } satisfies Record<keyof Extract<RopeScaling, { rope_type: 'llama3' }>, unknown>;
  } else if (ropeFactorsPresent) {
    fail(`${ROPE_FREQS} (per-frequency rope factors) without the ${OWN_KEYS.llama3Factor} keys: rope factors other than llama3 scaling written by this library are not supported`);
  }
  const bos = num('tokenizer.ggml.bos_token_id', false);
  if (bos !== undefined) o.bos_token_id = bos;
  const eosList = meta.get(OWN_KEYS.eosList);
  const eos = num('tokenizer.ggml.eos_token_id', false);
  if (eosList?.type === 'array') o.eos_token_id = eosList.value;
  else if (eos !== undefined) o.eos_token_id = eos;
  return o;
}

/**
 * The shortest decimal that is this f32 (1e-5, not 9.999999747378752e-6), so a config
 * written as f32 reads back as it was written.
 */
export function shortestF32(x: number): number {
  const MAX_DIGITS = 9; // 9 significant digits identify every f32
  for (let digits = 1; digits < MAX_DIGITS; digits++) {
    const y = Number(x.toPrecision(digits));
    if (Math.fround(y) === x) return y;
  }
  return x;
}
