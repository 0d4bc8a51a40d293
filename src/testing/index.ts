/**
 * ctcspec/testing: property-test helpers for people who write their own drafters (and for
 * this project's own tests). Needs fast-check (a peer dependency of this entry point only).
 *
 *   tinyConfig, tinyModelSpec(), promptArb()     fast-check arbitraries: tiny random Llamas, prompts
 *   spreadWeights(), tinyModel()                  seeded weights whose logits are spread out
 *   oracleDrafter, garbageDrafter, emptyDrafter,  drafters for tests: the true continuation,
 *   overlongDrafter, repeatedDrafter, mixDrafter  random tokens, empty drafts, drafts longer than
 *                                                 asked for, duplicated candidates, unions
 *   assertLosslessGreedy(makeDrafter, opts?)      speculative greedy output == plain greedy output
 *
 * Example (vitest; any runner works, a failure throws with the counterexample):
 *   import { assertLosslessGreedy } from 'ctcspec/testing';
 *   it('my drafter is lossless', async () => {
 *     await assertLosslessGreedy(({ model, prompt }) => new MyDrafter(model.config, prompt), { numRuns: 50 });
 *   });
 * The drafter is built fresh for every random case; `ctx.reference` is the plain greedy
 * continuation of `ctx.prompt`, for drafters that cheat on purpose (see oracleDrafter).
 */
import fc from 'fast-check';
import type { Backend } from '../backend/backend.js';
import { CpuBackend } from '../backend/cpu/cpu.js';
import { generate } from '../decode/generate.js';
import { generateSpeculative } from '../decode/speculative.js';
import type { DraftCandidate, Drafter } from '../draft/drafter.js';
import { randomWeights } from '../io/weights.js';
import { parseConfig, type LlamaConfig } from '../model/config.js';
import { Llama, type LlamaOptions } from '../model/llama.js';
import type { TensorMap } from '../tensor/dtype.js';
import { Rng } from '../util/random.js';

// ---------------------------------------------------------------------------------------
// Tiny random models

/** Tiny Llama configs: GQA ratios, tied and untied heads, odd vocab sizes; context 64. */
export const tinyConfig: fc.Arbitrary<LlamaConfig> = fc
  .record({
    kvHeads: fc.constantFrom(1, 2),
    group: fc.constantFrom(1, 2),
    headDim: fc.constantFrom(4, 8),
    layers: fc.integer({ min: 1, max: 2 }),
    ffn: fc.integer({ min: 4, max: 24 }),
    vocab: fc.integer({ min: 5, max: 40 }),
    tie: fc.boolean(),
    theta: fc.constantFrom(10000, 500),
  })
  .map((r) =>
    parseConfig({
      hidden_size: r.kvHeads * r.group * r.headDim,
      num_hidden_layers: r.layers,
      num_attention_heads: r.kvHeads * r.group,
      num_key_value_heads: r.kvHeads,
      intermediate_size: r.ffn,
      vocab_size: r.vocab,
      max_position_embeddings: 64,
      rope_theta: r.theta,
      rms_norm_eps: 1e-5,
      tie_word_embeddings: r.tie,
    }),
  );

/**
 * Random weights scaled so that logits are spread out (std-0.02 init gives near-uniform
 * logits whose argmax is decided by rounding noise, which would make comparisons flaky).
 */
export function spreadWeights(config: LlamaConfig, seed: number, scale = 20): TensorMap {
  const w = randomWeights(config, seed);
  for (const [name, t] of w) if (!name.endsWith('norm.weight')) for (let i = 0; i < t.data.length; i++) t.data[i]! *= scale;
  return w;
}

export function tinyModel(backend: Backend, config: LlamaConfig, seed: number, opts: LlamaOptions = {}): Llama {
  return new Llama(backend, config, spreadWeights(config, seed), opts);
}

/** Everything that fixes a tiny model (models are stateful, so arbitraries yield specs, not models). */
export interface TinyModelSpec {
  config: LlamaConfig;
  seed: number; // weight seed
  maxSeq: number; // KV cache length (small values exercise the context limit)
  maxBatch: number; // 1 leaves no room for any draft node
}

export function tinyModelSpec(opts: { maxSeq?: { min: number; max: number }; maxBatch?: { min: number; max: number } } = {}): fc.Arbitrary<TinyModelSpec> {
  return fc.record({
    config: tinyConfig,
    seed: fc.integer({ min: 0, max: 1_000_000 }),
    maxSeq: fc.integer(opts.maxSeq ?? { min: 1, max: 64 }),
    maxBatch: fc.integer(opts.maxBatch ?? { min: 1, max: 24 }),
  });
}

