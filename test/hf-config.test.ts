/**
 * Hugging Face config.json and checkpoints as users bring them: the public configs of
 * SmolLM2, TinyLlama, Llama 3.2 and Qwen2.5 (test/fixtures/configs), every field that changes
 * the math either honoured or refused by name, generation_config.json, RoPE frequency tables,
 * sharded and ranged safetensors reading, and the clear error for a model its backend
 * cannot hold.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import type { Backend } from '../src/backend/backend.js';
import { ropeInvFreq } from '../src/backend/rope.js';
import { memorySource, urlSource } from '../src/api/source.js';
import { readCheckpoint, type CheckpointSource } from '../src/io/checkpoint.js';
import { FormatError } from '../src/io/errors.js';
import { serializeSafetensors } from '../src/io/safetensors.js';
import { checkWeights, randomWeights } from '../src/io/weights.js';
import { writeLlama2cCheckpoint } from '../src/io/llama2c.js';
import {
  ConfigError, decoderLayerShapes, headDim, paramCount, parseConfig, parseGenerationConfig, weightShapes, type LlamaConfig,
} from '../src/model/config.js';
import { CapacityError, checkFits, Llama } from '../src/model/llama.js';
import { readModelDir } from '../src/node/files.js';
import type { TensorMap } from '../src/tensor/dtype.js';

const CONFIGS = join(import.meta.dirname, 'fixtures/configs');
const publicConfig = (file: string): Record<string, unknown> => JSON.parse(readFileSync(join(CONFIGS, file), 'utf8'));

const small = {
  hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1,
  intermediate_size: 24, vocab_size: 40, max_position_embeddings: 32,
};

describe('the public configs', () => {
  it('parse with their shapes; parameter counts are the published ones', () => {
    const smol = parseConfig(publicConfig('smollm2-135m.json'));
    expect(smol).toMatchObject({ bos_token_id: 0, eos_token_id: 0, rope_theta: 100000, tie_word_embeddings: true, rms_norm_eps: 1e-5 });
    expect(paramCount(smol)).toBe(134_515_008);
    const tiny = parseConfig(publicConfig('tinyllama-1.1b.json'));
    expect(paramCount(tiny)).toBe(1_100_048_384);
    const llama = parseConfig(publicConfig('llama-3.2-1b.json'));
    expect(llama.rope_scaling).toEqual({ rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    expect(llama).toMatchObject({ head_dim: 64, bos_token_id: 128000, eos_token_id: 128001 });
    expect(paramCount(llama)).toBe(1_235_814_400);
    expect(parseConfig(publicConfig('llama-3.2-1b-instruct.json')).eos_token_id).toEqual([128001, 128008, 128009]);
    const qwen = parseConfig(publicConfig('qwen2.5-0.5b.json'));
    expect(qwen.model_type).toBe('qwen2');
    const shapes = weightShapes(qwen);
    expect(shapes.get('model.layers.23.self_attn.q_proj.bias')).toEqual([896]);
    expect(shapes.get('model.layers.0.self_attn.k_proj.bias')).toEqual([128]);
    expect(shapes.has('model.layers.0.self_attn.o_proj.bias')).toBe(false);
    // 0.49B in all, 0.36B without the embedding (the model card's numbers)
    expect(paramCount(qwen) / 1e9).toBeCloseTo(0.494, 3);
    expect((paramCount(qwen) - 151936 * 896) / 1e9).toBeCloseTo(0.358, 3);
  });

  it('models past 4 GiB of f32 are refused by the CPU backend before anything is allocated, naming the limit', () => {
    for (const [file, params] of [['tinyllama-1.1b.json', '1,100,048,384'], ['llama-3.2-1b.json', '1,235,814,400']] as const) {
      const config = parseConfig(publicConfig(file));
      const backend = new CpuBackend();
      expect(() => new Llama(backend, config, new Map())).toThrow(CapacityError);
      expect(() => new Llama(backend, config, new Map())).toThrow(new RegExp(`${params} parameters are \\d\\.\\d\\d GiB of f32 weights.*over the 4\\.00 GiB limit.*wasm32`));
      // plain arrays have no shared limit: the check passes (and the missing weights are what fail)
      expect(() => new Llama(new CpuBackend({ simd: false }), config, new Map())).toThrow(/missing weight/);
    }
    // SmolLM2 fits; so does Qwen2.5-0.5B
    for (const file of ['smollm2-135m.json', 'qwen2.5-0.5b.json']) {
      expect(() => checkFits(new CpuBackend(), parseConfig(publicConfig(file)), 8192)).not.toThrow();
    }
  });

  it('a weight over a backend\'s per-buffer limit is named (WebGPU\'s maxStorageBufferBindingSize)', () => {
    const backend = { name: 'webgpu', capacity: { bufferBytes: 128 * 2 ** 20, why: 'maxStorageBufferBindingSize 134217728' } } as unknown as Backend;
    expect(() => checkFits(backend, parseConfig(publicConfig('llama-3.2-1b.json')), 8192)).toThrow(
      /weight "model\.embed_tokens\.weight" \[128256, 2048\] is 1050673152 bytes in f32, over the 134217728-byte limit on one buffer \(maxStorageBufferBindingSize/,
    );
  });
});

describe('parseConfig: Hugging Face defaults and fields', () => {
  it('fills LlamaConfig\'s defaults: rms_norm_eps 1e-6, rope_theta 10000, untied, kv heads = heads', () => {
    const { num_key_value_heads: _, ...noKv } = small;
    expect(parseConfig(noKv)).toEqual({ ...small, num_key_value_heads: 2, rope_theta: 10000, rms_norm_eps: 1e-6, tie_word_embeddings: false });
  });

  it('eos_token_id may be a list; every id is checked against the vocabulary', () => {
    expect(parseConfig({ ...small, eos_token_id: [3, 7] }).eos_token_id).toEqual([3, 7]);
    expect(parseConfig({ ...small, eos_token_id: [] }).eos_token_id).toBeUndefined();
    expect(() => parseConfig({ ...small, eos_token_id: [3, 40] })).toThrow(/"eos_token_id" lists 40, not a token id in \[0, 40\)/);
    expect(() => parseConfig({ ...small, bos_token_id: [1] })).toThrow(/"bos_token_id" must be a token id/);
    expect(parseConfig({ ...small, bos_token_id: 0 }).bos_token_id).toBe(0);
  });

  it('head_dim sets the head size everywhere: q/o shapes, the KV rows, even without hidden % heads', () => {
    const c = parseConfig({ ...small, hidden_size: 18, head_dim: 6 });
    expect(headDim(c)).toBe(6);
    const shapes = new Map(decoderLayerShapes(c));
    expect(shapes.get('self_attn.q_proj.weight')).toEqual([12, 18]);
    expect(shapes.get('self_attn.k_proj.weight')).toEqual([6, 18]);
    expect(shapes.get('self_attn.o_proj.weight')).toEqual([18, 12]);
    expect(() => parseConfig({ ...small, hidden_size: 17 })).toThrow(/hidden_size 17 is not divisible by num_attention_heads 2 \(and no head_dim is given\)/);
    expect(headDim(parseConfig({ ...small, hidden_size: 17, head_dim: 6 }))).toBe(6);
    expect(() => parseConfig({ ...small, head_dim: 5 })).toThrow(/head_dim 5 must be even/);
    expect(() => parseConfig({ ...small, head_dim: 0 })).toThrow(/"head_dim" must be a positive integer/);
  });

  it('rope_scaling (rope_type or the older type) and the newer rope_parameters layout', () => {
    const llama3 = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
    expect(parseConfig({ ...small, rope_scaling: llama3 }).rope_scaling).toEqual(llama3);
    expect(parseConfig({ ...small, rope_scaling: { type: 'linear', factor: 2 } }).rope_scaling).toEqual({ rope_type: 'linear', factor: 2 });
    expect(parseConfig({ ...small, rope_scaling: { rope_type: 'default' } }).rope_scaling).toBeUndefined();
    const newer = parseConfig({ ...small, rope_parameters: { ...llama3, rope_theta: 500 } });
    expect(newer.rope_theta).toBe(500);
    expect(newer.rope_scaling).toEqual(llama3);
    expect(parseConfig({ ...small, rope_parameters: { rope_type: 'default', rope_theta: 7 } })).toMatchObject({ rope_theta: 7 });
    expect(() => parseConfig({ ...small, rope_theta: 10, rope_parameters: { rope_type: 'default', rope_theta: 7 } })).toThrow(/rope_theta 10 disagrees with rope_parameters.rope_theta 7/);
  });

  it('refuses by name what would change the math and is not implemented', () => {
    const refused: [Record<string, unknown>, RegExp][] = [
      [{ rope_scaling: { rope_type: 'yarn', factor: 4 } }, /rope_scaling: rope type "yarn" is not supported/],
      [{ rope_scaling: { rope_type: 'dynamic', factor: 4 } }, /rope type "dynamic" is not supported/],
      [{ rope_parameters: { rope_type: 'longrope', rope_theta: 1 } }, /rope_parameters: rope type "longrope"/],
      [{ rope_scaling: { rope_type: 'linear' } }, /"rope_scaling.factor" must be a positive number/],
      [{ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 64 } }, /high_freq_factor 1 must be above low_freq_factor 4/],
      [{ hidden_act: 'gelu' }, /hidden_act "gelu" is not supported/],
      [{ model_type: 'gemma' }, /model_type "gemma" is not supported \(supported: llama, qwen2, mistral\)/],
      [{ model_type: 'qwen2', use_sliding_window: true, sliding_window: 16 }, /sliding_window 16 is shorter than max_position_embeddings 32 and use_sliding_window is true/],
      [{ model_type: 'mistral', sliding_window: 8 }, /sliding_window 8 is shorter than max_position_embeddings 32/],
      [{ partial_rotary_factor: 0.5 }, /"partial_rotary_factor" = 0.5 changes the forward pass and is not supported/],
      [{ use_qk_norm: true }, /"use_qk_norm" = true/],
      [{ attention_bias: 'yes' }, /"attention_bias" must be a boolean/],
    ];
    for (const [fields, message] of refused) {
      expect(() => parseConfig({ ...small, ...fields }, 'model/config.json'), JSON.stringify(fields)).toThrow(ConfigError);
      expect(() => parseConfig({ ...small, ...fields }, 'model/config.json'), JSON.stringify(fields)).toThrow(message);
    }
    // what keeps Llama's math is accepted: Qwen2 without a window in use, Mistral with a window as long as the context
    expect(parseConfig({ ...small, model_type: 'qwen2', use_sliding_window: false, sliding_window: 4 }).model_type).toBe('qwen2');
    expect(parseConfig({ ...small, model_type: 'mistral', sliding_window: null }).model_type).toBeUndefined();
    expect(parseConfig({ ...small, model_type: 'mistral', sliding_window: 32 }).model_type).toBeUndefined();
    expect(() => parseConfig({ ...small, model_type: 'mistral', max_position_embeddings: 8192 })).toThrow(/sliding_window 4096 is shorter/);
  });

  it('attention_bias (Llama: q, k, v, o), Qwen2 (q, k, v always), mlp_bias: the bias tensors are expected, and refused without the flag', () => {
    const names = (c: LlamaConfig) => decoderLayerShapes(c).map(([n]) => n).filter((n) => n.endsWith('.bias'));
    expect(names(parseConfig({ ...small, attention_bias: true }))).toEqual(['self_attn.q_proj.bias', 'self_attn.k_proj.bias', 'self_attn.v_proj.bias', 'self_attn.o_proj.bias']);
    expect(names(parseConfig({ ...small, model_type: 'qwen2' }))).toEqual(['self_attn.q_proj.bias', 'self_attn.k_proj.bias', 'self_attn.v_proj.bias']);
    expect(names(parseConfig({ ...small, mlp_bias: true }))).toEqual(['mlp.gate_proj.bias', 'mlp.up_proj.bias', 'mlp.down_proj.bias']);
    expect(names(parseConfig(small))).toEqual([]);

    const withBias = parseConfig({ ...small, model_type: 'qwen2' }), plain = parseConfig(small);
    expect(() => checkWeights(plain, randomWeights(withBias, 1), 'w.safetensors')).toThrow(/3 unexpected: model\.layers\.0\.self_attn\.q_proj\.bias \[16\].*\(config has attention_bias: false\)/);
    expect(() => checkWeights(withBias, randomWeights(plain, 1), 'w.safetensors')).toThrow(/3 missing: .*q_proj\.bias.*model_type qwen2/);
    const misshapen = randomWeights(withBias, 1);
    misshapen.set('model.layers.0.self_attn.k_proj.bias', { shape: [9], data: new Float32Array(9) });
    expect(() => checkWeights(withBias, misshapen, 'w.safetensors')).toThrow(/k_proj\.bias: expected \[8\], found \[9\]/);
  });
});

describe('llama2.c export', () => {
  it('refuses what run.c cannot represent, by name', () => {
    const base = parseConfig({ ...small, rms_norm_eps: 1e-5 });
    for (const [fields, name] of [
      [{ rope_scaling: { rope_type: 'linear', factor: 2 } }, /rope_scaling \(linear\)/],
      [{ head_dim: 4 }, /head_dim 4/],
      [{ model_type: 'qwen2' }, /model_type qwen2 \(q\/k\/v biases\)/],
      [{ attention_bias: true, mlp_bias: true }, /attention_bias, mlp_bias/],
    ] as const) {
      const config = parseConfig({ ...base, ...fields });
      expect(() => writeLlama2cCheckpoint(config, randomWeights(config, 1), 'x.bin')).toThrow(new RegExp(`x\\.bin: run\\.c cannot represent ${name.source}`));
    }
  });
});

describe('generation_config.json', () => {
  it('parses the decoding defaults, token ids checked', () => {
    const g = parseGenerationConfig({ do_sample: true, temperature: 0.6, top_p: 0.9, eos_token_id: [128001, 128008, 128009], bos_token_id: 128000, transformers_version: 'x' }, 128256);
    expect(g).toEqual({ do_sample: true, temperature: 0.6, top_p: 0.9, eos_token_id: [128001, 128008, 128009], bos_token_id: 128000 });
    expect(() => parseGenerationConfig({ top_p: 1.5 }, 10, 'm/generation_config.json')).toThrow(/m\/generation_config.json: field "top_p" must be in \(0, 1\]/);
    expect(() => parseGenerationConfig({ eos_token_id: [1, 99] }, 10)).toThrow(/"eos_token_id" lists 99/);
    expect(() => parseGenerationConfig({ max_new_tokens: 2.5 }, 10)).toThrow(/"max_new_tokens" must be a non-negative integer/);
  });
});

describe('rotary frequencies', () => {
  const hd = fc.integer({ min: 1, max: 64 }).map((h) => 2 * h);
  const theta = fc.constantFrom(100, 10000, 500000);

  it('linear: the default table over factor; llama3 at factor 1: the default table', () => {
    fc.assert(fc.property(hd, theta, fc.double({ min: 1, max: 64, noNaN: true }), (d, t, factor) => {
      const plain = ropeInvFreq(d, t);
      const linear = ropeInvFreq(d, t, { rope_type: 'linear', factor });
      const llama3 = ropeInvFreq(d, t, { rope_type: 'llama3', factor: 1, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 });
      plain.forEach((f, i) => {
        expect(linear[i]).toBeCloseTo(f / factor, 12);
        expect(llama3[i]).toBeCloseTo(f, 12);
      });
    }));
  });

  it('llama3: short wavelengths kept, long ones divided by factor, the band between in order and in bounds', () => {
    fc.assert(fc.property(hd, theta, fc.double({ min: 1, max: 64, noNaN: true }), fc.integer({ min: 8, max: 8192 }), (d, t, factor, context) => {
      const s = { rope_type: 'llama3' as const, factor, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: context };
      const plain = ropeInvFreq(d, t), scaled = ropeInvFreq(d, t, s);
      for (let i = 0; i < plain.length; i++) {
        const wavelength = (2 * Math.PI) / plain[i]!;
        if (wavelength < context / 4) expect(scaled[i]).toBe(plain[i]);
        else if (wavelength > context) expect(scaled[i]).toBeCloseTo(plain[i]! / factor, 12);
        else {
          expect(scaled[i]!).toBeLessThanOrEqual(plain[i]! * (1 + 1e-12));
          expect(scaled[i]!).toBeGreaterThanOrEqual((plain[i]! / factor) * (1 - 1e-12));
        }
        if (i > 0) expect(scaled[i]!).toBeLessThan(scaled[i - 1]!); // still a decreasing table
      }
    }));
  });
});

describe('checkpoints: sharded and read in ranges', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ctcspec-shards-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const config = parseConfig({ ...small, num_hidden_layers: 2, tie_word_embeddings: false });
  /** the tensors split round-robin over `n` shards, as files, with their index */
  function sharded(tensors: TensorMap, n: number, dtype: 'F32' | 'F16' | 'BF16' = 'BF16'): Record<string, Uint8Array | string> {
    const names = [...tensors.keys()].sort();
    const files: Record<string, Uint8Array | string> = {};
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < n; s++) {
      const file = `model-${s + 1}-of-${n}.safetensors`;
      const part: TensorMap = new Map(names.filter((_, i) => i % n === s).map((name) => [name, tensors.get(name)!]));
      files[file] = serializeSafetensors(part, { dtype });
      for (const name of part.keys()) weightMap[name] = file;
    }
    files['model.safetensors.index.json'] = JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap });
    return files;
  }
  const wholeFiles = (files: Record<string, Uint8Array | string>): CheckpointSource => {
    const { readRange: _, ...rest } = memorySource(files);
    return rest;
  };

  it('ranged reads in any piece size give the tensors a whole-file read gives, for every dtype and shard count', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.constantFrom('F32', 'F16', 'BF16'), fc.integer({ min: 1, max: 64 }), fc.nat(), async (n, dtype, piece4, seed) => {
      const files = sharded(randomWeights(config, seed), n, dtype as 'F32');
      const whole = await readCheckpoint(wholeFiles(files));
      const ranged = await readCheckpoint(memorySource(files), { pieceBytes: 4 * piece4 });
      expect([...ranged.tensors.keys()].sort()).toEqual([...whole.tensors.keys()].sort());
      for (const [name, t] of whole.tensors) expect(ranged.tensors.get(name)!.data).toEqual(t.data);
      checkWeights(config, ranged.tensors, ranged.file);
    }), { numRuns: 30 });
  });

  it('over HTTP: Range requests (206, 416 past the end), or one whole download per file from a server without ranges', async () => {
    const files = sharded(randomWeights(config, 7), 2, 'F16');
    const want = (await readCheckpoint(wholeFiles(files))).tensors;
    for (const honoursRanges of [true, false]) {
      const served = new Map<string, number>(); // bytes sent per file
      const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
        const path = new URL(String(input)).pathname.slice('/m/'.length);
        const f = files[path];
        if (f === undefined) return new Response('no', { status: 404 });
        const bytes = typeof f === 'string' ? new TextEncoder().encode(f) : f;
        const range = /^bytes=(\d+)-(\d+)$/.exec(new Headers(init?.headers).get('Range') ?? '');
        let body = bytes, status = 200;
        if (range && honoursRanges) {
          const start = Number(range[1]), end = Math.min(Number(range[2]) + 1, bytes.length);
          if (start >= bytes.length) return new Response(null, { status: 416 });
          body = bytes.subarray(start, end);
          status = 206;
        }
        served.set(path, (served.get(path) ?? 0) + body.length);
        return new Response(body, { status });
      }) as typeof fetch;
      const got = (await readCheckpoint(urlSource('http://models.test/m/', fetchFn))).tensors;
      for (const [name, t] of want) expect(got.get(name)!.data).toEqual(t.data);
      for (const [path, bytes] of Object.entries(files)) {
        if (!path.endsWith('.safetensors')) continue;
        expect(served.get(path), path).toBe((bytes as Uint8Array).length); // every byte once: no whole-file download per range
      }
    }
  });

  it('a sharded BF16 directory reads through the Node adapter with its generation_config.json', async () => {
    const tensors = randomWeights(config, 3);
    for (const [name, bytes] of Object.entries(sharded(tensors, 3))) await writeFile(join(dir, name), bytes);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, eos_token_id: [5, 6] }));
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [5, 6, 7], max_new_tokens: 9 }));
    const back = await readModelDir(dir);
    expect(back.config.eos_token_id).toEqual([5, 6]);
    expect(back.config.generation_config).toEqual({ eos_token_id: [5, 6, 7], max_new_tokens: 9 });
    for (const [name, t] of tensors) {
      const got = back.tensors.get(name)!.data;
      for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - t.data[i]!)).toBeLessThanOrEqual(Math.abs(t.data[i]!) / 128); // bf16: 8 bits
    }
  });

  it('names the problem: a shard outside the folder, a missing shard, a tensor in the wrong shard, truncation, trailing bytes', async () => {
    const tensors = randomWeights(config, 4);
    const good = sharded(tensors, 2, 'F32');
    const index = JSON.parse(good['model.safetensors.index.json'] as string);
    const withIndex = (weightMap: Record<string, string>) => ({ ...good, 'model.safetensors.index.json': JSON.stringify({ weight_map: weightMap }) });
    const fails = async (files: Record<string, Uint8Array | string>, message: RegExp) => {
      for (const source of [memorySource(files, 'm'), wholeFiles({ ...files })]) {
        const err = await readCheckpoint(Object.assign(source, { location: 'm' })).then(() => undefined, (e: unknown) => e);
        expect(err, String(message)).toBeInstanceOf(FormatError);
        expect((err as Error).message).toMatch(message);
      }
    };
    for (const outside of ['../model-1-of-2.safetensors', '/etc/passwd', 'a/../../b.safetensors', 'C:\\x.safetensors', '']) {
      await fails(withIndex({ ...index.weight_map, 'model.norm.weight': outside }), /m\/model\.safetensors\.index\.json: tensor "model\.norm\.weight": weight_map sends it to .*outside the model folder/);
    }
    const { ['model-2-of-2.safetensors']: _, ...missing } = good;
    await fails(missing, /m\/model-2-of-2\.safetensors: file not found \(model\.safetensors\.index\.json lists it for \d+ tensors/);
    const moved = { ...index.weight_map, 'model.norm.weight': index.weight_map['model.norm.weight'] === 'model-1-of-2.safetensors' ? 'model-2-of-2.safetensors' : 'model-1-of-2.safetensors' };
    await fails(withIndex(moved), /tensor "model\.norm\.weight": found here, but model\.safetensors\.index\.json puts it in/);
    const { ['model.norm.weight']: __, ...unlisted } = index.weight_map;
    await fails(withIndex(unlisted), /tensor "model\.norm\.weight": found here, but model\.safetensors\.index\.json does not list it/);
    await fails(withIndex({ ...index.weight_map, 'model.extra.weight': 'model-1-of-2.safetensors' }), /1 tensors that model\.safetensors\.index\.json puts in this shard are not in it: "model\.extra\.weight"/);
    const shard = good['model-1-of-2.safetensors'] as Uint8Array;
    await fails({ ...good, 'model-1-of-2.safetensors': shard.subarray(0, shard.length - 3) }, /m\/model-1-of-2\.safetensors: .*(truncated|not covered|run past)/);
    const longer = new Uint8Array(shard.length + 2);
    longer.set(shard);
    await fails({ ...good, 'model-1-of-2.safetensors': longer }, /trailing bytes after the last tensor/);
    await fails({}, /m\/model\.safetensors: file not found \(a model folder needs model\.safetensors, or model\.safetensors\.index\.json and its shards\)/);
    await fails({ 'model.safetensors.index.json': '{"weight_map": 3}' }, /no "weight_map" object/);
  });

  it('a truncated file read in ranges names the tensor whose bytes are cut', async () => {
    const bytes = serializeSafetensors(randomWeights(config, 5));
    const err = await readCheckpoint(memorySource({ 'model.safetensors': bytes.subarray(0, bytes.length - 10) }, 'm')).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/m\/model\.safetensors: tensor "model\.norm\.weight": file ends at byte \d+, inside the tensor's data/);
  });

  it('the CLI-facing Node adapter reads a file written in one piece the same as in ranges', async () => {
    const tensors = randomWeights(config, 6);
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(tensors, { dtype: 'F16' }));
    const back = await readModelDir(dir);
    const whole = await readCheckpoint(wholeFiles({ 'model.safetensors': await readFile(join(dir, 'model.safetensors')) }));
    for (const [name, t] of whole.tensors) expect(back.tensors.get(name)!.data).toEqual(t.data);
  });
});
