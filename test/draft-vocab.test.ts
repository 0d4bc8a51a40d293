/**
 * draft-vocab.json: parseDraftVocab accepts exactly the files whose "tokens" are distinct
 * integer ids of the vocabulary (checked against a direct statement of that rule), keeps
 * their order, and every refusal is a FormatError naming the file.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDraftVocab } from '../src/draft/draft-vocab.js';
import { FormatError } from '../src/io/errors.js';

const SOURCE = '/models/m/draft-vocab.json';

function refusal(text: string, vocabSize: number): FormatError {
  try {
    parseDraftVocab(text, vocabSize, SOURCE);
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).file).toBe(SOURCE);
    expect((e as Error).message.startsWith(`${SOURCE}: `)).toBe(true);
    return e as FormatError;
  }
  throw new Error(`accepted ${text}`);
}

/** the rule, stated directly: a non-empty list of distinct integers in [0, V) */
function isValid(tokens: unknown[], V: number): boolean {
  return tokens.length > 0 && tokens.every((t) => Number.isInteger(t) && (t as number) >= 0 && (t as number) < V) && new Set(tokens).size === tokens.length;
}

describe('parseDraftVocab', () => {
  it('accepts exactly the lists of distinct in-vocabulary ids, in their order', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.oneof(fc.integer({ min: -3, max: 45 }), fc.constantFrom(1.5, '7', null)), { maxLength: 12 }),
        (V, tokens) => {
          const text = JSON.stringify({ description: 'notes', coverage: 0.9, tokens });
          if (isValid(tokens, V)) expect(parseDraftVocab(text, V, SOURCE)).toEqual(tokens);
          else refusal(text, V);
        },
      ),
    );
  });

  it('names the file and the problem', () => {
    expect(refusal('{"tokens": [1, 2', 10).problem).toMatch(/not valid JSON/);
    expect(refusal('[1, 2]', 10).problem).toMatch(/expected a JSON object/);
    expect(refusal('null', 10).problem).toMatch(/expected a JSON object/);
    expect(refusal('{"ids": [1]}', 10).problem).toMatch(/field "tokens" must be an array of token ids, got nothing/);
    expect(refusal('{"tokens": {"0": 1}}', 10).problem).toMatch(/field "tokens" must be an array/);
    expect(refusal('{"tokens": []}', 10).problem).toMatch(/empty/);
    expect(refusal('{"tokens": [1, 2.5]}', 10).problem).toBe('tokens[1] must be an integer token id, got 2.5');
    expect(refusal('{"tokens": [1, "3"]}', 10).problem).toBe('tokens[1] must be an integer token id, got "3"');
    expect(refusal('{"tokens": [4, 10]}', 10).problem).toBe("tokens[1] = 10 is outside the model's vocabulary [0, 10)");
    expect(refusal('{"tokens": [-1]}', 10).problem).toMatch(/tokens\[0\] = -1 is outside/);
    expect(refusal('{"tokens": [5, 6, 5]}', 10).problem).toBe('tokens[2] = 5 repeats tokens[0]: the token ids must be distinct');
  });

  it('reads the shipped draft vocabulary', () => {
    const dir = resolve(import.meta.dirname, '../weights/base');
    const V = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).vocab_size;
    const tokens = parseDraftVocab(readFileSync(join(dir, 'draft-vocab.json'), 'utf8'), V, 'draft-vocab.json');
    expect(tokens).toHaveLength(256);
  });
});