export function modelFromSpec(backend: Backend, spec: TinyModelSpec): Llama {
  return tinyModel(backend, spec.config, spec.seed, { maxSeq: spec.maxSeq, maxBatch: spec.maxBatch });
}

/** Prompts over [0, vocab): random, or a short motif repeated (so n-gram lookup finds matches). */
export function promptArb(vocab: number, minLength = 1, maxLength = 12): fc.Arbitrary<number[]> {
  const token = fc.integer({ min: 0, max: vocab - 1 });
  const random = fc.array(token, { minLength, maxLength });
  const repeated = fc
    .tuple(fc.array(token, { minLength: 1, maxLength: 4 }), fc.integer({ min: minLength, max: maxLength }))
    .map(([motif, n]) => Array.from({ length: n }, (_, i) => motif[i % motif.length]!));
  return fc.oneof(random, repeated);
}

// ---------------------------------------------------------------------------------------
// Drafters for tests

/**
 * Proposes the true continuation: `sequence` is prompt + the base model's own output, and
 * the drafter tracks how much of it is in the cache. A lossless loop must accept its drafts
 * (tokens per step > 1), and must stay correct where the reference runs out or is wrong.
 */
export function oracleDrafter(sequence: readonly number[]): Drafter {
  let cached = 0;
  return {
    name: 'oracle',
    begin: (prompt) => void (cached = prompt.length),
    propose: (_root, maxLen) => {
      const tokens = sequence.slice(cached + 1, cached + 1 + maxLen);
      return tokens.length ? [{ tokens, score: 0 }] : [];
    },
    accept: (tokens) => void (cached += tokens.length),
  };
}

/**
 * Random tokens: up to `candidates` drafts of random length up to maxLen, random scores.
 * For sampling tests give it a seed unrelated to the sampler's: a drafter whose random stream
 * equals the verifier's uniforms is not independent of them, and then the output law is not
 * the model's (this really happens with seed === sampler seed).
 */
export function garbageDrafter(vocab: number, seed: number, candidates = 3): Drafter {
  const rng = new Rng(seed);
  return {
    name: 'garbage',
    begin: () => {},
    propose: (_root, maxLen) =>
      Array.from({ length: rng.int(candidates + 1) }, () => ({
        tokens: Array.from({ length: rng.int(maxLen + 1) }, () => rng.int(vocab)),
        score: (rng.next() - 0.5) * 10, // sometimes above a real draft's score 0
      })),
    accept: () => {},
  };
}

/** Candidates without tokens (and sometimes no candidates at all). */
export function emptyDrafter(): Drafter {
  let step = 0;
  return { name: 'empty', begin: () => {}, propose: () => (step++ % 2 ? [] : [{ tokens: [], score: 0 }, { tokens: [], score: -1 }]), accept: () => {} };
}

/** Wraps `inner` and ignores maxLen: every draft gets `extra` random tokens appended. */
export function overlongDrafter(inner: Drafter, vocab: number, seed: number, extra = 5): Drafter {
  const rng = new Rng(seed);
  return wrap(`overlong(${inner.name})`, inner, (cands) =>
    cands.map((c) => ({ tokens: [...c.tokens, ...Array.from({ length: extra }, () => rng.int(vocab))], score: c.score })),
  );
}

/** Wraps `inner`: every candidate twice, plus each of its prefixes, all with equal scores. */
export function repeatedDrafter(inner: Drafter): Drafter {
  return wrap(`repeated(${inner.name})`, inner, (cands) =>
    cands.flatMap((c) => [c, c, ...c.tokens.map((_, i) => ({ tokens: c.tokens.slice(0, i), score: c.score }))]),
  );
}

/** The union of several drafters' candidates (each keeps its own state). */
export function mixDrafter(...drafters: Drafter[]): Drafter {
  return {
    name: `mix(${drafters.map((d) => d.name).join(',')})`,
    begin: async (prompt, hidden) => {
      for (const d of drafters) await d.begin(prompt, hidden);
    },
    propose: async (root, maxLen) => {
      const out: DraftCandidate[] = [];
      for (const d of drafters) out.push(...(await d.propose(root, maxLen)));
      return out;
    },
    accept: async (tokens, hidden) => {
      for (const d of drafters) await d.accept(tokens, hidden);
    },
  };
}

function wrap(name: string, inner: Drafter, change: (c: DraftCandidate[]) => DraftCandidate[]): Drafter {
  return {
    name,
    begin: (prompt, hidden) => inner.begin(prompt, hidden),
    propose: async (root, maxLen) => change(await inner.propose(root, maxLen)),
    accept: (tokens, hidden) => inner.accept(tokens, hidden),
  };
}

