/**
 * The training loop, runtime-neutral (the Node adapter adds files, signals and the
 * progress bar through hooks).
 *
 * One optimizer step (hyper.accumSteps micro-batches of B windows of T+1 tokens):
 *   zero grads
 *   for each micro-batch: loss_m = llamaLoss(params, batch_m); backward(loss_m)
 *   grads /= accumSteps                      (the mean over micro-batches)
 *   clip the global gradient norm to clipNorm
 *   AdamW step with lr = warmup + cosine schedule at this step
 *   loss(step) = mean_m loss_m               (what the history and the curve show)
 *
 * Determinism: the initial weights come from hyper.seed, the batches from a PRNG seeded
 * with hyper.seed whose state is saved; every kernel is single-threaded and ordered, so the
 * same checkpoint always yields the same next steps. A run stopped at step k and resumed
 * produces the same losses and weights, bit for bit, as one that never stopped.
 */
import { CpuBackend } from '../backend/cpu/cpu.js';
import type { LlamaConfig } from '../model/config.js';
import { Tape } from './autograd.js';
import { BatchSampler, DataError, validationBatches } from './data.js';
import type { Checkpoint, LossHistory } from './checkpoint.js';
import { tokensPerStep, type TrainHyper } from './hyper.js';
import { LlamaParams, llamaLoss } from './llama-train.js';
import { AdamW, clipGradNorm, cosineLr, decayRule, scaleGrads, type AdamWState } from './optim.js';

/** The token streams (uint16 ids) and an id that names them (the data cache key). */
export interface TrainData {
  train: Uint16Array;
  val: Uint16Array;
  id: string;
}

export interface StepResult {
  step: number; // optimizer steps done, including this one
  loss: number; // mean training loss of this step's micro-batches
  lr: number;
  gradNorm: number; // before clipping
}

export class Trainer {
  readonly params: LlamaParams;
  readonly history: LossHistory;
  step: number;
  tokensSeen: number;
  elapsedSeconds: number;
  private readonly opt: AdamW;
  private readonly sampler: BatchSampler;
  private readonly tape: Tape;
  private readonly batch: Int32Array; // (B, T+1)
  private readonly valBatches: Int32Array[]; // fixed validation set, (rows, T+1) each

  constructor(
    readonly config: LlamaConfig,
    readonly hyper: TrainHyper,
    readonly data: TrainData,
    from?: Checkpoint,
  ) {
    const h = hyper;
    const backend = new CpuBackend();
    for (const [split, ids] of [['training', data.train], ['validation', data.val]] as const) {
      const max = ids.reduce((a, b) => Math.max(a, b), 0);
      if (max >= config.vocab_size) throw new DataError(`the ${split} tokens hold id ${max}, outside the vocabulary of ${config.vocab_size}`);
    }
    if (h.seqLen > config.max_position_embeddings) {
      throw new DataError(`seqLen ${h.seqLen} is longer than max_position_embeddings ${config.max_position_embeddings}`);
    }
    if (from && from.dataId !== data.id) {
      throw new DataError(`the checkpoint was trained on data "${from.dataId}" but the prepared data is "${data.id}"`);
    }
    this.params = from ? new LlamaParams(backend, config, from.params) : LlamaParams.random(backend, config, h.seed);
    this.opt = new AdamW(this.params.vars, {
      beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay, decay: decayRule(true),
    });
    if (from) this.opt.loadState(optimizerState(from));
    this.sampler = new BatchSampler(data.train, h.batchSize, h.seqLen, from ? from.samplerState : h.seed);
    this.tape = new Tape(backend);
    this.batch = new Int32Array(h.batchSize * (h.seqLen + 1));
    this.valBatches = validationBatches(data.val, h.batchSize, h.seqLen, h.evalSeqs);
    this.step = from?.step ?? 0;
    this.tokensSeen = from?.tokensSeen ?? 0;
    this.elapsedSeconds = from?.elapsedSeconds ?? 0;
    this.history = from ? structuredClone(from.history) : { train: [], val: [] };
  }

  get done(): boolean {
    return this.step >= this.hyper.steps;
  }

  /** the learning rate of 0-based optimizer step `step` */
  lrAt(step: number): number {
    const h = this.hyper;
    return cosineLr(step, { peak: h.lr, warmup: h.warmupSteps, total: h.steps, floor: h.minLr });
  }

