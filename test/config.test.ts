import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, paramCount } from '../src/model/config.js';

const base = {
  hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  intermediate_size: 128, vocab_size: 100, max_position_embeddings: 32,
};

describe('parseConfig', () => {
  it('fills Hugging Face defaults', () => {
    const { num_key_value_heads, ...noKv } = base;
    const c = parseConfig(noKv);
    expect(c.num_key_value_heads).toBe(4);
    expect(c.rope_theta).toBe(10000);
    expect(c.rms_norm_eps).toBe(1e-6); // Hugging Face's LlamaConfig default
    expect(c.tie_word_embeddings).toBe(false);
    expect(num_key_value_heads).toBe(2);
    expect(paramCount(parseConfig(base))).toBeGreaterThan(0);
  });
  it('names the field that is wrong', () => {
    expect(() => parseConfig({ ...base, hidden_size: 30 })).toThrow(/hidden_size 30 is not divisible by num_attention_heads 4/);
    expect(() => parseConfig({ ...base, num_key_value_heads: 3 })).toThrow(/not divisible by num_key_value_heads 3/);
    expect(() => parseConfig({ ...base, vocab_size: -1 })).toThrow(/"vocab_size" must be a positive integer/);
    expect(() => parseConfig({ ...base, rope_theta: 'x' })).toThrow(/"rope_theta"/);
    expect(() => parseConfig({ ...base, eos_token_id: 100 })).toThrow(/"eos_token_id" must be a token id/);
    expect(() => parseConfig({ ...base, tie_word_embeddings: 'yes' })).toThrow(ConfigError);
    expect(() => parseConfig([1, 2], 'cfg.json')).toThrow(/cfg.json: expected a JSON object/);
    expect(() => parseConfig({ ...base, hidden_size: 4 * 3, num_attention_heads: 4, num_key_value_heads: 4 })).toThrow(/head_dim 3 must be even/);
  });
});
