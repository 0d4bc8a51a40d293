import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { argmaxRow } from '../src/util/numeric.js';
import { buildTree, pathTo, treeAttentionMask, treePositions, type TokenTree } from '../src/decode/tree.js';
import { verifyGreedy } from '../src/decode/verify.js';
import type { DraftCandidate } from '../src/draft/drafter.js';
import { tinyConfig, tinyModel, treeMask } from './helpers.js';

const cpu = new CpuBackend();
const X = -Infinity;

describe('buildTree', () => {
  it('the header example: shared prefixes share nodes, the budget keeps the best', () => {
    const cands = [{ tokens: [5, 7], score: -1 }, { tokens: [5, 8], score: -2 }, { tokens: [6], score: -3 }];
    const t = buildTree(cands, 3, { rootToken: 9 });
    expect(t.tokens).toEqual([9, 5, 7, 8]);
    expect(t.parent).toEqual([-1, 0, 1, 1]);
    expect(t.depth).toEqual([0, 1, 2, 2]);
    expect(t.children).toEqual([[1], [2, 3], [], []]);
    const all = buildTree(cands, 10, { rootToken: 9 });
    expect(all.tokens).toEqual([9, 5, 7, 8, 6]);
    expect(all.children).toEqual([[1, 4], [2, 3], [], [], []]);
    expect(buildTree(cands, 0).size).toBe(1);
  });

  it('children are ordered by best score; duplicates and prefixes merge; maxDepth cuts', () => {
    const t = buildTree(
      [{ tokens: [1, 2, 3], score: -5 }, { tokens: [4], score: -1 }, { tokens: [1, 2], score: 0 }, { tokens: [1, 2, 3], score: -9 }, { tokens: [], score: 7 }],
      10,
      { maxDepth: 2 },
    );
    // node 1 = token 1 (score 0) before token 4 (-1); [1, 2, 3] is cut to [1, 2]
    expect(t.tokens).toEqual([-1, 1, 2, 4]);
    expect(t.parent).toEqual([-1, 0, 1, 0]);
    expect(t.score).toEqual([Infinity, 0, 0, -1]);
  });

  it('properties: a trie of the candidate prefixes, capped at the budget, best nodes kept, ancestors first', () => {
    const cands = fc.array(
      fc.record({ tokens: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 4 }), score: fc.integer({ min: -20, max: 0 }) }),
      { maxLength: 6 },
    );
    fc.assert(
      fc.property(cands, fc.integer({ min: 0, max: 12 }), (cs: DraftCandidate[], budget) => {
        const t = buildTree(cs, budget);
        const prefixes = new Map<string, number>(); // every distinct non-empty prefix -> best score
        for (const c of cs) for (let i = 1; i <= c.tokens.length; i++) {
          const k = c.tokens.slice(0, i).join();
          prefixes.set(k, Math.max(prefixes.get(k) ?? -Infinity, c.score));
        }
        expect(t.size - 1).toBe(Math.min(budget, prefixes.size));
        const seen = new Set<string>();
        for (let i = 1; i < t.size; i++) {
          expect(t.parent[i]!).toBeLessThan(i);
          expect(t.depth[i]).toBe(t.depth[t.parent[i]!]! + 1);
          const key = pathTo(t, i).map((n) => t.tokens[n]).join();
          expect(prefixes.get(key)).toBe(t.score[i]); // a real prefix, scored by its best candidate
          expect(seen.has(key)).toBe(false); // no duplicate paths
          seen.add(key);
        }
        // nothing dropped scores higher than anything kept
        const keptMin = Math.min(...t.score.slice(1));
        for (const [k, s] of prefixes) if (!seen.has(k)) expect(s).toBeLessThanOrEqual(keptMin);
        for (let i = 0; i < t.size; i++) {
          const ch = t.children[i]!;
          for (let j = 1; j < ch.length; j++) expect(t.score[ch[j]!]!).toBeLessThanOrEqual(t.score[ch[j - 1]!]!);
        }
      }),
      { numRuns: 300, seed: 1 },
    );
  });
});

describe('tree mask and positions', () => {
  // root(0) -> a(1) -> b(2) ; root -> c(3)
  const tree = buildTree([{ tokens: [10, 11], score: 0 }, { tokens: [12], score: -1 }], 8, { rootToken: 3 });

  it('hand-checked (T = 4 after 2 cached tokens)', () => {
    expect(tree.parent).toEqual([-1, 0, 1, 0]);
    expect([...treeAttentionMask(tree, 2)]).toEqual([
      0, 0, 0, X, X, X, // root: cache + itself
      0, 0, 0, 0, X, X, // a: cache, root, a
      0, 0, 0, 0, 0, X, // b: cache, root, a, b
      0, 0, 0, X, X, 0, // c: cache, root, c
    ]);
    expect([...treePositions(tree, 2)]).toEqual([2, 3, 4, 3]);
    expect([...treeAttentionMask(tree, 0)]).toEqual([0, X, X, X, 0, 0, X, X, 0, 0, 0, X, 0, X, X, 0]);
  });

  it('writes into preallocated scratch and matches the test helper treeMask', () => {
    const scratch = new Float32Array(100).fill(7);
    const m = treeAttentionMask(tree, 5, scratch);
    expect(m.buffer).toBe(scratch.buffer);
    expect([...m]).toEqual([...treeMask(tree.parent, 5)]);
    const pos = new Int32Array(10);
    expect(treePositions(tree, 5, pos).buffer).toBe(pos.buffer);
    expect(() => treeAttentionMask(tree, 5, new Float32Array(10))).toThrow(/36 needed|4 x 9/);
  });
});

