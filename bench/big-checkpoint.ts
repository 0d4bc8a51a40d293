/**
 * Loading checkpoints of real size: the memory a load takes against the weights' f32 size.
 *
 *   npm run bench:big-checkpoint -- [--dir DIR] [--keep]
 *
 * Writes two model directories of random-looking BF16 weights (the files streamed to disk a
 * tensor piece at a time, never held whole):
 *   smollm2   SmolLM2-135M's public shape, in three shards with model.safetensors.index.json
 *   tinyllama TinyLlama-1.1B's public shape in one model.safetensors of 2.2 GB, past the 2 GiB
 *             that one JavaScript buffer (and so fs.readFile) holds
 * then loads each in a fresh process (so its peak RSS is the load's own) through the Node
 * adapter (readModelDir, what the CLI reads): the weights are read a tensor at a time in
 * 16 MiB pieces, widened to f32 as they arrive. For SmolLM2 the process then builds the model
 * on the CPU backend (its weights copied into the wasm memory) and runs two decode steps;
 * TinyLlama's 4.4 GB of f32 is past the CPU backend's 4 GiB, and the bench shows the
 * refusal. A second fresh process per model reads the matrices as the file stores them,
 * straight into the CPU backend's memory (BF16, what `--weights bf16` does), and runs the
 * same decode steps: TinyLlama fits that way. Writes bench/results/big-checkpoint.json and .md.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { paramCount, parseConfig, weightShapes, type LlamaConfig } from '../src/model/config.js';
import { backendSink, Llama } from '../src/model/llama.js';
import { readModelDir } from '../src/node/files.js';
import { f32ToBF16, numel } from '../src/tensor/dtype.js';

// run from the repository root (npm run sets the working directory there)
const CONFIGS = join('test', 'fixtures', 'configs');
const RESULTS = join('bench', 'results');
const BF16_BYTES = 2;
const F32_BYTES = 4;
const WRITE_PIECE_ELEMENTS = 4 * 2 ** 20; // elements encoded and written at once
const WEIGHT_SCALE = 0.02;
const MB = 1e6;
const GIB = 2 ** 30;
const DECODE_STEPS = 2;

interface Model {
  name: string;
  configFile: string;
  shards: number;
  /** build the model on the CPU backend after reading (it must fit the wasm memory) */
  run: boolean;
}

const MODELS: Model[] = [
  { name: 'smollm2', configFile: 'smollm2-135m.json', shards: 3, run: true },
  { name: 'tinyllama', configFile: 'tinyllama-1.1b.json', shards: 1, run: false },
];

interface Row extends LoadReport {
  /** the second load: BF16 matrices kept 16-bit in the CPU backend */
  bf16: SixteenBitReport;
  model: string;
  config: string;
  params: number;
  files: number;
  largestFileBytes: number;
  fileMB: number;
  f32MB: number;
  writeMs: number;
}

interface LoadReport {
  readMs: number;
  peakRssAfterReadMB: number;
  buildMs?: number;
  decodeMsPerToken?: number;
  peakRssMB: number;
  refusal?: string;
}

interface SixteenBitReport {
  readAndBuildMs: number;
  decodeMsPerToken: number;
  peakRssMB: number;
}

/** a cheap deterministic stream of small values (an LCG), norms at 1 */
function fillPiece(out: Uint16Array, n: number, seed: number, isNorm: boolean): void {
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = f32ToBF16(isNorm ? 1 : ((s / 2 ** 32) * 2 - 1) * WEIGHT_SCALE);
  }
}

