/**
 * Speculative generation: a drafter proposes continuations, the base model scores all of
 * them in one tree forward, and verification keeps the longest path the base model itself
 * would have produced, plus its own bonus token. Same options and result as `generate`; with
 * temperature 0 the tokens are exactly `generate`'s, and with sampling they have its law.
 *
 * One step (the timeline of src/draft/drafter.ts), with `root` = the last emitted token, not
 * yet in the KV cache (past = cacheLength tokens are), reads as four labelled blocks in the
 * loop below:
 *   1. propose: the drafter catches up on what entered the cache, then
 *      candidates = drafter.propose(root, maxDepth)
 *   2. build the tree and verify: tree = buildTree(candidates, budget); one forwardTree over
 *      [root, nodes] at positions past + depth with the tree mask; verification picks the
 *      accepted path and the bonus token
 *   3. compact(keep = [0, ...accepted]): the accepted KV rows move into place, the rejected
 *      ones are simply overwritten later
 *   4. hand over: the budget observes the step, the kept tokens and their hidden states are
 *      queued for the drafter (DrafterQueue), and the tokens are emitted, stopping at EOS /
 *      maxNewTokens / a full context exactly where plain generation stops
 * A step whose budget is 0 is a plain step: a one-token forward, no drafter call.
 * Size limits per step: depth <= min(maxDraftLen, tokens left - 1) (the bonus is the last
 * token), nodes <= min(treeBudget, maxBatch - 1, maxSeq - past - 1).
 *
 * Scratch (mask, positions, hidden states, the drafter's queue) is allocated once per call.
 * The `hidden` array given to drafter.accept is that scratch: read or copy it during the call.
 * Calls on one model run one at a time (exclusive.ts); logits that are not finite stop the
 * generation with a NumericError; `signal` aborts it between steps.
 *
 * Example:
 *   const out = await generateSpeculative(model, prompt, new PromptLookupDrafter(), { maxNewTokens: 64 });
 *   out.stats.tokensPerStep; // tokens emitted per base forward (prefill included)
 */
import type { Llama } from '../model/llama.js';
import type { DraftCandidate, Drafter } from '../draft/drafter.js';
import { assertFiniteLogits, checkPrompt, generationStats, stopIds, type GenerateOptions, type GenerationResult, type GenerationStats, type StepEvent } from './generate.js';
import { exclusive } from './exclusive.js';
import { Sampler } from './sampler.js';
import { buildTree, treeAttentionMask, treePositions, type TokenTree } from './tree.js';
import { verifyGreedy, verifySampling } from './verify.js';
import type { BudgetPolicy } from './cost-model.js';

/** the tree of a plain step: the root alone (never modified) */
const SINGLE_NODE: TokenTree = { size: 1, tokens: [-1], parent: [-1], depth: [0], children: [[]], score: [Infinity] };
const NONE_ACCEPTED: readonly number[] = [];

export interface SpeculativeOptions extends GenerateOptions {
  /** most draft nodes in one verification tree, root excluded (default 16) */
  treeBudget?: number;
  /** longest draft (tree depth) per step (default 6) */
  maxDraftLen?: number;
  /**
   * Chooses each step's tree size within treeBudget (see cost-model.ts: AdaptiveBudget picks
   * the size that maximises expected tokens per second, 0 = a plain step). Default: always
   * the full treeBudget.
   */
  budget?: BudgetPolicy;
}

export interface SpeculativeStats extends GenerationStats {
  draftMs: number; // in drafter.begin / propose / accept (begin runs at the first drafting step)
  verifyMs: number; // tree building, the tree forward, verification, KV compaction
  /** acceptedPerStep[k] = verification steps that accepted k drafted tokens (the prefill is not one) */
  acceptedPerStep: number[];
  /** steps that asked the drafter (the rest were plain steps: the budget said drafting does not pay) */
  draftSteps: number;
}

