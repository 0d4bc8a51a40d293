#!/usr/bin/env node
/**
 * A model directory with random weights for a config.json, to measure what a model of that
 * shape costs without its trained weights: config.json, model.safetensors (the random-init
 * weights `--random-init` gives) and tokenizer.json (the byte-level tokenizer, ids 0-258; a
 * larger vocab_size is padding the tokenizer never produces). Needs the build (npm run build).
 *
 *   node scripts/random-model-dir.mjs bench/configs/smollm2-135m.json /tmp/smollm2-random [SEED=0]
 */
import { readFileSync } from 'node:fs';
import { parseConfig } from '../dist/src/model/config.js';
import { randomWeights } from '../dist/src/io/weights.js';
import { writeModelDir } from '../dist/src/node/files.js';
import { BpeTokenizer, bpeToJson } from '../dist/src/tokenizer/index.js';

const [configPath, out, seedArg] = process.argv.slice(2);
if (!configPath || !out) {
  console.error('usage: node scripts/random-model-dir.mjs CONFIG.json OUT_DIR [SEED]');
  process.exit(2);
}
const config = parseConfig(JSON.parse(readFileSync(configPath, 'utf8')), configPath);
await writeModelDir(out, config, randomWeights(config, Number(seedArg ?? 0)), { tokenizerJson: bpeToJson(new BpeTokenizer([])) });
console.log(`${out}: random weights (seed ${Number(seedArg ?? 0)}) of ${configPath}, byte-level tokenizer`);
