export { createWebGPUBackend, type CreateWebGPUOptions } from './device.js';
export { WebGPUBackend, WebGPUBuf, type WebGPUStats, type WebGPUBackendOptions, type MatvecTuning } from './webgpu.js';
