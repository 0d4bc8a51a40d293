/**
 * Hugging Face Llama-family checkpoints compute what PyTorch computes: for every model folder
 * in test/fixtures/hf-variants (written by scripts/make-fixtures.py, whose reference forward
 * is the published Llama / Qwen2 math in float64 PyTorch), the engine's logits for every
 * position of the fixed prompt are within 1e-4 of the reference, on the CPU backend and on
 * WebGPU (Mesa llvmpipe unless CTCSPEC_WEBGPU=gpu; no adapter is a failure).
 *
 * The variants: grouped-query and multi-query attention, a head_dim override, rope_scaling
 * llama3 and linear, the rope_parameters layout, Llama's attention_bias + mlp_bias, Qwen2's
 * q/k/v biases, untied embeddings, Hugging Face's default rms_norm_eps, F16 storage, and BF16
 * in three shards. Each feature is shown to matter: without it the logits move by far more
 * than the tolerance.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import type { WebGPUBackend } from '../src/backend/webgpu/webgpu.js';
import { generate } from '../src/decode/generate.js';
import { generateSpeculative } from '../src/decode/speculative.js';
import { PromptLookupDrafter } from '../src/draft/lookup.js';
import type { LlamaConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { TextModel } from '../src/api/text-model.js';
import { readCheckpoint, readModelConfig } from '../src/io/checkpoint.js';
import { dirSource, loadModel } from '../src/node/dir-source.js';
import { urlSource } from '../src/api/source.js';
import { BpeTokenizer } from '../src/tokenizer/bpe.js';
import { readModelDir } from '../src/node/files.js';
import { createNodeWebGPU } from '../src/node/webgpu.js';
import type { TensorMap } from '../src/tensor/dtype.js';
import { maxAbsDiff } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures/hf-variants');
const VARIANTS = readdirSync(FIXTURES).sort();
const TOLERANCE = 1e-4;
/** how far a model without one of its features must land from the reference */
const MATTERS = 1e-3;

interface Golden {
  prompt: number[];
  logits: number[][]; // (T, V)
}
const golden = (variant: string): Golden => JSON.parse(readFileSync(join(FIXTURES, variant, 'logits.json'), 'utf8'));

/** the logits (T, V) of a causal forward over the prompt at positions 0..T-1, in one batch */
async function allLogits(model: Llama, prompt: readonly number[]): Promise<Float32Array> {
  const T = prompt.length;
  const mask = new Float32Array(T * T);
  for (let t = 0; t < T; t++) mask.fill(-Infinity, t * T + t + 1, (t + 1) * T);
  model.reset();
  return Float32Array.from(await model.forwardTree(prompt, Array.from({ length: T }, (_, t) => t), mask));
}

async function distance(backend: Backend, config: LlamaConfig, tensors: TensorMap, g: Golden): Promise<number> {
  return maxAbsDiff(await allLogits(new Llama(backend, config, tensors), g.prompt), Float32Array.from(g.logits.flat()));
}

it('the fixtures cover every variant', () => {
  expect(VARIANTS).toEqual([
    'llama-attention-mlp-bias', 'llama-bf16-sharded', 'llama-f16', 'llama-gqa', 'llama-head-dim', 'llama-mqa-untied',
    'llama-rope-linear', 'llama-rope-llama3', 'llama-rope-parameters', 'qwen2-bias',
  ]);
});

/** config and weights as the library's loadModel reads them: a FileSource, weights in byte ranges */
async function readAsLibrary(variant: string): Promise<{ config: LlamaConfig; tensors: TensorMap }> {
  const source = dirSource(join(FIXTURES, variant));
  return { config: await readModelConfig(source), tensors: (await readCheckpoint(source)).tensors };
}

describe('CPU backend: logits equal PyTorch\'s within 1e-4', () => {
  for (const variant of VARIANTS) {
    it(variant, async () => {
      const { config, tensors } = await readAsLibrary(variant);
      expect(await distance(new CpuBackend(), config, tensors, golden(variant))).toBeLessThan(TOLERANCE);
      // the Node adapter (readModelDir, what the CLI reads) gives the same config and tensors
      const dir = await readModelDir(join(FIXTURES, variant));
      expect(dir.config).toEqual(config);
      for (const [name, t] of tensors) expect(dir.tensors.get(name)!.data, name).toEqual(t.data);
    });
  }
});

describe('the library\'s loadModel, from a directory and over HTTP', () => {
  it('loads each folder whole (config, generation config, weights, tokenizer) with the reference logits', async () => {
    for (const variant of ['llama-bf16-sharded', 'qwen2-bias', 'llama-head-dim']) {
      const g = golden(variant), folder = join(FIXTURES, variant);
      const fromDisk: typeof fetch = async (input, init) => {
        const path = join(folder, new URL(String(input)).pathname.slice('/m/'.length));
        if (!existsSync(path)) return new Response('not found', { status: 404 });
        const bytes = readFileSync(path);
        const range = /^bytes=(\d+)-(\d+)$/.exec(new Headers(init?.headers).get('Range') ?? '');
        if (!range) return new Response(bytes);
        return Number(range[1]) >= bytes.length ? new Response(null, { status: 416 }) : new Response(bytes.subarray(Number(range[1]), Number(range[2]) + 1), { status: 206 });
      };
      for (const lm of [await loadModel(folder), await loadModel(urlSource('http://models.test/m/', fromDisk))]) {
        expect(maxAbsDiff(await allLogits(lm.model, g.prompt), Float32Array.from(g.logits.flat())), variant).toBeLessThan(TOLERANCE);
        expect(lm.tokenizer.vocabSize).toBe(lm.config.vocab_size);
      }
    }
  });
});

