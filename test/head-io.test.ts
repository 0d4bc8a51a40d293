/**
 * checkHeadFitsBase: a head made for a base model (ctcHeadConfig / medusaConfig) fits it;
 * changing any field the head copies from the base is refused with that field and both
 * values named, while a longer CTC context and any Medusa head count still fit.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ctcHeadConfig, type CtcHeadConfig } from '../src/draft/ctc-head.js';
import { checkHeadFitsBase } from '../src/draft/head-io.js';
import { medusaConfig } from '../src/draft/medusa.js';
import { FormatError } from '../src/io/errors.js';
import { tinyBaseConfig } from './draft-helpers.js';

const SOURCE = 'm/drafters/ctc/config.json';

function refusal(run: () => void): FormatError {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).file).toBe(SOURCE);
    return e as FormatError;
  }
  throw new Error('the head was accepted');
}

const MUST_EQUAL = ['hidden_size', 'vocab_size', 'num_attention_heads', 'num_key_value_heads'] as const;

describe('checkHeadFitsBase', () => {
  it('CTC: refuses exactly the changed copied fields and a shorter context, naming both values', () => {
    const base = tinyBaseConfig({ D: 16, H: 4, KVH: 2, V: 30 }); // context 48
    fc.assert(
      fc.property(
        fc.subarray([...MUST_EQUAL]),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: -40, max: 40 }).filter((d) => 48 + d > 0),
        (changed, delta, contextDelta) => {
          const head: CtcHeadConfig = { ...ctcHeadConfig(base), max_position_embeddings: 48 + contextDelta };
          for (const f of changed) head[f] += delta;
          const fits = changed.length === 0 && contextDelta >= 0;
          if (fits) return checkHeadFitsBase(head, base, SOURCE);
          const problem = refusal(() => checkHeadFitsBase(head, base, SOURCE)).problem;
          for (const f of changed) expect(problem).toContain(`${f} ${head[f]}, the base model's ${base[f]}`);
          for (const f of MUST_EQUAL.filter((f) => !changed.includes(f))) expect(problem).not.toContain(`${f} `);
          if (contextDelta < 0) expect(problem).toContain(`max_position_embeddings ${48 + contextDelta} is shorter than the base model's context 48`);
          else expect(problem).not.toContain('max_position_embeddings');
        },
      ),
    );
  });

  it('Medusa: hidden_size and vocab_size must agree; the head count is its own', () => {
    const base = tinyBaseConfig({ D: 16, V: 30 });
    for (const heads of [1, 3, 7]) checkHeadFitsBase(medusaConfig(base, heads), base, SOURCE);
    const problem = refusal(() => checkHeadFitsBase({ ...medusaConfig(base), hidden_size: 32, vocab_size: 29 }, base, SOURCE)).problem;
    expect(problem).toBe("this medusa head does not fit the base model: hidden_size 32, the base model's 16; vocab_size 29, the base model's 30");
  });
});