export interface SpeculativeResult extends GenerationResult {
  stats: SpeculativeStats;
}

export function generateSpeculative(model: Llama, prompt: readonly number[], drafter: Drafter, opts: SpeculativeOptions): Promise<SpeculativeResult> {
  return exclusive(model, () => runSpeculative(model, prompt, drafter, opts));
}

async function runSpeculative(model: Llama, prompt: readonly number[], drafter: Drafter, opts: SpeculativeOptions): Promise<SpeculativeResult> {
  checkPrompt(model, prompt);
  const maxNew = opts.maxNewTokens, treeBudget = opts.treeBudget ?? 16, maxDraftLen = opts.maxDraftLen ?? 6;
  if (!(Number.isInteger(maxNew) && maxNew >= 0)) throw new RangeError(`maxNewTokens must be an integer >= 0, got ${maxNew}`);
  if (!(Number.isInteger(treeBudget) && treeBudget >= 0)) throw new RangeError(`treeBudget must be an integer >= 0, got ${treeBudget}`);
  if (!(Number.isInteger(maxDraftLen) && maxDraftLen >= 0)) throw new RangeError(`maxDraftLen must be an integer >= 0, got ${maxDraftLen}`);
  const eos = stopIds(opts.eosId, model.config);
  const V = model.config.vocab_size, D = model.config.hidden_size;
  const sampler = new Sampler(V, opts);

  // Scratch for the largest tree: T = root + nodes <= maxT, past + T <= maxSeq.
  const maxT = Math.max(1, Math.min(treeBudget + 1, model.maxBatch, model.maxSeq));
  const mask = new Float32Array(maxT * model.maxSeq);
  const positions = new Int32Array(maxT);
  const hidden = new Float32Array(maxT * D);
  const withHidden = drafter.usesHidden === false ? {} : { hiddenOut: hidden }; // zeros for a drafter that ignores them
  const queue = new DrafterQueue(drafter, model.maxSeq, D);
  const clock = new StepClock();
  const acceptedPerStep = new Array<number>(maxDraftLen + 1).fill(0);
  const one = [0]; // a plain step's input token

  const tokens: number[] = [];
  let stopReason: GenerationResult['stopReason'] = 'max-tokens';
  /** Emit one token; true when plain generation would stop after it (same checks, same order). */
  const emit = (id: number): boolean => {
    tokens.push(id);
    opts.onToken?.(id);
    if (eos.includes(id)) {
      stopReason = 'eos';
      return true;
    }
    if (tokens.length >= maxNew) return true;
    if (prompt.length + tokens.length - 1 >= model.maxSeq) {
      // plain generation would now have every token before `id` in its cache: no room for `id`
      stopReason = 'context';
      return true;
    }
    return false;
  };
  /** emit the accepted nodes' tokens, then the bonus; true when generation stops (maybe mid-path) */
  const emitPath = (treeTokens: readonly number[], accepted: readonly number[], bonus: number): boolean => {
    for (const n of accepted) if (emit(treeTokens[n]!)) return true;
    return emit(bonus);
  };
  /** report the step that just emitted tokens[first..] (only built when someone listens) */
  const report = (e: Omit<StepEvent, 'emitted' | 'step'>, first: number) => opts.onStep?.({ ...e, step: steps - 1, emitted: tokens.slice(first) });

  let steps = 0, draftSteps = 0;
  model.reset();
  opts.budget?.begin?.();
  if (maxNew === 0) return { tokens, stopReason, stats: { ...generationStats(0, 0, clock.t0, 0), draftMs: 0, verifyMs: 0, acceptedPerStep, draftSteps: 0 } };

  opts.signal?.throwIfAborted();
  const prefillLogits = await model.forward(prompt, drafter.usesHidden === false ? {} : { hiddenOut: queue.hiddenFor(prompt.length) });
  assertFiniteLogits(prefillLogits, 1, V, steps);
  steps++;
  queue.push(prompt);
  const prefillMs = clock.lap();
  let root = sampler.sample(prefillLogits);
  let done = emit(root);
  if (opts.onStep) report({ kind: 'prefill', candidates: [], tree: null, accepted: [], bonus: root, draftMs: 0, verifyMs: prefillMs }, 0);

  while (!done) {
    opts.signal?.throwIfAborted();
    const past = model.cacheLength; // = prompt.length + tokens.length - 1: everything before root
    const free = Math.min(maxT, model.maxSeq - past) - 1; // nodes besides the root (emit ensured past < maxSeq)
    const room = opts.budget ? opts.budget.choose(free) : free;
    const maxDepth = Math.min(maxDraftLen, maxNew - tokens.length - 1, room);

    if (maxDepth <= 0) {
      // A plain step, the common case when drafting does not pay: the same work as `generate`
      // (one-token forward, sample), no tree, no drafter call, no allocation.
      clock.lap();
      one[0] = root;
      const logits = await model.forward(one, withHidden);
      assertFiniteLogits(logits, 1, V, steps);
      steps++;
      const bonus = sampler.sample(logits); // as `generate` does: with a seed, the same draws
      const verifyMs = clock.lap(clock.verify);
      acceptedPerStep[0]!++;
      opts.budget?.observe({ tree: SINGLE_NODE, accepted: NONE_ACCEPTED, asked: 0, draftMs: 0, verifyMs, switchMs: 0 });
      queue.push(one, hidden);
      const first = tokens.length;
      done = emit((root = bonus));
      if (opts.onStep) report({ kind: 'plain', candidates: [], tree: null, accepted: [], bonus, draftMs: 0, verifyMs }, first);
      continue;
    }

    // 1. propose: the drafter catches up on the tokens that entered the cache since it last
    //    proposed, then offers candidate continuations of `root`
    clock.lap();
    const catchUp = await queue.catchUp();
    const catchUpMs = clock.lap(clock.draft);
    const candidates = await drafter.propose(root, maxDepth);
    const proposeMs = clock.lap(clock.draft);
    checkCandidates(drafter, candidates, V);
    draftSteps++;

    // 2. build the tree and verify: one base forward over [root, nodes] with the tree mask
    const tree = buildTree(candidates, room, { rootToken: root, maxDepth });
    const logits =
      tree.size === 1 // no drafts: a plain decode step (same numbers as a one-node tree, without the mask)
        ? await model.forward(tree.tokens, withHidden)
        : await model.forwardTree(tree.tokens, treePositions(tree, past, positions), treeAttentionMask(tree, past, mask), withHidden);
    assertFiniteLogits(logits, tree.size, V, steps);
    steps++;
    const { accepted, bonus } = sampler.temperature === 0 ? verifyGreedy(tree, logits, V) : verifySampling(tree, logits, sampler);

    // 3. compact: the accepted path's KV rows move into place; the rejected ones are simply
    //    overwritten later
    const keep = [0, ...accepted];
    model.compact(keep);
    const verifyMs = clock.lap(clock.verify);
    acceptedPerStep[accepted.length]!++;

    // 4. hand over: the budget learns what the step cost and won, the kept nodes enter the
    //    drafter's queue (with their hidden states), and the tokens are emitted
    const steadyCatchUpMs = catchUpMs * catchUp.steadyShare;
    opts.budget?.observe({ tree, accepted, asked: room, draftMs: proposeMs + steadyCatchUpMs, verifyMs, switchMs: catchUpMs - steadyCatchUpMs });
    queue.pushNodes(tree.tokens, keep, hidden);
    const first = tokens.length;
    done = emitPath(tree.tokens, accepted, (root = bonus));
    if (opts.onStep) report({ kind: 'draft', candidates, tree, accepted: accepted.map((n) => tree.tokens[n]!), bonus, draftMs: catchUpMs + proposeMs, verifyMs }, first);
  }
  const stats = { ...generationStats(tokens.length, steps, clock.t0, prefillMs), draftMs: clock.draft.ms, verifyMs: clock.verify.ms, acceptedPerStep, draftSteps };
  return { tokens, stopReason, stats };
}

