import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FormatError } from '../src/io/errors.js';
import { serializeSafetensors } from '../src/io/safetensors.js';
import { parseCheckpoint, serializeCheckpoint } from '../src/train/checkpoint.js';
import { TRAIN_PRESETS } from '../src/train/hyper.js';
import { formatDuration, formatProgress, ProgressBar } from '../src/train/progress.js';
import { lineChartSvg, lossCurveSvg, movingAverage, niceTicks } from '../src/train/svg.js';
import { Trainer } from '../src/train/trainer.js';
import { parseConfig } from '../src/model/config.js';
import { loadCheckpointFile, saveCheckpointFile } from '../src/node/train-files.js';

const config = parseConfig({
  hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 24,
  vocab_size: 40, max_position_embeddings: 16, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2,
});
const hyper = { ...TRAIN_PRESETS.tiny!.hyper, steps: 20, seqLen: 12, batchSize: 3, accumSteps: 2, warmupSteps: 3, evalEvery: 5, evalSeqs: 4 };
const stream = (n: number, seed: number): Uint16Array => Uint16Array.from({ length: n }, (_, i) => ((i * 7 + seed) % 37) + 3);
const data = { train: stream(2000, 0), val: stream(300, 5), id: 'toy' };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ctcspec-train-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('trainer', () => {
  // k = 5 stops right after a validation pass (evalEvery 5), 1 and 7 between them
  it.each([1, 5, 7])('stopped after %i steps and resumed (through the file format) reproduces the uninterrupted run bit for bit', (k) => {
    const straight = new Trainer(config, hyper, data);
    straight.evaluate();
    for (let i = 0; i < 2 * k; i++) {
      straight.trainStep();
      if (straight.step % hyper.evalEvery === 0) straight.evaluate();
    }

    const first = new Trainer(config, hyper, data);
    first.evaluate();
    for (let i = 0; i < k; i++) {
      first.trainStep();
      if (first.step % hyper.evalEvery === 0) first.evaluate();
    }
    const bytes = serializeCheckpoint(first.toCheckpoint());
    const second = new Trainer(config, hyper, data, parseCheckpoint(bytes, 'ckpt'));
    for (let i = 0; i < k; i++) {
      second.trainStep();
      if (second.step % hyper.evalEvery === 0) second.evaluate();
    }

    expect(second.history).toEqual(straight.history);
    expect(second.history.train).toHaveLength(2 * k);
    const a = straight.params.toTensorMap(), b = second.params.toTensorMap();
    for (const [name, t] of a) expect(b.get(name)!.data, name).toEqual(t.data);
    expect(second.toCheckpoint().samplerState).toBe(straight.toCheckpoint().samplerState);
  });

  it('refuses a checkpoint made on other data', () => {
    const c = new Trainer(config, hyper, data).toCheckpoint();
    expect(() => new Trainer(config, hyper, { ...data, id: 'other' }, c)).toThrow(/trained on data "toy"/);
  });
});

describe('checkpoint files', () => {
  const checkpoint = () => {
    const t = new Trainer(config, hyper, data);
    t.trainStep();
    return t.toCheckpoint();
  };

  it('keeps the previous checkpoint as .prev and leaves no temp files', async () => {
    const path = join(dir, 'checkpoint.safetensors');
    const c1 = checkpoint();
    await saveCheckpointFile(path, c1);
    const c2 = { ...c1, tokensSeen: c1.tokensSeen + 1 };
    await saveCheckpointFile(path, c2);
    expect((await readdir(dir)).sort()).toEqual(['checkpoint.safetensors', 'checkpoint.safetensors.prev']);
    expect((await loadCheckpointFile(path)).tokensSeen).toBe(c2.tokensSeen);
    expect(parseCheckpoint(await readFile(path + '.prev'), 'prev').tokensSeen).toBe(c1.tokensSeen);
    // a save interrupted between its two renames leaves only .prev: resume falls back to it
    await rm(path);
    const logs: string[] = [];
    expect((await loadCheckpointFile(path, (m) => logs.push(m))).tokensSeen).toBe(c1.tokensSeen);
    expect(logs[0]).toMatch(/resuming from .*\.prev/);
  });

  it('reports corruption with a FormatError naming the file', async () => {
    const path = join(dir, 'checkpoint.safetensors');
    const bytes = serializeCheckpoint(checkpoint());
    const expectBad = async (b: Uint8Array, msg: RegExp) => {
      await writeFile(path, b);
      const e = await loadCheckpointFile(path).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(FormatError);
      expect((e as FormatError).file).toBe(path);
      expect((e as Error).message).toMatch(msg);
    };
    await expectBad(bytes.subarray(0, bytes.length - 100), /runs past|past the end|trailing|covered|end of/);
    const flipped = bytes.slice();
    flipped[flipped.length - 7]! ^= 0x01;
    await expectBad(flipped, /checksum mismatch/);
    await expectBad(new Uint8Array(3), /too short/);
    await expectBad(serializeSafetensors(new Map([['x', { shape: [1], data: new Float32Array(1) }]])), /not a training checkpoint/);
    await expect(loadCheckpointFile(join(dir, 'none.safetensors'))).rejects.toThrow(/file not found/);
    // with a .prev beside it, the message points there
    await writeFile(path + '.prev', bytes);
    await expectBad(flipped, /\.prev may still be good/);
  });
});

