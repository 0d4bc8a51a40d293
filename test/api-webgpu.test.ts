/**
 * The library API on WebGPU (Mesa llvmpipe through Dawn's OpenGL ES backend unless
 * CTCSPEC_WEBGPU=gpu): the CTC and Medusa heads run on the base model's backend
 * (headBackend 'model') with the frames of the CPU head, and speculative output stays plain
 * greedy decoding's. No adapter is a failure, not a skip.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createNodeWebGPU } from '../src/node/webgpu.js';
import { loadModel, SHIPPED_MODEL } from '../src/node/index.js';
import type { CtcHeadDrafter, TextModel } from '../src/index.js';
import { maxAbsDiff } from './helpers.js';

let gpu: TextModel;
let cpu: TextModel;

beforeAll(async () => {
  gpu = await loadModel(SHIPPED_MODEL, { backend: await createNodeWebGPU({ fallback: process.env.CTCSPEC_WEBGPU !== 'gpu' }) });
  cpu = await loadModel(SHIPPED_MODEL, { backend: 'cpu' });
});

describe('draft heads on the base model\'s backend (WebGPU)', () => {
  it('the CTC head computes the CPU head\'s frames', async () => {
    const prompt = cpu.tokenizer.encode('The jury said that the', { bos: true });
    const D = cpu.config.hidden_size;
    const hidden = new Float32Array(prompt.length * D);
    await cpu.model.forward(prompt, { hiddenOut: hidden });
    cpu.model.reset();
    const onGpu = (await gpu.drafter('ctc', { headBackend: 'model' })) as CtcHeadDrafter;
    const onCpu = (await cpu.drafter('ctc')) as CtcHeadDrafter;
    expect(onGpu.backend.name).toBe('webgpu');
    for (const d of [onGpu, onCpu]) d.begin(prompt, hidden);
    const a = Float32Array.from(await onGpu.frameLogProbs(42)), b = await onCpu.frameLogProbs(42);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-3);
  });

  it('speculative output with heads on the device = plain greedy decoding', async () => {
    for (const prompt of ['The jury said', 'In the morning the']) {
      const plain = await gpu.generate(prompt, { drafter: 'none', maxNewTokens: 24 });
      for (const drafter of ['ctc', 'ctc:best-path', 'medusa']) {
        const spec = await gpu.generate(prompt, { drafter, headBackend: 'model', treeBudget: 8, maxNewTokens: 24 });
        expect(spec.tokens, `${drafter} on "${prompt}"`).toEqual(plain.tokens);
        expect(spec.stats.draftSteps).toBeGreaterThan(0);
      }
    }
  });
});
