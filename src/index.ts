/**
 * ctcspec: the runtime-neutral core (Node, Deno, Bun, browsers). Node-only helpers
 * (files, the `webgpu` npm package) are in `ctcspec/node`.
 */
export type { Backend, Buf, AttentionParams } from './backend/backend.js';
export { CpuBackend } from './backend/cpu/cpu.js';
export { createWebGPUBackend } from './backend/webgpu/device.js';
export { WebGPUBackend } from './backend/webgpu/webgpu.js';
export { GpujsBackend, createGpujsBackend, pickBrowserBackend, type GpujsConstructor, type BrowserBackendName, type PickedBackend } from './backend/gpujs/index.js';
export { Tensor, ShapeError } from './tensor/tensor.js';
export * as ops from './tensor/tensor.js';
export type { DType, HostTensor, TensorMap } from './tensor/dtype.js';
export { parseConfig, parseGenerationConfig, weightShapes, paramCount, headDim, ConfigError, type LlamaConfig } from './model/config.js';
export { PRESETS } from './model/presets.js';
export { Llama, ContextError, CapacityError, type LlamaOptions } from './model/llama.js';
export { readCheckpoint } from './io/checkpoint.js';
export { parseModelFiles, fetchModelFiles, type ModelFiles, type ParsedModel } from './model/load.js';
export { generate, type GenerateOptions, type GenerationResult, type GenerationStats } from './decode/generate.js';
export { Sampler, type SamplerOptions } from './decode/sampler.js';
export { parseSafetensors, serializeSafetensors } from './io/safetensors.js';
export { readLlama2cCheckpoint, writeLlama2cCheckpoint } from './io/llama2c.js';
export {
  writeGguf, ggufModelPieces, readGguf, readGgufBytes, readGgufLayout, readGgufBlocks, GGUF_DTYPES,
  type GgufDType, type GgufModel, type GgufLayout, type GgufBlocks, type WriteGgufOptions,
} from './io/gguf.js';
export { checkWeights, randomWeights } from './io/weights.js';
export { FormatError } from './io/errors.js';
export * from './tokenizer/index.js';
export { generateSpeculative, type SpeculativeOptions, type SpeculativeResult } from './decode/speculative.js';
export { ctcPrefixBeamSearch, type CtcCandidate } from './decode/ctc-beam.js';
export { buildTree, treeAttentionMask, treePositions, type TokenTree } from './decode/tree.js';
export { verifyGreedy, verifySampling } from './decode/verify.js';
export type { Drafter, DraftCandidate } from './draft/drafter.js';
export { NoDrafter } from './draft/none.js';
export { PromptLookupDrafter } from './draft/lookup.js';
export { ctcLoss, ctcLossBatch } from './train/ctc.js';
export { ctcBestPath, ctcCollapse } from './decode/ctc-best-path.js';

// The library API: load a model folder (URL or FileSource), generate and stream text with
// speculative decoding by default.
export { loadModel, TextModel, type TextOptions, type TextResult, type StreamEvent, type LoadOptions } from './api/text-model.js';
export { urlSource, memorySource, type FileSource } from './api/source.js';
export { renderChat, readChatTemplate, ChatTemplateError, type ChatMessage } from './api/chat.js';
export { loadDrafter, UnknownDrafterError, MAX_BEAM, type DrafterFactory, type DrafterOptions } from './api/drafters.js';
export { chooseDrafter, makeBudget, type DrafterChoice } from './api/policy.js';
export { NumericError, type StepEvent } from './decode/generate.js';
export { AdaptiveBudget, autoBudget, fixedBudget, measureVerifyCost, type BudgetPolicy, type StepReport } from './decode/cost-model.js';
export { CtcHeadDrafter, type CtcHeadConfig, type CtcDraftOptions, type CtcFrames } from './draft/ctc-head.js';
export { MedusaDrafter, type MedusaConfig } from './draft/medusa.js';
export { frozenBase, type FrozenBase } from './draft/head-io.js';
