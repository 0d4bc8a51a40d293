/**
 * Self-distillation data for the draft heads (runtime-neutral; the Node adapter caches it
 * on disk). No external data: prompts are windows of a corpus's training split (the base
 * model's own, when it was trained here), continued by the base model's GREEDY decoding,
 * with the base model's final normed hidden state of every token.
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
 *
 * The set is built in batches of sequences that the base model continues together
 * (BatchDistiller), bit for bit what one sequence at a time gives, and every prompt is drawn
 * up front from the seed, so a build can stop after any batch and go on later (distillInto's
 * `from`) with the same result.
 */
import { headDim, paramCount, type LlamaConfig } from '../model/config.js';
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

/** A prompt of `len` tokens: BOS (when there is one), then a random window of the token stream. */
export function samplePrompt(stream: ArrayLike<number>, rng: Rng, len: number, bos: number | null): number[] {
  if (stream.length < len) throw new RangeError(`distill: the token stream (${stream.length}) is shorter than a prompt (${len})`);
  const s = rng.int(stream.length - len + 2);
  const prompt = bos === null ? [] : [bos];
  for (let t = s; prompt.length < len; t++) prompt.push(stream[t]!);
  return prompt;
}

/**
 * Every prompt of the set, drawn up front from the seed: sequence n's prompt is the same
 * however the set is built (one at a time, in batches, resumed from a part).
 */
export function distillPrompts(stream: ArrayLike<number>, o: DistillOptions, bos: number | null): number[][] {
  const rng = new Rng(o.seed), prompts: number[][] = [];
  for (let n = 0; n < o.sequences; n++) {
    const P = o.promptMin + rng.int(o.promptMax - o.promptMin + 1);
    prompts.push(samplePrompt(stream, rng, P, bos));
  }
  return prompts;
}

/**
 * The greedy continuation of `prompt` to N tokens and the hidden state of every token,
 * fed to the model as inference does (prefill, then one token at a time): the reference
 * that BatchDistiller reproduces.
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

/**
 * Greedy continuations of B prompts at once, as one batch of the model: a weight matrix read
 * once serves B tokens, where one sequence at a time reads every weight for each token.
 *
 * The B sequences share the KV cache: each forward appends the rows it runs, sequence by
 * sequence, so the sequences' slots interleave, and a block mask lets a row see only its own
 * sequence's slots (and, within the forward, its own earlier rows); its RoPE position is its
 * place in its own sequence. A row's arithmetic on the CPU backend does not depend on what
 * else is in the batch or which slots the mask turns off (see CpuBackend.attention), so each
 * sequence comes out bit for bit as distillSequence makes it.
 *
 * One loop does prefill and decoding: each forward runs every row not yet run of every
 * sequence (the prompts first, then one new token per sequence), up to the model's maxBatch
 * rows; a row that is the last known token of its sequence gives the next token, greedily.
 * The cache must hold B * N slots (the model's maxSeq).
 */
export class BatchDistiller {
  private readonly owner: Int32Array; // (maxSeq) the sequence whose token each cache slot holds
  private readonly mask: Float32Array; // (maxBatch, maxSeq) additive attention mask of a forward
  private readonly hiddenRows: Float32Array; // (maxBatch, D) hidden states of a forward's rows
  private readonly rowSeq: Int32Array; // (maxBatch) sequence of each row
  private readonly rowPos: Int32Array; // (maxBatch) position of each row in its sequence
  private readonly rowToken: Int32Array; // (maxBatch)

  constructor(
    readonly model: Llama,
    readonly seqLen: number,
  ) {
    const R = model.maxBatch, S = model.maxSeq, D = model.config.hidden_size;
    if (seqLen > S) throw new RangeError(`distill: a sequence of ${seqLen} tokens does not fit the model's cache of ${S}`);
    this.owner = new Int32Array(S);
    this.mask = new Float32Array(R * S);
    this.hiddenRows = new Float32Array(R * D);
    this.rowSeq = new Int32Array(R);
    this.rowPos = new Int32Array(R);
    this.rowToken = new Int32Array(R);
  }