/** The adversarial drafters above, by name, for a case whose true continuation is `sequence`. */
export const ADVERSARIES = ['garbage', 'empty', 'overlong', 'repeated', 'oracle', 'noisy-oracle'] as const;
export type Adversary = (typeof ADVERSARIES)[number];

export function adversary(kind: Adversary, vocab: number, sequence: readonly number[], seed: number): Drafter {
  switch (kind) {
    case 'garbage':
      return garbageDrafter(vocab, seed);
    case 'empty':
      return emptyDrafter();
    case 'overlong':
      return overlongDrafter(oracleDrafter(sequence), vocab, seed);
    case 'repeated':
      return repeatedDrafter(mixDrafter(oracleDrafter(sequence), garbageDrafter(vocab, seed, 1)));
    case 'oracle':
      return oracleDrafter(sequence);
    case 'noisy-oracle': {
      // the truth with one token changed somewhere, proposed ahead of the truth itself
      const rng = new Rng(seed), noisy = sequence.slice();
      for (let i = 0; i < noisy.length; i++) if (rng.next() < 0.2) noisy[i] = rng.int(vocab);
      return mixDrafter(oracleDrafter(noisy), garbageDrafter(vocab, seed + 1, 1));
    }
  }
}

// ---------------------------------------------------------------------------------------
// The losslessness property

export interface DrafterContext {
  model: Llama;
  prompt: number[];
  /** the plain greedy continuation of prompt (no EOS stop), as far as the context allows */
  reference: number[];
  seed: number;
}

export interface LosslessOptions {
  backend?: Backend; // default: a CpuBackend
  numRuns?: number; // default 30
  seed?: number; // fast-check seed, for a reproducible run
  maxNewTokens?: number; // largest maxNewTokens tried (default 16; 0 and 1 are always possible)
}

/**
 * Property: for random tiny models (including tiny contexts and maxBatch 1), prompts, EOS
 * ids taken from inside the reference output, tree budgets and draft lengths,
 * generateSpeculative(model, prompt, makeDrafter(ctx), { temperature: 0 }) gives exactly the
 * tokens and stop reason of generate(...), in no more base forwards. Throws (with fast-check's
 * shrunk counterexample) when it does not.
 */
export async function assertLosslessGreedy(
  makeDrafter: (ctx: DrafterContext) => Drafter | Promise<Drafter>,
  opts: LosslessOptions = {},
): Promise<void> {
  const backend = opts.backend ?? new CpuBackend();
  const maxNew = opts.maxNewTokens ?? 16;
  const cases = tinyModelSpec().chain((spec) =>
    fc.record({
      spec: fc.constant(spec),
      prompt: promptArb(spec.config.vocab_size, 1, Math.min(12, spec.maxSeq)),
      maxNewTokens: fc.integer({ min: 0, max: maxNew }),
      eosPick: fc.option(fc.nat(), { nil: null }), // index into the reference output, or no EOS
      treeBudget: fc.integer({ min: 0, max: 12 }),
      maxDraftLen: fc.integer({ min: 0, max: 8 }),
      seed: fc.nat(),
    }),
  );
  await fc.assert(
    fc.asyncProperty(cases, async ({ spec, prompt, maxNewTokens, eosPick, treeBudget, maxDraftLen, seed }) => {
      const model = modelFromSpec(backend, spec);
      const reference = (await generate(model, prompt, { maxNewTokens: maxNew + 8, eosId: null })).tokens;
      const eosId = eosPick === null || reference.length === 0 ? null : reference[eosPick % reference.length]!;
      const plain = await generate(model, prompt, { maxNewTokens, eosId });
      const drafter = await makeDrafter({ model, prompt, reference, seed });
      const fast = await generateSpeculative(model, prompt, drafter, { maxNewTokens, eosId, treeBudget, maxDraftLen });
      const same = fast.tokens.length === plain.tokens.length && fast.tokens.every((t, i) => t === plain.tokens[i]);
      if (!same || fast.stopReason !== plain.stopReason) {
        throw new Error(
          `drafter "${drafter.name}": speculative [${fast.tokens}] (${fast.stopReason}) != plain [${plain.tokens}] (${plain.stopReason})`,
        );
      }
      if (fast.stats.steps > plain.stats.steps) {
        throw new Error(`drafter "${drafter.name}": ${fast.stats.steps} base forwards, plain decoding needs ${plain.stats.steps}`);
      }
    }),
    opts.seed === undefined ? { numRuns: opts.numRuns ?? 30 } : { numRuns: opts.numRuns ?? 30, seed: opts.seed },
  );
}
