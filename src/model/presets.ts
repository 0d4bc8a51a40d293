/** Named configs for `--random-init` and the benches (random weights, for testing and timing). */
import { parseConfig, type LlamaConfig } from './config.js';

export const PRESETS: Record<string, LlamaConfig> = {
  /** a few thousand parameters: instant, for smoke tests */
  tiny: parseConfig({
    hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    intermediate_size: 64, vocab_size: 259, max_position_embeddings: 256,
    rope_theta: 10000, rms_norm_eps: 1e-5, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2,
  }),
  /** the shape of llama2.c's stories15M: dim 288, 6 layers, 6 heads, hidden 768, vocab 32000 */
  stories15M: parseConfig({
    hidden_size: 288, num_hidden_layers: 6, num_attention_heads: 6, num_key_value_heads: 6,
    intermediate_size: 768, vocab_size: 32000, max_position_embeddings: 256,
    rope_theta: 10000, rms_norm_eps: 1e-5, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2,
  }),
};