/** Wall-clock laps of the loop, added up per kind of work. */
class StepClock {
  readonly t0 = performance.now();
  private last = this.t0;
  readonly draft = { ms: 0 };
  readonly verify = { ms: 0 };

  /** milliseconds since the last lap, added to `into` when given */
  lap(into?: { ms: number }): number {
    const now = performance.now(), ms = now - this.last;
    this.last = now;
    if (into) into.ms += ms;
    return ms;
  }
}

/**
 * Tokens that entered the base cache but not yet the drafter, with their final hidden states,
 * starting with the prompt. The drafter catches up in one batch right before it proposes
 * (begin() with everything so far the first time), so steps without drafting (a budget of 0,
 * or no room) cost it nothing, and a generation that never drafts never runs the drafter.
 * Allocated once per generation: the token loop allocates nothing here.
 */
class DrafterQueue {
  private readonly tokens: number[] = [];
  private readonly hidden: Float32Array; // (maxSeq, D)
  private begun = false;
  private lastKept = 0; // tokens the last drafting step queued: what one steady step adds

  constructor(private readonly drafter: Drafter, maxSeq: number, private readonly D: number) {
    this.hidden = new Float32Array(drafter.usesHidden === false ? 0 : maxSeq * D);
  }

  /** where the forward over the next `n` queued tokens writes their hidden states */
  hiddenFor(n: number): Float32Array {
    return this.hidden.subarray(this.tokens.length * this.D, (this.tokens.length + n) * this.D);
  }

