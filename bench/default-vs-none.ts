/**
 * The default against plain decoding, as a user meets them: one fresh `ctcspec generate`
 * process per run, so every run pays its own cold start (JIT, caches, the budget learning
 * from nothing), on the held-out bench prompts (src/node/bench-spec.ts: benchPrompts).
 *
 *   npm run bench:default -- [--backends cpu,webgpu] [--prompts N] [--max-new-tokens N]
 *                            [--model DIR] [--with="ARGS"] [--out PREFIX]
 *
 * Per backend and prompt: the CLI with its default drafter and tree budget, and with
 * `--drafter none`, one right after the other, the order alternating 0 1 1 0 0 1 1 0 ... (the
 * second run of a pair tends to be faster, so neither side always runs second, and the order
 * does not simply follow the prompts' parity). The ratio is the default's
 * stats.tokensPerSecond over none's (generation only: process start-up and model loading are
 * the same for both and left out). Greedy output must equal plain greedy output token for
 * token: mismatches are reported.
 *
 * The CLI takes the prompt as text: the prompt ids are decoded, and the CLI encodes the text
 * again after a BOS. A window cut from the middle of a document has no BOS of its own (the CLI
 * adds one), and its text may encode to other ids than the window (a word cut at the window's
 * edge): the report counts the prompts whose ids the CLI gets exactly, and stars the others.
 *
 * WebGPU in a headless Linux box: CTCSPEC_WEBGPU=fallback EGL_PLATFORM=surfaceless (Mesa
 * llvmpipe), passed on to every run. `--with="--tree-budget 3"` adds arguments to the default
 * side, to bench a fixed budget the same way. Writes PREFIX.json and PREFIX.md (default
 * bench/results/default-vs-none).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchPrompts } from '../src/node/bench-spec.js';
import { loadModelSource } from '../src/node/model-source.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
/** a run that takes longer has hung (a 256-token llvmpipe run takes about 10 s) */
const RUN_TIMEOUT_MS = 300_000;

interface CliResult {
  tokens: number[];
  drafter: string;
  backend: string;
  stats: { newTokens: number; steps: number; tokensPerStep: number; tokensPerSecond: number };
}

interface PromptRow {
  prompt: number;
  /** the prompt's ids came back exactly from its text */
  exact: boolean;
  noneTokensPerSecond: number;
  defaultTokensPerSecond: number;
  ratio: number;
  /** tokens per step of the default run (1: it decoded plainly throughout) */
  defaultTokensPerStep: number;
  sameTokens: boolean;
}

interface BackendSummary {
  backend: string;
  drafter: string;
  prompts: number;
  medianRatio: number;
  minRatio: number;
  maxRatio: number;
  /** total tokens over total time, default over none */
  pooledRatio: number;
  mismatches: number;
  rows: PromptRow[];
}

/** One `ctcspec generate --json` in a fresh process. */
function runCli(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'generate', '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: RUN_TIMEOUT_MS });
    let out = '', err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`ctcspec generate ${args.join(' ')} exited with ${code}: ${err.trim().slice(-500)}`));
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as CliResult);
      } catch {
        reject(new Error(`ctcspec generate printed no JSON: ${out.slice(-300)}`));
      }
    });
  });
}

