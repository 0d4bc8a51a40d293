/**
 * Golden tests: the shipped model's greedy tokens for fixed prompts are pinned in
 * test/golden.json (written once by `node scripts/pin-golden.mjs` after training, by the
 * same code). A change to any kernel, the model, the tokenizer or the weights that alters
 * the output shows up here. The speculative drafters must reproduce the same tokens.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { Llama } from '../src/model/llama.js';
import { generate } from '../src/decode/generate.js';
import { generateSpeculative } from '../src/decode/speculative.js';
import { readModelDir } from '../src/node/files.js';
import { bpeFromJson } from '../src/tokenizer/index.js';
import { loadDrafter } from '../src/node/drafters.js';
import { benchPrompts } from '../src/node/bench-spec.js';

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

  it('on the 50 bench prompts, every shipped drafter (and each ablation) gives plain greedy output token for token', async () => {
    const prompts = await benchPrompts(tokenizer, 50);
    const maxNewTokens = 24;
    const reference = [];
    for (const p of prompts) reference.push((await generate(model, p, { maxNewTokens })).tokens);
    const shipped = readdirSync(join(modelDir, 'drafters')).sort();
    expect(shipped).toEqual(['ctc', 'ctc-ce', 'ctc-l6', 'medusa']); // a new head must be added here
    for (const name of ['lookup', 'medusa', 'ctc', 'ctc:best-path', 'ctc:no-collapse', 'ctc-ce', 'ctc-l6', 'ctc-l6:best-path', 'ctc:short', 'ctc:short:best-path']) {
      const drafter = (await loadDrafter(name, modelDir, { config, tensors })).make();
      let drafted = 0;
      for (let i = 0; i < prompts.length; i++) {
        // a fixed budget, so every step really drafts and verifies a tree
        const r = await generateSpeculative(model, prompts[i]!, drafter, { maxNewTokens, treeBudget: 8 });
        expect(r.tokens, `${name}, prompt ${i}`).toEqual(reference[i]);
        drafted += r.stats.newTokens - r.stats.steps;
      }
      if (name !== 'medusa') expect(drafted, `${name} accepted no draft at all`).toBeGreaterThan(0);
    }
  });
});
