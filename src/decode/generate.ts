/**
 * Plain autoregressive generation: prefill the prompt in one batched forward, then one
 * forward per new token. Tokens stream out through `onToken` as they are chosen.
 */
import { ContextError, type Llama } from '../model/llama.js';
import { Sampler, type SamplerOptions } from './sampler.js';

export interface GenerateOptions extends SamplerOptions {
  maxNewTokens: number;
  /** stop after this token (default: the model's eos_token_id, if any); null disables */
  eosId?: number | null;
  /** called with every new token as soon as it is chosen */
  onToken?: (id: number) => void;
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

export async function generate(model: Llama, prompt: readonly number[], opts: GenerateOptions): Promise<GenerationResult> {
  checkPrompt(model, prompt);
  if (!(Number.isInteger(opts.maxNewTokens) && opts.maxNewTokens >= 0)) {
    throw new RangeError(`maxNewTokens must be an integer >= 0, got ${opts.maxNewTokens}`);
  }
  const eos = opts.eosId === undefined ? model.config.eos_token_id ?? null : opts.eosId;
  const sampler = new Sampler(model.config.vocab_size, opts);
  const tokens: number[] = [];
  let stopReason: GenerationResult['stopReason'] = 'max-tokens';
  let steps = 0;
  const t0 = performance.now();
  model.reset();
  let prefillMs = 0;
  const one = [0]; // the next input token, reused so the loop allocates nothing
  if (opts.maxNewTokens > 0) {
    let logits = await model.forward(prompt);
    prefillMs = performance.now() - t0;
    steps++;
    for (;;) {
      const next = sampler.sample(logits);
      tokens.push(next);
      opts.onToken?.(next);
      if (next === eos) {
        stopReason = 'eos';
        break;
      }
      if (tokens.length >= opts.maxNewTokens) break;
      if (model.cacheLength >= model.maxSeq) {
        stopReason = 'context';
        break;
      }
      one[0] = next;
      logits = await model.forward(one);
      steps++;
    }
  }
  return { tokens, stopReason, stats: generationStats(tokens.length, steps, t0, prefillMs) };
}
