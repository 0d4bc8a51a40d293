/** Node/Bun adapter: pick a backend by name. */
import type { Backend } from '../backend/backend.js';
import { CpuBackend } from '../backend/cpu/cpu.js';
import { createNodeWebGPU } from './webgpu.js';

export type BackendName = 'cpu' | 'webgpu';

export interface BackendOptions {
  /** WebGPU only: use the software fallback (Dawn OpenGL ES on Mesa llvmpipe); also env CTCSPEC_WEBGPU=fallback */
  fallback?: boolean;
}

export async function createBackend(name: string, opts: BackendOptions = {}): Promise<Backend> {
  if (name === 'cpu') return new CpuBackend();
  if (name === 'webgpu') return createNodeWebGPU(opts);
  throw new Error(`unknown backend "${name}": expected cpu or webgpu`);
}
