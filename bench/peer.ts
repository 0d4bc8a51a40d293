/**
 * Peer benchmark: ctcspec's CPU engine against llama.cpp (its prebuilt CPU build, through the
 * node-llama-cpp npm package; bench/peer/llama-cpp.ts), on the same weights and prompt ids.
 *
 *   scripts/install-peer.sh        # once: node-llama-cpp into bench/peer/node_modules
 *   npm run bench:peer -- [--shapes stories15M,smollm2-135m] [--formats f32,bf16,f16,q8_0]
 *                         [--threads 1,2] [--new-tokens 64] [--prompt-tokens 24] [--reps 5]
 *                         [--out bench/results/peer]
 *   npm run bench:peer -- --short  # stories15M, f32, 1 thread, 32 tokens: the token check only
 *
 * --preliminary=TEXT marks the written results as preliminary, saying why (a busy machine).
 *
 * Weights: random, made here and never saved (randomWeights of the project, seed SEED, with
 * the decoder layers' matrices scaled by LAYER_WEIGHT_SCALE so that greedy decoding walks
 * through many different tokens: at the plain initialisation's scale every step picks the
 * same token, and a comparison of one repeated token would prove little). ctcspec runs them
 * from memory; llama.cpp reads them from a GGUF file written by ctcspec's own GGUF writer.
 *
 * Per shape, weight format and thread count, each engine gets a fresh cache per run and
 * decodes greedily from the same prompt ids: one forward over the prompt (prefill; its
 * logits give the first new token), then one-token steps up to --new-tokens tokens
 * (decode). Runs of the two engines alternate (A B B A ...) after one warm-up run each;
 * the table gives medians. tokens/s: prefill = prompt tokens / prefill time, decode =
 * one-token steps / their time. In f32 the greedy tokens must agree token for token (exit
 * status 1 otherwise); the report gives the first divergence, and the smallest relative gap
 * between ctcspec's top two logits along the way (a tiny gap is where rounding can flip a
 * pick). Every format also gets the KL divergence of each engine's next-token distribution
 * after the prompt from ctcspec's f32 one: how far the format moved each engine.
 *
 * Formats: ctcspec holds the matrices as the Llama option `weights` says (16-bit widened in
 * registers, x in f32; Q8_0 with x quantized per block of 32, as llama.cpp does); llama.cpp
 * reads them stored that way in the GGUF file. An engine that cannot run a format or a
 * thread count is skipped with the reason printed and written.
 *
 * Fair settings: both engines on the same thread count; llama.cpp's KV cache in f32 (as
 * ctcspec's) with flash attention off; llama.cpp's threads spin in their barriers, which no
 * setting reaches, so measure on an otherwise idle machine (a busy one collapses its
 * multi-thread runs). llama.cpp's times include node-llama-cpp's per-call path (its
 * evaluation queue and the N-API hop), as ctcspec's include its own JS around the kernels.
 * Writes PREFIX.md and PREFIX.json (default bench/results/peer).
 */
import { parseArgs } from 'node:util';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, type LlamaConfig } from '../src/model/config.js';
import { PRESETS } from '../src/model/presets.js';
import { Llama } from '../src/model/llama.js';
import { randomWeights } from '../src/io/weights.js';
import { ggufModelPieces, type GgufDType } from '../src/io/gguf.js';
import type { TensorMap } from '../src/tensor/dtype.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../src/tensor/weight-format.js';
import { argmaxRow } from '../src/util/numeric.js';
import { createCpuBackend } from '../src/node/backend.js';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { LlamaCppPeer, peerDir, type PeerInfo, type PeerSession } from './peer/llama-cpp.js';

const SEED = 7;
/** decoder matrices x3: std 0.06, about 1/sqrt(hidden) for these shapes; greedy output then varies */
const LAYER_WEIGHT_SCALE = 3;
const PROMPT_LENGTH = 24;
/** a stride coprime to both vocabularies, so the prompt's ids are spread over the table */
const PROMPT_STRIDE = 7919;
const BOS = 1;
/** ids 0-2 are unknown, BOS and EOS in both vocabularies */
const FIRST_ORDINARY_ID = 3;
/** both vocabularies have at least this many ids */
const SHARED_VOCAB = 32000;

