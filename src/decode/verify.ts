/**
 * Verification of a token tree from the base model's logits (T, V) of one forwardTree over
 * [root, tree nodes]: row i holds the model's next-token logits after node i's path.
 *
 *   verifyGreedy(tree, logits, V)            the path plain greedy decoding would take
 *   verifySampling(tree, logits, sampler)    lossless rejection sampling (temperature / top-p)
 * Both return { accepted, bonus }: accepted = node ids of the kept path (root excluded, in
 * order, increasing), bonus = the base model's own token after the last accepted node.
 */
import { argmaxRow } from '../util/numeric.js';
import type { Sampler } from './sampler.js';
import type { TokenTree } from './tree.js';

export interface Verdict {
  accepted: number[]; // node ids, root excluded, from the root's child down
  bonus: number; // the token the base model chooses after the last accepted node
}

/**
 * Walk from the root: the target is the argmax of the node's logits (argmaxRow, exactly as
 * the greedy Sampler picks it); when a child holds the target, accept it and go on, else the
 * target is the bonus token. The emitted tokens are therefore plain greedy decoding's.
 */
export function verifyGreedy(tree: TokenTree, logits: Float32Array, vocabSize: number): Verdict {
  const accepted: number[] = [];
  let node = 0;
  for (;;) {
    const target = argmaxRow(logits, node * vocabSize, vocabSize);
    const next = tree.children[node]!.find((c) => tree.tokens[c] === target);
    if (next === undefined) return { accepted, bonus: target };
    accepted.push(next);
    node = next;
  }
}

/**
 * Lossless verification for temperature > 0. At each node the children are deterministic
 * proposals tried in order (best first) against r = p = sampler.distribution(node's logits):
 *   accept child c with probability r[c]; if rejected, set r[c] = 0, renormalise, try the next;
 *   if every child is rejected, the bonus is drawn from the residual r (and the walk stops);
 *   after an accept, repeat at the accepted node (a leaf draws its bonus from its full p).
 * Why the emitted token has exactly the law p: one trial with distribution r and proposal c
 * yields c with probability r[c], and otherwise continues with r' = (r - r[c] e_c) / (1 - r[c]),
 * so the trial's output law is r[c] e_c + (1 - r[c]) r' = r. By induction over the children
 * (the last stage being a plain draw from the residual), the token leaving a node is
 * distributed exactly as p, whatever the children are; tokens never proposed keep their
 * relative weights. This is speculative sampling (accept with min(1, p/q), resample from
 * norm(max(0, p - q))) with a point-mass proposal q = e_c, applied child after child. So each
 * emitted token is distributed as the base model's next-token law given the tokens before it,
 * which makes the whole output distributed as plain sampling.
 * (The code keeps r unnormalised with its mass, so a rejection costs O(1), not O(V).)
 */
export function verifySampling(tree: TokenTree, logits: Float32Array, sampler: Sampler): Verdict {
  const V = sampler.vocabSize;
  if (sampler.temperature === 0) return verifyGreedy(tree, logits, V);
  const accepted: number[] = [];
  let node = 0;
  for (;;) {
    const r = sampler.distribution(logits, node * V); // the sampler's scratch: changed in place below
    let mass = 0; // sum of r: kept unnormalised while children are rejected, normalised once at the end
    for (let i = 0; i < V; i++) mass += r[i]!;
    let next = -1;
    for (const c of tree.children[node]!) {
      const token = tree.tokens[c]!, pc = r[token]!;
      if (pc <= 0) continue; // never accepted: r is unchanged
      if (sampler.uniform() * mass < pc || !(mass - pc > 0)) {
        next = c; // (the second test: rounding left c with all the mass, so c is the only outcome)
        break;
      }
      r[token] = 0;
      mass -= pc;
    }
    if (next < 0) {
      for (let i = 0; i < V; i++) r[i]! /= mass;
      return { accepted, bonus: sampler.draw(r) };
    }
    accepted.push(next);
    node = next;
  }
}
