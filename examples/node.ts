/**
 * Node example: load a model directory and generate with speculative decoding (the model's
 * CTC draft head), beside a plain run of the same prompt. WebGPU when an adapter is found,
 * the CPU otherwise.
 *
 *   npm run build && node dist/examples/node.js [MODEL_DIR] [--cpu] [--prompt TEXT] [--tree-budget N] [--drafter NAME]
 *
 * MODEL_DIR defaults to the shipped weights/base. Streams the drafted text, prints tokens per
 * step and speed for both runs, then one JSON line {runtime, backend, drafter, tokens, plainTokens, ...}.
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
// drafter 'auto' (the default): the model's CTC head in the form the library picks for this
// backend, or plain decoding where drafting does not pay (the result says which, and why)
let spec;
for await (const event of lm.stream(prompt, { maxNewTokens, treeBudget, drafter: values.drafter })) {
  if (event.type === 'text') process.stdout.write(event.text);
  if (event.type === 'done') spec = event.result;
}
if (!spec) throw new Error('the stream ended without a result');
process.stdout.write('\n');
const line = (name: string, s: typeof spec.stats) => `${name}: ${s.tokensPerStep.toFixed(2)} tokens/step, ${s.tokensPerSecond.toFixed(0)} tokens/s`;
console.log(line(`${spec.drafter.name} (${spec.drafter.reason})`, spec.stats));
console.log(line('plain', plain.stats));
console.log(JSON.stringify({
  runtime: 'node', backend: spec.backend, drafter: spec.drafter.name, tokens: spec.tokens, plainTokens: plain.tokens, text: spec.text,
  tokensPerStep: spec.stats.tokensPerStep, tokensPerSecond: spec.stats.tokensPerSecond, plainTokensPerSecond: plain.stats.tokensPerSecond,
}));
process.exit(0); // Dawn keeps the event loop alive
