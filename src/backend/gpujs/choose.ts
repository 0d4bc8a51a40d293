/**
 * The backend a page runs on: WebGPU where the browser has it, else WebGL through gpu.js,
 * else the CPU, with an override. Every step that is skipped says why, so a page can show
 * which backend runs and what it fell back from.
 *
 *   const { backend, why } = await pickBrowserBackend({ prefer: 'auto', gpu: navigator.gpu, GPU: window.GPU });
 */
import type { Backend } from '../backend.js';
import { CpuBackend } from '../cpu/cpu.js';
import { createWebGPUBackend } from '../webgpu/device.js';
import { createGpujsBackend, type GpujsConstructor } from './device.js';

export type BrowserBackendName = 'auto' | 'webgpu' | 'webgl' | 'cpu';
export const BROWSER_BACKENDS: readonly BrowserBackendName[] = ['auto', 'webgpu', 'webgl', 'cpu'];

export interface PickBackendOptions {
  /** 'auto' (default): WebGPU, then WebGL, then the CPU; a name: that one or an error */
  prefer?: BrowserBackendName;
  /** `navigator.gpu`, where the browser has WebGPU */
  gpu?: GPU;
  /** gpu.js's `GPU` class (`window.GPU` from gpu.js/dist/gpu-browser.min.js), where loaded */
  GPU?: GpujsConstructor;
  /** accept a compatibility-mode (software) WebGPU adapter */
  fallback?: boolean;
  /**
   * the CPU backend's threads (default navigator.hardwareConcurrency): Web Workers sharing its
   * memory, which needs a cross-origin isolated page (`ctcspec serve` sends the headers);
   * elsewhere it runs on one thread and `why` says so
   */
  threads?: number;
}

export interface PickedBackend {
  backend: Backend;
  /** why this one, naming what was skipped and why, for the page to show */
  why: string;
}

export async function pickBrowserBackend(opts: PickBackendOptions = {}): Promise<PickedBackend> {
  const prefer = opts.prefer ?? 'auto';
  if (!BROWSER_BACKENDS.includes(prefer)) throw new Error(`unknown backend "${prefer}": one of ${BROWSER_BACKENDS.join(', ')}`);
  const skipped: string[] = [];
  const tryWebGPU = async (): Promise<Backend | null> => {
    if (!opts.gpu) return skip('WebGPU: this browser has no navigator.gpu');
    try {
      return await createWebGPUBackend(opts.gpu, { fallback: opts.fallback });
    } catch (e) {
      return skip((e as Error).message);
    }
  };
  const tryWebGL = (): Backend | null => {
    if (!opts.GPU) return skip('WebGL: gpu.js is not loaded');
    try {
      return createGpujsBackend(opts.GPU);
    } catch (e) {
      return skip((e as Error).message);
    }
  };
  function skip(why: string): null {
    skipped.push(why);
    return null;
  }
  const chosen = (backend: Backend, what: string): PickedBackend => ({
    backend,
    why: skipped.length ? `${what} (skipped: ${skipped.join('; ')})` : what,
  });

  /** the CPU backend on the threads asked for, saying how many run (and why fewer, if so) */
  const cpu = async (what: string): Promise<PickedBackend> => {
    const asked = opts.threads ?? (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
    const backend = new CpuBackend({ threads: Math.max(1, Math.floor(asked)) });
    await backend.ready;
    const threads = backend.threadsNote || `${backend.threads} thread${backend.threads === 1 ? '' : 's'}`;
    return chosen(backend, `${what}, ${threads}`);
  };

  if (prefer === 'cpu') return cpu('the CPU, as asked');
  if (prefer === 'webgpu') {
    const b = await tryWebGPU();
    if (!b) throw new Error(`WebGPU was asked for: ${skipped.join('; ')}`);
    return chosen(b, 'WebGPU, as asked');
  }
  if (prefer === 'webgl') {
    const b = tryWebGL();
    if (!b) throw new Error(`WebGL was asked for: ${skipped.join('; ')}`);
    return chosen(b, 'WebGL through gpu.js, as asked');
  }
  const gpu = await tryWebGPU();
  if (gpu) return chosen(gpu, 'WebGPU');
  const gl = tryWebGL();
  if (gl) return chosen(gl, 'WebGL through gpu.js');
  return cpu('the CPU');
}
