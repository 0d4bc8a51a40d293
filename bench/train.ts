/**
 * Training throughput on the CPU backend: a timed loop of real optimizer steps (forward,
 * backward, clipping, AdamW) and of validation forwards, for the train-base presets, on
 * random token streams. The projection is what `ctcspec train-base` with that preset takes.
 *
 *   npm run build && node dist/bench/train.js [--presets base,tiny] [--steps 4] [--json FILE]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { paramCount, parseConfig } from '../src/model/config.js';
import { tokensPerStep, TRAIN_PRESETS } from '../src/train/hyper.js';
import { formatDuration } from '../src/train/progress.js';
import { Trainer } from '../src/train/trainer.js';
import { Rng } from '../src/util/random.js';

interface Row {
  preset: string;
  params: number;
  tokensPerStep: number;
  msPerStep: number;
  trainTokensPerSecond: number;
  evalTokensPerSecond: number;
  projectedSeconds: number; // steps x step time + validation passes
}

function benchPreset(name: string, timedSteps: number, vocab: number): Row {
  const recipe = TRAIN_PRESETS[name];
  if (!recipe) throw new Error(`unknown preset ${name} (${Object.keys(TRAIN_PRESETS).join(', ')})`);
  const h = recipe.hyper;
  const config = parseConfig({ ...recipe.model, vocab_size: vocab, max_position_embeddings: h.seqLen, bos_token_id: 1, eos_token_id: 2 });
  const rng = new Rng(7);
  const stream = (n: number): Uint16Array => Uint16Array.from({ length: n }, () => 3 + rng.int(vocab - 3));
  const trainer = new Trainer(config, h, { train: stream(200_000), val: stream(h.evalSeqs * (h.seqLen + 1)), id: 'bench' });
  trainer.trainStep(); // warm up: buffer pools, wasm memory growth
  let t0 = performance.now();
  for (let i = 0; i < timedSteps; i++) trainer.trainStep();
  const msPerStep = (performance.now() - t0) / timedSteps;
  t0 = performance.now();
  trainer.evaluate();
  const evalSeconds = (performance.now() - t0) / 1000;
  const evals = Math.floor(h.steps / h.evalEvery) + 2;
  return {
    preset: name,
    params: paramCount(config),
    tokensPerStep: tokensPerStep(h),
    msPerStep,
    trainTokensPerSecond: (tokensPerStep(h) / msPerStep) * 1000,
    evalTokensPerSecond: (h.evalSeqs * h.seqLen) / evalSeconds,
    projectedSeconds: (h.steps * msPerStep) / 1000 + evals * evalSeconds,
  };
}

function main(): void {
  const { values } = parseArgs({
    options: {
      presets: { type: 'string', default: 'base,tiny' },
      steps: { type: 'string', default: '4' },
      vocab: { type: 'string', default: '1024' },
      json: { type: 'string' },
    },
  });
  const rows = values.presets!.split(',').map((p) => benchPreset(p, Number(values.steps), Number(values.vocab)));
  const cpu = cpus();
  console.log(`training throughput, CPU backend, ${cpu.length} x ${cpu[0]?.model.trim()}, Node ${process.version}`);
  console.log('| preset | parameters | tokens/step | ms/step | train tokens/s | eval tokens/s | projected run |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.preset} | ${(r.params / 1e6).toFixed(2)}M | ${r.tokensPerStep} | ${r.msPerStep.toFixed(0)} | ` +
        `${r.trainTokensPerSecond.toFixed(0)} | ${r.evalTokensPerSecond.toFixed(0)} | ${formatDuration(r.projectedSeconds)} |`,
    );
  }
  if (values.json) {
    mkdirSync(dirname(values.json), { recursive: true });
    writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), rows }, null, 2));
  }
}

main();
