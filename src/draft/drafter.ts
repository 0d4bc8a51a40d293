/**
 * The drafter interface shared by every speculative drafter (CTC head, Medusa heads,
 * prompt lookup, none). The generation loop owns the base model and the token tree; a
 * drafter only proposes candidate continuations.
 *
 * Timeline of one speculative step (greedy or sampled, the same for every drafter):
 *   tokens = prompt + emitted so far; the LAST token ("root") is not yet in the KV cache.
 *   1. drafter.propose(...)      candidates: token sequences that may follow the root
 *   2. the loop merges them into a trie under the root, runs ONE base forward over
 *      [root, tree nodes] with the tree mask, and verifies (longest accepted path + bonus)
 *   3. the loop compacts the KV cache to root + accepted path, then calls
 *      drafter.accept(...) with the tokens and the base model's final hidden states of
 *      those cached rows, so a drafter with state (its own KV cache) can catch up.
 *
 * Losslessness never depends on the drafter: any proposal, even garbage, leaves the output
 * exactly that of plain decoding. One caveat for sampling: a drafter that draws random
 * numbers must use its own generator, not the sampler's stream (shared randomness would
 * correlate the proposal with the acceptance test and bias the output).
 */
export interface DraftCandidate {
  tokens: number[]; // continuation after the root, first token first
  score: number; // higher = more likely (e.g. a log-probability); used to order and prune
}

export interface Drafter {
  readonly name: string;
  /**
   * false: the drafter never reads `hidden` (prompt lookup, none), so the loop skips reading
   * the base model's hidden states back and passes zeros. Default true.
   */
  readonly usesHidden?: boolean;
  /**
   * Start a new sequence: `prompt` is in the base KV cache, with hidden states (prompt.length, D).
   * The loop calls it lazily, right before the first proposal, so `prompt` is the prompt plus
   * any tokens emitted by plain steps before drafting began.
   */
  begin(prompt: readonly number[], hidden: Float32Array): Promise<void> | void;
  /**
   * Candidates that may follow `root` (the last emitted token, not yet in the cache), at most
   * `maxLen` tokens each. May return [] (the step then emits just the bonus token).
   */
  propose(root: number, maxLen: number): Promise<DraftCandidate[]> | DraftCandidate[];
  /**
   * `tokens` (root + accepted drafts) entered the cache, with hidden states (tokens.length, D).
   * `hidden` is the loop's scratch, valid only during the call: copy what you keep.
   */
  accept(tokens: readonly number[], hidden: Float32Array): Promise<void> | void;
}
