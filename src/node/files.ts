/**
 * Node-only adapter: a model directory on disk, in the Hugging Face layout.
 *
 *   config.json         LlamaConfig fields (parseConfig)
 *   generation_config.json  optional: decoding defaults (parseGenerationConfig)
 *   model.safetensors   weights, every key and shape checked against the config; or
 *   model.safetensors.index.json + its shards (src/io/checkpoint.ts), read a tensor at a time
 *   tokenizer.json      optional, returned as text
 *   tokenizer_config.json  optional, returned as text (BOS / EOS tokens for tokenizer.json)
 *
 * Writes never destroy an existing file: each file is written to a temporary file in
 * the same directory, flushed to disk, then renamed over the target (rename within one
 * directory is atomic), so a crash leaves either the old file or the new one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { LlamaConfig } from '../model/config.js';
import { serializeSafetensors } from '../io/safetensors.js';
import { readCheckpoint, readModelConfig, type CheckpointSource, type ReadOptions } from '../io/checkpoint.js';
import { checkWeights } from '../io/weights.js';
import type { DType, TensorMap } from '../tensor/dtype.js';

export interface ModelDir {
  config: LlamaConfig;
  tensors: TensorMap;
  tokenizerJson?: string;
  tokenizerConfigJson?: string;
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

/**
 * A directory's files for the checkpoint reader: whole files, and byte ranges through a file
 * handle. Paths come from readCheckpoint, which keeps shard names inside the directory.
 */
function localFiles(dir: string): CheckpointSource {
  return { location: dir, read: (path) => readIfExists(join(dir, path)), readRange: (path, start, end) => readFileRange(join(dir, path), start, end) };
}

/** Bytes [start, end) of a file through a file handle (fewer where it ends), undefined when there is no file. */
export async function readFileRange(path: string, start: number, end: number): Promise<Uint8Array | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const out = new Uint8Array(Math.max(0, end - start));
    let got = 0;
    while (got < out.length) {
      const { bytesRead } = await handle.read(out, got, out.length - got, start + got);
      if (bytesRead === 0) break; // the end of the file
      got += bytesRead;
    }
    return out.subarray(0, got);
  } finally {
    await handle.close();
  }
}

/**
 * Read and check config.json (+ generation_config.json) and the weights (model.safetensors,
 * or model.safetensors.index.json and its shards) (+ tokenizer.json, tokenizer_config.json if
 * present) from `dir`.
 */
export async function readModelDir(dir: string, opts: Pick<ReadOptions, 'keepSixteenBit' | 'sixteenBitSink'> = {}): Promise<ModelDir> {
  const files = localFiles(dir);
  const config = await readModelConfig(files);
  const { tensors, file } = await readCheckpoint(files, opts); // a tensor at a time: any file size
  checkWeights(config, tensors, file);

  const dirFiles: ModelDir = { config, tensors };
  const tokenizer = await readIfExists(join(dir, 'tokenizer.json'));
  if (tokenizer) dirFiles.tokenizerJson = tokenizer.toString('utf8');
  const tokenizerConfig = await readIfExists(join(dir, 'tokenizer_config.json'));
  if (tokenizerConfig) dirFiles.tokenizerConfigJson = tokenizerConfig.toString('utf8');
  return dirFiles;
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
  const { generation_config: generation, ...fields } = config; // generation_config.json is a file of its own
  const architecture = config.model_type === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM';
  const configJson = JSON.stringify(
    { architectures: [architecture], model_type: 'llama', hidden_act: 'silu', torch_dtype: TORCH_DTYPE[dtype], ...fields },
    null,
    2,
  );

  await mkdir(dir, { recursive: true });
  await writeFileAtomic(weightsPath, weights);
  await writeFileAtomic(join(dir, 'config.json'), new TextEncoder().encode(configJson + '\n'));
  if (generation !== undefined) {
    await writeFileAtomic(join(dir, 'generation_config.json'), new TextEncoder().encode(JSON.stringify(generation, null, 2) + '\n'));
  }
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
