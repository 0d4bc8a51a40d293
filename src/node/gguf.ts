/**
 * Node adapter for GGUF files: write a model to disk piece by piece (a file over 2 GiB never
 * sits in one buffer), and read one through a file handle, a tensor at a time.
 *
 *   await writeGgufFile('model.gguf', config, tensors, { dtype: 'Q8_0', tokenizer });
 *   const { config, tensors, tokenizerJson } = await readGgufFile('model.gguf');
 */
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { LlamaConfig } from '../model/config.js';
import type { TensorMap } from '../tensor/dtype.js';
import { ggufModelPieces, readGguf, type GgufModel, type ReadGgufOptions, type WriteGgufOptions } from '../io/gguf.js';
import { FormatError } from '../io/errors.js';
import { readFileRange } from './files.js';

/**
 * Write `config` and `tensors` as a GGUF file at `path`: to a temporary file beside it,
 * flushed, then renamed over it, so a failure leaves no half-written model.
 */
export async function writeGgufFile(path: string, config: LlamaConfig, tensors: TensorMap, opts: WriteGgufOptions = {}): Promise<void> {
  const { pieces } = ggufModelPieces(config, tensors, { source: path, ...opts });
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temporary, 'w');
  try {
    for (const piece of pieces) await handle.write(piece);
    await handle.sync();
    await handle.close();
    await rename(temporary, path);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await unlink(temporary).catch(() => undefined);
    throw e;
  }
}

/** Read a GGUF model file through ranged reads (quantized tensors widened to f32). */
export async function readGgufFile(path: string, opts: ReadGgufOptions = {}): Promise<GgufModel> {
  const first = await readFileRange(path, 0, 1);
  if (first === undefined) throw new FormatError(path, 'file not found');
  return readGguf(async (start, end) => readFileRange(path, start, end), path, opts);
}