/** The prompt as the CLI takes it (text), and whether the CLI's ids (BOS, then the text's) will be the prompt's. */
function promptText(tokenizer: Tokenizer, ids: readonly number[]): { text: string; exact: boolean } {
  const body = ids[0] === tokenizer.bosId ? ids.slice(1) : ids;
  const text = tokenizer.decode(body);
  return { text, exact: tokenizer.encode(text, { bos: true }).join() === ids.join() };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function benchBackend(backend: string, texts: { text: string; exact: boolean }[], common: string[], extra: string[], log: (m: string) => void): Promise<BackendSummary> {
  const rows: PromptRow[] = [];
  let drafter = '';
  let noneTokens = 0, noneSeconds = 0, defaultTokens = 0, defaultSeconds = 0;
  for (const [i, { text, exact }] of texts.entries()) {
    const args = ['--backend', backend, '--prompt', text, ...common];
    const runNone = () => runCli([...args, '--drafter', 'none']);
    const runDefault = () => runCli([...args, ...extra]);
    let none: CliResult, dflt: CliResult;
    if (((i >> 1) + i) % 2 === 0) {
      none = await runNone();
      dflt = await runDefault();
    } else {
      dflt = await runDefault();
      none = await runNone();
    }
    drafter = dflt.drafter;
    const row: PromptRow = {
      prompt: i, exact,
      noneTokensPerSecond: none.stats.tokensPerSecond, defaultTokensPerSecond: dflt.stats.tokensPerSecond,
      ratio: dflt.stats.tokensPerSecond / none.stats.tokensPerSecond, defaultTokensPerStep: dflt.stats.tokensPerStep,
      sameTokens: dflt.tokens.join() === none.tokens.join(),
    };
    rows.push(row);
    noneTokens += none.stats.newTokens;
    noneSeconds += none.stats.newTokens / none.stats.tokensPerSecond;
    defaultTokens += dflt.stats.newTokens;
    defaultSeconds += dflt.stats.newTokens / dflt.stats.tokensPerSecond;
    log(`[${backend}] prompt ${i}: none ${row.noneTokensPerSecond.toFixed(1)} tokens/s, default (${drafter}) ${row.defaultTokensPerSecond.toFixed(1)} tokens/s, ratio ${row.ratio.toFixed(3)}, ${row.defaultTokensPerStep.toFixed(2)} tokens/step${row.sameTokens ? '' : ', OUTPUT DIFFERS'}`);
  }
  const ratios = rows.map((r) => r.ratio);
  return {
    backend, drafter, prompts: rows.length, medianRatio: median(ratios), minRatio: Math.min(...ratios), maxRatio: Math.max(...ratios),
    pooledRatio: defaultTokens / defaultSeconds / (noneTokens / noneSeconds), mismatches: rows.filter((r) => !r.sameTokens).length, rows,
  };
}

function markdown(command: string, maxNewTokens: number, summaries: readonly BackendSummary[]): string {
  const lines = [
    `Command: \`${command}\``,
    '',
    `Fresh-process CLI runs, ${maxNewTokens} new tokens, greedy; ratio = default tokens/s over \`--drafter none\` tokens/s.`,
    '',
    '| backend | default drafter | prompts | median ratio | min | max | pooled ratio | output = plain greedy |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const s of summaries) {
    lines.push(`| ${s.backend} | ${s.drafter} | ${s.prompts} | ${s.medianRatio.toFixed(3)} | ${s.minRatio.toFixed(3)} | ${s.maxRatio.toFixed(3)} | ${s.pooledRatio.toFixed(3)} | ${s.mismatches === 0 ? 'yes' : `NO: ${s.mismatches} differ`} |`);
  }
  for (const s of summaries) {
    lines.push('', `${s.backend}, per prompt:`, '', '| prompt | none tokens/s | default tokens/s | ratio | default tokens/step |', '|---|---|---|---|---|');
    for (const r of s.rows) lines.push(`| ${r.prompt}${r.exact ? '' : '*'} | ${r.noneTokensPerSecond.toFixed(1)} | ${r.defaultTokensPerSecond.toFixed(1)} | ${r.ratio.toFixed(3)} | ${r.defaultTokensPerStep.toFixed(2)} |`);
  }
  lines.push('', '\\* the CLI gets other ids than the bench prompt: a BOS before a window from mid-document, or a word cut at the window\'s edge encoded anew.');
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      backends: { type: 'string', default: 'cpu' },
      prompts: { type: 'string', default: '50' },
      'max-new-tokens': { type: 'string', default: '128' },
      model: { type: 'string' },
      with: { type: 'string', default: '' },
      out: { type: 'string', default: 'bench/results/default-vs-none' },
    },
  });
  const count = Number(values.prompts), maxNewTokens = Number(values['max-new-tokens']);
  if (!(Number.isInteger(count) && count >= 1)) throw new Error(`--prompts must be an integer >= 1, got "${values.prompts}"`);
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 1)) throw new Error(`--max-new-tokens must be an integer >= 1, got "${values['max-new-tokens']}"`);
  const log = (m: string) => process.stderr.write(m + '\n');
  const loaded = await loadModelSource({ model: values.model });
  const texts = (await benchPrompts(loaded.tokenizer, count)).map((ids) => promptText(loaded.tokenizer, ids));
  log(`default vs none: ${count} prompts (${texts.filter((t) => t.exact).length} reach the CLI as the same ids), ${maxNewTokens} new tokens, fresh CLI processes`);
  const common = ['--max-new-tokens', String(maxNewTokens), ...(values.model ? ['--model', values.model] : [])];
  const extra = values.with!.split(' ').filter(Boolean);
  const summaries: BackendSummary[] = [];
  for (const backend of values.backends!.split(',').filter(Boolean)) summaries.push(await benchBackend(backend, texts, common, extra, log));
  const command = ['npm run bench:default --', ...process.argv.slice(2)].join(' ');
  const md = markdown(command, maxNewTokens, summaries);
  console.log(md);
  mkdirSync(dirname(values.out!), { recursive: true });
  // a model under the working directory is named by its relative path: the file reads the same from any checkout
  const inside = isAbsolute(loaded.description) && !relative(process.cwd(), loaded.description).startsWith('..');
  const model = inside ? relative(process.cwd(), loaded.description) : loaded.description;
  writeFileSync(`${values.out}.json`, JSON.stringify({ date: new Date().toISOString(), command, model, maxNewTokens, extraArgs: extra, summaries }, null, 2) + '\n');
  writeFileSync(`${values.out}.md`, md);
  log(`wrote ${values.out}.json, ${values.out}.md`);
}

main().catch((e: Error) => {
  console.error(`bench:default: ${e.message}`);
  process.exit(1);
});
