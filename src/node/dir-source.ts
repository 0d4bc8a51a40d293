/**
 * Node adapter for the library API: a model folder on disk as a FileSource, and loadModel
 * taking a directory path and a backend by name.
 *
 *   import { loadModel } from 'ctcspec/node';
 *   const lm = await loadModel('weights/base', { backend: 'webgpu' });
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { Backend } from '../backend/backend.js';
import type { FileSource } from '../api/source.js';
import { loadModel as loadModelFrom, type LoadOptions, type TextModel } from '../api/text-model.js';
import { createBackend, type BackendOptions } from './backend.js';
import { readFileRange } from './files.js';

/**
 * A directory as a FileSource; paths stay inside it (by name: a symbolic link may point
 * elsewhere, as in Hugging Face's cache, whose snapshot files link to its blobs).
 */
export function dirSource(dir: string): FileSource {
  const root = resolve(dir);
  const inside = (path: string): string => {
    const full = resolve(root, path);
    if (full !== root && !full.startsWith(root + '/') && !full.startsWith(root + '\\')) throw new Error(`${path}: outside the model directory ${root}`);
    return full;
  };
  return {
    location: dir,
    async read(path) {
      try {
        return await readFile(inside(path));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
    },
    readRange: (path, start, end) => readFileRange(inside(path), start, end),
    async list(folder) {
      try {
        return await readdir(inside(folder));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw e;
      }
    },
  };
}

export interface NodeLoadOptions extends BackendOptions {
  /** 'cpu' (default), 'webgpu' (the `webgpu` npm package), or a Backend */
  backend?: 'cpu' | 'webgpu' | Backend;
  /** the weight matrices' format in memory: 'f32', 'f16', 'bf16', 'q8_0'; default as stored (LoadOptions.weights) */
  weights?: LoadOptions['weights'];
}

/** loadModel for a directory on disk, a .gguf file, or any FileSource / URL, with the backend by name. */
export async function loadModel(dir: string | FileSource | URL, opts: NodeLoadOptions = {}): Promise<TextModel> {
  const backend = typeof opts.backend === 'object' ? opts.backend : await createBackend(opts.backend ?? 'cpu', opts);
  const local = typeof dir === 'string' && !/^[a-z]+:\/\//i.test(dir);
  // a .gguf file: the folder it is in as the source, the file by name
  if (local && dir.endsWith('.gguf')) return loadModelFrom(dirSource(dirname(dir)), { backend, gguf: basename(dir), weights: opts.weights });
  return loadModelFrom(local ? dirSource(dir) : dir, { backend, weights: opts.weights });
}

