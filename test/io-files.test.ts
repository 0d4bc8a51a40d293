import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, type LlamaConfig } from '../src/model/config.js';
import { FormatError } from '../src/io/errors.js';
import { serializeSafetensors } from '../src/io/safetensors.js';
import { randomWeights } from '../src/io/weights.js';
import { readModelDir, writeModelDir } from '../src/node/files.js';

const config: LlamaConfig = {
  hidden_size: 8,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  intermediate_size: 12,
  vocab_size: 10,
  max_position_embeddings: 16,
  rope_theta: 10000,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
};

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ctcspec-io-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('model directory', () => {
  it('writes and reads back config, weights and tokenizer', async () => {
    const tensors = randomWeights(config, 5);
    await writeModelDir(dir, config, tensors, { tokenizerJson: '{"model":{}}' });
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    const back = await readModelDir(dir);
    expect(back.config).toEqual(config);
    expect(back.tokenizerJson).toBe('{"model":{}}');
    for (const [name, t] of tensors) expect(back.tensors.get(name)!.data).toEqual(t.data);
    const json = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    expect(json.model_type).toBe('llama');
    expect(json.torch_dtype).toBe('float32');
  });

  it('tokenizer.json is optional; BF16 storage widens on read', async () => {
    await writeModelDir(dir, config, randomWeights(config, 5), { dtype: 'BF16' });
    const back = await readModelDir(dir);
    expect(back.tokenizerJson).toBeUndefined();
    expect(back.tensors.get('model.norm.weight')!.data.every((x) => x === 1)).toBe(true);
  });

  it('refuses mismatched weights and leaves the existing files untouched', async () => {
    await writeModelDir(dir, config, randomWeights(config, 5));
    const before = await readFile(join(dir, 'model.safetensors'));
    const bad = randomWeights(config, 6);
    bad.delete('model.norm.weight');
    await expect(writeModelDir(dir, config, bad)).rejects.toThrow(/model.safetensors: tensor "model.norm.weight": .*missing/);
    const nan = randomWeights(config, 6);
    nan.get('model.norm.weight')!.data[3] = NaN;
    await expect(writeModelDir(dir, config, nan)).rejects.toThrow(FormatError);
    expect(await readFile(join(dir, 'model.safetensors'))).toEqual(before);
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']); // no temp files left
  });

  it('names the file when something is missing or wrong', async () => {
    await expect(readModelDir(dir)).rejects.toThrow(/config.json: file not found/);
    await writeFile(join(dir, 'config.json'), '{"hidden_size": 8,');
    await expect(readModelDir(dir)).rejects.toThrow(/config.json: not valid JSON/);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, hidden_size: 7 }));
    await expect(readModelDir(dir)).rejects.toThrow(ConfigError);
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await expect(readModelDir(dir)).rejects.toThrow(/model.safetensors: file not found/);
    const untied = randomWeights({ ...config, tie_word_embeddings: false }, 1);
    await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(untied));
    await expect(readModelDir(dir)).rejects.toThrow(/model.safetensors: tensor "lm_head.weight": .*unexpected.*tie_word_embeddings: true/);
  });
});
