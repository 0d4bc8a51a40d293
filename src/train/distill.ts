/**
 * Self-distillation data for the draft heads (runtime-neutral; the Node adapter caches it
 * on disk). No external data: prompts are windows of the base model's own training split,
 * continued by the base model's GREEDY decoding, with the base model's final normed hidden
 * state of every token.
 *
 *   sequence   N tokens = prompt (P tokens, BOS first) + N - P greedy tokens
 *   hidden     (N, D): what Llama.forward({hiddenOut}) gives for each token as it enters
 *              the cache, i.e. exactly what a drafter's begin/accept receive at inference
 *
 * Training examples (for a head with draft length L), at position i of a sequence:
 *   inputs  hidden[0..i]               (the rows in the base cache)
 *   root    tokens[i + 1]              (emitted from hidden[i], not yet cached)
 *   targets tokens[i + 2 .. i + L + 1] (the next L greedy tokens after the root)
 * for i = P - 1 .. N - L - 2: the root and every target are the base model's own greedy
 * tokens, as at inference, where the first root is the token the prefill emits.
 *
 * Every sequence has the same length N (P varies), so a batch of sequences runs through
 * the head's causal layer as B x N rows without padding.
 */
import type { Llama } from '../model/llama.js';
import { argmaxRow } from '../util/numeric.js';
import { Rng } from '../util/random.js';

export interface DistillOptions {
  sequences: number; // how many sequences
  seqLen: number; // N tokens each (prompt + continuation), <= the base context
  promptMin: number; // prompt length P drawn uniformly from [promptMin, promptMax]
  promptMax: number;
  seed: number;
}

export interface DistillSet {
  count: number; // sequences
  seqLen: number; // N
  D: number; // hidden size
  tokens: Int32Array; // (count, N)
  promptLens: Int32Array; // (count)
  hidden: Float32Array; // (count, N, D)
}

export function checkDistillOptions(o: DistillOptions, maxSeq: number): void {
  const int = (v: number) => Number.isInteger(v) && v > 0;
  if (!(int(o.sequences) && int(o.seqLen) && int(o.promptMin) && int(o.promptMax))) throw new RangeError(`distill: counts must be positive integers, got ${JSON.stringify(o)}`);
  if (o.promptMin > o.promptMax || o.promptMax >= o.seqLen) throw new RangeError(`distill: need promptMin <= promptMax < seqLen, got ${o.promptMin}, ${o.promptMax}, ${o.seqLen}`);
  if (o.seqLen > maxSeq) throw new RangeError(`distill: seqLen ${o.seqLen} exceeds the base context ${maxSeq}`);
}

/** A prompt of `len` tokens: BOS, then a random window of the token stream. */
export function samplePrompt(stream: Uint16Array, rng: Rng, len: number, bos: number): number[] {
  if (stream.length < len) throw new RangeError(`distill: the token stream (${stream.length}) is shorter than a prompt (${len})`);
  const s = rng.int(stream.length - len + 2);
  const prompt = [bos];
  for (let t = s; prompt.length < len; t++) prompt.push(stream[t]!);
  return prompt;
}

/**
 * The greedy continuation of `prompt` to N tokens and the hidden state of every token,
 * fed to the model as inference does (prefill, then one token at a time).
 */
export async function distillSequence(model: Llama, prompt: readonly number[], N: number, tokens: Int32Array, hidden: Float32Array): Promise<void> {
  const D = model.config.hidden_size, V = model.config.vocab_size, P = prompt.length;
  model.reset();
  tokens.set(prompt);
  let logits = await model.forward(prompt, { hiddenOut: hidden.subarray(0, P * D) });
  for (let t = P; t < N; t++) {
    tokens[t] = argmaxRow(logits, 0, V); // greedy, lowest id on ties (as the sampler at temperature 0)
    logits = await model.forward([tokens[t]!], { hiddenOut: hidden.subarray(t * D, (t + 1) * D) });
  }
}

/** Build the whole set; `onProgress(done, total)` after each sequence. Deterministic given the seed. */
export async function buildDistillSet(
  model: Llama,
  stream: Uint16Array,
  o: DistillOptions,
  onProgress?: (done: number, total: number) => void,
): Promise<DistillSet> {
  checkDistillOptions(o, model.maxSeq);
  const N = o.seqLen, D = model.config.hidden_size, bos = model.config.bos_token_id ?? 1;
  const set: DistillSet = {
    count: o.sequences, seqLen: N, D,
    tokens: new Int32Array(o.sequences * N), promptLens: new Int32Array(o.sequences), hidden: new Float32Array(o.sequences * N * D),
  };
  const rng = new Rng(o.seed);
  for (let n = 0; n < o.sequences; n++) {
    const P = o.promptMin + rng.int(o.promptMax - o.promptMin + 1);
    set.promptLens[n] = P;
    await distillSequence(model, samplePrompt(stream, rng, P, bos), N, set.tokens.subarray(n * N, (n + 1) * N), set.hidden.subarray(n * N * D, (n + 1) * N * D));
    onProgress?.(n + 1, o.sequences);
  }
  return set;
}

/** The example positions i of sequence n for draft length L (see the file comment). */
export function examplePositions(set: DistillSet, n: number, L: number): { first: number; last: number } {
  return { first: set.promptLens[n]! - 1, last: set.seqLen - L - 2 };
}

/** the sequences [from, to) as a set of their own (views, no copy) */
export function sliceDistillSet(set: DistillSet, from: number, to: number): DistillSet {
  const N = set.seqLen, D = set.D;
  return {
    count: to - from, seqLen: N, D,
    tokens: set.tokens.subarray(from * N, to * N), promptLens: set.promptLens.subarray(from, to), hidden: set.hidden.subarray(from * N * D, to * N * D),
  };
}
