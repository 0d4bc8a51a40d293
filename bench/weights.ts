/**
 * Decode speed by weight format on the CPU backend (one thread): greedy generation on random
 * weights in the shapes of llama2.c's stories15M and SmolLM2-135M, with the weight matrices
 * held as f32, bf16, f16 and Q8_0 (x quantized per block as llama.cpp does, or kept f32).
 * Rounds are interleaved (every variant once per round) and the best round is reported, so
 * a busy machine slows every variant alike.
 *
 *   npm run bench:weights -- [--tokens 128] [--rounds 3] [--shapes stories15M,smollm2] [--json FILE]
 */
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { parseConfig, type LlamaConfig } from '../src/model/config.js';
import { PRESETS } from '../src/model/presets.js';
import { Llama } from '../src/model/llama.js';
import { randomWeights } from '../src/io/weights.js';
import { generate } from '../src/decode/generate.js';
import type { WeightFormat } from '../src/tensor/weight-format.js';

const SHAPES: Record<string, () => LlamaConfig> = {
  stories15M: () => PRESETS.stories15M!,
  smollm2: () => parseConfig(JSON.parse(readFileSync('bench/configs/smollm2-135m.json', 'utf8'))),
};

interface Variant { name: string; weights: WeightFormat; acts: 'q8_0' | 'f32' }
const VARIANTS: Variant[] = [
  { name: 'f32', weights: 'f32', acts: 'f32' },
  { name: 'bf16', weights: 'bf16', acts: 'f32' },
  { name: 'f16', weights: 'f16', acts: 'f32' },
  { name: 'q8_0 (x q8_0)', weights: 'q8_0', acts: 'q8_0' },
  { name: 'q8_0 (x f32)', weights: 'q8_0', acts: 'f32' },
];

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { tokens: { type: 'string', default: '128' }, rounds: { type: 'string', default: '3' }, shapes: { type: 'string', default: 'stories15M,smollm2' }, json: { type: 'string' } },
  });
  const tokens = Number(values.tokens), rounds = Number(values.rounds);
  const rows: { shape: string; variant: string; tokensPerSecond: number; weightBytes: number }[] = [];
  for (const shape of values.shapes!.split(',')) {
    const config = SHAPES[shape]?.();
    if (!config) throw new Error(`--shapes: unknown shape ${shape} (${Object.keys(SHAPES).join(', ')})`);
    const weights = randomWeights(config, 1);
    const models = VARIANTS.map((v) => new Llama(new CpuBackend({ q8Activations: v.acts }), config, weights, { weights: v.weights, maxSeq: tokens + 8 }));
    const best = VARIANTS.map(() => 0);
    const outputs = VARIANTS.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < VARIANTS.length; i++) {
        const g = await generate(models[i]!, [1], { maxNewTokens: tokens, eosId: null });
        best[i] = Math.max(best[i]!, g.stats.tokensPerSecond);
        outputs[i] = g.tokens;
      }
    }
    const f32Out = outputs[0]!;
    VARIANTS.forEach((v, i) => {
      const same = outputs[i]!.findIndex((t, j) => t !== f32Out[j]);
      const arena = (models[i]!.backend as CpuBackend).arena!.buffer.byteLength;
      rows.push({ shape, variant: v.name, tokensPerSecond: best[i]!, weightBytes: arena });
      console.log(`${shape.padEnd(11)} ${v.name.padEnd(14)} ${best[i]!.toFixed(1).padStart(7)} tokens/s  ${(best[i]! / best[0]!).toFixed(2)}x f32  arena ${(arena / 2 ** 20).toFixed(0)} MiB  greedy = f32's ${same < 0 ? 'all' : `first ${same}`} of ${f32Out.length}`);
    });
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), tokens, rounds, rows }, null, 2));
}

await main();