describe('each feature matters: without it the logits move by more than 1e-3', () => {
  const cpu = new CpuBackend();
  const without = async (variant: string, change: (c: LlamaConfig, t: TensorMap) => [LlamaConfig, TensorMap]) => {
    const dir = await readModelDir(join(FIXTURES, variant));
    const [config, tensors] = change(dir.config, dir.tensors);
    return distance(cpu, config, tensors, golden(variant));
  };
  const zeroBiases = (t: TensorMap): TensorMap =>
    new Map([...t].map(([n, x]) => [n, n.endsWith('.bias') ? { shape: x.shape, data: new Float32Array(x.data.length) } : x]));

  it('rope scaling (llama3, linear, rope_parameters)', async () => {
    for (const variant of ['llama-rope-llama3', 'llama-rope-linear', 'llama-rope-parameters']) {
      expect(await without(variant, ({ rope_scaling: _, ...c }, t) => [c, t])).toBeGreaterThan(MATTERS);
    }
  });
  it('Hugging Face\'s default rms_norm_eps (1e-6, not 1e-5)', async () => {
    expect(await without('llama-mqa-untied', (c, t) => [{ ...c, rms_norm_eps: 1e-5 }, t])).toBeGreaterThan(MATTERS);
  });
  it('the biases', async () => {
    for (const variant of ['qwen2-bias', 'llama-attention-mlp-bias']) {
      expect(await without(variant, (c, t) => [c, zeroBiases(t)])).toBeGreaterThan(MATTERS);
    }
  });
});

describe('generation defaults and stop lists', () => {
  it('generation_config.json is exposed on the loaded model; its EOS list and max_new_tokens are the defaults', async () => {
    const cpu = new CpuBackend(), tokenizer = new BpeTokenizer([]); // prompts are ids here
    const text = async (variant: string) => {
      const { config, tensors } = await readAsLibrary(variant);
      return new TextModel(config, tensors, tokenizer, cpu);
    };
    const qwen = await text('qwen2-bias');
    expect(qwen.config.eos_token_id).toEqual([2, 3]);
    expect(qwen.config.generation_config).toEqual({ do_sample: true, temperature: 0.7, top_p: 0.8, top_k: 20, repetition_penalty: 1.05, eos_token_id: [2, 3, 4], bos_token_id: 1 });
    const sharded = await text('llama-bf16-sharded');
    const out = await sharded.generate(golden('llama-bf16-sharded').prompt, { drafter: 'none', eosId: null });
    expect(out.tokens).toHaveLength(7); // max_new_tokens
    // do_sample with its temperature and top_p, seeded: the same call twice is the same
    const a = await qwen.generate([1, 5, 9], { drafter: 'none', maxNewTokens: 8, eosId: null });
    const b = await qwen.generate([1, 5, 9], { drafter: 'none', maxNewTokens: 8, eosId: null });
    expect(a.tokens).toEqual(b.tokens);
    const greedy = await qwen.generate([1, 5, 9], { drafter: 'none', maxNewTokens: 8, eosId: null, temperature: 0 });
    expect(greedy.tokens).toHaveLength(8);
  });

  it('plain and speculative generation stop at the first token of an EOS list, or run to the end (property)', async () => {
    const { config, tensors } = await readAsLibrary('llama-gqa');
    const model = new Llama(new CpuBackend(), config, tensors);
    const prompt = golden('llama-gqa').prompt.slice(0, 6);
    const reference = (await generate(model, prompt, { maxNewTokens: 24, eosId: null })).tokens;
    await fc.assert(fc.asyncProperty(fc.array(fc.nat(95), { maxLength: 3 }), async (eos) => {
      const first = reference.findIndex((id) => eos.includes(id));
      const want = first < 0 ? reference : reference.slice(0, first + 1);
      const plain = await generate(model, prompt, { maxNewTokens: 24, eosId: eos });
      expect(plain.tokens).toEqual(want);
      expect(plain.stopReason).toBe(first < 0 ? 'max-tokens' : 'eos');
      const fast = await generateSpeculative(model, prompt, new PromptLookupDrafter(), { maxNewTokens: 24, eosId: eos, treeBudget: 4 });
      expect(fast.tokens).toEqual(want);
    }), { numRuns: 25 });
  });
});

describe('WebGPU: logits equal PyTorch\'s within 1e-4', () => {
  let gpu: WebGPUBackend;
  beforeAll(async () => {
    gpu = await createNodeWebGPU({ fallback: process.env.CTCSPEC_WEBGPU !== 'gpu' });
  });
  afterAll(() => gpu?.destroy());
  for (const variant of VARIANTS) {
    it(variant, async () => {
      const { config, tensors } = await readModelDir(join(FIXTURES, variant));
      expect(await distance(gpu, config, tensors, golden(variant))).toBeLessThan(TOLERANCE);
    });
  }
});
