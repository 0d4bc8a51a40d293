/**
 * train-base end to end on a toy corpus (Brown file format, tiny model): data preparation,
 * training, checkpoints, resume, export, model card, and the errors a user can hit.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/model/config.js';
import { FormatError } from '../src/io/errors.js';
import { readModelDir } from '../src/node/files.js';
import { trainBase, type TrainBaseOptions } from '../src/node/train-base.js';
import { loadCheckpointFile } from '../src/node/train-files.js';
import { DataError } from '../src/train/data.js';
import { writeToyCorpus } from './train-helpers.js';

/** The toy grammar has 4 x 4 x 4 equally likely sentences: a model that learned it is far below uniform (ln 300 = 5.7). */
const VAL_LOSS_BOUND = 1.5;

let root: string, corpus: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ctcspec-train-e2e-'));
  corpus = join(root, 'corpus');
  await writeToyCorpus(corpus);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function options(name: string, extra: Partial<TrainBaseOptions> = {}): TrainBaseOptions & { logs: string[] } {
  const logs: string[] = [];
  return {
    out: join(root, name, 'model'),
    checkpointDir: join(root, name, 'ckpt'),
    corpusDir: corpus,
    config: 'tiny',
    vocab: 300,
    progress: { write: () => {}, isTTY: false },
    log: (m) => logs.push(m),
    handleSignals: false,
    samplePrompts: ['The cat'],
    logs,
    ...extra,
  };
}

describe('train-base', () => {
  it(`trains a tiny model on a toy corpus to validation loss < ${VAL_LOSS_BOUND} and ships it`, async () => {
    const o = options('full', { command: 'npx ctcspec train-base --config tiny' });
    const r = await trainBase(o);
    expect(r.status).toBe('done');
    expect(r.step).toBe(300);
    expect(r.finalValLoss).toBeLessThan(VAL_LOSS_BOUND);
    expect((await readdir(o.out)).sort()).toEqual(['README.md', 'config.json', 'loss.svg', 'model.safetensors', 'tokenizer.json']);
    const dir = await readModelDir(o.out);
    expect(dir.config.bos_token_id).toBe(1);
    expect(dir.config.eos_token_id).toBe(2);
    expect(dir.config.max_position_embeddings).toBe(32);
    const card = await readFile(join(o.out, 'README.md'), 'utf8');
    expect(card).toContain('npx ctcspec train-base --config tiny');
    expect(card).toMatch(/final validation loss \| \d\.\d{4}/);
    expect(card).toContain('**The cat**');
    expect(card).toContain('`ca20`'); // the held-out document list
    expect((await readFile(join(o.out, 'loss.svg'), 'utf8')).startsWith('<svg')).toBe(true);
    expect(o.logs.some((l) => l.includes('training a 300-token BPE tokenizer'))).toBe(true);
  });

  it('stopped (time budget) and resumed, ends with the same losses and weights as an uninterrupted run', async () => {
    const a = options('straight', { steps: 60 });
    await trainBase(a);
    const b = options('resumed', { steps: 60, timeBudgetMin: 0 }); // stops after the first step
    const stopped = await trainBase(b);
    expect(stopped.status).toBe('stopped');
    expect(stopped.step).toBe(1);
    await expect(trainBase(options('resumed', { steps: 60 }))).rejects.toThrow(/exists: pass --resume/);
    const resumed = options('resumed', { steps: 60, resume: true });
    const done = await trainBase(resumed);
    expect(done.status).toBe('done');
    expect(resumed.logs[0]).toMatch(/^data: cached in/); // the tokenizer and token streams are not rebuilt
    const ca = await loadCheckpointFile(join(a.checkpointDir, 'checkpoint.safetensors'));
    const cb = await loadCheckpointFile(join(b.checkpointDir, 'checkpoint.safetensors'));
    expect(cb.history).toEqual(ca.history);
    expect(await readFile(join(b.out, 'model.safetensors'))).toEqual(await readFile(join(a.out, 'model.safetensors')));
  });

  it('gives clear errors for a bad config, a corrupt checkpoint, an empty corpus and invalid UTF-8', async () => {
    const cfg = join(root, 'bad-config.json');
    await writeFile(cfg, JSON.stringify({ model: { hidden_size: 30, num_attention_heads: 4, num_key_value_heads: 4 } }));
    await expect(trainBase(options('bad', { config: cfg }))).rejects.toThrow(ConfigError);
    await expect(trainBase(options('bad', { config: cfg }))).rejects.toThrow(/hidden_size 30 is not divisible by num_attention_heads 4/);

    const o = options('corrupt', { steps: 5 });
    await trainBase(o);
    const path = join(o.checkpointDir, 'checkpoint.safetensors');
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, 1000));
    const e = await trainBase({ ...o, resume: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FormatError);
    expect((e as Error).message).toContain(path);

    const empty = join(root, 'empty-corpus');
    await writeToyCorpus(empty, 0);
    await expect(trainBase(options('empty', { corpusDir: empty }))).rejects.toThrow(new DataError(`${empty}: the corpus is empty (no document files)`));

    const bad = join(root, 'bad-corpus');
    await writeToyCorpus(bad);
    await writeFile(join(bad, 'ca07'), Buffer.concat([Buffer.from('The/at cat/nn '), Buffer.from([0xff]), Buffer.from(' sat/vbd')]));
    await expect(trainBase(options('utf8', { corpusDir: bad }))).rejects.toThrow(`${bad}/ca07: invalid UTF-8 at byte offset 14`);
  });

  it('runs as `ctcspec train-base` from the built command line, and generate reads the result', async () => {
    const cli = join(resolve(import.meta.dirname, '..'), 'dist/src/cli/main.js');
    const run = (args: string[]) => promisify(execFile)(process.execPath, [cli, ...args]);
    const out = join(root, 'cli', 'model');
    const args = ['--config', 'tiny', '--vocab', '300', '--steps', '30', '--corpus', corpus, '--checkpoint-dir', join(root, 'cli', 'ckpt'), '--out', out];
    const { stderr } = await run(['train-base', ...args, '--time-budget-min', '60']);
    expect(stderr).toContain(`wrote ${out}`);
    expect(await readFile(join(out, 'README.md'), 'utf8')).toContain(['npx ctcspec train-base', ...args].join(' '));
    const gen = JSON.parse((await run(['generate', '--model', out, '--prompt', 'The cat', '--max-new-tokens', '5', '--json'])).stdout);
    expect(gen.tokens).toHaveLength(5);
    const bad = await run(['train-base', '--steps', 'abc']).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining('--steps must be an integer >= 1, got "abc"') });
  });
});
