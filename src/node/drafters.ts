/**
 * Node adapter: drafters by name from a model directory on disk (the names are explained in
 * src/api/drafters.ts, which does the work for any FileSource).
 */
import type { LlamaConfig } from '../model/config.js';
import type { TensorMap } from '../tensor/dtype.js';
import { loadDrafter as loadFrom, type DrafterFactory, type DrafterOptions } from '../api/drafters.js';
import { dirSource } from './dir-source.js';

export type { DrafterFactory };

/** Resolve a drafter name, reading trained heads from `modelDir/drafters/`. */
export function loadDrafter(name: string, modelDir: string | undefined, base: { config: LlamaConfig; tensors: TensorMap }, opts: DrafterOptions = {}): Promise<DrafterFactory> {
  return loadFrom(name, modelDir === undefined ? undefined : dirSource(modelDir), base, opts);
}
