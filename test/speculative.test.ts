import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { generate } from '../src/decode/generate.js';
import { generateSpeculative } from '../src/decode/speculative.js';
import type { DraftCandidate, Drafter } from '../src/draft/drafter.js';
import { PromptLookupDrafter } from '../src/draft/lookup.js';
import { NoDrafter } from '../src/draft/none.js';
import { ContextError } from '../src/model/llama.js';
import { parseConfig } from '../src/model/config.js';
import {
  ADVERSARIES,
  adversary,
  assertLosslessGreedy,
  garbageDrafter,
  mixDrafter,
  oracleDrafter,
  tinyModel,
} from '../src/testing/index.js';

const cpu = new CpuBackend();
const RUNS = 25;

const config = parseConfig({
  hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 24,
  vocab_size: 12, max_position_embeddings: 64, rope_theta: 10000, rms_norm_eps: 1e-5, tie_word_embeddings: false,
});

describe('generateSpeculative, greedy: the output is exactly generate()', () => {
  it('no drafter', () => assertLosslessGreedy(() => new NoDrafter(), { backend: cpu, numRuns: RUNS, seed: 1 }));
  it('prompt lookup', () => assertLosslessGreedy(() => new PromptLookupDrafter({ maxNgram: 3 }), { backend: cpu, numRuns: RUNS, seed: 2 }));
  it('garbage tokens', () => assertLosslessGreedy(({ model, seed }) => garbageDrafter(model.config.vocab_size, seed), { backend: cpu, numRuns: RUNS, seed: 3 }));
  it('oracle (the true continuation)', () =>
    assertLosslessGreedy(({ prompt, reference }) => oracleDrafter([...prompt, ...reference]), { backend: cpu, numRuns: RUNS, seed: 4 }));
  for (const kind of ADVERSARIES) {
    it(`adversary: ${kind}`, () =>
      assertLosslessGreedy(({ model, prompt, reference, seed }) => adversary(kind, model.config.vocab_size, [...prompt, ...reference], seed), {
        backend: cpu,
        numRuns: 15,
        seed: 10 + ADVERSARIES.indexOf(kind),
      }));
  }
  it('mixtures: lookup + oracle + garbage', () =>
    assertLosslessGreedy(
      ({ model, prompt, reference, seed }) =>
        mixDrafter(new PromptLookupDrafter(), oracleDrafter([...prompt, ...reference]), garbageDrafter(model.config.vocab_size, seed)),
      { backend: cpu, numRuns: RUNS, seed: 5 },
    ));
});

