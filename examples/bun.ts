/**
 * Bun example: the same code as the Node one (Bun loads the `webgpu` npm package too).
 *
 *   npx bun examples/bun.ts [MODEL_DIR] [--cpu] [--prompt TEXT]
 */
import { CpuBackend, Llama, generate, bpeFromJson, type Backend } from '../src/index.js';
import { createNodeWebGPU, readModelDir, SHIPPED_MODEL } from '../src/node/index.js';

const args = process.argv.slice(2);
const dir = args.find((a) => !a.startsWith('--')) ?? SHIPPED_MODEL;
const promptAt = args.indexOf('--prompt');
const promptText = promptAt >= 0 ? args[promptAt + 1]! : 'Once upon a time';

const { config, tensors, tokenizerJson } = await readModelDir(dir);
if (tokenizerJson === undefined) throw new Error(`${dir} has no tokenizer.json`);
const tokenizer = bpeFromJson(tokenizerJson, `${dir}/tokenizer.json`);

let backend: Backend;
try {
  backend = args.includes('--cpu') ? new CpuBackend() : await createNodeWebGPU();
} catch (e) {
  console.error(`WebGPU unavailable (${(e as Error).message}); using the CPU backend`);
  backend = new CpuBackend();
}

const model = new Llama(backend, config, tensors);
const result = await generate(model, tokenizer.encode(promptText, { bos: true }), { maxNewTokens: 24 });
console.log(tokenizer.decode(result.tokens));
console.log(JSON.stringify({ runtime: 'bun', backend: backend.name, tokens: result.tokens, text: tokenizer.decode(result.tokens) }));
process.exit(0);