  /** queue tokens whose hidden states are already in place (hiddenFor), or in `hidden` rows 0.. */
  push(ids: ArrayLike<number>, hidden?: Float32Array): void {
    if (hidden && this.hidden.length) this.hidden.set(hidden.subarray(0, ids.length * this.D), this.tokens.length * this.D);
    for (let i = 0; i < ids.length; i++) this.tokens.push(ids[i]!);
  }

  /** queue the kept tree nodes, with their rows of the tree forward's hidden states */
  pushNodes(treeTokens: readonly number[], keep: readonly number[], hidden: Float32Array): void {
    for (const n of keep) {
      if (this.hidden.length) this.hidden.set(hidden.subarray(n * this.D, (n + 1) * this.D), this.tokens.length * this.D);
      this.tokens.push(treeTokens[n]!);
    }
    this.lastKept = keep.length;
  }

  /**
   * Hand the queue to the drafter. `steadyShare` says how much of the time it took a steady
   * drafting step would pay too: catching up on what one drafting step adds (the last step's
   * kept nodes); anything beyond that (tokens from plain steps, the prompt) is a cost of
   * switching, not of drafting.
   */
  async catchUp(): Promise<{ steadyShare: number }> {
    const n = this.tokens.length, steadyShare = n > 0 && this.begun ? Math.min(1, this.lastKept / n) : 0;
    const hidden = this.hidden.subarray(0, n * this.D);
    if (!this.begun) await this.drafter.begin(this.tokens, hidden);
    else if (n > 0) await this.drafter.accept(this.tokens, hidden);
    this.begun = true;
    this.tokens.length = 0;
    return { steadyShare };
  }
}

/** A drafter bug (a token outside the vocabulary) fails loudly instead of being verified. */
function checkCandidates(drafter: Drafter, candidates: readonly DraftCandidate[], V: number): void {
  if (!Array.isArray(candidates)) throw new TypeError(`drafter "${drafter.name}": propose must return an array of candidates`);
  for (const c of candidates) {
    for (const id of c.tokens) {
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new RangeError(`drafter "${drafter.name}" proposed token ${id}, outside the vocabulary [0, ${V})`);
      }
    }
  }
}
