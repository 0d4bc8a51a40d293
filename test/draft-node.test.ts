/**
 * train-drafter end to end on a toy corpus and a tiny random base model: the distillation
 * cache, training, checkpoints, resume, the exported head directory and its record.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CtcHeadDrafter } from '../src/draft/ctc-head.js';
import { frozenBase } from '../src/draft/head-io.js';
import { readModelDir, writeModelDir } from '../src/node/files.js';
import { readDraftHead, trainDrafter, type TrainDrafterOptions } from '../src/node/train-drafter.js';
import { prepareData } from '../src/node/train-files.js';
import { parseConfig } from '../src/model/config.js';
import { spreadWeights } from './helpers.js';
import { writeToyCorpus } from './train-helpers.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ctcspec-train-drafter-'));
  await writeToyCorpus(join(root, 'corpus'), 20, 30);
  const data = await prepareData(join(root, 'corpus'), join(root, 'data'), 300);
  const config = parseConfig({
    hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, intermediate_size: 24,
    vocab_size: data.tokenizer.vocabSize, max_position_embeddings: 48, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2,
  });
  await writeModelDir(join(root, 'base'), config, spreadWeights(config, 4, 10), { tokenizerJson: data.tokenizerJson });
}, 60_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function options(kind: 'ctc' | 'medusa', extra: Partial<TrainDrafterOptions> = {}): TrainDrafterOptions & { logs: string[] } {
  const logs: string[] = [];
  return {
    kind, base: join(root, 'base'), checkpointDir: join(root, 'ckpt'), dataDir: join(root, 'data'), corpusDir: join(root, 'corpus'),
    frames: 4, draftLen: 2, hyper: { steps: 12, positionsPerStep: 16, seqsPerStep: 2, evalEvery: 5, evalPositions: 40, checkpointEvery: 5 },
    distill: { sequences: 56, seqLen: 24, promptMin: 4, promptMax: 8 },
    progress: { write: () => {}, isTTY: false }, log: (m) => logs.push(m), handleSignals: false, logs, ...extra,
  };
}

describe('train-drafter', () => {
  it('distills once, trains, stops on a budget, resumes and writes the head with its record', async () => {
    const stopped = await trainDrafter(options('ctc', { timeBudgetMin: 0 }));
    expect(stopped.status).toBe('stopped');
    expect(stopped.step).toBe(1);
    await expect(trainDrafter(options('ctc'))).rejects.toThrow(/--resume/);
    const o = options('ctc', { resume: true });
    const done = await trainDrafter(o);
    expect(done.status).toBe('done');
    expect(done.step).toBe(12);
    expect(o.logs.some((l) => l.startsWith('distill: cached'))).toBe(true);
    expect(done.out).toBe(join(root, 'base', 'drafters', 'ctc'));
    for (const f of ['config.json', 'model.safetensors', 'loss.svg', 'README.md', 'training.json']) expect(existsSync(join(done.out, f))).toBe(true);
    const record = JSON.parse(await readFile(join(done.out, 'training.json'), 'utf8'));
    expect(record.history.train).toHaveLength(12);
    expect(record.history.valAccept.map((p: number[]) => p[0])).toEqual([0, 5, 10, 12]);

    const head = await readDraftHead(done.out);
    const base = await readModelDir(join(root, 'base'));
    expect(head.config.kind).toBe('ctc');
    if (head.config.kind !== 'ctc') return;
    const d = new CtcHeadDrafter(head.config, head.tensors, frozenBase(base.config, base.tensors));
    d.begin([1, 5, 6], new Float32Array(3 * 16).fill(0.5));
    for (const c of d.propose(7, 2)) expect(c.tokens.every((t) => t < base.config.vocab_size)).toBe(true);
  }, 60_000);

  it('trains Medusa heads and the per-slot cross-entropy ablation on the same data', async () => {
    for (const [kind, loss, dir] of [['medusa', undefined, 'medusa'], ['ctc', 'ce', 'ctc-ce']] as const) {
      const o = options(kind, { loss });
      const r = await trainDrafter(o);
      expect(r.status).toBe('done');
      expect(r.out).toBe(join(root, 'base', 'drafters', dir));
      expect(Number.isFinite(r.finalValLoss)).toBe(true);
      expect(o.logs.some((l) => l.startsWith('distill: cached'))).toBe(true);
    }
  }, 60_000);

  /** every file under `dir` with its bytes and modification time, to show nothing was touched */
  async function snapshot(dir: string): Promise<Map<string, string>> {
    const files = new Map<string, string>();
    for (const name of (await readdir(dir, { recursive: true })).sort()) {
      const path = join(dir, name), info = await stat(path);
      if (info.isFile()) files.set(name, `${info.mtimeMs} ${(await readFile(path)).toString('base64')}`);
    }
    return files;
  }

  it('refuses a cache built from other inputs before writing anything, naming what differs', async () => {
    const ckpt = join(root, 'ckpt-caches'), cache = join(ckpt, 'distill');
    const first = options('ctc', { checkpointDir: ckpt, timeBudgetMin: 0 });
    await trainDrafter(first); // builds the cache, stops after a step
    expect(first.logs.some((l) => l.startsWith('data: cached'))).toBe(true); // the token cache was read, not rebuilt for the model's vocab size
    const saved = await snapshot(ckpt);
    const refuse = async (o: TrainDrafterOptions, problem: RegExp) => {
      const error = await trainDrafter(o).then(() => undefined, (e: Error) => e);
      expect(error?.message).toMatch(problem);
      expect(await snapshot(ckpt)).toEqual(saved);
    };
    const remedy = /pass another --checkpoint-dir, or delete .*distill to rebuild it/;

    // other distill options
    await refuse(options('medusa', { checkpointDir: ckpt, distill: { sequences: 57, seqLen: 24, promptMin: 4, promptMax: 8 } }), /distill options: cached \{"sequences":56,.*this run \{"sequences":57/);
    await refuse(options('medusa', { checkpointDir: ckpt, distill: { sequences: 57, seqLen: 24, promptMin: 4, promptMax: 8 } }), remedy);
    // another base model: same shape and tokenizer, other weights
    const base = await readModelDir(join(root, 'base'));
    await writeModelDir(join(root, 'base-other'), base.config, spreadWeights(base.config, 5, 10), { tokenizerJson: base.tokenizerJson });
    const other = options('medusa', { checkpointDir: ckpt, base: join(root, 'base-other') });
    await refuse(other, /built from other inputs \(base model \(config and weights\): cached "[0-9a-f]{16}", this run "[0-9a-f]{16}"\)/);
    // resuming with options that give other data, with the cache gone: refused before distilling
    await rm(cache, { recursive: true });
    const gone = await snapshot(ckpt);
    const resumed = await trainDrafter(options('ctc', { checkpointDir: ckpt, resume: true, distill: { sequences: 57, seqLen: 24, promptMin: 4, promptMax: 8 } })).then(() => undefined, (e: Error) => e);
    expect(resumed?.message).toMatch(/the run trained on distillation data [0-9a-f]{16}, but this base model and these options give [0-9a-f]{16}/);
    expect(await snapshot(ckpt)).toEqual(gone);
    expect(existsSync(cache)).toBe(false);
  }, 60_000);

  it('reads its own cache from before the inputs were recorded, and refuses an unreadable or foreign one', async () => {
    const ckpt = join(root, 'ckpt-fake'), cache = join(ckpt, 'distill');
    await trainDrafter(options('ctc', { checkpointDir: ckpt, timeBudgetMin: 0 }));
    const manifest = JSON.parse(await readFile(join(cache, 'manifest.json'), 'utf8'));
    const { key, options: distill, count, seqLen, D, promptLens } = manifest; // the fields a cache had before
    await writeFile(join(cache, 'manifest.json'), JSON.stringify({ key, options: distill, count, seqLen, D, promptLens }));
    const old = options('medusa', { checkpointDir: ckpt });
    await trainDrafter(old);
    expect(old.logs.some((l) => l.startsWith('distill: cached'))).toBe(true);

    const fake = { key: 'feedfacefeedface', options: distill, count: 1, seqLen: 2, D: 16, promptLens: [1] };
    for (const [text, problem] of [
      [JSON.stringify(fake), /built from other inputs \(cache format version: cached unrecorded, this run 1; base model .*: cached unrecorded/],
      ['{"key": ', /manifest\.json: unreadable .* what the cache holds is unknown/],
    ] as const) {
      await writeFile(join(cache, 'manifest.json'), text);
      const saved = await snapshot(ckpt);
      await expect(trainDrafter(options('ctc', { checkpointDir: ckpt, resume: true }))).rejects.toThrow(problem);
      expect(await snapshot(ckpt)).toEqual(saved);
    }
  }, 60_000);

  it('refuses a token cache prepared from other inputs instead of rebuilding it', async () => {
    const data = join(root, 'data-other');
    await prepareData(join(root, 'corpus'), data, 280);
    const saved = await snapshot(data);
    const base = await readModelDir(join(root, 'base'));
    const o = options('ctc', { checkpointDir: join(root, 'ckpt-data'), dataDir: data });
    await expect(trainDrafter(o)).rejects.toThrow(new RegExp(`its tokenizer has \\d+ tokens, the model's vocab_size is ${base.config.vocab_size}.*or delete .*data-other to rebuild it`));
    expect(await snapshot(data)).toEqual(saved);
    expect(existsSync(join(root, 'ckpt-data'))).toBe(false);
  }, 60_000);
});