  /** sequences one batch can hold: the cache's slots over the sequence length */
  get capacity(): number {
    return Math.floor(this.model.maxSeq / this.seqLen);
  }

  /**
   * Distill `prompts` (at most `capacity`) into tokens (B, N) and hidden (B, N, D), row-major
   * views of the set being built.
   */
  async run(prompts: readonly (readonly number[])[], tokens: Int32Array, hidden: Float32Array): Promise<void> {
    const model = this.model, N = this.seqLen, B = prompts.length, D = model.config.hidden_size, V = model.config.vocab_size;
    if (B > this.capacity) throw new RangeError(`distill: ${B} sequences of ${N} tokens exceed the model's cache of ${model.maxSeq} slots`);
    const known = new Int32Array(B); // tokens known of each sequence (the prompt, then each greedy token)
    const ran = new Int32Array(B); // tokens of each sequence already run through the model
    prompts.forEach((p, b) => {
      if (p.length < 1 || p.length > N) throw new RangeError(`distill: a prompt of ${p.length} tokens for sequences of ${N}`);
      tokens.set(p, b * N);
      known[b] = p.length;
    });
    model.reset();
    for (;;) {
      const T = this.gatherRows(tokens, known, ran);
      if (T === 0) return;
      const past = model.cacheLength;
      this.fillMask(T, past);
      const logits = await model.forwardTree(this.rowToken.subarray(0, T), this.rowPos.subarray(0, T), this.mask.subarray(0, T * (past + T)), {
        hiddenOut: this.hiddenRows.subarray(0, T * D),
      });
      for (let r = 0; r < T; r++) {
        const b = this.rowSeq[r]!, t = this.rowPos[r]!;
        for (let d = 0, to = (b * N + t) * D, from = r * D; d < D; d++) hidden[to + d] = this.hiddenRows[from + d]!;
        ran[b] = t + 1;
        if (t === known[b]! - 1 && known[b]! < N) {
          tokens[b * N + known[b]!] = argmaxRow(logits, r * V, V); // greedy, lowest id on ties
          known[b]!++;
        }
      }
    }
  }

  /** the rows of the next forward: each sequence's known tokens not yet run, in sequence order; their count */
  private gatherRows(tokens: Int32Array, known: Int32Array, ran: Int32Array): number {
    const N = this.seqLen, R = this.model.maxBatch;
    let T = 0;
    for (let b = 0; b < known.length && T < R; b++) {
      for (let t = ran[b]!; t < known[b]! && T < R; t++, T++) {
        this.rowSeq[T] = b;
        this.rowPos[T] = t;
        this.rowToken[T] = tokens[b * N + t]!;
      }
    }
    return T;
  }

  /** mask (T, past + T): row r sees the cached slots of its sequence and its sequence's rows up to itself */
  private fillMask(T: number, past: number): void {
    const S = past + T;
    for (let r = 0; r < T; r++) this.owner[past + r] = this.rowSeq[r]!;
    for (let r = 0; r < T; r++) {
      const row = this.mask.subarray(r * S, (r + 1) * S), b = this.rowSeq[r]!;
      for (let j = 0; j <= past + r; j++) row[j] = this.owner[j] === b ? 0 : -Infinity;
      row.fill(-Infinity, past + r + 1);
    }
  }
}

/** the most sequences a batch holds by default */
export const MAX_DISTILL_BATCH = 16;
/**
 * The share of a row's work for the weights that its attention may add before a larger
 * batch stops paying. A batch's sequences share one KV cache, and a row's attention scores
 * every slot of it (the mask turns the other sequences' off after the scores are computed),
 * so each row costs about B * N * (query width) multiply-adds per layer on top of the
 * weights' (paramCount) that a batch shares. On the CPU backend, SmolLM2-135M's shape with
 * N = 64 (1/8 gives 15) continues 37 tokens/s at B = 16 against 20 at B = 1; the shipped
 * model (1.7M parameters, N = 192: 1/8 gives 1) ran 2-3x slower at B = 4 to 16 than at 1.
 */
