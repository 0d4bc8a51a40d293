/**
 * Deno example: Deno has WebGPU built in (navigator.gpu), so no npm package is needed.
 * It imports the built JavaScript (run `npm run build` first).
 *
 *   npx deno run --unstable-webgpu --allow-read --allow-env examples/deno.ts [MODEL_DIR] [--cpu]
 *
 * On a machine without a GPU, Deno finds Mesa's software Vulkan adapter (llvmpipe).
 */
// @ts-nocheck: type-checked by Deno, not by the Node build
import { CpuBackend, Llama, generate, createWebGPUBackend, parseModelFiles } from '../dist/src/index.js';

const args = Deno.args;
const dir = args.find((a: string) => !a.startsWith('--')) ?? new URL('../weights/base', import.meta.url).pathname;
const promptAt = args.indexOf('--prompt');
const promptText = promptAt >= 0 ? args[promptAt + 1] : 'Once upon a time';

const files = {
  config: await Deno.readTextFile(`${dir}/config.json`),
  weights: await Deno.readFile(`${dir}/model.safetensors`),
  tokenizer: await Deno.readTextFile(`${dir}/tokenizer.json`),
};
const { config, tensors, tokenizer } = parseModelFiles(files, dir);

let backend;
try {
  if (args.includes('--cpu') || !navigator.gpu) throw new Error('navigator.gpu not available');
  backend = await createWebGPUBackend(navigator.gpu, { fallback: Deno.env.get('CTCSPEC_WEBGPU') === 'fallback' });
} catch (e) {
  console.error(`WebGPU unavailable (${e.message}); using the CPU backend`);
  backend = new CpuBackend();
}

const model = new Llama(backend, config, tensors);
const result = await generate(model, tokenizer.encode(promptText, { bos: true }), { maxNewTokens: 24 });
console.log(tokenizer.decode(result.tokens));
console.log(JSON.stringify({ runtime: 'deno', backend: backend.name, tokens: result.tokens, text: tokenizer.decode(result.tokens) }));
Deno.exit(0);
