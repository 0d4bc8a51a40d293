#!/usr/bin/env node
/**
 * A draft vocabulary (FR-Spec style) for the CTC head's `:short` variant: the M tokens the
 * base model emits most often in its own greedy continuations, counted in a train-drafter
 * distillation cache (the continuations only, validation sequences excluded).
 *
 *   node scripts/draft-vocab.mjs checkpoints/train-drafter/distill weights/base/draft-vocab.json [M=256]
 *
 * (The cache is what `npx ctcspec train-drafter` builds; rebuilding it is deterministic.)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, out, mArg] = process.argv.slice(2);
if (!dir || !out) {
  console.error('usage: node scripts/draft-vocab.mjs DISTILL_DIR OUT.json [M]');
  process.exit(2);
}
const M = Number(mArg ?? 256);
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
const bytes = readFileSync(join(dir, 'tokens.bin'));
const tokens = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
const L = manifest.seqLen, heldOut = 48; // train-drafter holds out the last 48 sequences
const counts = new Map();
let total = 0;
for (let i = 0; i < manifest.count - heldOut; i++) {
  for (let j = i * L + manifest.promptLens[i]; j < (i + 1) * L; j++) {
    counts.set(tokens[j], (counts.get(tokens[j]) ?? 0) + 1);
    total++;
  }
}
const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
const kept = ranked.slice(0, M);
const covered = kept.reduce((s, [, c]) => s + c, 0);
const result = {
  description: `the ${kept.length} tokens the base model emits most often in its greedy continuations (${total} tokens of ${manifest.count - heldOut} distillation sequences, cache key ${manifest.key}); they are ${(100 * covered / total).toFixed(2)}% of those tokens (${counts.size} distinct tokens occur)`,
  coverage: covered / total,
  tokens: kept.map(([id]) => id).sort((a, b) => a - b),
};
writeFileSync(out, JSON.stringify(result, null, 1) + '\n');
console.log(`${out}: ${kept.length} tokens, ${(100 * result.coverage).toFixed(2)}% of ${total} continuation tokens`);
