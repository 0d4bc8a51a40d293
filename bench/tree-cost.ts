/**
 * What a speculative step costs on the CPU backend: the time to verify a tree of N nodes over
 * the time of one plain decoding step (cost(N) / cost(1)), by model size, weight format and
 * thread count. Drafting pays only while the tokens a step accepts outgrow this ratio, so it
 * is the curve the automatic tree budget (src/decode/cost-model.ts) learns online.
 *
 * The shipped model's own weights, and random weights in the shapes of llama2.c's stories15M
 * and SmolLM2-135M. Each cost is the median of a few chains of N nodes after 64 cached tokens
 * (measureVerifyCost); configurations are measured one after another in one process.
 *
 *   npm run build && node dist/bench/tree-cost.js [--shapes base,stories15M,smollm2] [--formats f32,bf16,q8_0] [--threads 1,2] [--out bench/results/tree-cost]
 */
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig, type LlamaConfig } from '../src/model/config.js';
import { PRESETS } from '../src/model/presets.js';
import { Llama } from '../src/model/llama.js';
import { randomWeights } from '../src/io/weights.js';
import { measureVerifyCost } from '../src/decode/cost-model.js';
import { createCpuBackend, defaultThreads } from '../src/node/backend.js';
import { readModelDir, SHIPPED_MODEL } from '../src/node/index.js';
import type { TensorMap } from '../src/tensor/dtype.js';
import { parseWeightFormat, type WeightFormat } from '../src/tensor/weight-format.js';

const SIZES = [1, 2, 4, 8, 16, 32];

async function shape(name: string): Promise<{ config: LlamaConfig; tensors: TensorMap }> {
  if (name === 'base') return readModelDir(SHIPPED_MODEL);
  const config = name === 'smollm2' ? parseConfig(JSON.parse(readFileSync(join(import.meta.dirname, '../../bench/configs/smollm2-135m.json'), 'utf8'))) : PRESETS[name];
  if (!config) throw new Error(`unknown shape ${name}: expected base, stories15M or smollm2`);
  return { config, tensors: randomWeights(config, 1) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shapes: { type: 'string', default: 'base,stories15M,smollm2' },
      formats: { type: 'string', default: 'f32,bf16,q8_0' },
      threads: { type: 'string', default: [...new Set([1, defaultThreads()])].join(',') },
      out: { type: 'string', default: 'bench/results/tree-cost' },
    },
  });
  const formats = values.formats!.split(',').map((f) => parseWeightFormat(f, '--formats'));
  const threadCounts = values.threads!.split(',').map(Number);
  const rows: { shape: string; format: WeightFormat; threads: number; stepMs: number; ratio: Record<number, number> }[] = [];
  for (const name of values.shapes!.split(',')) {
    const { config, tensors } = await shape(name);
    for (const threads of threadCounts) {
      const backend = await createCpuBackend(threads);
      for (const format of formats) {
        const model = new Llama(backend, config, tensors, { weights: format, maxSeq: 256 });
        // a first pass only warms up: V8 runs a function's first calls in its baseline compiler,
        // and a fresh backend's workers compile the kernels anew
        await measureVerifyCost(model, Math.max(...SIZES), { past: 64, repeats: 2 });
        const cost = await measureVerifyCost(model, Math.max(...SIZES), { past: 64, repeats: 5 });
        const ratio: Record<number, number> = {};
        for (const n of SIZES) ratio[n] = cost[n - 1]! / cost[0]!;
        rows.push({ shape: name, format, threads, stepMs: cost[0]!, ratio });
        process.stderr.write(`${name} ${format} ${threads} thread(s): one step ${cost[0]!.toFixed(2)} ms, 8 nodes x${ratio[8]!.toFixed(2)}\n`);
      }
      backend.close();
    }
  }
  const cmd = `node dist/bench/tree-cost.js --shapes ${values.shapes} --formats ${values.formats} --threads ${values.threads}`;
  const md = [
    '# Tree verification cost on the CPU backend',
    '',
    'cost(N nodes) / cost(1 node): verifying a chain of N nodes after 64 cached tokens, over one plain',
    'decoding step (medians of 5, after a warm-up pass). Drafting pays while a step accepts more tokens than this ratio.',
    '',
    `\`${cmd}\``,
    '',
    `| model | weights | threads | one step (ms) | ${SIZES.slice(1).map((n) => `${n} nodes`).join(' | ')} |`,
    `|---|---|---|---|${SIZES.slice(1).map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.shape} | ${r.format} | ${r.threads} | ${r.stepMs.toFixed(2)} | ${SIZES.slice(1).map((n) => r.ratio[n]!.toFixed(2)).join(' | ')} |`),
    '',
  ].join('\n');
  writeFileSync(`${values.out}.md`, md);
  writeFileSync(`${values.out}.json`, JSON.stringify({ command: cmd, sizes: SIZES, rows }, null, 2) + '\n');
  process.stdout.write(md);
}

await main();
