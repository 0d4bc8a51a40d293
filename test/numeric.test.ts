/**
 * Logits that hold NaN or an infinity stop generation with a NumericError that says so,
 * instead of emitting a token chosen from them (a greedy argmax over NaN picks an arbitrary
 * id). Both loops, on weights that overflow float32 only on some tokens.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { Llama } from '../src/model/llama.js';
import { PRESETS } from '../src/model/presets.js';
import { generate, NumericError } from '../src/decode/generate.js';
import { generateSpeculative } from '../src/decode/speculative.js';
import { PromptLookupDrafter } from '../src/draft/lookup.js';
import { spreadWeights } from './helpers.js';

const config = PRESETS.tiny!;

/** the final norm's weights at 3e38 (finite: the loader accepts them): logits overflow to +-Infinity */
function overflowingModel(): Llama {
  const tensors = spreadWeights(config, 3, 10);
  tensors.get('model.norm.weight')!.data.fill(3e38);
  return new Llama(new CpuBackend(), config, tensors);
}

describe('non-finite logits', () => {
  it('plain generation stops with a NumericError naming the step', async () => {
    await expect(generate(overflowingModel(), [1, 5, 9], { maxNewTokens: 8 })).rejects.toThrow(NumericError);
    await expect(generate(overflowingModel(), [1, 5, 9], { maxNewTokens: 8 })).rejects.toThrow(/step 0: the logits hold -?Infinity|NaN/);
  });

  it('speculative generation stops with a NumericError too', async () => {
    await expect(generateSpeculative(overflowingModel(), [1, 5, 9, 5, 9], new PromptLookupDrafter(), { maxNewTokens: 8 })).rejects.toThrow(NumericError);
  });

  it('a finite model is untouched by the check', async () => {
    const tensors = spreadWeights(config, 3, 10);
    const r = await generate(new Llama(new CpuBackend(), config, tensors), [1, 5, 9], { maxNewTokens: 8, eosId: null });
    expect(r.tokens.length).toBe(8);
  });
});
