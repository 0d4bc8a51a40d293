/**
 * Speculative generation: a drafter proposes continuations, the base model scores all of
 * them in one tree forward, and verification keeps the longest path the base model itself
 * would have produced, plus its own bonus token. Same options and result as `generate`; with
 * temperature 0 the tokens are exactly `generate`'s, and with sampling they have its law.
 *
 * One step (the timeline of src/draft/drafter.ts), with `root` = the last emitted token, not
 * yet in the KV cache (past = cacheLength tokens are):
 *   1. candidates = drafter.propose(root, maxDepth)
 *   2. tree = buildTree(candidates, budget); forwardTree([root, nodes], past + depth, tree mask)
 *   3. verify -> accepted path + bonus; compact(keep = [0, ...accepted]): the accepted KV rows
 *      move into place, the rejected ones are simply overwritten later
 *   4. the kept tokens and their final hidden states are queued for the drafter (it gets them,
 *      in one drafter.accept call, right before it next proposes; the prompt too, through
 *      drafter.begin at the first drafting step); emit accepted tokens, then
 *      the bonus (the next root), stopping at EOS / maxNewTokens / a full context exactly where
 *      plain generation stops
 * Size limits per step: depth <= min(maxDraftLen, tokens left - 1) (the bonus is the last
 * token), nodes <= min(treeBudget, maxBatch - 1, maxSeq - past - 1).
 *
 * Scratch (mask, positions, hidden states, the drafter's queue) is allocated once per call.
 * The `hidden` array given to drafter.accept is that scratch: read or copy it during the call.
 *
 * Example:
 *   const out = await generateSpeculative(model, prompt, new PromptLookupDrafter(), { maxNewTokens: 64 });
 *   out.stats.tokensPerStep; // tokens emitted per base forward (prefill included)
 */
import type { Llama } from '../model/llama.js';
import type { DraftCandidate, Drafter } from '../draft/drafter.js';
import { checkPrompt, generationStats, type GenerateOptions, type GenerationResult, type GenerationStats } from './generate.js';
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
}

export interface SpeculativeResult extends GenerationResult {
  stats: SpeculativeStats;
}

