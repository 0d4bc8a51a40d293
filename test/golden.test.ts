/**
 * Golden tests: the shipped model's greedy tokens for fixed prompts are pinned in
 * test/golden.json (written once by `node scripts/pin-golden.mjs` after training, by the
 * same code). A change to any kernel, the model, the tokenizer or the weights that alters
 * the output shows up here. The speculative drafters must reproduce the same tokens.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { Llama } from '../src/model/llama.js';
import { generate } from '../src/decode/generate.js';
import { generateSpeculative } from '../src/decode/speculative.js';
import { readModelDir } from '../src/node/files.js';
import { bpeFromJson } from '../src/tokenizer/index.js';
import { loadDrafter } from '../src/node/drafters.js';

const root = resolve(import.meta.dirname, '..');
const modelDir = join(root, 'weights/base');
const golden: { maxNewTokens: number; cases: { prompt: string; tokens: number[]; text: string }[] } = JSON.parse(
  readFileSync(join(root, 'test/golden.json'), 'utf8'),
);

describe('shipped model (weights/base), greedy', async () => {
  const { config, tensors, tokenizerJson } = await readModelDir(modelDir);
  const tokenizer = bpeFromJson(tokenizerJson!, 'weights/base/tokenizer.json');
  const model = new Llama(new CpuBackend(), config, tensors);

  it('reproduces the pinned tokens and text for every prompt', async () => {
    expect(golden.cases.length).toBeGreaterThanOrEqual(3);
    for (const c of golden.cases) {
      const r = await generate(model, tokenizer.encode(c.prompt, { bos: true }), { maxNewTokens: golden.maxNewTokens });
      expect(r.tokens, c.prompt).toEqual(c.tokens);
      expect(tokenizer.decode(r.tokens)).toBe(c.text);
    }
  });

  for (const name of ['lookup', 'ctc', 'medusa']) {
    it(`the ${name} drafter gives the same tokens`, async () => {
      const factory = await loadDrafter(name, modelDir, { config, tensors });
      for (const c of golden.cases) {
        const r = await generateSpeculative(model, tokenizer.encode(c.prompt, { bos: true }), factory.make(), { maxNewTokens: golden.maxNewTokens });
        expect(r.tokens, `${name}: ${c.prompt}`).toEqual(c.tokens);
      }
    });
  }
});
