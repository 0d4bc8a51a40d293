#!/usr/bin/env node
/**
 * A draft vocabulary for the CTC head's `:short` variant from a train-drafter distillation
 * cache: train-drafter writes <model>/draft-vocab.json itself when it distills; this remakes
 * it from a finished cache, with another size M for example. The counting is
 * src/train/draft-vocab.ts's (continuation tokens of the training sequences, validation
 * sequences excluded). Needs the build (npm run build).
 *
 *   node scripts/draft-vocab.mjs checkpoints/train-drafter/distill weights/base/draft-vocab.json [M=256]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DRAFT_VOCAB_SIZE, draftVocab, draftVocabJson } from '../dist/src/train/draft-vocab.js';
import { heldOutSequences } from '../dist/src/node/train-drafter.js';

const [dir, out, mArg] = process.argv.slice(2);
if (!dir || !out) {
  console.error('usage: node scripts/draft-vocab.mjs DISTILL_DIR OUT.json [M]');
  process.exit(2);
}
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
const bytes = readFileSync(join(dir, 'tokens.bin'));
const tokens = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
const train = manifest.count - heldOutSequences(manifest.count);
const set = { count: train, seqLen: manifest.seqLen, D: manifest.D, tokens, promptLens: Int32Array.from(manifest.promptLens), hidden: new Float32Array(0) };
const vocab = draftVocab(set, Number(mArg ?? DRAFT_VOCAB_SIZE), manifest.key);
writeFileSync(out, draftVocabJson(vocab));
console.log(`${out}: ${vocab.tokens.length} tokens, ${(100 * vocab.coverage).toFixed(2)}% of the training sequences' greedy tokens`);
