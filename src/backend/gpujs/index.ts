export { createGpujsBackend, type CreateGpujsOptions, type GpujsConstructor } from './device.js';
export { GpujsBackend, GpujsBuf, type GpujsStats, type GpujsBackendOptions } from './gpujs.js';
export { pickBrowserBackend, BROWSER_BACKENDS, type BrowserBackendName, type PickBackendOptions, type PickedBackend } from './choose.js';
