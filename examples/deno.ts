/**
 * Deno example: Deno has WebGPU built in (navigator.gpu), so no npm package is needed. It
 * imports the built JavaScript (run `npm run build` first) and reads the model folder through
 * a FileSource of a few lines (a URL works too: loadModel('https://.../weights/base/')).
 *
 *   npx deno run --unstable-webgpu --allow-read --allow-env examples/deno.ts [MODEL_DIR] [--cpu] [--tree-budget N] [--drafter NAME]
 *
 * On a machine without a GPU, Deno finds Mesa's software Vulkan adapter (llvmpipe).
 */
// @ts-nocheck: type-checked by Deno, not by the Node build
import { parseArgs } from 'node:util';
import { CpuBackend, createWebGPUBackend, loadModel } from '../dist/src/index.js';

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { cpu: { type: 'boolean', default: false }, prompt: { type: 'string', default: 'The jury said' }, 'tree-budget': { type: 'string', default: 'auto' }, drafter: { type: 'string', default: 'auto' } },
});
const dir = positionals[0] ?? new URL('../weights/base', import.meta.url).pathname;
const prompt = values.prompt;
const treeBudget = values['tree-budget'] === 'auto' ? 'auto' : Number(values['tree-budget']);

/** the model folder on disk: a missing file is undefined, as the FileSource contract says */
const folder = {
  location: dir,
  async read(path: string) {
    try {
      return await Deno.readFile(`${dir}/${path}`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  },
};

let backend;
try {
  if (values.cpu || !navigator.gpu) throw new Error('navigator.gpu not available');
  backend = await createWebGPUBackend(navigator.gpu, { fallback: Deno.env.get('CTCSPEC_WEBGPU') === 'fallback' });
} catch (e) {
  console.error(`WebGPU unavailable (${e.message}); using the CPU backend`);
  backend = new CpuBackend();
}

const lm = await loadModel(folder, { backend });
const maxNewTokens = 32;
const plain = await lm.generate(prompt, { drafter: 'none', maxNewTokens });
const spec = await lm.generate(prompt, { maxNewTokens, treeBudget, drafter: values.drafter }); // drafter 'auto': the model's CTC head (plain decoding where drafting does not pay)
console.log(spec.text);
console.log(`${spec.drafter.name}: ${spec.stats.tokensPerStep.toFixed(2)} tokens/step, ${spec.stats.tokensPerSecond.toFixed(0)} tokens/s`);
console.log(`plain: ${plain.stats.tokensPerStep.toFixed(2)} tokens/step, ${plain.stats.tokensPerSecond.toFixed(0)} tokens/s`);
console.log(JSON.stringify({
  runtime: 'deno', backend: spec.backend, drafter: spec.drafter.name, tokens: spec.tokens, plainTokens: plain.tokens, text: spec.text,
  tokensPerStep: spec.stats.tokensPerStep, tokensPerSecond: spec.stats.tokensPerSecond, plainTokensPerSecond: plain.stats.tokensPerSecond,
}));
Deno.exit(0);
