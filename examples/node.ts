/**
 * Node example: load a model directory and generate greedily, on WebGPU when an adapter
 * is found and on the CPU otherwise.
 *
 *   npm run build && node dist/examples/node.js [MODEL_DIR] [--cpu] [--prompt TEXT]
 *
 * MODEL_DIR defaults to the shipped weights/base. Prints the text as it streams, then
 * one JSON line {runtime, backend, tokens, text}.
 */
import { CpuBackend, Llama, generate, StreamDecoder, bpeFromJson, type Backend } from '../src/index.js';
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
const stream = new StreamDecoder(tokenizer);
const result = await generate(model, tokenizer.encode(promptText, { bos: true }), {
  maxNewTokens: 24,
  onToken: (id) => process.stdout.write(stream.push(id)),
});
process.stdout.write(stream.flush() + '\n');
console.log(JSON.stringify({ runtime: 'node', backend: backend.name, tokens: result.tokens, text: tokenizer.decode(result.tokens) }));
process.exit(0); // Dawn keeps the event loop alive
