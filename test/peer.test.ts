/**
 * ctcspec's CPU engine against an independent one, llama.cpp (through node-llama-cpp, see
 * bench/peer/llama-cpp.ts): the same random weights, exported by our GGUF writer, must give
 * the same f32 greedy tokens. This checks the forward pass, the GGUF export (names, rotary
 * permutation of q and k, metadata) and greedy decoding together.
 *
 * Needs scripts/install-peer.sh; without it the test fails and says so. It is left out of
 * the default run (vitest.config.ts): CTCSPEC_PEER=1 npx vitest run test/peer.test.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchWeights, ctcspecGreedy, exportGguf, runPeerBench, shapeConfig, SHORT } from '../bench/peer.js';
import { LlamaCppPeer, type PeerSession } from '../bench/peer/llama-cpp.js';
import { Llama } from '../src/model/llama.js';
import { CpuBackend } from '../src/backend/cpu/cpu.js';

const NEW_TOKENS = 32;
const MAX_PROMPT = 24;
const PROPERTY_RUNS = 6;

describe('greedy f32 tokens: ctcspec = llama.cpp', () => {
  it('the short form of the peer bench (stories15M shape, its fixed prompt)', async () => {
    const report = await runPeerBench(SHORT);
    const [c] = report.comparisons;
    expect(c!.skipped).toEqual([]);
    expect(c!.ctcspec!.tokens).toHaveLength(SHORT.newTokens);
    expect(c!.ctcspec!.tokens).toEqual(c!.llamaCpp!.tokens);
  });

  describe('any prompt', () => {
    const config = shapeConfig('stories15M');
    const dir = mkdtempSync(join(tmpdir(), 'ctcspec-peer-test-'));
    let peer: LlamaCppPeer;
    let session: PeerSession;
    let model: Llama;
    beforeAll(async () => {
      const weights = benchWeights(config);
      const gguf = join(dir, 'model.gguf');
      const problem = exportGguf(gguf, config, weights, 'f32');
      if (problem) throw new Error(problem);
      peer = await LlamaCppPeer.open();
      session = await peer.session(gguf, MAX_PROMPT + NEW_TOKENS, MAX_PROMPT, 1);
      model = new Llama(new CpuBackend(), config, weights, { maxSeq: MAX_PROMPT + NEW_TOKENS, maxBatch: MAX_PROMPT });
    });
    afterAll(async () => {
      await session?.close();
      await peer?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('random prompt ids, every token of the vocabulary allowed', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.integer({ min: 0, max: config.vocab_size - 1 }), { minLength: 1, maxLength: MAX_PROMPT }), async (prompt) => {
          const ours = await ctcspecGreedy(model, prompt, NEW_TOKENS);
          const theirs = await session.greedy(prompt, NEW_TOKENS);
          expect(ours.tokens).toEqual(theirs.tokens);
        }),
        { numRuns: PROPERTY_RUNS },
      );
    });
  });
});
