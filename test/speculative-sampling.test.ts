/**
 * Sampling losslessness: speculative sampling must draw its tokens from exactly the base
 * model's law, whatever the drafter proposes. Checked against the EXACT law of the first
 * three tokens (enumerated with the model), with fixed seeds so the test is deterministic.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { generate } from '../src/decode/generate.js';
import { Sampler, type SamplerOptions } from '../src/decode/sampler.js';
import { generateSpeculative } from '../src/decode/speculative.js';
import { fixedBudget, type BudgetPolicy } from '../src/decode/cost-model.js';
import { buildTree } from '../src/decode/tree.js';
import { verifySampling } from '../src/decode/verify.js';
import type { Drafter } from '../src/draft/drafter.js';
import { Llama } from '../src/model/llama.js';
import { parseConfig } from '../src/model/config.js';
import { garbageDrafter, mixDrafter, oracleDrafter, repeatedDrafter, spreadWeights } from '../src/testing/index.js';
import { Rng } from '../src/util/random.js';

const cpu = new CpuBackend();
const V = 5;
const config = parseConfig({
  hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 12,
  vocab_size: V, max_position_embeddings: 32, rope_theta: 10000, rms_norm_eps: 1e-5, tie_word_embeddings: false,
});
// scale 4: logits spread enough to differ per context, not so much that sampling is greedy
const model = new Llama(cpu, config, spreadWeights(config, 3, 4));
const prompt = [0, 3, 1];
const N = 3000;

/** The exact law of the first 3 tokens: 125 outcomes, index t1 * 25 + t2 * 5 + t3. */
async function exactLaw(opts: SamplerOptions): Promise<Float64Array> {
  const sampler = new Sampler(V, opts);
  const dist = async (prefix: number[]): Promise<Float32Array> => {
    model.reset();
    return Float32Array.from(sampler.distribution(await model.forward(prefix)));
  };
  const law = new Float64Array(V ** 3);
  const p1 = await dist(prompt);
  for (let a = 0; a < V; a++) {
    const p2 = await dist([...prompt, a]);
    for (let b = 0; b < V; b++) {
      const p3 = await dist([...prompt, a, b]);
      for (let c = 0; c < V; c++) law[a * 25 + b * 5 + c] = p1[a]! * p2[b]! * p3[c]!;
    }
  }
  return law;
}

async function empirical(run: (seed: number) => Promise<number[]>): Promise<Float64Array> {
  const freq = new Float64Array(V ** 3);
  for (let seed = 0; seed < N; seed++) {
    const [a, b, c] = await run(seed);
    freq[a! * 25 + b! * 5 + c!]! += 1 / N;
  }
  return freq;
}

const tv = (p: ArrayLike<number>, q: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += Math.abs(p[i]! - q[i]!);
  return s / 2;
};
/** `times` the expected total variation between `law` and the frequencies of n samples from it. */
const noiseBound = (law: ArrayLike<number>, n = N, times = 3) => {
  let s = 0;
  for (let i = 0; i < law.length; i++) s += Math.sqrt((law[i]! * (1 - law[i]!)) / n);
  return times * 0.5 * Math.sqrt(2 / Math.PI) * s;
};
/** The law of token `k` (0, 1, 2) alone, from a law over 3-token outcomes. */
const marginal = (law: Float64Array, k: number) => {
  const m = new Float64Array(V), div = V ** (2 - k);
  for (let i = 0; i < law.length; i++) m[Math.floor(i / div) % V]! += law[i]!;
  return m;
};
/** Joint law within 2x its sampling noise, each token's marginal within 2.5x. */
function expectSameLaw(freq: Float64Array, law: Float64Array, what: string): void {
  expect(tv(freq, law), `${what}: joint`).toBeLessThan(noiseBound(law, N, 2));
  for (let k = 0; k < 3; k++) expect(tv(marginal(freq, k), marginal(law, k)), `${what}: token ${k}`).toBeLessThan(noiseBound(marginal(law, k), N, 2.5));
}

/** Proposes every token at depth 1 (all rejected except possibly one) plus the greedy chain. */
function everyTokenDrafter(chain: readonly number[]): Drafter {
  const oracle = oracleDrafter(chain);
  return mixDrafter(oracle, { name: 'every', begin() {}, propose: () => Array.from({ length: V }, (_, t) => ({ tokens: [t, (t + 1) % V], score: -t })), accept() {} });
}

