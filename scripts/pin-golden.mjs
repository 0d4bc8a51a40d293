// Pins the shipped model's greedy output for fixed prompts into test/golden.json.
// Run after (re)training weights/base:  npm run build && node scripts/pin-golden.mjs
import { writeFileSync } from 'node:fs';
import { CpuBackend, Llama, generate, bpeFromJson } from '../dist/src/index.js';
import { readModelDir } from '../dist/src/node/index.js';

const PROMPTS = ['The jury said', 'In the morning, the', 'He looked at her and', 'The new law will', 'It was a'];
const maxNewTokens = 40;
const { config, tensors, tokenizerJson } = await readModelDir('weights/base');
const tokenizer = bpeFromJson(tokenizerJson, 'weights/base/tokenizer.json');
const model = new Llama(new CpuBackend(), config, tensors);
const cases = [];
for (const prompt of PROMPTS) {
  const r = await generate(model, tokenizer.encode(prompt, { bos: true }), { maxNewTokens });
  cases.push({ prompt, tokens: r.tokens, text: tokenizer.decode(r.tokens) });
  console.log(JSON.stringify(prompt), '->', JSON.stringify(tokenizer.decode(r.tokens)));
}
writeFileSync('test/golden.json', JSON.stringify({ maxNewTokens, cases }, null, 2) + '\n');
