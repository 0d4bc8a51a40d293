/**
 * The token tree of one speculative step: candidate drafts merged into a trie under the
 * root (the last emitted token, not yet in the KV cache), so one base forward scores them all.
 *
 *   buildTree(candidates, budget, { rootToken?, maxDepth? }) -> TokenTree
 *   treeAttentionMask(tree, past, out?)   additive mask (T, past + T), T = tree.size
 *   treePositions(tree, past, out?)       position ids past + depth (siblings share a position)
 *
 * Node 0 is the root; every other node is one drafted token, parent[i] < i, and the nodes
 * are in depth-first order with each node's children ordered by score, best first. A node's
 * score is the best score of the candidates through it, so a parent scores at least as high
 * as its children; keeping the `budget` best nodes (ties: shallower first, then the order the
 * candidates came in) therefore keeps every kept node's ancestors.
 *
 * Example: candidates [5, 7] (score -1), [5, 8] (-2), [6] (-3), budget 3
 *   trie 5 (-1) -> 7 (-1), 8 (-2); 6 (-3); keep the 3 best: 5, 7, 8
 *   tokens [root, 5, 7, 8], parent [-1, 0, 1, 1], depth [0, 1, 2, 2], children [[1], [2, 3], [], []]
 */
import type { DraftCandidate } from '../draft/drafter.js';

export interface TokenTree {
  size: number; // nodes, root included
  tokens: number[]; // (size) tokens[0] = the root token (-1 when not given)
  parent: number[]; // (size) parent[0] = -1, parent[i] < i
  depth: number[]; // (size) depth[0] = 0
  children: number[][]; // (size) child node ids, best score first
  score: number[]; // (size) best candidate score through the node (root: Infinity)
}

export interface BuildTreeOptions {
  /** the root's token, placed at tokens[0] (default -1) */
  rootToken?: number;
  /** candidates are cut to this many tokens (default: no cut) */
  maxDepth?: number;
}

export function buildTree(candidates: readonly DraftCandidate[], budget: number, opts: BuildTreeOptions = {}): TokenTree {
  if (!(Number.isInteger(budget) && budget >= 0)) throw new RangeError(`buildTree: budget must be an integer >= 0, got ${budget}`);
  const maxDepth = opts.maxDepth ?? Infinity;

  // 1. The full trie (node 0 = root), each node scored by its best candidate.
  const tok = [opts.rootToken ?? -1], par = [-1], dep = [0], best = [Infinity];
  const childOf = new Map<string, number>(); // `${parent},${token}` -> node
  for (const cand of candidates) {
    const score = Number.isNaN(cand.score) ? -Infinity : cand.score;
    let node = 0;
    const n = Math.min(cand.tokens.length, maxDepth);
    for (let i = 0; i < n; i++) {
      const key = `${node},${cand.tokens[i]}`;
      let child = childOf.get(key);
      if (child === undefined) {
        child = tok.length;
        childOf.set(key, child);
        tok.push(cand.tokens[i]!);
        par.push(node);
        dep.push(dep[node]! + 1);
        best.push(score);
      } else if (score > best[child]!) best[child] = score;
      node = child;
    }
  }

  // 2. Keep the `budget` best nodes: ancestors score >= descendants and win ties by depth.
  const order = Array.from({ length: tok.length - 1 }, (_, i) => i + 1);
  order.sort((a, b) => best[b]! - best[a]! || dep[a]! - dep[b]! || a - b);
  const kept = new Uint8Array(tok.length);
  kept[0] = 1;
  for (let i = 0; i < Math.min(budget, order.length); i++) kept[order[i]!] = 1;
  const kids: number[][] = tok.map(() => []);
  for (let i = 1; i < tok.length; i++) if (kept[i]) kids[par[i]!]!.push(i);
  for (const k of kids) k.sort((a, b) => best[b]! - best[a]! || a - b);

  // 3. Renumber depth-first (children best first): parents precede children.
  const tree: TokenTree = { size: 0, tokens: [], parent: [], depth: [], children: [], score: [] };
  const visit = (old: number, parent: number): void => {
    const id = tree.size++;
    tree.tokens.push(tok[old]!);
    tree.parent.push(parent);
    tree.depth.push(dep[old]!);
    tree.score.push(best[old]!);
    tree.children.push([]);
    if (parent >= 0) tree.children[parent]!.push(id);
    for (const k of kids[old]!) visit(k, id);
  };
  visit(0, -1);
  return tree;
}

/**
 * Additive attention mask (T, past + T) for the root and its tree after `past` cached tokens:
 * 0 where node i may look (every cache slot, its ancestors, itself), -Infinity elsewhere.
 * Writes into `out` (at least T * (past + T) long) when given and returns the (T, past + T) view.
 */
export function treeAttentionMask(tree: TokenTree, past: number, out?: Float32Array): Float32Array {
  const T = tree.size, S = past + T;
  const mask = out ? out.subarray(0, T * S) : new Float32Array(T * S);
  if (mask.length < T * S) throw new RangeError(`treeAttentionMask: out holds ${out!.length} values, ${T} x ${S} needed`);
  mask.fill(-Infinity);
  for (let i = 0; i < T; i++) {
    mask.fill(0, i * S, i * S + past);
    for (let j = i; j >= 0; j = tree.parent[j]!) mask[i * S + past + j] = 0;
  }
  return mask;
}

/** Position ids past + depth (no gaps: a node sits right after its ancestors), into `out` when given. */
export function treePositions(tree: TokenTree, past: number, out?: Int32Array): Int32Array {
  const pos = out ? out.subarray(0, tree.size) : new Int32Array(tree.size);
  if (pos.length < tree.size) throw new RangeError(`treePositions: out holds ${out!.length} values, ${tree.size} needed`);
  for (let i = 0; i < tree.size; i++) pos[i] = past + tree.depth[i]!;
  return pos;
}

/** The node ids from the root's child down to `node` (the draft tokens of that path). */
export function pathTo(tree: TokenTree, node: number): number[] {
  const path: number[] = [];
  for (let n = node; n > 0; n = tree.parent[n]!) path.push(n);
  return path.reverse();
}
