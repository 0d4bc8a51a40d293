/**
 * Node adapter: find a model and its tokenizer from CLI-style options.
 *   --model DIR          Hugging Face layout: config.json, model.safetensors, tokenizer.json
 *   --model FILE.bin     a llama2.c checkpoint, with --tokenizer tokenizer.bin (or tokenizer.json)
 *   --model FILE.gguf    a GGUF file (llama.cpp's format): weights, config and tokenizer in one
 *   --random-init NAME   random weights for a preset name (tiny, stories15M) or a config.json path
 * With none of them, the shipped model in <package>/weights/base. A tokenizer.json (any
 * Hugging Face one) is read with the tokenizer_config.json beside it, when there is one, and
 * the model config's BOS / EOS ids.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, type LlamaConfig } from '../model/config.js';
import { PRESETS } from '../model/presets.js';
import { randomWeights } from '../io/weights.js';
import { readLlama2cCheckpoint } from '../io/llama2c.js';
import type { TensorMap } from '../tensor/dtype.js';
import { checkTokenizerFits } from '../model/load.js';
import { BpeTokenizer, readHfTokenizer, readLlama2cTokenizer, type Tokenizer } from '../tokenizer/index.js';
import { readModelDir } from './files.js';
import type { ReadOptions } from '../io/checkpoint.js';
import { readGgufFile } from './gguf.js';
import { ggufChatTemplate, type ChatTemplate } from '../api/chat.js';

/** the shipped weights/base: beside dist/src/node/ when built, beside src/node/ when run from source */
export const SHIPPED_MODEL = ['../../../weights/base', '../../weights/base']
  .map((up) => fileURLToPath(new URL(up, import.meta.url)))
  .find((dir) => existsSync(`${dir}/config.json`)) ?? fileURLToPath(new URL('../../../weights/base', import.meta.url));

export interface ModelSourceOptions {
  model?: string;
  tokenizer?: string;
  randomInit?: string;
  initSeed?: number;
  /** a model directory's F16 / BF16 tensors stay 16-bit (HostTensor.stored), for a backend that holds 16-bit weights */
  keepSixteenBit?: boolean;
  /** where a model directory's 16-bit matrices go as they are read (ReadOptions.sixteenBitSink: straight into a backend) */
  sixteenBitSink?: ReadOptions['sixteenBitSink'];
}

export interface LoadedModel {
  config: LlamaConfig;
  tensors: TensorMap;
  tokenizer: Tokenizer;
  description: string;
  /** the model directory (where its drafters/ live), when it came from one; a GGUF file's folder */
  dir?: string;
  /** a chat template that comes with the model itself (a GGUF file's tokenizer.chat_template) */
  chatTemplate?: ChatTemplate;
}

/** tokenizer.json (with the tokenizer_config.json beside it) or llama2.c's tokenizer.bin, checked against the model's vocab_size */
function readTokenizerFile(path: string, config: LlamaConfig): Tokenizer {
  if (!existsSync(path)) throw new Error(`tokenizer file not found: ${path}`);
  const bytes = readFileSync(path);
  if (!path.endsWith('.json')) return readLlama2cTokenizer(bytes, config.vocab_size, path);
  const configPath = join(dirname(path), 'tokenizer_config.json');
  return readTokenizerJson(bytes.toString('utf8'), path, existsSync(configPath) ? readFileSync(configPath, 'utf8') : undefined, configPath, config);
}

function readTokenizerJson(json: string, path: string, tokenizerConfig: string | undefined, configPath: string, config: LlamaConfig): Tokenizer {
  const tokenizer = readHfTokenizer(json, path, {
    config: tokenizerConfig,
    configSource: configPath,
    bosTokenId: config.bos_token_id,
    eosTokenId: config.eos_token_id,
  });
  checkTokenizerFits(tokenizer, config.vocab_size, path);
  return tokenizer;
}

export async function loadModelSource(o: ModelSourceOptions): Promise<LoadedModel> {
  if (o.randomInit) {
    if (o.model) throw new Error('give either --model or --random-init, not both');
    let config: LlamaConfig;
    if (PRESETS[o.randomInit]) config = PRESETS[o.randomInit]!;
    else if (existsSync(o.randomInit)) config = parseConfig(JSON.parse(readFileSync(o.randomInit, 'utf8')), o.randomInit);
    else throw new Error(`--random-init ${o.randomInit}: not a preset (${Object.keys(PRESETS).join(', ')}) nor a config.json file`);
    const tokenizer = o.tokenizer ? readTokenizerFile(o.tokenizer, config) : new BpeTokenizer([]);
    return { config, tensors: randomWeights(config, o.initSeed ?? 0), tokenizer, description: `random init (${o.randomInit}, seed ${o.initSeed ?? 0})` };
  }
  const path = o.model ?? SHIPPED_MODEL;
  if (!existsSync(path)) {
    throw new Error(
      o.model ? `model not found: ${path}` : `no shipped model at ${path}: pass --model DIR (or FILE.bin --tokenizer FILE) or --random-init tiny`,
    );
  }
  if (statSync(path).isDirectory()) {
    const dir = await readModelDir(path, { keepSixteenBit: o.keepSixteenBit, sixteenBitSink: o.sixteenBitSink });
    const tokenizer = o.tokenizer
      ? readTokenizerFile(o.tokenizer, dir.config)
      : dir.tokenizerJson !== undefined
        ? readTokenizerJson(dir.tokenizerJson, join(path, 'tokenizer.json'), dir.tokenizerConfigJson, join(path, 'tokenizer_config.json'), dir.config)
        : undefined;
    if (!tokenizer) throw new Error(`${path} has no tokenizer.json: pass --tokenizer FILE`);
    return { config: dir.config, tensors: dir.tensors, tokenizer, description: path, dir: path };
  }
  if (path.endsWith('.gguf')) {
    const gguf = await readGgufFile(path);
    const tokenizer = o.tokenizer
      ? readTokenizerFile(o.tokenizer, gguf.config)
      : gguf.tokenizerJson !== undefined
        ? readTokenizerJson(gguf.tokenizerJson, `${path} (tokenizer)`, gguf.tokenizerConfigJson, `${path} (tokenizer.ggml.add_bos_token)`, gguf.config)
        : undefined;
    if (!tokenizer) throw new Error(`${path} has no tokenizer (no tokenizer.ggml.* keys): pass --tokenizer FILE`);
    return { config: gguf.config, tensors: gguf.tensors, tokenizer, description: path, dir: dirname(path), chatTemplate: ggufChatTemplate(gguf, path) };
  }
  const { config, tensors } = readLlama2cCheckpoint(readFileSync(path), path);
  if (!o.tokenizer) throw new Error(`${path} is a llama2.c checkpoint: pass --tokenizer tokenizer.bin`);
  return { config, tensors, tokenizer: readTokenizerFile(o.tokenizer, config), description: path };
}
