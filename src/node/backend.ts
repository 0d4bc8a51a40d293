/** Node/Bun adapter: pick a backend by name; the CPU one runs on every core by default. */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Backend } from '../backend/backend.js';
import { CpuBackend } from '../backend/cpu/cpu.js';
import type { SpawnWorker } from '../backend/cpu/threads.js';
import { createNodeWebGPU } from './webgpu.js';

export type BackendName = 'cpu' | 'webgpu';

export interface BackendOptions {
  /** WebGPU only: use the software fallback (Dawn OpenGL ES on Mesa llvmpipe); also env CTCSPEC_WEBGPU=fallback */
  fallback?: boolean;
  /** CPU only: threads for the matmuls, the main one included; default every core */
  threads?: number;
}

/** worker_threads workers running a script given as text (eval mode: a CommonJS script) */
export const nodeWorkerSpawner: SpawnWorker = (source) => new Worker(source("require('node:worker_threads').parentPort"), { eval: true });

/** the CPU cores this process may use */
export function defaultThreads(): number {
  return availableParallelism();
}

/** A CPU backend on `threads` threads (default every core), its workers started. */
export async function createCpuBackend(threads = defaultThreads()): Promise<CpuBackend> {
  const backend = new CpuBackend({ threads, spawn: nodeWorkerSpawner });
  await backend.ready;
  return backend;
}

export async function createBackend(name: string, opts: BackendOptions = {}): Promise<Backend> {
  if (name === 'cpu') return createCpuBackend(opts.threads);
  if (name === 'webgpu') return createNodeWebGPU(opts);
  throw new Error(`unknown backend "${name}": expected cpu or webgpu`);
}
