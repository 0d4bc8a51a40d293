/**
 * The shipped model on the WebGL backend (gpu.js in headless Chromium, driven through
 * test/gpujs-remote.ts), on the first bench prompts (src/node/bench-spec.ts): greedy tokens
 * equal the CPU backend's; a tree forward gives every node exactly the logits of a
 * step-by-step decode of its root path; speculative greedy decoding with the CTC head, run on
 * this backend too, emits exactly plain greedy's tokens. Needs `npm run build` first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, SHIPPED_MODEL } from '../src/node/index.js';
import { benchPrompts } from '../src/node/bench-spec.js';
import type { TextModel } from '../src/api/text-model.js';
import { expectTreeEqualsDecode } from './helpers.js';
import { openWebgl, type WebglSession } from './gpujs-remote.js';

/** bench prompts checked: each is a plain run on both backends and a drafted run here */
const PROMPTS = 2;
const MAX_NEW_TOKENS = 16;
/** a fixed tree budget: every step drafts (the automatic budget may decline on SwiftShader) */
const TREE_BUDGET = 8;
/** a verification tree of two branches, depth up to 3, parents before children */
const TREE_PARENTS = [-1, 0, 0, 1, -1];
/** the tree's prefix: the first tokens of a bench prompt (each node's decode prefills it again) */
const TREE_PREFIX = 8;

let session: WebglSession;
let gl: TextModel;
let cpu: TextModel;
let prompts: number[][];

beforeAll(async () => {
  session = await openWebgl();
  [gl, cpu] = await Promise.all([loadModel(SHIPPED_MODEL, { backend: session.backend }), loadModel(SHIPPED_MODEL, { backend: 'cpu' })]);
  prompts = await benchPrompts(cpu.tokenizer, PROMPTS);
});
afterAll(() => session?.close());

const greedy = { drafter: 'none', maxNewTokens: MAX_NEW_TOKENS, eosId: null } as const;

describe('the shipped model on WebGL', () => {
  it('plain greedy tokens equal the CPU backend\'s on the bench prompts', async () => {
    for (const prompt of prompts) {
      const want = (await cpu.generate(prompt, greedy)).tokens;
      const got = await gl.generate(prompt, greedy);
      expect(got.backend).toBe('webgl');
      expect(got.tokens).toEqual(want);
    }
  });

  it('a tree forward gives every node the logits of a step-by-step decode, bit for bit', async () => {
    await expectTreeEqualsDecode(gl.model, prompts[0]!.slice(0, TREE_PREFIX), prompts[1]!.slice(0, TREE_PARENTS.length), TREE_PARENTS);
  });

  it('speculative greedy with the CTC head on this backend emits plain greedy\'s tokens', async () => {
    let steps = 0, tokens = 0;
    for (const prompt of prompts) {
      const plain = (await gl.generate(prompt, greedy)).tokens;
      const drafted = await gl.generate(prompt, { ...greedy, drafter: 'ctc', treeBudget: TREE_BUDGET, headBackend: 'model' });
      expect(drafted.drafter.name).toMatch(/^ctc/);
      expect(drafted.tokens).toEqual(plain);
      steps += drafted.stats.steps;
      tokens += drafted.tokens.length;
    }
    expect(tokens / steps).toBeGreaterThan(1); // the drafts were verified and some accepted
  });
});
