/**
 * WebGPU in Node (and Bun) through the `webgpu` npm package (Dawn's node binding).
 *
 * Two adapter paths:
 *  - default: `create([])` and a core-feature-level adapter (a real GPU: Vulkan, Metal, D3D12);
 *  - fallback (`{ fallback: true }` or env CTCSPEC_WEBGPU=fallback): Dawn's OpenGL ES
 *    backend on Mesa llvmpipe, a software rasteriser that needs no GPU. It needs the Debian
 *    packages libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri, EGL_PLATFORM=surfaceless (set
 *    here when unset) and a compatibility-feature-level adapter.
 *
 * `webgpu` is an optional peer dependency (its Dawn binaries are most of an install, and
 * browser and Deno users never load them): it is imported here, when a WebGPU backend is
 * first asked for, and a missing package is an error that says how to install it.
 */
import { createWebGPUBackend } from '../backend/webgpu/device.js';
import type { WebGPUBackend } from '../backend/webgpu/webgpu.js';

export interface NodeWebGPUOptions {
  /** use the Dawn OpenGL ES / llvmpipe path (also chosen by env CTCSPEC_WEBGPU=fallback) */
  fallback?: boolean;
}

const FALLBACK_PACKAGES = 'libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri';

export async function createNodeWebGPU(opts: NodeWebGPUOptions = {}): Promise<WebGPUBackend> {
  const fallback = opts.fallback === true || process.env.CTCSPEC_WEBGPU === 'fallback';
  if (fallback) process.env.EGL_PLATFORM ??= 'surfaceless'; // eglInitialize fails without it
  const path = fallback ? 'Dawn OpenGL ES / llvmpipe fallback' : 'Dawn default';
  let create: (flags: string[]) => GPU;
  try {
    ({ create } = (await import('webgpu')) as { create: (flags: string[]) => GPU });
  } catch (e) {
    throw new Error(`WebGPU in Node needs the optional package "webgpu" (Dawn's node binding): npm install webgpu (${(e as Error).message})`);
  }
  try {
    const gpu = create(fallback ? ['backend=opengles'] : []);
    return await createWebGPUBackend(gpu, { fallback });
  } catch (e) {
    const advice = fallback
      ? `Check that the Mesa packages are installed (apt-get install -y ${FALLBACK_PACKAGES}) and EGL_PLATFORM=surfaceless; on a machine with a GPU try the default path (CTCSPEC_WEBGPU unset).`
      : `Without a GPU try the software path: { fallback: true } or CTCSPEC_WEBGPU=fallback (needs the Debian packages ${FALLBACK_PACKAGES}).`;
    throw new Error(`WebGPU via ${path} failed: ${(e as Error).message ?? e}\n${advice}`);
  }
}
