/**
 * Loading a model from bytes, in any runtime: the three files of a Hugging Face style
 * model directory (config.json, model.safetensors, tokenizer.json). The Node adapter
 * reads them from disk; `fetchModelFiles` gets them over HTTP (browsers, Deno).
 */
import { parseConfig, type LlamaConfig } from './config.js';
import { parseSafetensors } from '../io/safetensors.js';
import { checkWeights } from '../io/weights.js';
import { FormatError } from '../io/errors.js';
import type { TensorMap } from '../tensor/dtype.js';
import { bpeFromJson } from '../tokenizer/tokenizer-json.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

export interface ModelFiles {
  config: string; // config.json text
  weights: Uint8Array | TensorMap; // model.safetensors bytes, or tensors already read (src/io/checkpoint.ts: shards, large files)
  tokenizer: string; // tokenizer.json text
}

export interface ParsedModel {
  config: LlamaConfig;
  tensors: TensorMap;
  tokenizer: Tokenizer;
}

/** Parse and check the three files; `source` (a directory or URL) prefixes error messages. */
export function parseModelFiles(files: ModelFiles, source: string): ParsedModel {
  let raw: unknown;
  try {
    raw = JSON.parse(files.config);
  } catch (e) {
    throw new FormatError(`${source}/config.json`, `not valid JSON (${(e as Error).message})`);
  }
  const config = parseConfig(raw, `${source}/config.json`);
  const tensors = files.weights instanceof Uint8Array ? parseSafetensors(files.weights, `${source}/model.safetensors`).tensors : files.weights;
  checkWeights(config, tensors, `${source}/model.safetensors`);
  const tokenizer = bpeFromJson(files.tokenizer, `${source}/tokenizer.json`);
  if (tokenizer.vocabSize > config.vocab_size) {
    throw new FormatError(`${source}/tokenizer.json`, `tokenizer has ${tokenizer.vocabSize} tokens, the model only ${config.vocab_size}`);
  }
  return { config, tensors, tokenizer };
}

/** Fetch config.json, model.safetensors and tokenizer.json from a base URL (ending in /). */
export async function fetchModelFiles(baseUrl: string | URL, fetchFn: typeof fetch = fetch): Promise<ModelFiles> {
  const get = async (name: string): Promise<Response> => {
    const url = new URL(name, baseUrl);
    const r = await fetchFn(url);
    if (!r.ok) throw new FormatError(url.href, `HTTP ${r.status} ${r.statusText}`);
    return r;
  };
  const [config, weights, tokenizer] = await Promise.all([
    get('config.json').then((r) => r.text()),
    get('model.safetensors').then(async (r) => new Uint8Array(await r.arrayBuffer())),
    get('tokenizer.json').then((r) => r.text()),
  ]);
  return { config, weights, tokenizer };
}
