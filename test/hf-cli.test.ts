/**
 * Models of real shape through the `ctcspec` command (the built dist/) and the library: the
 * public configs of test/fixtures/configs with random weights. SmolLM2-135M runs at full size;
 * the 0.5B-1.1B models keep every config field but fewer layers, a narrower feed-forward and
 * a smaller vocabulary (their full size takes minutes to initialise on two cores, and
 * TinyLlama and Llama 3.2 1B are past the CPU backend's 4 GiB: test/hf-config.test.ts checks
 * that refusal). Bad input fails with a message naming the problem, never a stack trace.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { TextModel } from '../src/api/text-model.js';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { serializeSafetensors } from '../src/io/safetensors.js';
import { randomWeights } from '../src/io/weights.js';
import { parseConfig, type LlamaConfig } from '../src/model/config.js';
import { BpeTokenizer } from '../src/tokenizer/bpe.js';
import { bpeToJson } from '../src/tokenizer/tokenizer-json.js';
import type { TensorMap } from '../src/tensor/dtype.js';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'dist/src/cli/main.js');
const exec = promisify(execFile);
const CONFIGS = join(root, 'test/fixtures/configs');
const NEW_TOKENS = 2;
/** a reduced model's size: enough for our own byte-level tokenizer (259 tokens) */
const REDUCED = { num_hidden_layers: 2, intermediate_size: 256, vocab_size: 320 };
const RUNTIME_EXIT = 1;

const scratch = mkdtempSync(join(tmpdir(), 'ctcspec-hf-cli-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const publicConfig = (file: string): Record<string, unknown> => JSON.parse(readFileSync(join(CONFIGS, file), 'utf8'));

/** the public config with fewer layers, a narrower MLP and a small vocabulary; every other field as published */
function reduced(file: string): Record<string, unknown> {
  const raw = publicConfig(file);
  const remap = (v: unknown, first: number) => (Array.isArray(v) ? v.map((_, i) => first + i) : v === undefined || v === null ? v : first);
  return { ...raw, ...REDUCED, bos_token_id: remap(raw.bos_token_id, 1), eos_token_id: remap(raw.eos_token_id, 2) };
}

interface CliJson {
  tokens: number[];
  stopReason: string;
  stats: { newTokens: number };
}

async function generateJson(args: string[]): Promise<CliJson> {
  const { stdout } = await exec(process.execPath, [cli, 'generate', '--max-new-tokens', String(NEW_TOKENS), '--json', '--prompt', 'Hello', ...args], { cwd: root, maxBuffer: 1 << 24 });
  return JSON.parse(stdout) as CliJson;
}

/** the stderr of a CLI run that must fail at run time, with a message and no stack trace */
async function cliFails(args: string[]): Promise<string> {
  try {
    await exec(process.execPath, [cli, 'generate', '--max-new-tokens', '1', '--prompt', 'Hi', ...args], { cwd: root });
  } catch (e) {
    const { code, stderr } = e as { code: number; stderr: string };
    expect(code, stderr).toBe(RUNTIME_EXIT);
    expect(stderr).not.toMatch(/\n\s+at /);
    return stderr;
  }
  throw new Error(`ctcspec generate ${args.join(' ')} succeeded, expected a failure`);
}

/** config.json, the tensors as BF16 shards with their index, and our own tokenizer.json */
function writeShardedDir(dir: string, configJson: Record<string, unknown>, config: LlamaConfig, tensors: TensorMap, shards: number): void {
  const names = [...tensors.keys()].sort();
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part: TensorMap = new Map(names.filter((_, i) => i % shards === s).map((n) => [n, tensors.get(n)!]));
    writeFileSync(join(dir, file), serializeSafetensors(part, { dtype: 'BF16' }));
    for (const n of part.keys()) weightMap[n] = file;
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configJson));
  writeFileSync(join(dir, 'tokenizer.json'), bpeToJson(new BpeTokenizer([])));
  expect(config.vocab_size).toBeGreaterThanOrEqual(new BpeTokenizer([]).vocabSize);
}

