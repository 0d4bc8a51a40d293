/**
 * The CPU backend on one thread and on several: greedy decode tokens/s by thread count and by
 * how long a waiting thread spins before it blocks (CpuBackendOptions.spinWait, Atomics.load
 * polls), on random weights in the shapes of llama2.c's stories15M and SmolLM2-135M. A thread
 * that never spins sleeps in Atomics.wait between matmuls and pays a wake-up each time; one
 * that spins long holds its core while the main thread runs the small kernels in between.
 * Rounds are interleaved (every variant once per round) and the median round is reported, so
 * a busy machine slows every variant alike. Ratios are against one thread, in this one run.
 *
 *   npm run build && node dist/bench/threads.js [--shapes stories15M,smollm2] [--formats f32,q8_0] [--spins 0,2000,20000,200000] [--tokens 64] [--rounds 5] [--out bench/results/threads]
 */
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { SPINS } from '../src/backend/cpu/threads.js';
import { parseConfig, type LlamaConfig } from '../src/model/config.js';
import { PRESETS } from '../src/model/presets.js';
import { Llama } from '../src/model/llama.js';
import { randomWeights } from '../src/io/weights.js';
import { generate } from '../src/decode/generate.js';
import { defaultThreads, nodeWorkerSpawner } from '../src/node/backend.js';
import { parseWeightFormat, type WeightFormat } from '../src/tensor/weight-format.js';

const SHAPES: Record<string, () => LlamaConfig> = {
  stories15M: () => PRESETS.stories15M!,
  smollm2: () => parseConfig(JSON.parse(readFileSync(join(import.meta.dirname, '../../bench/configs/smollm2-135m.json'), 'utf8'))),
};
const PROMPT = [1, 450, 2, 3100, 77, 9, 1200, 31];

interface Variant { threads: number; spins: number; label: string }

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shapes: { type: 'string', default: 'stories15M,smollm2' },
      formats: { type: 'string', default: 'f32,q8_0' },
      spins: { type: 'string', default: `0,2000,${SPINS},200000` },
      tokens: { type: 'string', default: '64' },
      rounds: { type: 'string', default: '5' },
      out: { type: 'string', default: 'bench/results/threads' },
    },
  });
  const tokens = Number(values.tokens), rounds = Number(values.rounds), cores = defaultThreads();
  const variants: Variant[] = [{ threads: 1, spins: 0, label: '1 thread' }];
  for (const spins of values.spins!.split(',').map(Number)) variants.push({ threads: cores, spins, label: `${cores} threads, spin ${spins}` });
  const rows: { shape: string; format: WeightFormat; variant: string; threads: number; spins: number; tokensPerSecond: number; ratio: number; sameTokens: boolean }[] = [];
  for (const shape of values.shapes!.split(',')) {
    const config = SHAPES[shape]?.();
    if (!config) throw new Error(`unknown shape ${shape}: expected ${Object.keys(SHAPES).join(', ')}`);
    const tensors = randomWeights(config, 1);
    for (const format of values.formats!.split(',').map((f) => parseWeightFormat(f, '--formats'))) {
      const models: { v: Variant; backend: CpuBackend; model: Llama; speeds: number[]; tokens: number[] }[] = [];
      for (const v of variants) {
        const backend = new CpuBackend({ threads: v.threads, spawn: nodeWorkerSpawner, spinWait: v.spins });
        await backend.ready;
        models.push({ v, backend, model: new Llama(backend, config, tensors, { weights: format, maxSeq: PROMPT.length + tokens + 1 }), speeds: [], tokens: [] });
      }
      for (let r = 0; r <= rounds; r++) {
        for (const m of models) {
          m.model.reset();
          const out = await generate(m.model, PROMPT, { maxNewTokens: tokens, eosId: null });
          if (r > 0) m.speeds.push(out.stats.tokensPerSecond); // round 0 warms up
          m.tokens = out.tokens;
        }
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
      const base = median(models[0]!.speeds);
      for (const m of models) {
        const tps = median(m.speeds);
        rows.push({ shape, format, variant: m.v.label, threads: m.v.threads, spins: m.v.spins, tokensPerSecond: tps, ratio: tps / base, sameTokens: m.tokens.join() === models[0]!.tokens.join() });
        process.stderr.write(`${shape} ${format} ${m.v.label}: ${tps.toFixed(1)} tokens/s (x${(tps / base).toFixed(2)})\n`);
        m.backend.close();
      }
    }
  }
  const cmd = `node dist/bench/threads.js --shapes ${values.shapes} --formats ${values.formats} --spins ${values.spins} --tokens ${tokens} --rounds ${rounds}`;
  const md = [
    '# The CPU backend on several threads',
    '',
    `Greedy decoding of ${tokens} tokens after ${PROMPT.length} prompt tokens, random weights; the median of ${rounds} interleaved rounds;`,
    `${cores} cores. "spin N": a waiting thread polls N times before it blocks in Atomics.wait. Ratio: against one thread, in this run.`,
    '',
    `\`${cmd}\``,
    '',
    '| model | weights | threads | tokens/s | ratio | same tokens as 1 thread |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.shape} | ${r.format} | ${r.variant} | ${r.tokensPerSecond.toFixed(1)} | ${r.ratio.toFixed(2)} | ${r.sameTokens ? 'yes' : 'NO'} |`),
    '',
  ].join('\n');
  writeFileSync(`${values.out}.md`, md);
  writeFileSync(`${values.out}.json`, JSON.stringify({ command: cmd, cores, rows }, null, 2) + '\n');
  process.stdout.write(md);
  if (rows.some((r) => !r.sameTokens)) process.exitCode = 1;
}

await main();
