/**
 * A draft vocabulary from self-distillation data (runtime-neutral): the `size` tokens the
 * base model emits most often in its own greedy continuations, which a CTC head's `:short`
 * form drafts from (FR-Spec style: a frame then scores those few tokens and BLANK instead of
 * the whole vocabulary). Only continuation tokens count, prompts are the corpus's text, not
 * the model's. train-drafter writes the result as `<model>/draft-vocab.json`, the file
 * src/draft/draft-vocab.ts reads.
 */
import type { DistillSet } from './distill.js';

/** tokens kept by default: on the shipped model they are 99.7% of its continuation tokens */
export const DRAFT_VOCAB_SIZE = 256;

export interface DraftVocabFile {
  /** what the tokens are, for people */
  description: string;
  /** the share of the counted tokens that are in the vocabulary */
  coverage: number;
  /** the kept token ids, ascending */
  tokens: number[];
}

/**
 * The `size` most frequent continuation tokens of `set` (ties to the lower id), counted over
 * every sequence of it: pass the training sequences only. `cacheKey` names the data in the
 * description.
 */
export function draftVocab(set: DistillSet, size: number, cacheKey: string): DraftVocabFile {
  if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`draft vocabulary: size must be an integer >= 1, got ${size}`);
  const N = set.seqLen, counts = new Map<number, number>();
  let total = 0;
  for (let n = 0; n < set.count; n++) {
    for (let t = set.promptLens[n]!; t < N; t++) {
      const id = set.tokens[n * N + t]!;
      counts.set(id, (counts.get(id) ?? 0) + 1);
      total++;
    }
  }
  if (total === 0) throw new RangeError('draft vocabulary: the set has no continuation tokens to count');
  const kept = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, size);
  const covered = kept.reduce((sum, [, c]) => sum + c, 0);
  const coverage = covered / total;
  return {
    description:
      `the ${kept.length} tokens the base model emits most often in its greedy continuations (${total} tokens of ${set.count} distillation sequences, ` +
      `cache key ${cacheKey}); they are ${(100 * coverage).toFixed(2)}% of those tokens (${counts.size} distinct tokens occur)`,
    coverage,
    tokens: kept.map(([id]) => id).sort((a, b) => a - b),
  };
}

/** The file's text, as draft-vocab.json has it (one value a line, so a diff shows what changed). */
export function draftVocabJson(v: DraftVocabFile): string {
  return JSON.stringify(v, null, 1) + '\n';
}
