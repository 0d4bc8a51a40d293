/**
 * Loading a model from bytes, in any runtime: the files of a Hugging Face style model
 * directory (config.json, model.safetensors, tokenizer.json, and tokenizer_config.json when
 * there is one). The Node adapter reads them from disk; `fetchModelFiles` gets them over
 * HTTP (browsers, Deno). Every tokenizer.json, ours included, is read through Hugging
 * Face's tokenizer library (tokenizer/hf.ts says why).
 */
import { parseConfig, type LlamaConfig } from './config.js';
import { parseSafetensors } from '../io/safetensors.js';
import { checkWeights } from '../io/weights.js';
import { FormatError } from '../io/errors.js';
import type { TensorMap } from '../tensor/dtype.js';
import { readHfTokenizer } from '../tokenizer/hf.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

const HTTP_NOT_FOUND = 404;

export interface ModelFiles {
  config: string; // config.json text
  weights: Uint8Array | TensorMap; // model.safetensors bytes, or tensors already read (src/io/checkpoint.ts: shards, large files)
  tokenizer: string; // tokenizer.json text
  tokenizerConfig?: string; // tokenizer_config.json text: BOS / EOS tokens, add_bos_token
}

export interface ParsedModel {
  config: LlamaConfig;
  tensors: TensorMap;
  tokenizer: Tokenizer;
}

/** Parse and check the files; `source` (a directory or URL) prefixes error messages. */
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
  const tokenizer = readHfTokenizer(files.tokenizer, `${source}/tokenizer.json`, {
    config: files.tokenizerConfig,
    configSource: `${source}/tokenizer_config.json`,
    bosTokenId: config.bos_token_id,
    eosTokenId: config.eos_token_id,
  });
  checkTokenizerFits(tokenizer, config.vocab_size, `${source}/tokenizer.json`);
  return { config, tensors, tokenizer };
}

/**
 * A tokenizer may have fewer tokens than the model's vocab_size (vocabularies are often
 * padded to a round size), never more: its ids past the model's would have no embedding.
 */
export function checkTokenizerFits(tokenizer: Tokenizer, vocabSize: number, source: string): void {
  if (tokenizer.vocabSize > vocabSize) {
    throw new FormatError(source, `the tokenizer has ${tokenizer.vocabSize} tokens, more than the model's vocab_size ${vocabSize}`);
  }
}

/** Fetch config.json, model.safetensors, tokenizer.json (and tokenizer_config.json if there is one) from a base URL (ending in /). */
export async function fetchModelFiles(baseUrl: string | URL, fetchFn: typeof fetch = fetch): Promise<ModelFiles> {
  /** the response for `name`; undefined for a 404 when the file is optional */
  const get = async (name: string, optional = false): Promise<Response | undefined> => {
    const url = new URL(name, baseUrl);
    const r = await fetchFn(url);
    if (optional && r.status === HTTP_NOT_FOUND) return undefined;
    if (!r.ok) throw new FormatError(url.href, `HTTP ${r.status} ${r.statusText}`);
    return r;
  };
  const [config, weights, tokenizer, tokenizerConfig] = await Promise.all([
    get('config.json').then((r) => r!.text()),
    get('model.safetensors').then(async (r) => new Uint8Array(await r!.arrayBuffer())),
    get('tokenizer.json').then((r) => r!.text()),
    get('tokenizer_config.json', true).then((r) => r?.text()),
  ]);
  return tokenizerConfig === undefined ? { config, weights, tokenizer } : { config, weights, tokenizer, tokenizerConfig };
}