describe('verifyGreedy', () => {
  const V = 6;
  it('follows the argmax through the tree and returns the bonus', () => {
    // root -> 2 -> 4 ; root -> 1. Targets: root 2, node(2) 4, node(4) 0
    const t = buildTree([{ tokens: [2, 4], score: 0 }, { tokens: [1], score: -1 }], 8, { rootToken: 0 });
    const logits = new Float32Array(t.size * V);
    const target = (node: number, tok: number) => (logits[node * V + tok] = 5);
    target(0, 2);
    target(1, 4);
    target(2, 0);
    target(3, 3);
    expect(verifyGreedy(t, logits, V)).toEqual({ accepted: [1, 2], bonus: 0 });
    logits[0 * V + 2] = 0;
    target(0, 1); // now the root wants 1: the second child
    expect(verifyGreedy(t, logits, V)).toEqual({ accepted: [3], bonus: 3 });
    logits[0 * V + 1] = 0;
    target(0, 5); // nothing matches
    expect(verifyGreedy(t, logits, V)).toEqual({ accepted: [], bonus: 5 });
  });

  it('tree verification == verifying each root-to-leaf path alone with a causal forward', async () => {
    const cases = tinyConfig.chain((c) => {
      const tok = fc.integer({ min: 0, max: c.vocab_size - 1 });
      return fc.record({
        config: fc.constant(c),
        prefix: fc.array(tok, { minLength: 1, maxLength: 8 }),
        root: tok,
        cands: fc.array(fc.record({ tokens: fc.array(tok, { minLength: 1, maxLength: 4 }), score: fc.integer({ min: -9, max: 0 }) }), { maxLength: 5 }),
        seed: fc.nat(),
      });
    });
    await fc.assert(
      fc.asyncProperty(cases, async ({ config, prefix, root, cands, seed }) => {
        const V = config.vocab_size;
        const m = tinyModel(cpu, config, seed);
        // make the true greedy continuation one of the candidates, so that some path is accepted
        m.reset();
        let logits = await m.forward([...prefix, root]);
        const truth: number[] = [];
        for (let i = 0; i < 3; i++) {
          truth.push(argmaxRow(logits, 0, V));
          logits = await m.forward([truth[i]!]);
        }
        const tree = buildTree([...cands, { tokens: truth, score: -5 }], 12, { rootToken: root });
        m.reset();
        await m.forward(prefix);
        const treeLogits = await m.forwardTree(tree.tokens, treePositions(tree, prefix.length), treeAttentionMask(tree, prefix.length));
        const verdict = verifyGreedy(tree, treeLogits, V);
        const want = await sequentialVerify(tree, prefix, (ids) => {
          m.reset();
          return m.forward(ids);
        }, V);
        expect(verdict).toEqual(want);
        expect(verdict.accepted.length).toBeGreaterThan(0);
      }),
      { numRuns: 40, seed: 2 },
    );
  });
});

/**
 * The reference: for each root-to-leaf path, run the prefix + path causally and accept while
 * the argmax after each token equals the path's next token; keep the longest acceptance.
 */
async function sequentialVerify(
  tree: TokenTree,
  prefix: number[],
  forward: (ids: number[]) => Promise<Float32Array>,
  V: number,
): Promise<{ accepted: number[]; bonus: number }> {
  let best = { accepted: [] as number[], bonus: -1 };
  for (let leaf = 0; leaf < tree.size; leaf++) {
    if (tree.children[leaf]!.length) continue;
    const path = [0, ...pathTo(tree, leaf)];
    const accepted: number[] = [];
    let bonus = -1;
    for (let i = 0; i < path.length; i++) {
      const ids = [...prefix, ...path.slice(0, i + 1).map((n) => tree.tokens[n]!)];
      const target = argmaxRow(await forward(ids), 0, V);
      if (i + 1 < path.length && tree.tokens[path[i + 1]!] === target) accepted.push(path[i + 1]!);
      else {
        bonus = target;
        break;
      }
    }
    if (bonus >= 0 && (best.bonus < 0 || accepted.length > best.accepted.length)) best = { accepted, bonus };
  }
  return best;
}
