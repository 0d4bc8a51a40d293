/**
 * Node adapter: find a model and its tokenizer from CLI-style options.
 *   --model DIR          Hugging Face layout: config.json, model.safetensors, tokenizer.json
 *   --model FILE.bin     a llama2.c checkpoint, with --tokenizer tokenizer.bin (or tokenizer.json)
 *   --random-init NAME   random weights for a preset name (tiny, stories15M) or a config.json path
 * With none of them, the shipped model in <package>/weights/base.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseConfig, type LlamaConfig } from '../model/config.js';
import { PRESETS } from '../model/presets.js';
import { randomWeights } from '../io/weights.js';
import { readLlama2cCheckpoint } from '../io/llama2c.js';
import type { TensorMap } from '../tensor/dtype.js';
import { BpeTokenizer, bpeFromJson, readLlama2cTokenizer, type Tokenizer } from '../tokenizer/index.js';
import { readModelDir } from './files.js';

/** the shipped weights/base: beside dist/src/node/ when built, beside src/node/ when run from source */
export const SHIPPED_MODEL = ['../../../weights/base', '../../weights/base']
  .map((up) => fileURLToPath(new URL(up, import.meta.url)))
  .find((dir) => existsSync(`${dir}/config.json`)) ?? fileURLToPath(new URL('../../../weights/base', import.meta.url));

export interface ModelSourceOptions {
  model?: string;
  tokenizer?: string;
  randomInit?: string;
  initSeed?: number;
}

export interface LoadedModel {
  config: LlamaConfig;
  tensors: TensorMap;
  tokenizer: Tokenizer;
  description: string;
  /** the model directory (where its drafters/ live), when it came from one */
  dir?: string;
}

function readTokenizerFile(path: string, vocabSize: number): Tokenizer {
  if (!existsSync(path)) throw new Error(`tokenizer file not found: ${path}`);
  const bytes = readFileSync(path);
  if (path.endsWith('.json')) return bpeFromJson(bytes.toString('utf8'), path);
  return readLlama2cTokenizer(bytes, vocabSize, path);
}

export async function loadModelSource(o: ModelSourceOptions): Promise<LoadedModel> {
  if (o.randomInit) {
    if (o.model) throw new Error('give either --model or --random-init, not both');
    let config: LlamaConfig;
    if (PRESETS[o.randomInit]) config = PRESETS[o.randomInit]!;
    else if (existsSync(o.randomInit)) config = parseConfig(JSON.parse(readFileSync(o.randomInit, 'utf8')), o.randomInit);
    else throw new Error(`--random-init ${o.randomInit}: not a preset (${Object.keys(PRESETS).join(', ')}) nor a config.json file`);
    const tokenizer = o.tokenizer ? readTokenizerFile(o.tokenizer, config.vocab_size) : new BpeTokenizer([]);
    return { config, tensors: randomWeights(config, o.initSeed ?? 0), tokenizer, description: `random init (${o.randomInit}, seed ${o.initSeed ?? 0})` };
  }
  const path = o.model ?? SHIPPED_MODEL;
  if (!existsSync(path)) {
    throw new Error(
      o.model ? `model not found: ${path}` : `no shipped model at ${path}: pass --model DIR (or FILE.bin --tokenizer FILE) or --random-init tiny`,
    );
  }
  if (statSync(path).isDirectory()) {
    const dir = await readModelDir(path);
    const tokenizer = o.tokenizer
      ? readTokenizerFile(o.tokenizer, dir.config.vocab_size)
      : dir.tokenizerJson !== undefined
        ? bpeFromJson(dir.tokenizerJson, `${path}/tokenizer.json`)
        : undefined;
    if (!tokenizer) throw new Error(`${path} has no tokenizer.json: pass --tokenizer FILE`);
    return { config: dir.config, tensors: dir.tensors, tokenizer, description: path, dir: path };
  }
  const { config, tensors } = readLlama2cCheckpoint(readFileSync(path), path);
  if (!o.tokenizer) throw new Error(`${path} is a llama2.c checkpoint: pass --tokenizer tokenizer.bin`);
  return { config, tensors, tokenizer: readTokenizerFile(o.tokenizer, config.vocab_size), description: path };
}