describe('progress bar', () => {
  const info = { step: 50, total: 200, tokensPerSecond: 1234.5, loss: 3.14159, valLoss: 3.5, lr: 0.002, etaSeconds: 3725 };

  it('formats one line with step, tokens/s, losses, lr and ETA', () => {
    expect(formatProgress(info, 10)).toBe('[###.......] 50/200 25% | 1235 tok/s | loss 3.142 | val 3.500 | lr 2.0e-3 | 1h02m left');
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(7.2)).toBe('7s');
    expect(formatDuration(Infinity)).toBe('?');
  });

  it('redraws with \\r on a terminal and prints plain lines every N steps otherwise', () => {
    let out = '';
    const plain = new ProgressBar({ write: (s) => (out += s), isTTY: false }, { every: 25 });
    for (let s = 1; s <= 60; s++) plain.update({ ...info, step: s, total: 60 });
    expect(out.split('\n').filter(Boolean).map((l) => l.split(' ')[1])).toEqual(['25/60', '50/60', '60/60']);
    out = '';
    let t = 0;
    const tty = new ProgressBar({ write: (s) => (out += s), isTTY: true }, { now: () => (t += 1000) });
    tty.update(info);
    tty.log('hello');
    tty.update({ ...info, step: 51 });
    tty.finish();
    expect(out.startsWith('\r[')).toBe(true);
    expect(out).toContain('\rhello\n');
    expect(out.endsWith('\n')).toBe(true);
    expect(out.split('\n')).toHaveLength(3);
  });
});

describe('loss curve svg', () => {
  it('picks nice ticks that cover the range', () => {
    fc.assert(
      fc.property(fc.double({ min: -1e4, max: 1e4, noNaN: true }), fc.double({ min: 1e-3, max: 1e4, noNaN: true }), (lo, span) => {
        const ticks = niceTicks(lo, lo + span, 6);
        expect(ticks[0]!).toBeLessThanOrEqual(lo);
        expect(ticks[ticks.length - 1]!).toBeGreaterThanOrEqual(lo + span);
        expect(ticks.length).toBeGreaterThanOrEqual(2);
        expect(ticks.length).toBeLessThanOrEqual(14);
        const step = ticks[1]! - ticks[0]!;
        const mantissa = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
        expect([1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-6)).toBe(true);
      }),
    );
    expect(niceTicks(0, 2400, 6)).toEqual([0, 500, 1000, 1500, 2000, 2500]);
  });

  it('draws axes, labelled ticks, one line per series and a legend', () => {
    const train = Array.from({ length: 100 }, (_, i) => [i + 1, 7 - Math.log(i + 1)] as [number, number]);
    const svg = lossCurveSvg(train, [[0, 7], [50, 3.5], [100, 2.6]], 'Loss <test>');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline/g)).toHaveLength(3);
    expect(svg).toContain('Loss &lt;test&gt;');
    expect(svg).toContain('>validation loss<');
    expect(svg).toContain('>optimizer step<');
    expect(svg).toMatch(/>100</);
    expect(movingAverage([[1, 2], [2, 4], [3, 6]], 2)).toEqual([[1, 2], [2, 3], [3, 5]]);
    expect(() => lineChartSvg([], { title: '', xLabel: '', yLabel: '' })).toThrow(/no points/);
  });
});
