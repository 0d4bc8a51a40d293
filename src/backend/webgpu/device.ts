/**
 * Open a WebGPU device from any `navigator.gpu`-like object (a browser's, Deno's, or the
 * `webgpu` npm package's `create()`), and wrap it in a WebGPUBackend.
 * Runtime-neutral: no Node APIs here (the Node adapter is src/node/webgpu.ts).
 */
import { WebGPUBackend } from './webgpu.js';

export interface CreateWebGPUOptions {
  /**
   * Accept a compatibility-mode adapter (`featureLevel: 'compatibility'`), which is what
   * software rasterisers such as Mesa llvmpipe behind Dawn's OpenGL ES backend offer.
   */
  fallback?: boolean;
  powerPreference?: GPUPowerPreference;
}

/** the limits the kernels were written for (the compatibility-mode defaults) */
const NEEDS = {
  maxStorageBuffersPerShaderStage: 4, // attention: out, aux, k, v
  maxComputeInvocationsPerWorkgroup: 128,
  maxComputeWorkgroupSizeX: 128,
  maxComputeWorkgroupStorageSize: 16384,
} as const;

/** adapter limits worth raising to the adapter's best (bigger buffers, finer offsets) */
const WANTS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxStorageBuffersPerShaderStage'] as const;

export async function createWebGPUBackend(gpu: GPU, opts: CreateWebGPUOptions = {}): Promise<WebGPUBackend> {
  const adapterOpts: GPURequestAdapterOptions = {};
  if (opts.fallback) adapterOpts.featureLevel = 'compatibility';
  if (opts.powerPreference) adapterOpts.powerPreference = opts.powerPreference;
  const tried = `requestAdapter(${JSON.stringify(adapterOpts)})`;

  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter(adapterOpts);
  } catch (e) {
    throw new Error(`WebGPU: ${tried} threw: ${(e as Error).message ?? e}`);
  }
  if (!adapter) {
    const hint = opts.fallback
      ? 'no compatibility-mode adapter either'
      : "a software adapter may still be found with { fallback: true } (featureLevel 'compatibility')";
    throw new Error(`WebGPU: ${tried} returned no adapter (${hint})`);
  }

  const limits = adapter.limits;
  for (const [name, min] of Object.entries(NEEDS)) {
    const have = limits[name as keyof typeof NEEDS];
    if (have < min) throw new Error(`WebGPU: adapter from ${tried} has ${name} = ${have}, the kernels need ${min}`);
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTS) requiredLimits[name] = limits[name];
  // lower is better for alignments: ask for the adapter's finest
  requiredLimits.minUniformBufferOffsetAlignment = limits.minUniformBufferOffsetAlignment;
  requiredLimits.minStorageBufferOffsetAlignment = limits.minStorageBufferOffsetAlignment;

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ label: 'ctcspec', requiredLimits });
  } catch (e) {
    throw new Error(`WebGPU: requestDevice on the adapter from ${tried} was rejected: ${(e as Error).message ?? e}`);
  }

  const info = adapter.info;
  const description = [info?.vendor, info?.architecture, info?.device, info?.description].filter((s) => s).join(' ') || 'unknown adapter';
  const cpuLike = Boolean(info?.isFallbackAdapter) || /llvmpipe|lavapipe|swiftshader|software/i.test(description);
  return new WebGPUBackend(device, {
    cpuLike,
    description: `${description}${opts.fallback ? ' (compatibility)' : ''}`,
    keepAlive: [gpu, adapter],
  });
}