export const SHAPES = ['stories15M', 'smollm2-135m'] as const;
export type ShapeName = (typeof SHAPES)[number];

export interface PeerBenchOptions {
  shapes: ShapeName[];
  formats: WeightFormat[];
  threads: number[];
  /** greedy tokens per run: one from the prefill, the rest one-token steps */
  newTokens: number;
  /** timed runs per engine (after one warm-up each) */
  reps: number;
  /** prompt length: the prefill's batch, and where decoding starts (a long one measures attention over a long cache) */
  promptTokens: number;
}

export const FULL: PeerBenchOptions = { shapes: [...SHAPES], formats: [...WEIGHT_FORMATS], threads: [1, 2], newTokens: 64, reps: 5, promptTokens: PROMPT_LENGTH };
export const SHORT: PeerBenchOptions = { shapes: ['stories15M'], formats: ['f32'], threads: [1], newTokens: 32, reps: 1, promptTokens: PROMPT_LENGTH };

/** One engine's measurements in one configuration. */
export interface EngineResult {
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  tokens: number[];
  /** every timed run gave the same tokens as the first */
  deterministic: boolean;
}

export interface Comparison {
  shape: ShapeName;
  format: WeightFormat;
  threads: number;
  ctcspec: EngineResult | null;
  llamaCpp: EngineResult | null;
  /** why a side did not run (an engine without this format or thread count) */
  skipped: string[];
  /** tokens both agree on before the first difference (= newTokens when all agree) */
  agreeingTokens: number | null;
  /** ctcspec's (top1 - top2) / |top1| at each pick of its warm-up run: how near a tie each pick was */
  relativeGaps: number[] | null;
  /**
   * KL(ctcspec f32 || engine in this format) of the next-token distribution after the prompt,
   * in nats: how far a format moves each engine from the f32 model (f32 itself: the two
   * engines' rounding differences)
   */
  klFromF32: { ctcspec: number | null; llamaCpp: number | null };
}

export interface PeerReport {
  options: PeerBenchOptions;
  prompt: number[];
  peer: PeerInfo;
  machine: { cpu: string; cores: number; node: string };
  comparisons: Comparison[];
}

/** The config of a named shape. */
export function shapeConfig(shape: ShapeName): LlamaConfig {
  if (shape === 'stories15M') return PRESETS.stories15M!;
  const path = join(peerDir(), '..', 'configs', 'smollm2-135m.json');
  return parseConfig(JSON.parse(readFileSync(path, 'utf8')), path);
}

/** The prompt: BOS, then ordinary ids spread over the vocabulary (the same ids for both shapes). */
export function promptIds(length = PROMPT_LENGTH): number[] {
  const span = SHARED_VOCAB - FIRST_ORDINARY_ID;
  return [BOS, ...Array.from({ length: length - 1 }, (_, i) => FIRST_ORDINARY_ID + ((i * PROMPT_STRIDE) % span))];
}

/** The bench's weights: randomWeights with the decoder layers' matrices scaled up. */
export function benchWeights(config: LlamaConfig): TensorMap {
  const weights = randomWeights(config, SEED);
  for (const [name, t] of weights) {
    if (!name.startsWith('model.layers.') || name.endsWith('norm.weight')) continue;
    for (let i = 0; i < t.data.length; i++) t.data[i]! *= LAYER_WEIGHT_SCALE;
  }
  return weights;
}

// ---- ctcspec's side ----

export interface EngineRun { tokens: number[]; prefillMs: number; decodeMs: number }

/**
 * Greedy decoding from an empty cache, timed as PeerSession.greedy times llama.cpp. With
 * `gaps`, also each pick's relative distance from a tie (untimed runs only: the extra scan
 * over the logits is not part of decoding).
 */
