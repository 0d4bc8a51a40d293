/**
 * Engine benchmarks (tinybench): decode and prefill tokens/s per backend on a model with
 * the shape of llama2.c's stories15M (random weights), and matmul GFLOP/s for a 1-token
 * and an N-token batch.
 *
 *   npm run bench -- [--backend cpu,webgpu] [--json bench/results/engine.json] [--time-ms 2000]
 */
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Bench } from 'tinybench';
import type { Backend } from '../src/backend/backend.js';
import { paramCount } from '../src/model/config.js';
import { PRESETS } from '../src/model/presets.js';
import { Llama } from '../src/model/llama.js';
import { randomWeights } from '../src/io/weights.js';
import { generate } from '../src/decode/generate.js';
import { createBackend, type BackendName } from '../src/node/backend.js';

const STORIES15M = PRESETS.stories15M!;

interface Row { backend: string; task: string; value: number; unit: string; samples: number; rme: number }

async function benchBackend(backend: Backend, timeMs: number): Promise<Row[]> {
  const rows: Row[] = [];
  const model = new Llama(backend, STORIES15M, randomWeights(STORIES15M, 1), { maxBatch: 64 });
  const prompt = Array.from({ length: 64 }, (_, i) => (i * 37) % 32000);

  // headline: greedy generation of 200 tokens after a 1-token prompt (llama2.c's measurement)
  const gen = await generate(model, [1], { maxNewTokens: 200, eosId: null });
  const genRuns = [gen.stats.tokensPerSecond];
  for (let i = 0; i < 2; i++) genRuns.push((await generate(model, [1], { maxNewTokens: 200, eosId: null })).stats.tokensPerSecond);
  rows.push({ backend: backend.name, task: 'generate 200 tokens (greedy, stories15M shape)', value: Math.max(...genRuns), unit: 'tokens/s (best of 3)', samples: 3, rme: 0 });

  const bench = new Bench({ time: timeMs, warmupTime: 200 });
  bench.add('decode 1 token', async () => {
    if (model.cacheLength >= 200) model.reset();
    await model.forward([5]);
  });
  bench.add('prefill 64 tokens', async () => {
    model.reset();
    await model.forward(prompt);
  });
  const K = 288, N = 768, NT = 64;
  const x1 = backend.alloc(K), xN = backend.alloc(NT * K), w = backend.alloc(N * K), o = backend.alloc(NT * N);
  backend.write(w, Float32Array.from({ length: N * K }, (_, i) => Math.sin(i)));
  const sink = new Float32Array(1);
  bench.add(`matmul 1x${K} @ ${K}x${N}`, async () => {
    backend.matmul(o, x1, w, 1, K, N);
    await backend.read(o, sink);
  });
  bench.add(`matmul ${NT}x${K} @ ${K}x${N}`, async () => {
    backend.matmul(o, xN, w, NT, K, N);
    await backend.read(o, sink);
  });
  await bench.run();
  for (const t of bench.tasks) {
    const r = t.result;
    if (r.state !== 'completed') throw new Error(`${t.name}: ${r.state}`);
    const ms = r.latency.mean;
    const perSec = 1000 / ms;
    const [value, unit] =
      t.name === 'decode 1 token' ? [perSec, 'tokens/s']
      : t.name === 'prefill 64 tokens' ? [64 * perSec, 'tokens/s']
      : t.name.startsWith('matmul 1x') ? [(2 * K * N) / ms / 1e6, 'GFLOP/s']
      : [(2 * NT * K * N) / ms / 1e6, 'GFLOP/s'];
    rows.push({ backend: backend.name, task: t.name, value, unit, samples: r.latency.samplesCount, rme: r.latency.rme });
  }
  return rows;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { backend: { type: 'string', default: 'cpu,webgpu' }, json: { type: 'string' }, 'time-ms': { type: 'string', default: '2000' } },
  });
  const rows: Row[] = [];
  console.log(`model: stories15M shape, ${(paramCount(STORIES15M) / 1e6).toFixed(1)}M parameters, random weights`);
  for (const name of values.backend!.split(',') as BackendName[]) {
    const backend = await createBackend(name);
    rows.push(...(await benchBackend(backend, Number(values['time-ms']))));
  }
  console.log('| backend | task | value | unit | samples | ±% |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.backend} | ${r.task} | ${r.value.toFixed(2)} | ${r.unit} | ${r.samples} | ${r.rme.toFixed(1)} |`);
  console.log('reference on a 2-core x86 VM: llama2.c run.c -O3 about 158 tokens/s, -Ofast -march=native about 488, a plain JS port about 70');
  if (values.json) {
    mkdirSync(dirname(values.json), { recursive: true });
    writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), rows }, null, 2));
  }
  process.exit(0);
}

await main();