const ATTENTION_SHARE = 1 / 8;

/** Sequences per batch that pay for a model and a sequence length N (see ATTENTION_SHARE), 1 to MAX_DISTILL_BATCH. */
export function defaultDistillBatch(c: LlamaConfig, N: number): number {
  const attentionPerSlot = c.num_hidden_layers * c.num_attention_heads * headDim(c);
  return Math.max(1, Math.min(MAX_DISTILL_BATCH, Math.floor((ATTENTION_SHARE * paramCount(c)) / (N * attentionPerSlot))));
}

export interface DistillRun {
  /** sequences per batch, at most what the model's cache holds (default: defaultDistillBatch, or what the cache holds) */
  batch?: number;
  /** the BOS token every prompt starts with, null for none (default: the model's bos_token_id, else 1) */
  bos?: number | null;
  /** sequences of the set distilled already: the build goes on after them (default 0) */
  from?: number;
  /** after each batch, with the sequences done so far (the set's first `done` are final) */
  onBatch?: (done: number, total: number) => void | Promise<void>;
  /** asked after each batch: true ends the build there */
  shouldStop?: () => boolean;
}

/** A set of `o.sequences` sequences, all zero, to distill into. */
export function emptyDistillSet(o: DistillOptions, D: number): DistillSet {
  const N = o.seqLen;
  return { count: o.sequences, seqLen: N, D, tokens: new Int32Array(o.sequences * N), promptLens: new Int32Array(o.sequences), hidden: new Float32Array(o.sequences * N * D) };
}

/**
 * Distill the sequences of `set` after the first `run.from`, in batches (as many sequences as
 * the model's cache holds, at most `run.batch`), until all are done or `run.shouldStop`
 * says stop; returns how many are done. Deterministic given the options: the data is the
 * same whatever the batch, and however often the build was stopped and resumed.
 */
export async function distillInto(model: Llama, stream: ArrayLike<number>, o: DistillOptions, set: DistillSet, run: DistillRun = {}): Promise<number> {
  checkDistillOptions(o, model.config.max_position_embeddings);
  const N = o.seqLen, D = model.config.hidden_size;
  if (set.count !== o.sequences || set.seqLen !== N || set.D !== D) throw new RangeError(`distill: the set holds ${set.count} x ${set.seqLen} x ${set.D}, these options make ${o.sequences} x ${N} x ${D}`);
  const prompts = distillPrompts(stream, o, run.bos === undefined ? model.config.bos_token_id ?? 1 : run.bos);
  prompts.forEach((p, n) => (set.promptLens[n] = p.length));
  const distiller = new BatchDistiller(model, N);
  const most = Math.min(run.batch ?? defaultDistillBatch(model.config, N), distiller.capacity);
  if (!(Number.isInteger(most) && most >= 1)) throw new RangeError(`distill: batch must be an integer >= 1, got ${run.batch}`);
  let done = run.from ?? 0;
  const left = o.sequences - done;
  const B = left > 0 ? Math.ceil(left / Math.ceil(left / most)) : most; // as few batches as `most` allows, of even sizes
  while (done < o.sequences) {
    const end = Math.min(o.sequences, done + B);
    await distiller.run(prompts.slice(done, end), set.tokens.subarray(done * N, end * N), set.hidden.subarray(done * N * D, end * N * D));
    done = end;
    await run.onBatch?.(done, o.sequences);
    if (done < o.sequences && run.shouldStop?.()) break;
  }
  return done;
}

/** Build the whole set (distillInto from nothing). */
export async function buildDistillSet(model: Llama, stream: ArrayLike<number>, o: DistillOptions, run: Omit<DistillRun, 'from' | 'shouldStop'> = {}): Promise<DistillSet> {
  const set = emptyDistillSet(o, model.config.hidden_size);
  await distillInto(model, stream, o, set, run);
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