export async function generateSpeculative(
  model: Llama,
  prompt: readonly number[],
  drafter: Drafter,
  opts: SpeculativeOptions,
): Promise<SpeculativeResult> {
  checkPrompt(model, prompt);
  const maxNew = opts.maxNewTokens, treeBudget = opts.treeBudget ?? 16, maxDraftLen = opts.maxDraftLen ?? 6;
  if (!(Number.isInteger(maxNew) && maxNew >= 0)) throw new RangeError(`maxNewTokens must be an integer >= 0, got ${maxNew}`);
  if (!(Number.isInteger(treeBudget) && treeBudget >= 0)) throw new RangeError(`treeBudget must be an integer >= 0, got ${treeBudget}`);
  if (!(Number.isInteger(maxDraftLen) && maxDraftLen >= 0)) throw new RangeError(`maxDraftLen must be an integer >= 0, got ${maxDraftLen}`);
  const eos = opts.eosId === undefined ? model.config.eos_token_id ?? null : opts.eosId;
  const V = model.config.vocab_size, D = model.config.hidden_size;
  const sampler = new Sampler(V, opts);

  // Scratch for the largest tree: T = root + nodes <= maxT, past + T <= maxSeq.
  const maxT = Math.max(1, Math.min(treeBudget + 1, model.maxBatch, model.maxSeq));
  const mask = new Float32Array(maxT * model.maxSeq);
  const positions = new Int32Array(maxT);
  const hidden = new Float32Array(maxT * D);
  const acceptedPerStep = new Array<number>(maxDraftLen + 1).fill(0);
  // Tokens that entered the cache but not yet the drafter, with their hidden states, starting
  // with the prompt. The drafter catches up in one batch right before it proposes (begin() with
  // everything so far the first time), so steps without drafting (a budget of 0, or no room)
  // cost it nothing, and a generation that never drafts never runs the drafter at all.
  const pendingTokens: number[] = [];
  const pendingHidden = new Float32Array(model.maxSeq * D);
  const one = [0]; // a plain step's input token
  const withHidden = drafter.usesHidden === false ? {} : { hiddenOut: hidden }; // zeros for a drafter that ignores them

  const tokens: number[] = [];
  let stopReason: GenerationResult['stopReason'] = 'max-tokens';
  /** Emit one token; true when plain generation would stop after it (same checks, same order). */
  const emit = (id: number): boolean => {
    tokens.push(id);
    opts.onToken?.(id);
    if (id === eos) {
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

  let steps = 0, prefillMs = 0, draftMs = 0, verifyMs = 0;
  const t0 = performance.now();
  model.reset();
  opts.budget?.begin?.();
  if (maxNew > 0) {
    const logits = await model.forward(prompt, drafter.usesHidden === false ? {} : { hiddenOut: pendingHidden.subarray(0, prompt.length * D) });
    steps++;
    prefillMs = performance.now() - t0;
    pendingTokens.push(...prompt);
    let begun = false, t = 0;
    let lastKept = 0; // tokens the last drafting step queued for the drafter: what one steady step adds

    let root = sampler.sample(logits);
    let done = emit(root);
    // emit() ensured past < maxSeq, so a plain step always has room
    while (!done) {
      const past = model.cacheLength; // = prompt.length + tokens.length - 1: everything before root
      let room = Math.min(maxT, model.maxSeq - past) - 1; // nodes besides the root (emit ensured past < maxSeq)
      if (opts.budget) room = opts.budget.choose(room);
      const maxDepth = Math.min(maxDraftLen, maxNew - tokens.length - 1, room);
      if (maxDepth <= 0) {
        // A plain step, the common case when drafting does not pay: the same work as
        // `generate` (one-token forward, sample), no tree, no drafter call, no allocation.
        t = performance.now();
        one[0] = root;
        const logits = await model.forward(one, withHidden);
        steps++;
        const next = sampler.sample(logits); // as `generate` does: with a seed, the same draws
        const stepVerifyMs = performance.now() - t;
        verifyMs += stepVerifyMs;
        acceptedPerStep[0]!++;
        opts.budget?.observe({ tree: SINGLE_NODE, accepted: NONE_ACCEPTED, asked: 0, draftMs: 0, verifyMs: stepVerifyMs, switchMs: 0 });
        pendingTokens.push(root);
        if (drafter.usesHidden !== false) pendingHidden.set(hidden.subarray(0, D), (pendingTokens.length - 1) * D);
        done = emit((root = next));
        continue;
      }

      t = performance.now();
      const caughtUp = pendingTokens.length;
      if (!begun) await drafter.begin(pendingTokens, pendingHidden.subarray(0, caughtUp * D));
      else if (caughtUp > 0) await drafter.accept(pendingTokens, pendingHidden.subarray(0, caughtUp * D));
      begun = true;
      pendingTokens.length = 0;
      const t1 = performance.now();
      const candidates = await drafter.propose(root, maxDepth);
      const proposeMs = performance.now() - t1, catchUpMs = t1 - t;
      draftMs += proposeMs + catchUpMs;
      checkCandidates(drafter, candidates, V);

      t = performance.now();
      const tree = buildTree(candidates, room, { rootToken: root, maxDepth });
      // no drafts: a plain decode step (same numbers as a one-node tree, without the mask)
      const treeLogits =
        tree.size === 1
          ? await model.forward(tree.tokens, withHidden)
          : await model.forwardTree(tree.tokens, treePositions(tree, past, positions), treeAttentionMask(tree, past, mask), withHidden);
      steps++;
      const { accepted, bonus } = sampler.temperature === 0 ? verifyGreedy(tree, treeLogits, V) : verifySampling(tree, treeLogits, sampler);
      const keep = [0, ...accepted];
      model.compact(keep);
      const stepVerifyMs = performance.now() - t;
      verifyMs += stepVerifyMs;
      acceptedPerStep[accepted.length]!++;
      // what drafting costs per step once it runs every step: propose, and catching up on the
      // tokens one drafting step adds (all of them when the last step drafted too; a catch-up
      // after plain steps, or the first one over the prompt, is not what the next step costs)
      const steadyCatchUpMs = caughtUp > 0 ? catchUpMs * Math.min(1, lastKept / caughtUp) : 0;
      lastKept = keep.length;
      opts.budget?.observe({ tree, accepted, asked: room, draftMs: proposeMs + steadyCatchUpMs, verifyMs: stepVerifyMs, switchMs: catchUpMs - steadyCatchUpMs });

      // the kept nodes enter the drafter's queue: it catches up in one batch when next asked
      for (const n of keep) {
        pendingTokens.push(tree.tokens[n]!);
        if (drafter.usesHidden !== false) pendingHidden.set(hidden.subarray(n * D, (n + 1) * D), (pendingTokens.length - 1) * D);
      }

      for (const n of accepted) if ((done = emit(tree.tokens[n]!))) break;
      if (!done) done = emit((root = bonus));
    }
  }
  return { tokens, stopReason, stats: { ...generationStats(tokens.length, steps, t0, prefillMs), draftMs, verifyMs, acceptedPerStep } };
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