  trainStep(): StepResult {
    const t0 = performance.now();
    const h = this.hyper;
    this.params.zeroGrad();
    let lossSum = 0;
    for (let m = 0; m < h.accumSteps; m++) {
      this.sampler.next(this.batch);
      const loss = llamaLoss(this.params, this.config, this.batch, h.batchSize, h.seqLen, this.tape);
      lossSum += loss.data[0]!;
      this.tape.backward(loss);
      this.tape.reset();
    }
    scaleGrads(this.params.vars.values(), 1 / h.accumSteps);
    const gradNorm = h.clipNorm > 0 ? clipGradNorm(this.params.vars.values(), h.clipNorm) : Number.NaN;
    const lr = this.lrAt(this.step);
    this.opt.step(lr);
    this.step++;
    this.tokensSeen += tokensPerStep(h);
    const loss = lossSum / h.accumSteps;
    if (!Number.isFinite(loss)) throw new Error(`training diverged: loss ${loss} at step ${this.step}`);
    this.history.train.push([this.step, loss]);
    this.elapsedSeconds += (performance.now() - t0) / 1000;
    return { step: this.step, loss, lr, gradNorm };
  }

  /** Mean loss over the fixed validation set (every target token weighs the same); recorded in history. */
  evaluate(): number {
    const t0 = performance.now();
    const T = this.hyper.seqLen;
    let sum = 0, rows = 0;
    for (const batch of this.valBatches) {
      const B = batch.length / (T + 1);
      const loss = this.tape.noGrad(() => llamaLoss(this.params, this.config, batch, B, T, this.tape));
      sum += loss.data[0]! * B;
      rows += B;
      this.tape.reset();
    }
    const mean = sum / rows;
    const last = this.history.val[this.history.val.length - 1];
    if (last?.[0] !== this.step) this.history.val.push([this.step, mean]);
    this.elapsedSeconds += (performance.now() - t0) / 1000;
    return mean;
  }

  toCheckpoint(): Checkpoint {
    const s = this.opt.state();
    const tensors = new Map();
    for (const [name, v] of this.params.vars) {
      tensors.set(`m/${name}`, { shape: [...v.shape], data: s.m[name]! });
      tensors.set(`v/${name}`, { shape: [...v.shape], data: s.v[name]! });
    }
    return {
      config: this.config,
      hyper: this.hyper,
      step: this.step,
      samplerState: this.sampler.state,
      tokensSeen: this.tokensSeen,
      elapsedSeconds: this.elapsedSeconds,
      history: structuredClone(this.history),
      dataId: this.data.id,
      params: this.params.toTensorMap(),
      optimizer: { tensors, scalars: { step: s.step } },
    };
  }
}

/** the AdamW state stored in a checkpoint as tensors "m/<name>", "v/<name>" and scalar "step" */
function optimizerState(c: Checkpoint): AdamWState {
  const m: Record<string, Float32Array> = {}, v: Record<string, Float32Array> = {};
  for (const [key, t] of c.optimizer.tensors) {
    const slash = key.indexOf('/');
    const which = key.slice(0, slash), name = key.slice(slash + 1);
    if (which === 'm') m[name] = t.data;
    else if (which === 'v') v[name] = t.data;
    else throw new DataError(`checkpoint: unknown optimizer tensor "${key}"`);
  }
  const step = c.optimizer.scalars.step;
  if (step !== c.step) throw new DataError(`checkpoint: optimizer step ${step} differs from training step ${c.step}`);
  return { step, m, v };
}

export interface TrainHooks {
  /** asked after every step; true stops the run after a checkpoint (SIGINT, a time budget) */
  shouldStop?: () => boolean;
  onStep?: (r: StepResult, t: Trainer) => void;
  onEval?: (step: number, loss: number, t: Trainer) => void;
  /** store a checkpoint (every hyper.checkpointEvery steps, on stop, at the end) */
  save?: (c: Checkpoint) => Promise<void>;
}

/**
 * Train until hyper.steps or until shouldStop() says so. Validation runs before the first
 * step, every evalEvery steps and after the last; checkpoints every checkpointEvery steps,
 * on stop and at the end. Between steps it yields to the event loop, so signal handlers
 * and timers get to run.
 */
export async function runTraining(t: Trainer, hooks: TrainHooks = {}): Promise<'done' | 'stopped'> {
  const h = t.hyper;
  const evaluate = (): void => {
    const loss = t.evaluate();
    hooks.onEval?.(t.step, loss, t);
  };
  if (t.history.val.length === 0) evaluate();
  while (!t.done) {
    const r = t.trainStep();
    hooks.onStep?.(r, t);
    if (r.step % h.evalEvery === 0 || t.done) evaluate();
    if (t.done) break;
    if (hooks.shouldStop?.()) {
      await hooks.save?.(t.toCheckpoint());
      return 'stopped';
    }
    if (r.step % h.checkpointEvery === 0) await hooks.save?.(t.toCheckpoint());
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await hooks.save?.(t.toCheckpoint());
  return 'done';
}