describe('speculative sampling has the base model law', () => {
  for (const opts of [{ temperature: 1 }, { temperature: 0.7, topP: 0.8 }]) {
    it(`first 3 tokens, temperature ${opts.temperature}, topP ${'topP' in opts ? opts.topP : 1}`, async () => {
      const law = await exactLaw(opts);
      const greedy = [...prompt, ...(await generate(model, prompt, { maxNewTokens: 8, eosId: null })).tokens];
      const plain = await empirical(async (seed) => (await generate(model, prompt, { ...opts, seed, maxNewTokens: 3, eosId: null })).tokens);
      expectSameLaw(plain, law, 'plain sampling');
      const drafters: Record<string, (seed: number) => Drafter> = {
        greedyChain: () => oracleDrafter(greedy),
        // the drafter's random stream must not be the sampler's (a draft may not peek at the uniforms)
        garbage: (seed) => garbageDrafter(V, seed + 1_000_003, 4),
        mixed: (seed) => repeatedDrafter(mixDrafter(garbageDrafter(V, seed + 2_000_003, 2), oracleDrafter(greedy))),
        everyToken: () => everyTokenDrafter(greedy),
      };
      for (const [name, make] of Object.entries(drafters)) {
        let accepted = 0;
        const fast = await empirical(async (seed) => {
          const r = await generateSpeculative(model, prompt, make(seed), { ...opts, seed, maxNewTokens: 3, eosId: null, treeBudget: 12, maxDraftLen: 3 });
          accepted += r.stats.acceptedPerStep.reduce((s, n, k) => s + n * k, 0);
          return r.tokens;
        });
        expect(accepted, `${name} never had a draft accepted`).toBeGreaterThan(N / 10);
        expectSameLaw(fast, law, name);
      }
      // plain steps (budget 0: no tree, the drafter not asked) mixed with tree steps
      let step = 0;
      const alternating: BudgetPolicy = { choose: (max) => (step++ % 2 === 0 ? 0 : max), observe: () => {} };
      const mixed = await empirical(async (seed) => {
        const r = await generateSpeculative(model, prompt, garbageDrafter(V, seed + 3_000_003, 3), { ...opts, seed, maxNewTokens: 3, eosId: null, treeBudget: 12, maxDraftLen: 3, budget: alternating });
        return r.tokens;
      });
      expectSameLaw(mixed, law, 'plain and tree steps alternating');
    });
  }

  it('with every step plain (budget 0), the tokens are generate\'s, seed for seed', async () => {
    for (let seed = 0; seed < 40; seed++) {
      const opts = { temperature: 0.9, topP: 0.95, seed, maxNewTokens: 8, eosId: null };
      const plain = await generate(model, prompt, opts);
      const spec = await generateSpeculative(model, prompt, garbageDrafter(V, seed, 4), { ...opts, budget: fixedBudget(0) });
      expect(spec.tokens).toEqual(plain.tokens);
      expect(spec.stats.steps).toBe(plain.stats.steps);
    }
  });
});

describe('verifySampling', () => {
  it('the token leaving each node has the law of that node (many samples of a hand tree)', () => {
    // root -> 2 (-> 1, 3), 0, 4 ; logits (T = 6, V)
    const tree = buildTree(
      [{ tokens: [2, 1], score: -1 }, { tokens: [2, 3], score: -2 }, { tokens: [0], score: -3 }, { tokens: [4], score: -4 }],
      10,
      { rootToken: 1 },
    );
    expect(tree.tokens).toEqual([1, 2, 1, 3, 0, 4]);
    const rng = new Rng(11);
    const logits = Float32Array.from({ length: tree.size * V }, () => rng.normal() * 1.5);
    const sampler = new Sampler(V, { temperature: 1, seed: 5 });
    const pRoot = Float64Array.from(sampler.distribution(logits, 0));
    const pTwo = Float64Array.from(sampler.distribution(logits, 1 * V)); // node 1 holds token 2
    const first = new Float64Array(V), second = new Float64Array(V);
    const M = 100_000;
    let afterTwo = 0;
    for (let i = 0; i < M; i++) {
      const { accepted, bonus } = verifySampling(tree, logits, sampler);
      const tokens = [...accepted.map((n) => tree.tokens[n]!), bonus];
      first[tokens[0]!]! += 1 / M;
      if (tokens[0] === 2) {
        second[tokens[1]!]! += 1;
        afterTwo++;
      }
      // a path is accepted node by node: each accepted node is a child of the previous
      for (let k = 0; k < accepted.length; k++) expect(tree.parent[accepted[k]!]).toBe(k === 0 ? 0 : accepted[k - 1]);
    }
    for (let t = 0; t < V; t++) second[t]! /= afterTwo;
    expect(tv(first, pRoot)).toBeLessThan(noiseBound(pRoot, M));
    expect(tv(second, pTwo)).toBeLessThan(noiseBound(pTwo, afterTwo));
  });

  it('with temperature 0 it is verifyGreedy', () => {
    const tree = buildTree([{ tokens: [3], score: 0 }], 4, { rootToken: 0 });
    const logits = Float32Array.from([0, 0, 0, 9, 0, 0, 5, 0, 0, 0]);
    expect(verifySampling(tree, logits, new Sampler(V))).toEqual({ accepted: [1], bonus: 1 });
  });
});
