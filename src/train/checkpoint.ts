/**
 * Training checkpoints, runtime-neutral: everything needed to continue a run exactly, as
 * ONE safetensors file (writing it atomically is the Node adapter's job).
 *
 *   tensors   "params/<hf name>"   the model weights (F32), shapes from weightShapes(config)
 *             "optim/<key>"        the optimizer's tensors (AdamW moments), F32
 *   metadata  "ctcspec.checkpoint" JSON: version, config, hyperparameters, step, sampler
 *                                  state, tokens seen, loss history, optimizer scalars,
 *                                  the data identity, elapsed training time
 *             "ctcspec.checksum"   FNV-1a (32-bit, hex) of every tensor's f32 bytes in
 *                                  name order: catches flipped bits that parse cleanly
 *
 * Everything is stored losslessly (f32 tensors as f32, JSON numbers round-trip doubles),
 * so a resumed run continues bit for bit. `parseCheckpoint` checks every part and throws a
 * FormatError naming the file for anything missing or malformed.
 */
import { FormatError } from '../io/errors.js';
import { parseSafetensors, serializeSafetensors } from '../io/safetensors.js';
import { checkWeights } from '../io/weights.js';
import { parseConfig, type LlamaConfig } from '../model/config.js';
import type { TensorMap } from '../tensor/dtype.js';
import { checkHyper, type TrainHyper } from './hyper.js';

export const CHECKPOINT_VERSION = 1;
const META_KEY = 'ctcspec.checkpoint';
const CHECKSUM_KEY = 'ctcspec.checksum';
const PARAMS = 'params/';
const OPTIM = 'optim/';

/** [step, loss] pairs: training loss after each optimizer step, validation loss when measured */
export interface LossHistory {
  train: [number, number][];
  val: [number, number][];
}

export interface Checkpoint {
  config: LlamaConfig;
  hyper: TrainHyper;
  step: number; // optimizer steps done
  samplerState: number; // the batch sampler's PRNG state (uint32)
  tokensSeen: number; // training tokens consumed so far
  elapsedSeconds: number; // training wall time so far, over all sessions
  history: LossHistory;
  /** identifies the token streams (the data cache key): resuming on other data is refused */
  dataId: string;
  params: TensorMap;
  optimizer: { tensors: TensorMap; scalars: Record<string, number> };
}

export function serializeCheckpoint(c: Checkpoint, source = 'checkpoint'): Uint8Array {
  const tensors: TensorMap = new Map();
  for (const [name, t] of c.params) tensors.set(PARAMS + name, t);
  for (const [name, t] of c.optimizer.tensors) tensors.set(OPTIM + name, t);
  const meta = {
    version: CHECKPOINT_VERSION,
    config: c.config,
    hyper: c.hyper,
    step: c.step,
    samplerState: c.samplerState,
    tokensSeen: c.tokensSeen,
    elapsedSeconds: c.elapsedSeconds,
    history: c.history,
    dataId: c.dataId,
    optimizerScalars: c.optimizer.scalars,
  };
  return serializeSafetensors(tensors, {
    dtype: 'F32',
    metadata: { format: 'pt', [META_KEY]: JSON.stringify(meta), [CHECKSUM_KEY]: checksum(tensors) },
    source,
  });
}

/** Parse and validate a checkpoint; `source` (the file name) prefixes every error. */
export function parseCheckpoint(bytes: Uint8Array, source: string): Checkpoint {
  const { tensors, metadata } = parseSafetensors(bytes, source);
  const metaJson = metadata[META_KEY];
  if (metaJson === undefined) throw new FormatError(source, `not a training checkpoint: no "${META_KEY}" metadata`);
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(metaJson) as Record<string, unknown>;
  } catch (e) {
    throw new FormatError(source, `"${META_KEY}" metadata is not valid JSON (${(e as Error).message})`);
  }
  if (meta === null || typeof meta !== 'object') throw new FormatError(source, `"${META_KEY}" metadata must be a JSON object`);
  if (meta.version !== CHECKPOINT_VERSION) {
    throw new FormatError(source, `checkpoint version ${JSON.stringify(meta.version)} is not supported (expected ${CHECKPOINT_VERSION})`);
  }
  const expected = metadata[CHECKSUM_KEY];
  const actual = checksum(tensors);
  if (expected !== actual) {
    throw new FormatError(source, `checksum mismatch (stored ${expected ?? 'none'}, computed ${actual}): the file is corrupt`);
  }

  const config = wrap(source, () => parseConfig(meta.config, 'config'));
  const hyper = wrap(source, () => checkHyper(meta.hyper));
  const params: TensorMap = new Map(), optimTensors: TensorMap = new Map();
  for (const [name, t] of tensors) {
    if (name.startsWith(PARAMS)) params.set(name.slice(PARAMS.length), t);
    else if (name.startsWith(OPTIM)) optimTensors.set(name.slice(OPTIM.length), t);
    else throw new FormatError(source, 'unexpected tensor (expected "params/..." or "optim/...")', name);
  }
  checkWeights(config, params, source);

  const step = count(source, meta, 'step');
  const history = checkHistory(source, meta.history);
  if (history.train.length !== step) {
    throw new FormatError(source, `loss history has ${history.train.length} training entries for ${step} steps`);
  }
  return {
    config,
    hyper,
    step,
    samplerState: count(source, meta, 'samplerState'),
    tokensSeen: count(source, meta, 'tokensSeen'),
    elapsedSeconds: finite(source, meta, 'elapsedSeconds'),
    history,
    dataId: typeof meta.dataId === 'string' ? meta.dataId : fail(source, '"dataId" must be a string'),
    params,
    optimizer: { tensors: optimTensors, scalars: checkScalars(source, meta.optimizerScalars) },
  };
}

/** FNV-1a over the f32 bytes (little-endian, as stored) of every tensor in name order. */
export function checksum(tensors: TensorMap): string {
  let h = 0x811c9dc5;
  for (const name of [...tensors.keys()].sort()) {
    const d = tensors.get(name)!.data;
    const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

function wrap<T>(source: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new FormatError(source, (e as Error).message);
  }
}

function fail(source: string, problem: string): never {
  throw new FormatError(source, problem);
}

function count(source: string, meta: Record<string, unknown>, key: string): number {
  const v = meta[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(source, `"${key}" must be an integer >= 0, got ${JSON.stringify(v)}`);
  return v;
}

function finite(source: string, meta: Record<string, unknown>, key: string): number {
  const v = meta[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(source, `"${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function checkHistory(source: string, h: unknown): LossHistory {
  const pairs = (v: unknown, key: string): [number, number][] => {
    const ok = Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === 'number' && Number.isFinite(x)));
    if (!ok) fail(source, `"history.${key}" must be a list of [step, loss] pairs`);
    return v as [number, number][];
  };
  if (h === null || typeof h !== 'object') fail(source, '"history" must be an object');
  const o = h as Record<string, unknown>;
  return { train: pairs(o.train, 'train'), val: pairs(o.val, 'val') };
}

function checkScalars(source: string, s: unknown): Record<string, number> {
  if (s === null || typeof s !== 'object' || Array.isArray(s)) fail(source, '"optimizerScalars" must be an object');
  for (const [k, v] of Object.entries(s as object)) {
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(source, `optimizer scalar "${k}" must be a number, got ${JSON.stringify(v)}`);
  }
  return s as Record<string, number>;
}