describe('generateSpeculative: steps and stats', () => {
  const model = tinyModel(cpu, config, 7);
  const prompt = [1, 2, 3];

  it('the oracle emits maxDraftLen + 1 tokens per step; none emits one', async () => {
    const plain = await generate(model, prompt, { maxNewTokens: 30, eosId: null });
    const oracle = oracleDrafter([...prompt, ...plain.tokens]);
    const fast = await generateSpeculative(model, prompt, oracle, { maxNewTokens: 30, eosId: null, maxDraftLen: 4, treeBudget: 8 });
    expect(fast.tokens).toEqual(plain.tokens);
    // prefill gives token 1; each step then accepts 4 and adds the bonus: 1 + 5 * 5 = 26, then 4 left -> 3 + bonus
    expect(fast.stats.steps).toBe(1 + 6);
    expect(fast.stats.tokensPerStep).toBeCloseTo(30 / 7);
    expect(fast.stats.acceptedPerStep).toEqual([0, 0, 0, 1, 5]);
    const none = await generateSpeculative(model, prompt, new NoDrafter(), { maxNewTokens: 30, eosId: null });
    expect(none.tokens).toEqual(plain.tokens);
    expect(none.stats.steps).toBe(30);
    expect(none.stats.acceptedPerStep[0]).toBe(29);
  });

  it('oracle: tokensPerStep > 1 over random tiny models (verification does accept)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 1e6 }), fc.array(fc.integer({ min: 0, max: 11 }), { minLength: 1, maxLength: 8 }), async (seed, p) => {
        const m = tinyModel(cpu, config, seed);
        const plain = await generate(m, p, { maxNewTokens: 12, eosId: null });
        const fast = await generateSpeculative(m, p, oracleDrafter([...p, ...plain.tokens]), { maxNewTokens: 12, eosId: null });
        expect(fast.tokens).toEqual(plain.tokens);
        expect(fast.stats.tokensPerStep).toBeGreaterThan(2);
      }),
      { numRuns: 10, seed: 6 },
    );
  });

  it('EOS inside an accepted draft stops there; maxNewTokens 0 and 1; onToken streams the tokens', async () => {
    const plain = await generate(model, prompt, { maxNewTokens: 20, eosId: null });
    const eosId = plain.tokens[5]!;
    const want = await generate(model, prompt, { maxNewTokens: 20, eosId });
    const seen: number[] = [];
    const fast = await generateSpeculative(model, prompt, oracleDrafter([...prompt, ...plain.tokens]), {
      maxNewTokens: 20, eosId, maxDraftLen: 8, onToken: (t) => seen.push(t),
    });
    expect(fast.tokens).toEqual(want.tokens);
    expect(fast.stopReason).toBe('eos');
    expect(seen).toEqual(fast.tokens);
    expect(fast.stats.steps).toBe(want.tokens.length === 1 ? 1 : 2); // the EOS came inside the first step's accepted draft
    for (const n of [0, 1]) {
      const r = await generateSpeculative(model, prompt, oracleDrafter([...prompt, ...plain.tokens]), { maxNewTokens: n, eosId: null });
      expect(r.tokens).toEqual(plain.tokens.slice(0, n));
      expect(r.stats.steps).toBe(n);
    }
  });

  it('stops at the context limit exactly where generate does', async () => {
    for (const maxSeq of [3, 4, 5, 9]) {
      const m = tinyModel(cpu, config, 7, { maxSeq });
      const plain = await generate(m, prompt, { maxNewTokens: 20, eosId: null });
      const fast = await generateSpeculative(m, prompt, oracleDrafter([...prompt, ...plain.tokens, 0, 0]), { maxNewTokens: 20, eosId: null });
      expect(plain.stopReason).toBe('context');
      expect(fast.tokens).toEqual(plain.tokens);
      expect(fast.stopReason).toBe('context');
    }
    await expect(generateSpeculative(tinyModel(cpu, config, 7, { maxSeq: 2 }), prompt, new NoDrafter(), { maxNewTokens: 1 })).rejects.toThrow(ContextError);
  });

  it('prompt lookup on a repetitive prompt accepts drafts', async () => {
    const motif = [4, 9, 2, 7, 7, 1];
    const p = Array.from({ length: 24 }, (_, i) => motif[i % motif.length]!);
    const plain = await generate(model, p, { maxNewTokens: 30, eosId: null });
    const fast = await generateSpeculative(model, p, new PromptLookupDrafter(), { maxNewTokens: 30, eosId: null });
    expect(fast.tokens).toEqual(plain.tokens);
    // random models fall into short cycles, which the n-gram copy then predicts
    expect(fast.stats.tokensPerStep).toBeGreaterThan(1.5);
  });

  it('a drafter proposing a token outside the vocabulary is an error', async () => {
    const bad: Drafter = { name: 'bad', begin() {}, propose: () => [{ tokens: [12], score: 0 }], accept() {} };
    await expect(generateSpeculative(model, prompt, bad, { maxNewTokens: 5 })).rejects.toThrow(/drafter "bad" proposed token 12/);
    await expect(generateSpeculative(model, prompt, bad, { maxNewTokens: 5, treeBudget: -1 })).rejects.toThrow(/treeBudget/);
  });

  it('drafter.accept gets the kept tokens with their hidden states, matching a causal forward', async () => {
    const plain = await generate(model, prompt, { maxNewTokens: 10, eosId: null });
    const seq = [...prompt, ...plain.tokens];
    const rows: number[][] = [];
    const inner = oracleDrafter(seq);
    const spy: Drafter = {
      name: 'spy',
      begin: (pr, h) => {
        for (let i = 0; i < pr.length; i++) rows.push([...h.subarray(i * 16, (i + 1) * 16)]);
        inner.begin(pr, h);
      },
      propose: (root, maxLen) => [...(inner.propose(root, maxLen) as DraftCandidate[]), { tokens: [(root + 1) % 12, 3], score: -5 }],
      accept: (tokens, h) => {
        expect(tokens).toEqual(seq.slice(rows.length, rows.length + tokens.length));
        for (let i = 0; i < tokens.length; i++) rows.push([...h.subarray(i * 16, (i + 1) * 16)]);
        inner.accept(tokens, h);
      },
    };
    await generateSpeculative(model, prompt, spy, { maxNewTokens: 10, eosId: null, maxDraftLen: 3 });
    const ref = tinyModel(cpu, config, 7);
    const hidden = new Float32Array(rows.length * 16);
    await ref.forward(seq.slice(0, rows.length), { hiddenOut: hidden });
    for (let i = 0; i < rows.length; i++) {
      for (let d = 0; d < 16; d++) expect(rows[i]![d]!).toBeCloseTo(hidden[i * 16 + d]!, 3);
    }
  });
});
