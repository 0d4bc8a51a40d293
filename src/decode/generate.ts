/**
 * Plain autoregressive generation: prefill the prompt in one batched forward, then one
 * forward per new token. Tokens stream out through `onToken` as they are chosen.
 */
import { ContextError, type Llama } from '../model/llama.js';
import { defaultStopIds, type LlamaConfig } from '../model/config.js';
import type { DraftCandidate } from '../draft/drafter.js';
import { exclusive } from './exclusive.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import type { TokenTree } from './tree.js';

export interface GenerateOptions extends SamplerOptions {
  maxNewTokens: number;
  /**
   * stop after this token, or any of these (default: the model's generation_config.json
   * eos_token_id, else config.json's, if any); null disables
   */
  eosId?: number | readonly number[] | null;
  /** called with every new token as soon as it is chosen */
  onToken?: (id: number) => void;
  /** called after every base-model step (the prefill is step 0) with what it did */
  onStep?: (event: StepEvent) => void;
  /** stops the generation between steps: the call rejects with the signal's reason */
  signal?: AbortSignal;
}

/** What one base-model step did: for progress displays, visualisations and profiling. */
export interface StepEvent {
  /** 0 for the prefill, then 1, 2, ... */
  step: number;
  /** prefill: the prompt's forward; plain: one token; draft: a drafted tree verified */
  kind: 'prefill' | 'plain' | 'draft';
  /** the drafter's proposals (draft steps; [] otherwise) */
  candidates: readonly DraftCandidate[];
  /** the verified tree, root first (draft steps; null otherwise) */
  tree: TokenTree | null;
  /** accepted draft tokens, in order */
  accepted: readonly number[];
  /** the base model's own token after the accepted ones */
  bonus: number;
  /** the tokens this step emitted: accepted + bonus, cut where generation stops */
  emitted: readonly number[];
  draftMs: number;
  verifyMs: number;
}

/** Logits that hold NaN or an infinity: the weights or activations overflowed float32. */
export class NumericError extends Error {
  override name = 'NumericError';
}

/**
 * Stop with a clear error instead of emitting a token chosen from NaN: a greedy argmax over
 * NaN picks an arbitrary id, and sampling from it is undefined. `rows` rows of V logits.
 */
export function assertFiniteLogits(logits: Float32Array, rows: number, V: number, step: number): void {
  for (let i = 0; i < rows * V; i++) {
    const x = logits[i]!;
    if (x - x !== 0) {
      // x - x is NaN exactly for NaN and +-Infinity
      throw new NumericError(
        `step ${step}: the logits hold ${x} (row ${Math.floor(i / V)}, token ${i % V}); the model's weights or activations ` +
          'overflowed float32, so generation stopped instead of emitting a token chosen from them',
      );
    }
  }
}

export interface GenerationStats {
  newTokens: number;
  steps: number; // base-model forward passes (prefill counts as one: it yields the first token)
  tokensPerStep: number;
  wallMs: number;
  tokensPerSecond: number;
  prefillMs: number;
}

export interface GenerationResult {
  tokens: number[]; // the new tokens only
  stopReason: 'eos' | 'max-tokens' | 'context';
  stats: GenerationStats;
}

/** The statistics every generation loop reports, from its start time `t0` (performance.now()). */
export function generationStats(newTokens: number, steps: number, t0: number, prefillMs: number): GenerationStats {
  const wallMs = performance.now() - t0;
  return {
    newTokens,
    steps,
    tokensPerStep: steps ? newTokens / steps : 0,
    wallMs,
    tokensPerSecond: wallMs > 0 ? (newTokens / wallMs) * 1000 : 0,
    prefillMs,
  };
}

export function checkPrompt(model: Llama, prompt: readonly number[]): void {
  if (prompt.length === 0) throw new RangeError('prompt is empty: give at least one token (for example BOS)');
  const V = model.config.vocab_size;
  for (const id of prompt) {
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`prompt token ${id} is not in the vocabulary [0, ${V})`);
  }
  if (prompt.length > model.maxSeq) {
    throw new ContextError(`prompt of ${prompt.length} tokens is longer than the context length ${model.maxSeq}`);
  }
}

/** Plain generation. Calls on one model run one at a time, in call order (exclusive.ts). */
/** The tokens that stop a generation, as a list (empty: never stop early); undefined means the model's default. */
export function stopIds(eosId: GenerateOptions['eosId'], config: LlamaConfig): readonly number[] {
  const ids = eosId === undefined ? defaultStopIds(config) : eosId;
  return ids === undefined || ids === null ? [] : typeof ids === 'number' ? [ids] : ids;
}

export function generate(model: Llama, prompt: readonly number[], opts: GenerateOptions): Promise<GenerationResult> {
  return exclusive(model, () => generatePlain(model, prompt, opts));
}

async function generatePlain(model: Llama, prompt: readonly number[], opts: GenerateOptions): Promise<GenerationResult> {
  checkPrompt(model, prompt);
  if (!(Number.isInteger(opts.maxNewTokens) && opts.maxNewTokens >= 0)) {
    throw new RangeError(`maxNewTokens must be an integer >= 0, got ${opts.maxNewTokens}`);
  }
  const eos = stopIds(opts.eosId, model.config);
  const sampler = new Sampler(model.config.vocab_size, opts);
  const tokens: number[] = [];
  let stopReason: GenerationResult['stopReason'] = 'max-tokens';
  let steps = 0;
  const t0 = performance.now();
  model.reset();
  let prefillMs = 0;
  const one = [0]; // the next input token, reused so the loop allocates nothing
  const V = model.config.vocab_size;
  if (opts.maxNewTokens > 0) {
    opts.signal?.throwIfAborted();
    let logits = await model.forward(prompt);
    assertFiniteLogits(logits, 1, V, steps);
    prefillMs = performance.now() - t0;
    steps++;
    let stepStart = t0;
    for (;;) {
      const next = sampler.sample(logits);
      tokens.push(next);
      opts.onToken?.(next);
      if (opts.onStep) {
        const ms = performance.now() - stepStart;
        opts.onStep({ step: steps - 1, kind: steps === 1 ? 'prefill' : 'plain', candidates: [], tree: null, accepted: [], bonus: next, emitted: [next], draftMs: 0, verifyMs: ms });
      }
      if (eos.includes(next)) {
        stopReason = 'eos';
        break;
      }
      if (tokens.length >= opts.maxNewTokens) break;
      if (model.cacheLength >= model.maxSeq) {
        stopReason = 'context';
        break;
      }
      opts.signal?.throwIfAborted();
      stepStart = performance.now();
      one[0] = next;
      logits = await model.forward(one);
      assertFiniteLogits(logits, 1, V, steps);
      steps++;
    }
  }
  return { tokens, stopReason, stats: generationStats(tokens.length, steps, t0, prefillMs) };
}
