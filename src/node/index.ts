/** ctcspec/node: Node and Bun adapters (files on disk, the `webgpu` npm package). */
export { createBackend, type BackendName, type BackendOptions } from './backend.js';
export { createNodeWebGPU } from './webgpu.js';
export { readModelDir, writeModelDir, type ModelDir } from './files.js';
export { loadModelSource, SHIPPED_MODEL, type LoadedModel, type ModelSourceOptions } from './model-source.js';
export { loadModel, dirSource, type NodeLoadOptions } from './dir-source.js';
export { serveStatic, staticHandler, resolveInside, contentType, PACKAGE_ROOT, EXPLAINER_PATH, type ServeOptions, type StaticServer } from './serve.js';
export { writeGgufFile, readGgufFile } from './gguf.js';