export async function ctcspecGreedy(model: Llama, prompt: readonly number[], newTokens: number, gaps?: number[]): Promise<EngineRun> {
  const V = model.config.vocab_size;
  const tokens: number[] = [];
  const pick = (logits: Float32Array): number => {
    const best = argmaxRow(logits, 0, V);
    if (gaps) gaps.push(relativeGap(logits, best));
    return best;
  };
  model.reset();
  const t0 = performance.now();
  tokens.push(pick(await model.forward(prompt)));
  const t1 = performance.now();
  const step = [0];
  while (tokens.length < newTokens) {
    step[0] = tokens[tokens.length - 1]!;
    tokens.push(pick(await model.forward(step)));
  }
  const t2 = performance.now();
  return { tokens, prefillMs: t1 - t0, decodeMs: t2 - t1 };
}

/** log-softmax, in f64: log-probabilities that sum to one */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const out = new Float64Array(logits.length), logZ = max + Math.log(sum);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - logZ;
  return out;
}

/** KL(p || q) in nats from log-probabilities; q is renormalized first (its engine's sum may be off by rounding) */
export function klDivergence(logP: Float64Array, logQ: Float64Array): number {
  const q = logSoftmax(logQ);
  let kl = 0;
  for (let i = 0; i < logP.length; i++) if (logP[i]! > -Infinity) kl += Math.exp(logP[i]!) * (logP[i]! - q[i]!);
  return Math.max(0, kl); // rounding can leave a tiny negative
}

/** ctcspec's next-token log-probabilities after `prompt`, from an empty cache */
async function ctcspecLogProbs(model: Llama, prompt: readonly number[]): Promise<Float64Array> {
  model.reset();
  return logSoftmax(await model.forward(prompt));
}

/** (top1 - top2) / |top1|: how far the greedy pick is from a tie */
function relativeGap(logits: Float32Array, best: number): number {
  let second = -Infinity;
  for (let i = 0; i < logits.length; i++) if (i !== best && logits[i]! > second) second = logits[i]!;
  return (logits[best]! - second) / Math.abs(logits[best]!);
}

/** Why ctcspec cannot run this format or thread count, or null. */
function ctcspecUnsupported(format: WeightFormat, backend: CpuBackend, threads: number): string | null {
  const held = backend.weightFormats ?? ['f32'];
  if (!held.includes(format)) return `ctcspec: the CPU backend holds ${held.join(', ')} weights, not ${format}`;
  if (backend.threads !== threads) return `ctcspec: ${threads} threads asked, the CPU backend runs ${backend.threads}${backend.threadsNote ? ` (${backend.threadsNote})` : ''}`;
  return null;
}

// ---- the bench ----

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** `runs`: the warm-up first (tokens only), then the timed ones */
function summarize(runs: EngineRun[], promptLength: number, newTokens: number): EngineResult {
  const steps = newTokens - 1;
  const timed = runs.slice(1);
  return {
    prefillTokensPerSecond: median(timed.map((r) => (promptLength * 1000) / r.prefillMs)),
    decodeTokensPerSecond: median(timed.map((r) => (steps * 1000) / r.decodeMs)),
    tokens: runs[0]!.tokens,
    deterministic: runs.every((r) => r.tokens.join() === runs[0]!.tokens.join()),
  };
}

function agreeing(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** Every configuration of `opts`; `log` gets a line per step. */
export async function runPeerBench(opts: PeerBenchOptions, log: (line: string) => void = () => {}): Promise<PeerReport> {
  if (opts.newTokens < 2) throw new RangeError(`--new-tokens must be at least 2 (one from the prefill, one decode step), got ${opts.newTokens}`);
  const peer = await LlamaCppPeer.open();
  const workDir = mkdtempSync(join(tmpdir(), 'ctcspec-peer-'));
  const comparisons: Comparison[] = [];
  const prompt = promptIds(opts.promptTokens);
  try {
    for (const shape of opts.shapes) {
      const config = shapeConfig(shape);
      const contextLength = prompt.length + opts.newTokens;
      if (contextLength > config.max_position_embeddings) throw new RangeError(`${shape}: ${contextLength} tokens exceed its ${config.max_position_embeddings} positions`);
      const weights = benchWeights(config);
      // the f32 model's distribution every format is measured against (the same for any thread count)
      const reference = await ctcspecLogProbs(new Llama(new CpuBackend(), config, weights, { maxSeq: prompt.length, maxBatch: prompt.length }), prompt);
      for (const format of opts.formats) {
        const ggufPath = join(workDir, `${shape}-${format}.gguf`);
        const ggufProblem = exportGguf(ggufPath, config, weights, format);
        for (const threads of opts.threads) {
          log(`${shape} ${format} ${threads} thread(s)`);
          comparisons.push(await compare(peer, { shape, format, threads, config, weights, reference, ggufPath, ggufProblem, prompt, contextLength }, opts, log));
        }
        rmSync(ggufPath, { force: true });
      }
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true });
    await peer.close();
  }
  const cpu = cpus();
  return { options: opts, prompt, peer: peer.info, machine: { cpu: cpu[0]?.model ?? 'unknown', cores: cpu.length, node: process.version }, comparisons };
}