function expectGenerated(out: CliJson): void {
  expect(out.stats.newTokens).toBe(out.tokens.length);
  if (out.stopReason === 'eos') expect(out.tokens.length).toBeGreaterThanOrEqual(1);
  else expect(out.tokens).toHaveLength(NEW_TOKENS);
}

describe('the CLI', () => {
  it('--random-init with SmolLM2-135M\'s public config.json generates (full size)', async () => {
    expectGenerated(await generateJson(['--random-init', join(CONFIGS, 'smollm2-135m.json')]));
  });

  for (const file of ['qwen2.5-0.5b.json', 'llama-3.2-1b-instruct.json', 'tinyllama-1.1b.json']) {
    it(`${file}, reduced: --random-init, and a sharded BF16 directory through --model`, async () => {
      const raw = reduced(file);
      const configPath = join(scratch, file);
      writeFileSync(configPath, JSON.stringify(raw));
      expectGenerated(await generateJson(['--random-init', configPath]));
      const config = parseConfig(raw);
      const dir = join(scratch, `${file}-sharded`);
      mkdirSync(dir);
      writeShardedDir(dir, raw, config, randomWeights(config, 1), 3);
      expectGenerated(await generateJson(['--model', dir]));
    });
  }

  it('bad checkpoints and configs fail naming the problem', async () => {
    const raw = reduced('smollm2-135m.json');
    const config = parseConfig(raw);
    const dir = join(scratch, 'bad');
    mkdirSync(dir);
    writeShardedDir(dir, raw, config, randomWeights(config, 2), 2);
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    const writeIndex = (weightMap: Record<string, string>) => writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    writeIndex({ ...index.weight_map, 'model.norm.weight': '../model-00001-of-00002.safetensors' });
    expect(await cliFails(['--model', dir])).toMatch(/model\.safetensors\.index\.json: tensor "model\.norm\.weight": weight_map sends it to "\.\.\/model-00001-of-00002\.safetensors", outside the model folder/);
    writeIndex(index.weight_map);
    const second = join(dir, 'model-00002-of-00002.safetensors'), kept = readFileSync(second);
    rmSync(second);
    expect(await cliFails(['--model', dir])).toMatch(/model-00002-of-00002\.safetensors: file not found \(model\.safetensors\.index\.json lists it for \d+ tensors, "[\w.]+" first\)/);
    writeFileSync(second, kept);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...raw, rope_scaling: { rope_type: 'yarn', factor: 4 } }));
    expect(await cliFails(['--model', dir])).toMatch(/config\.json: rope_scaling: rope type "yarn" is not supported \(supported: default, linear, llama3\)/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...raw, vocab_size: 200 }));
    expect(await cliFails(['--model', dir])).toMatch(/model\.safetensors\.index\.json: tensor "model\.embed_tokens\.weight": weights do not match the config: .*expected \[200, 576\], found \[320, 576\]/);
  });
});

describe('the library', () => {
  for (const file of ['smollm2-135m.json', 'qwen2.5-0.5b.json', 'llama-3.2-1b.json', 'llama-3.2-1b-instruct.json', 'tinyllama-1.1b.json']) {
    it(`${file}, reduced: TextModel generates ${NEW_TOKENS} tokens, stopping on any of its EOS ids`, async () => {
      const config = parseConfig(reduced(file));
      const lm = new TextModel(config, randomWeights(config, 3), new BpeTokenizer([]), new CpuBackend());
      const free = await lm.generate([1, 40, 41], { drafter: 'none', maxNewTokens: NEW_TOKENS, eosId: null });
      expect(free.tokens).toHaveLength(NEW_TOKENS);
      const stopped = await lm.generate([1, 40, 41], { drafter: 'none', maxNewTokens: NEW_TOKENS, eosId: [9999, free.tokens[0]!] });
      expect(stopped.tokens).toEqual([free.tokens[0]]);
      expect(stopped.stopReason).toBe('eos');
    });
  }
});