/** one safetensors file of `names`, streamed: header, then each tensor in pieces */
async function writeShard(path: string, names: string[], shapes: Map<string, number[]>): Promise<number> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const name of names) {
    const bytes = numel(shapes.get(name)!) * BF16_BYTES;
    header[name] = { dtype: 'BF16', shape: shapes.get(name), data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const padded = Buffer.alloc(Math.ceil(json.length / 8) * 8, 0x20);
  json.copy(padded);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(padded.length));
  const file = await open(path, 'w');
  try {
    await file.write(length);
    await file.write(padded);
    const piece = new Uint16Array(WRITE_PIECE_ELEMENTS);
    for (const [t, name] of names.entries()) {
      const n = numel(shapes.get(name)!);
      for (let at = 0; at < n; at += WRITE_PIECE_ELEMENTS) {
        const count = Math.min(WRITE_PIECE_ELEMENTS, n - at);
        fillPiece(piece, count, t * 7919 + at, name.endsWith('norm.weight'));
        await file.write(new Uint8Array(piece.buffer, 0, count * BF16_BYTES));
      }
    }
  } finally {
    await file.close();
  }
  return 8 + padded.length + offset;
}

async function writeModel(dir: string, m: Model): Promise<{ config: LlamaConfig; fileBytes: number[] }> {
  mkdirSync(dir, { recursive: true });
  const raw = readFileSync(join(CONFIGS, m.configFile), 'utf8');
  const config = parseConfig(JSON.parse(raw), m.configFile);
  writeFileSync(join(dir, 'config.json'), raw);
  const shapes = weightShapes(config);
  const names = [...shapes.keys()].sort();
  if (m.shards === 1) return { config, fileBytes: [await writeShard(join(dir, 'model.safetensors'), names, shapes)] };
  const fileBytes: number[] = [];
  const weightMap: Record<string, string> = {};
  const perShard = Math.ceil(names.length / m.shards);
  for (let s = 0; s < m.shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(m.shards).padStart(5, '0')}.safetensors`;
    const part = names.slice(s * perShard, (s + 1) * perShard);
    for (const name of part) weightMap[name] = file;
    fileBytes.push(await writeShard(join(dir, file), part, shapes));
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: paramCount(config) * BF16_BYTES }, weight_map: weightMap }, null, 2));
  return { config, fileBytes };
}

const KIB = 1024;
const rssMB = () => (process.resourceUsage().maxRSS * KIB) / MB; // maxRSS is in KiB

/** the child process: load one directory, report as JSON on stdout */
async function load(dir: string, run: boolean): Promise<LoadReport> {
  const t0 = performance.now();
  const { config, tensors } = await readModelDir(dir);
  const report: LoadReport = { readMs: performance.now() - t0, peakRssAfterReadMB: rssMB(), peakRssMB: 0 };
  if (run) {
    const t1 = performance.now();
    const model = new Llama(new CpuBackend(), config, tensors, { maxSeq: 64 });
    report.buildMs = performance.now() - t1;
    await model.forward([1]);
    const t2 = performance.now();
    for (let i = 0; i < DECODE_STEPS; i++) await model.forward([2 + i]);
    report.decodeMsPerToken = (performance.now() - t2) / DECODE_STEPS;
  } else {
    try {
      new Llama(new CpuBackend(), config, tensors);
    } catch (e) {
      report.refusal = (e as Error).message;
    }
  }
  report.peakRssMB = rssMB();
  return report;
}

/** the child process: read one directory's BF16 matrices straight into the CPU backend, decode, report */
async function loadSixteenBit(dir: string): Promise<SixteenBitReport> {
  const t0 = performance.now();
  const backend = new CpuBackend();
  const { config, tensors } = await readModelDir(dir, { keepSixteenBit: true, sixteenBitSink: backendSink(backend, 'bf16') });
  const model = new Llama(backend, config, tensors, { maxSeq: 64, weights: 'bf16' });
  const readAndBuildMs = performance.now() - t0;
  await model.forward([1]);
  const t1 = performance.now();
  for (let i = 0; i < DECODE_STEPS; i++) await model.forward([2 + i]);
  return { readAndBuildMs, decodeMsPerToken: (performance.now() - t1) / DECODE_STEPS, peakRssMB: rssMB() };
}

/** run this file as a child with `args`, parse its JSON report */
function child<T>(dir: string, args: string[]): T {
  const c = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--load', dir, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (c.status !== 0) throw new Error(`loading ${dir} failed:\n${c.stderr}`);
  return JSON.parse(c.stdout) as T;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, keep: { type: 'boolean', default: false }, load: { type: 'string' }, run: { type: 'boolean', default: false }, bf16: { type: 'boolean', default: false } } });
  if (values.load) {
    process.stdout.write(JSON.stringify(values.bf16 ? await loadSixteenBit(values.load) : await load(values.load, values.run)) + '\n');
    return;
  }
  const base = values.dir ?? mkdtempSync(join(tmpdir(), 'ctcspec-big-'));
  const rows: Row[] = [];
  try {
    for (const m of MODELS) {
      const dir = join(base, m.name);
      const t0 = performance.now();
      const { config, fileBytes } = await writeModel(dir, m);
      const writeMs = performance.now() - t0;
      const report = child<LoadReport>(dir, m.run ? ['--run'] : []);
      const bf16 = child<SixteenBitReport>(dir, ['--bf16']);
      const params = paramCount(config);
      const row: Row = { model: m.name, config: m.configFile, params, files: fileBytes.length, largestFileBytes: Math.max(...fileBytes), fileMB: fileBytes.reduce((a, b) => a + b, 0) / MB, f32MB: (params * F32_BYTES) / MB, writeMs, ...report, bf16 };
      rows.push(row);
      process.stderr.write(`${JSON.stringify(row)}\n`);
    }
  } finally {
    if (!values.keep) rmSync(base, { recursive: true, force: true });
  }
  const command = ['npm run bench:big-checkpoint --', ...process.argv.slice(2)].join(' ');
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'big-checkpoint.json'), JSON.stringify({ date: new Date().toISOString(), command, rows }, null, 2) + '\n');
  const line = (r: Row) =>
    `| ${r.model} | ${(r.params / 1e6).toFixed(1)}M | ${r.files} | ${(r.largestFileBytes / GIB).toFixed(2)} GiB | ${r.f32MB.toFixed(0)} | ` +
    `${r.peakRssAfterReadMB.toFixed(0)} (${(r.peakRssAfterReadMB / r.f32MB).toFixed(2)}x) | ${(r.readMs / 1000).toFixed(1)} s | ` +
    `${r.decodeMsPerToken === undefined ? 'refused: over 4 GiB' : `${r.peakRssMB.toFixed(0)} MB, ${r.decodeMsPerToken.toFixed(0)} ms/token`} | ` +
    `${r.fileMB.toFixed(0)} | ${r.bf16.peakRssMB.toFixed(0)} MB, ${(r.bf16.readAndBuildMs / 1000).toFixed(1)} s, ${r.bf16.decodeMsPerToken.toFixed(0)} ms/token |`;
  const md = [
    '# Loading big checkpoints',
    '',
    `Command: \`${command}\` (on the shared 2-core machine; times are indicative).`,
    '',
    'BF16 weights written to a temporary directory, then read in a fresh process through the Node',
    'adapter (readModelDir: a tensor at a time, 16 MiB pieces widened to f32 as they arrive).',
    'Peak RSS is the loading process\'s maximum resident set, Node itself included; "f32 MB" is',
    'the size of the weights once widened, the least a load into f32 can hold. Building the model on',
    'the CPU backend copies the weights into its wasm memory while the host copy stays (a TextModel',
    'keeps it for its draft heads): about twice the f32 size. The last column is a second fresh',
    'process that reads the matrices as stored, straight into the CPU backend\'s memory (BF16, as',
    '`--weights bf16` does; the norms and the embedding rows are widened), then decodes: peak RSS,',
    'read and build time, decode time (one thread, a fresh cache).',
    '',
    '| model | params | files | largest file | f32 MB | peak RSS after reading, MB | read time | CPU backend, f32: peak RSS, decode | files MB | CPU backend, bf16 as stored: peak RSS, load, decode |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(line),
    '',
    ...rows.filter((r) => r.refusal).map((r) => `${r.model} on the CPU backend: "${r.refusal}"`),
    '',
  ].join('\n');
  writeFileSync(join(RESULTS, 'big-checkpoint.md'), md);
  process.stdout.write(md);
}

await main();