/** Write the weights as GGUF in `format`; a message when the writer cannot. */
export function exportGguf(path: string, config: LlamaConfig, weights: TensorMap, format: WeightFormat): string | null {
  const dtype = format.toUpperCase() as GgufDType;
  let fd: number | null = null;
  try {
    const { pieces } = ggufModelPieces(config, weights, { dtype, source: path });
    fd = openSync(path, 'w');
    for (const piece of pieces) writeSync(fd, piece);
    return null;
  } catch (e) {
    return `GGUF writer: ${(e as Error).message}`;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

interface Case {
  shape: ShapeName;
  format: WeightFormat;
  threads: number;
  config: LlamaConfig;
  weights: TensorMap;
  reference: Float64Array;
  ggufPath: string;
  ggufProblem: string | null;
  prompt: number[];
  contextLength: number;
}

async function compare(peer: LlamaCppPeer, c: Case, opts: PeerBenchOptions, log: (line: string) => void): Promise<Comparison> {
  const skipped: string[] = [];
  const backend = await createCpuBackend(c.threads);
  let model: Llama | null = null;
  let session: PeerSession | null = null;
  try {
    const why = ctcspecUnsupported(c.format, backend, c.threads);
    if (why) skipped.push(why);
    else model = new Llama(backend, c.config, c.weights, { maxSeq: c.contextLength, maxBatch: c.prompt.length, weights: c.format });
    if (c.ggufProblem) skipped.push(`llama.cpp: ${c.ggufProblem}`);
    else session = await peer.session(c.ggufPath, c.contextLength, c.prompt.length, c.threads);
    for (const line of skipped) log(`  skipped: ${line}`);

    const ours: EngineRun[] = [], theirs: EngineRun[] = [];
    const gaps: number[] = [];
    const runOurs = async (timed: boolean) => { if (model) ours.push(await ctcspecGreedy(model, c.prompt, opts.newTokens, timed ? undefined : gaps)); };
    const runTheirs = async () => { if (session) theirs.push(await session.greedy(c.prompt, opts.newTokens)); };
    // warm-up (JIT, caches, llama.cpp's first graph), kept out of the timings but not of the token checks
    await runOurs(false);
    await runTheirs();
    for (let rep = 0; rep < opts.reps; rep++) {
      // A B B A: neither engine always runs right after the other
      if (rep % 2 === 0) { await runOurs(true); await runTheirs(); }
      else { await runTheirs(); await runOurs(true); }
    }
    const ctcspec = model ? summarize(ours, c.prompt.length, opts.newTokens) : null;
    const llamaCpp = session ? summarize(theirs, c.prompt.length, opts.newTokens) : null;
    const agreeingTokens = ctcspec && llamaCpp ? agreeing(ctcspec.tokens, llamaCpp.tokens) : null;
    const relativeGaps = model ? gaps : null;
    const klFromF32 = {
      ctcspec: model ? klDivergence(c.reference, await ctcspecLogProbs(model, c.prompt)) : null,
      llamaCpp: session ? klDivergence(c.reference, await session.nextLogProbs(c.prompt, c.config.vocab_size)) : null,
    };
    if (ctcspec && llamaCpp) {
      log(`  decode ${ctcspec.decodeTokensPerSecond.toFixed(1)} vs ${llamaCpp.decodeTokensPerSecond.toFixed(1)} tokens/s, prefill ${ctcspec.prefillTokensPerSecond.toFixed(0)} vs ${llamaCpp.prefillTokensPerSecond.toFixed(0)}; tokens agree ${agreeingTokens}/${opts.newTokens}`);
    }
    return { shape: c.shape, format: c.format, threads: c.threads, ctcspec, llamaCpp, skipped, agreeingTokens, relativeGaps, klFromF32 };
  } finally {
    await session?.close();
    backend.close();
  }
}

// ---- the report ----

const fmt = (x: number | undefined, digits: number): string => (x === undefined ? '–' : x.toFixed(digits));
const kl = (x: number | null): string => (x === null ? '–' : x.toExponential(1));
const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined ? '–' : (a / b).toFixed(2));

/** The tokens check of one comparison, in words. */
export function agreementText(c: Comparison, newTokens: number): string {
  if (c.agreeingTokens === null) return '–';
  if (c.agreeingTokens === newTokens) return `all ${newTokens} equal`;
  const i = c.agreeingTokens;
  const gap = c.relativeGaps?.[i];
  return `first difference at token ${i}: ctcspec ${c.ctcspec!.tokens[i]}, llama.cpp ${c.llamaCpp!.tokens[i]}${gap === undefined ? '' : ` (ctcspec's top-2 gap there ${gap.toExponential(1)})`}`;
}

export function markdown(r: PeerReport, command: string, preliminary: string | null): string {
  const o = r.options;
  const lines = [
    '# ctcspec against llama.cpp (CPU)',
    '',
    ...(preliminary ? [`**Preliminary:** ${preliminary}`, ''] : []),
    `Reproduce: \`${command}\``,
    '',
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores, Node ${r.machine.node}. Peer: llama.cpp ${r.peer.llamaCpp} (${r.peer.build}) through node-llama-cpp ${r.peer.nodeLlamaCpp}.`,
    '',
    `Random weights (seed ${SEED}, decoder matrices x${LAYER_WEIGHT_SCALE}); prompt of ${r.prompt.length} ids [${r.prompt.slice(0, PROMPT_LENGTH).join(', ')}${r.prompt.length > PROMPT_LENGTH ? ', …' : ''}]; greedy, ${o.newTokens} new tokens per run (the first from the prefill, then ${o.newTokens - 1} one-token steps); fresh cache per run; median of ${o.reps} runs per engine, alternating, after one warm-up each. Both engines on the thread count shown; llama.cpp with an f32 KV cache and flash attention off. Ratios are ctcspec / llama.cpp from this one run. Smallest top-2 gap: the least (top1 − top2) / |top1| of ctcspec's logits over its picks (where it is tiny, rounding alone can flip a pick). KL from f32: KL(ctcspec f32 ‖ engine in this format) of the next-token distribution after the prompt, in nats: how far the format moves each engine from the f32 model (in f32, the engines' rounding differences).`,
    '',
    '| shape | weights | threads | decode tok/s ctcspec | decode tok/s llama.cpp | decode ratio | prefill tok/s ctcspec | prefill tok/s llama.cpp | prefill ratio | greedy tokens | smallest top-2 gap | KL from f32, ctcspec / llama.cpp |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const c of r.comparisons) {
    const a = c.ctcspec, b = c.llamaCpp;
    lines.push(
      `| ${c.shape} | ${c.format} | ${c.threads} | ${fmt(a?.decodeTokensPerSecond, 1)} | ${fmt(b?.decodeTokensPerSecond, 1)} | ${ratio(a?.decodeTokensPerSecond, b?.decodeTokensPerSecond)} | ` +
        `${fmt(a?.prefillTokensPerSecond, 0)} | ${fmt(b?.prefillTokensPerSecond, 0)} | ${ratio(a?.prefillTokensPerSecond, b?.prefillTokensPerSecond)} | ` +
        `${agreementText(c, o.newTokens)} | ${c.relativeGaps?.length ? Math.min(...c.relativeGaps).toExponential(1) : '–'} | ${kl(c.klFromF32.ctcspec)} / ${kl(c.klFromF32.llamaCpp)} |`,
    );
  }
  const notes = r.comparisons.flatMap((c) => c.skipped.map((s) => `- ${c.shape} ${c.format} ${c.threads} thread(s): ${s}`));
  const unstable = r.comparisons.flatMap((c) => [c.ctcspec?.deterministic === false ? `- ${c.shape} ${c.format} ${c.threads}: ctcspec's runs gave different tokens` : [], c.llamaCpp?.deterministic === false ? `- ${c.shape} ${c.format} ${c.threads}: llama.cpp's runs gave different tokens` : []].flat());
  if (notes.length || unstable.length) lines.push('', 'Not measured, or worth knowing:', '', ...notes, ...unstable);
  lines.push('', "Greedy tokens are compared in every format, but only f32 must agree: with 16-bit weights llama.cpp also rounds the activations to 16 bits, ctcspec widens the weights and multiplies in f32; with Q8_0 both quantize the activations per block of 32 and take int8 dot products, but add the blocks' partial sums in their own order. On random weights the top logits lie close together, so any format's rounding soon flips a pick: the KL column says how far each engine's format moved from f32.", '');
  return lines.join('\n');
}

// ---- command line ----

function listOf<T extends string>(value: string, allowed: readonly T[], flag: string): T[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new Error(`${flag}: unknown "${item}", expected some of ${allowed.join(', ')}`);
  return items as T[];
}

function positive(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: expected a positive integer, got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      short: { type: 'boolean', default: false },
      shapes: { type: 'string' },
      formats: { type: 'string' },
      threads: { type: 'string' },
      'new-tokens': { type: 'string' },
      'prompt-tokens': { type: 'string' },
      reps: { type: 'string' },
      out: { type: 'string' },
      preliminary: { type: 'string' },
    },
  });
  const base = values.short ? SHORT : FULL;
  const opts: PeerBenchOptions = {
    shapes: values.shapes ? listOf(values.shapes, SHAPES, '--shapes') : base.shapes,
    formats: values.formats ? listOf(values.formats, WEIGHT_FORMATS, '--formats') : base.formats,
    threads: values.threads ? values.threads.split(',').map((t) => positive(t, '--threads')) : base.threads,
    newTokens: values['new-tokens'] ? positive(values['new-tokens'], '--new-tokens') : base.newTokens,
    reps: values.reps ? positive(values.reps, '--reps') : base.reps,
    promptTokens: values['prompt-tokens'] ? positive(values['prompt-tokens'], '--prompt-tokens') : base.promptTokens,
  };
  const report = await runPeerBench(opts, (line) => console.log(line));
  const command = `npm run bench:peer -- ${process.argv.slice(2).filter((a) => !a.startsWith('--preliminary')).join(' ')}`.trim();
  const md = markdown(report, command, values.preliminary ?? null);
  console.log(`\n${md}`);
  const f32 = report.comparisons.filter((c) => c.format === 'f32');
  const mismatched = f32.filter((c) => c.agreeingTokens !== null && c.agreeingTokens < opts.newTokens);
  for (const c of mismatched) console.error(`f32 greedy tokens differ: ${c.shape}, ${c.threads} thread(s): ${agreementText(c, opts.newTokens)}`);
  if (values.short) {
    // the short form is a check: both engines must have run
    const unmeasured = f32.filter((c) => c.agreeingTokens === null);
    for (const c of unmeasured) console.error(`not compared: ${c.shape}, ${c.threads} thread(s): ${c.skipped.join('; ')}`);
    if (mismatched.length || unmeasured.length) process.exitCode = 1;
    return;
  }
  const prefix = values.out ?? join(peerDir(), '..', 'results', 'peer');
  mkdirSync(dirname(prefix), { recursive: true });
  writeFileSync(`${prefix}.json`, JSON.stringify({ command, preliminary: values.preliminary ?? null, ...report }, null, 1) + '\n');
  writeFileSync(`${prefix}.md`, md);
  console.log(`wrote ${prefix}.md and ${prefix}.json`);
  if (mismatched.length) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().catch((e: unknown) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
