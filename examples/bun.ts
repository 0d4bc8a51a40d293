/**
 * Bun example: the same code as the Node one (Bun loads the `webgpu` npm package too).
 *
 *   npx bun examples/bun.ts [MODEL_DIR] [--cpu] [--prompt TEXT] [--tree-budget N] [--drafter NAME]
 */
import { parseArgs } from 'node:util';
import { loadModel, SHIPPED_MODEL } from '../src/node/index.js';
import type { TextModel } from '../src/index.js';

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: { cpu: { type: 'boolean', default: false }, prompt: { type: 'string', default: 'The jury said' }, 'tree-budget': { type: 'string', default: 'auto' }, drafter: { type: 'string', default: 'auto' } },
});
const dir = positionals[0] ?? SHIPPED_MODEL;
const prompt = values.prompt!;
const treeBudget = values['tree-budget'] === 'auto' ? 'auto' : Number(values['tree-budget']);

let lm: TextModel;
try {
  lm = await loadModel(dir, { backend: values.cpu ? 'cpu' : 'webgpu' });
} catch (e) {
  console.error(`WebGPU unavailable (${(e as Error).message}); using the CPU backend`);
  lm = await loadModel(dir, { backend: 'cpu' });
}

const maxNewTokens = 32;
const plain = await lm.generate(prompt, { drafter: 'none', maxNewTokens });
const spec = await lm.generate(prompt, { maxNewTokens, treeBudget, drafter: values.drafter }); // drafter 'auto': the model's CTC head (plain decoding where drafting does not pay)
console.log(spec.text);
console.log(`${spec.drafter.name}: ${spec.stats.tokensPerStep.toFixed(2)} tokens/step, ${spec.stats.tokensPerSecond.toFixed(0)} tokens/s`);
console.log(`plain: ${plain.stats.tokensPerStep.toFixed(2)} tokens/step, ${plain.stats.tokensPerSecond.toFixed(0)} tokens/s`);
console.log(JSON.stringify({
  runtime: 'bun', backend: spec.backend, drafter: spec.drafter.name, tokens: spec.tokens, plainTokens: plain.tokens, text: spec.text,
  tokensPerStep: spec.stats.tokensPerStep, tokensPerSecond: spec.stats.tokensPerSecond, plainTokensPerSecond: plain.stats.tokensPerSecond,
}));
process.exit(0);
