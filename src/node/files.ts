/**
 * Node-only adapter: a model directory on disk, in the Hugging Face layout.
 *
 *   config.json         LlamaConfig fields (parseConfig)
 *   model.safetensors   weights, every key and shape checked against the config
 *   tokenizer.json      optional, returned as text
 *
 * Writes never destroy an existing file: each file is written to a temporary file in
 * the same directory, flushed to disk, then renamed over the target (rename within one
 * directory is atomic), so a crash leaves either the old file or the new one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig, type LlamaConfig } from '../model/config.js';
import { FormatError } from '../io/errors.js';
import { parseSafetensors, serializeSafetensors } from '../io/safetensors.js';
import { checkWeights } from '../io/weights.js';
import type { DType, TensorMap } from '../tensor/dtype.js';

export interface ModelDir {
  config: LlamaConfig;
  tensors: TensorMap;
  tokenizerJson?: string;
}

const TORCH_DTYPE: Record<DType, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Read and check config.json + model.safetensors (+ tokenizer.json if present) from `dir`. */
export async function readModelDir(dir: string): Promise<ModelDir> {
  const configPath = join(dir, 'config.json');
  const weightsPath = join(dir, 'model.safetensors');
  const configBytes = await readIfExists(configPath);
  if (!configBytes) throw new FormatError(configPath, 'file not found (a model directory needs config.json)');
  let raw: unknown;
  try {
    raw = JSON.parse(configBytes.toString('utf8'));
  } catch (e) {
    throw new FormatError(configPath, `not valid JSON (${(e as Error).message})`);
  }
  const config = parseConfig(raw, configPath);

  const weightBytes = await readIfExists(weightsPath);
  if (!weightBytes) throw new FormatError(weightsPath, 'file not found (a model directory needs model.safetensors)');
  const { tensors } = parseSafetensors(weightBytes, weightsPath);
  checkWeights(config, tensors, weightsPath);

  const tokenizer = await readIfExists(join(dir, 'tokenizer.json'));
  return tokenizer ? { config, tensors, tokenizerJson: tokenizer.toString('utf8') } : { config, tensors };
}

export interface WriteModelDirOptions {
  /** storage dtype of model.safetensors (default F32) */
  dtype?: DType;
  /** written as tokenizer.json when given */
  tokenizerJson?: string;
  /** extra "__metadata__" entries of model.safetensors */
  metadata?: Record<string, string>;
}

/** Check the weights against the config, then write config.json, model.safetensors (and tokenizer.json). */
export async function writeModelDir(
  dir: string,
  config: LlamaConfig,
  tensors: TensorMap,
  opts: WriteModelDirOptions = {},
): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const weightsPath = join(dir, 'model.safetensors');
  checkWeights(config, tensors, weightsPath);
  // serialize everything before touching the disk, so a bad tensor writes nothing
  const weights = serializeSafetensors(tensors, {
    dtype,
    metadata: { format: 'pt', ...opts.metadata },
    source: weightsPath,
  });
  const configJson = JSON.stringify(
    { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', torch_dtype: TORCH_DTYPE[dtype], ...config },
    null,
    2,
  );

  await mkdir(dir, { recursive: true });
  await writeFileAtomic(weightsPath, weights);
  await writeFileAtomic(join(dir, 'config.json'), new TextEncoder().encode(configJson + '\n'));
  if (opts.tokenizerJson !== undefined) {
    await writeFileAtomic(join(dir, 'tokenizer.json'), new TextEncoder().encode(opts.tokenizerJson));
  }
}

/** Write to `<path>.<random>.tmp` in the same directory, fsync, rename over `path`. */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
