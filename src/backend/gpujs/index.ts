export { createGpujsBackend, type CreateGpujsOptions, type GpujsConstructor } from './device.js';
export { GpujsBackend, GpujsBuf, type GpujsStats, type GpujsBackendOptions } from './gpujs.js';
