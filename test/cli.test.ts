/** The `ctcspec` command as a user runs it (the built dist/, like `npx ctcspec`). */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'dist/src/cli/main.js');
const exec = promisify(execFile);
const run = (args: string[]) => exec(process.execPath, [cli, ...args], { cwd: root });
const USAGE_EXIT = 2, RUNTIME_EXIT = 1;
/** the stderr of a run that must fail with `exitCode` (a runtime failure unless said) */
async function fails(args: string[], exitCode = RUNTIME_EXIT): Promise<string> {
  try {
    await run(args);
  } catch (e) {
    const { code, stderr } = e as { code: number; stderr: string };
    expect(code, `ctcspec ${args.join(' ')}: ${stderr}`).toBe(exitCode);
    expect(stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    return stderr;
  }
  throw new Error(`ctcspec ${args.join(' ')} succeeded, expected a failure`);
}
const usageError = (args: string[]) => fails(args, USAGE_EXIT);

/**
 * Run with stdout a pipe whose reader goes away: at once (`closeAfter` 0, as `| true`), or
 * after the first `closeAfter` bytes (as `| head -c N`).
 */
function runWithReaderGone(args: string[], closeAfter: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  if (closeAfter === 0) child.stdout.destroy();
  else {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('latin1');
      if (stdout.length >= closeAfter) child.stdout.destroy();
    });
  }
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  return new Promise((done) => child.on('close', (code, signal) => done({ code, signal, stdout: stdout.slice(0, closeAfter), stderr })));
}

/** a fresh temporary folder holding `m/`: the tiny preset with spread random weights and a byte-level tokenizer */
async function tinyModelDir(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ctcspec-cli-'));
  const { writeModelDir } = await import('../src/node/files.js');
  const { PRESETS } = await import('../src/model/presets.js');
  const { spreadWeights } = await import('./helpers.js');
  const { BpeTokenizer, bpeToJson } = await import('../src/tokenizer/index.js');
  await writeModelDir(join(dir, 'm'), PRESETS.tiny!, spreadWeights(PRESETS.tiny!, 9, 10), { tokenizerJson: bpeToJson(new BpeTokenizer([])) });
  return dir;
}

describe('ctcspec CLI', () => {
  it('generate --json prints one object with text, tokens and stats', async () => {
    const { stdout } = await run(['generate', '--random-init', 'tiny', '--max-new-tokens', '12', '--json', '--prompt', 'Hello']);
    const out = JSON.parse(stdout);
    expect(out.tokens).toHaveLength(12);
    expect(typeof out.text).toBe('string');
    expect(out.stats.newTokens).toBe(12);
    expect(out.stats.steps).toBe(12);
    expect(out.stats.tokensPerStep).toBe(1);
    expect(out.stats.wallMs).toBeGreaterThan(0);
    expect(out.stats.tokensPerSecond).toBeGreaterThan(0);
  });

  it('sampling with a seed is reproducible, and different seeds differ', async () => {
    const args = ['generate', '--random-init', 'tiny', '--init-seed', '3', '--max-new-tokens', '16', '--json', '--temperature', '5'];
    const a = JSON.parse((await run([...args, '--seed', '1'])).stdout);
    const b = JSON.parse((await run([...args, '--seed', '1'])).stdout);
    const c = JSON.parse((await run([...args, '--seed', '2'])).stdout);
    expect(a.tokens).toEqual(b.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it('convert: a model dir -> llama2.c .bin + tokenizer.bin -> back gives the same tokens (seeded sampling)', async () => {
    const dir = await tinyModelDir(); // then converted both ways
    await run(['convert', '--model', join(dir, 'm'), '--out', join(dir, 'model.bin'), '--tokenizer-out', join(dir, 'tokenizer.bin')]);
    expect(existsSync(join(dir, 'model.bin'))).toBe(true);
    const gen = async (args: string[]) =>
      JSON.parse((await run(['generate', ...args, '--max-new-tokens', '10', '--temperature', '1', '--seed', '5', '--json'])).stdout).tokens;
    const fromDir = await gen(['--model', join(dir, 'm')]);
    expect(new Set(fromDir).size).toBeGreaterThan(1); // a model whose output says something
    writeFileSync(join(dir, 'tok.json'), readFileSync(join(dir, 'm', 'tokenizer.json')));
    // same weights through the .bin (same tokenizer, so the same prompt ids)
    expect(await gen(['--model', join(dir, 'model.bin'), '--tokenizer', join(dir, 'tok.json')])).toEqual(fromDir);
    // llama2.c's tokenizer.bin loads and drives generation (its encoder adds run.c's leading space)
    expect(await gen(['--model', join(dir, 'model.bin'), '--tokenizer', join(dir, 'tokenizer.bin')])).toHaveLength(10);
    await run(['convert', '--model', join(dir, 'model.bin'), '--tokenizer', join(dir, 'tok.json'), '--out', join(dir, 'back')]);
    expect(await gen(['--model', join(dir, 'back')])).toEqual(fromDir);
  });

  it('convert to GGUF: f32, bf16 and q8_0 files give the greedy tokens of the folder held the same way, on 1 and 2 threads', async () => {
    const dir = await tinyModelDir();
    const gen = async (args: string[]) => JSON.parse((await run(['generate', ...args, '--prompt', 'abc', '--max-new-tokens', '12', '--drafter', 'none', '--json'])).stdout).tokens;
    const fromDir = await gen(['--model', join(dir, 'm'), '--threads', '1']);
    expect(new Set(fromDir).size).toBeGreaterThan(1);
    for (const dtype of ['f32', 'bf16', 'q8_0']) {
      const file = join(dir, `m-${dtype}.gguf`);
      await run(['convert', '--model', join(dir, 'm'), '--out', file, '--dtype', dtype]);
      const one = await gen(['--model', file, '--threads', '1']);
      expect(await gen(['--model', file, '--threads', '2']), `${dtype}: 2 threads`).toEqual(one);
      // the file's Q8_0 blocks are what quantizing the folder on load makes
      if (dtype === 'q8_0') expect(one).toEqual(await gen(['--model', join(dir, 'm'), '--weights', 'q8_0', '--threads', '1']));
      else if (dtype === 'f32') expect(one).toEqual(fromDir);
      else expect(one).toEqual(await gen(['--model', join(dir, 'm'), '--weights', 'bf16', '--threads', '1']));
    }
  });

  it('bad input gets a clear error, not a stack trace', async () => {
    expect(await fails(['generate', '--random-init', 'nope'])).toMatch(/not a preset/);
    expect(await usageError(['generate', '--random-init', 'tiny', '--backend', 'tpu'])).toMatch(/--backend must be one of cpu, webgpu, got "tpu"/);
    expect(await usageError(['generate', '--random-init', 'tiny', '--max-new-tokens', 'ten'])).toMatch(/--max-new-tokens must be an integer >= 1, got "ten"/);
    expect(await fails(['generate', '--model', '/nonexistent/model'])).toMatch(/model not found/);
    expect(await fails(['generate', '--random-init', 'tiny', '--prompt', 'x'.repeat(300)])).toMatch(/longer than the context length 256/);
    expect(await usageError(['frobnicate'])).toMatch(/unknown command/);
    const dir = mkdtempSync(join(tmpdir(), 'ctcspec-cli-'));
    writeFileSync(join(dir, 'config.json'), '{"hidden_size": 30, "num_attention_heads": 4}');
    expect(await fails(['generate', '--model', dir])).toMatch(/config\.json/);
  });

  it('the README command: speculative generation on the shipped model, same tokens as plain decoding', async () => {
    // the README's first command, as written (plus --json to read its result)
    const readme = /npm ci && npx ctcspec (generate [^\n]*)/.exec(readFileSync(join(root, 'README.md'), 'utf8'));
    if (!readme) throw new Error("README.md: the first command (npm ci && npx ctcspec generate ...) is missing");
    const args = [...[...readme[1]!.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!), '--json'];
    const spec = JSON.parse((await run(args)).stdout);
    expect(spec.drafter).toBe('ctc:short:best-path'); // the shipped CTC head, in the form that pays on the CPU, is the default
    expect(spec.stats.newTokens).toBe(48);
    expect(spec.stats.draftMs).toBeGreaterThanOrEqual(0);
    expect(spec.stats.verifyMs).toBeGreaterThan(0);
    const forced = JSON.parse((await run([...args, '--tree-budget', '16'])).stdout);
    const plain = JSON.parse((await run([...args, '--drafter', 'none'])).stdout);
    expect(plain.drafter).toBe('none');
    expect(spec.tokens).toEqual(plain.tokens);
    expect(forced.tokens).toEqual(plain.tokens);
    expect(forced.stats.steps).toBeLessThan(plain.stats.steps); // drafts were accepted
    // a drafter name that names nothing is a usage error (exit 2) that says what is there
    const unknown = await usageError(['generate', '--drafter', 'oracle']);
    expect(unknown).toMatch(/unknown drafter "oracle"/);
    expect(unknown).toMatch(/heads there: .*ctc.*medusa/);
    expect(await usageError(['generate', '--drafter', 'medusa:best-path'])).toMatch(/applies to CTC heads/);
    expect(await usageError(['generate', '--drafter', 'ctc:beam:x'])).toMatch(/unknown drafter/);
  });

  it('bench, greedy and sampling: a table, JSON and SVG; greedy outputs compared with plain, sampled ones not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctcspec-bench-'));
    const common = ['bench', '--backends', 'cpu', '--drafters', 'none,lookup', '--prompts', '2', '--max-new-tokens', '8', '--tree-budget', '4'];
    const greedy = await run([...common, '--out', join(dir, 'greedy')]);
    expect(greedy.stdout).toMatch(/\| cpu \| lookup \| .* \| yes \(2\/2\) \|/);
    const g = JSON.parse(readFileSync(join(dir, 'greedy.json'), 'utf8'));
    expect(g.sampling).toBeNull();
    expect(g.runs.map((r: { drafter: string }) => r.drafter)).toEqual(['plain', 'none', 'lookup']);
    for (const r of g.runs) expect(r.mismatches).toBe(0);
    const sampled = await run([...common, '--temperature', '0.8', '--seed', '3', '--out', join(dir, 'sampled')]);
    expect(sampled.stderr).toMatch(/sampling at temperature 0\.8/);
    const s = JSON.parse(readFileSync(join(dir, 'sampled.json'), 'utf8'));
    expect(s.sampling).toEqual({ temperature: 0.8, seed: 3 });
    for (const r of s.runs) {
      expect(r.mismatches).toBeNull();
      expect(r.tokens).toBe(16); // 2 prompts x 8 tokens (no EOS that early at these seeds)
    }
    expect(readFileSync(join(dir, 'sampled.svg'), 'utf8')).toMatch(/temperature 0\.8/);
    expect(await usageError(['bench', '--temperature=-1'])).toMatch(/--temperature must be a number >= 0, got "-1"/);
    // stdout closed: the files are written before the table, and the process ends quietly
    const closed = await runWithReaderGone([...common, '--out', join(dir, 'closed')], 0);
    expect(closed).toMatchObject({ code: 0, signal: null });
    expect(closed.stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect(JSON.parse(readFileSync(join(dir, 'closed.json'), 'utf8')).runs).toHaveLength(3);
  });

  it('every usage error exits with status 2 and names the option and the value; runtime failures exit with 1', async () => {
    const tiny = ['generate', '--random-init', 'tiny'];
    const cases: [string[], RegExp][] = [
      [[...tiny, '--seed', '1.5'], /--seed must be an integer in \[0, 4294967295\], got "1\.5"/],
      [[...tiny, '--seed=-1'], /--seed must be an integer in \[0, 4294967295\], got "-1"/],
      [[...tiny, '--init-seed', '2.5'], /--init-seed must be an integer .*got "2\.5"/],
      [[...tiny, '--max-new-tokens', '0'], /--max-new-tokens must be an integer >= 1, got "0"/],
      [[...tiny, '--max-draft-len', '3.0'], /--max-draft-len must be an integer >= 1, got "3\.0"/],
      [[...tiny, '--beam', '1e6'], /--beam must be an integer in \[1, 64\], got "1e6"/],
      [[...tiny, '--beam', '65'], /--beam must be an integer in \[1, 64\], got "65"/],
      [[...tiny, '--tree-budget', '2.5'], /--tree-budget must be auto or an integer >= 0, got "2\.5"/],
      [[...tiny, '--tree-budget', '300'], /--tree-budget must be at most 255 \(the model's context length 256 less one\), got 300/],
      [[...tiny, '--temperature', 'hot'], /--temperature must be a number >= 0, got "hot"/],
      [[...tiny, '--top-p', '0'], /--top-p must be a number in \(0, 1\], got "0"/],
      [[...tiny, '--top-p', '1.5'], /--top-p must be a number in \(0, 1\], got "1\.5"/],
      [[...tiny, '--frobnicate'], /generate: Unknown option '--frobnicate'/],
      [[...tiny, '--seed'], /generate: Option '--seed <value>' argument missing/],
      [[...tiny, 'stray'], /generate: Unexpected argument 'stray'/],
      [['bench', '--prompts', '0'], /--prompts must be an integer >= 1, got "0"/],
      [['bench', '--prompts=-3'], /--prompts must be an integer >= 1, got "-3"/],
      [['bench', '--prompts', '100000', '--backends', 'cpu'], /--prompts must be at most \d+ \(the bench prompts the held-out documents make\), got 100000/],
      [['bench', '--backends', 'cpu,tpu'], /--backends must be a comma-separated list of cpu, webgpu, got "cpu,tpu"/],
      [['convert', '--model', 'weights/base'], /convert needs --out/],
      [['convert', '--model', 'weights/base', '--out', 'x', '--tokenizer-out', 't.bin'], /--tokenizer-out applies to a llama2\.c \.bin output/],
      [['convert', '--model', 'weights/base', '--out', 'x', '--dtype', 'F8'], /--dtype must be one of F32, F16, BF16, got "F8"/],
      [['train-base', '--vocab', '70000'], /--vocab must be an integer in \[259, 65536\], got "70000"/],
      [['train-base', '--steps', '1.5'], /--steps must be an integer >= 1, got "1\.5"/],
      [['train-drafter'], /train-drafter needs --kind ctc or --kind medusa/],
      [['train-drafter', '--kind', 'ctc', '--lr', '0'], /--lr must be a number > 0, got "0"/],
      [['train-drafter', '--kind', 'ctc', '--distill-seqs', '1'], /--distill-seqs must be an integer >= 2, got "1"/],
      [['train-drafter', '--kind', 'ctc', '--frames', '4', '--draft-len', '3'], /--frames \(4\) must be at least twice --draft-len \(3\)/],
      [['train-drafter', '--kind', 'medusa', '--loss', 'ce'], /--loss applies to --kind ctc only/],
    ];
    const messages = await Promise.all(cases.map(([args]) => usageError(args)));
    messages.forEach((m, i) => expect(m).toMatch(cases[i]![1]));
    expect(await fails(['convert', '--model', '/nonexistent/model', '--out', 'x.bin'])).toMatch(/model not found/);
  });

  it('a reader that stops early (| head -c 3, | true) ends the process quietly, exit 0', async () => {
    const tiny = ['generate', '--random-init', 'tiny', '--max-new-tokens', '200', '--temperature', '1'];
    for (const args of [tiny, [...tiny, '--json'], ['--help']]) {
      const r = await runWithReaderGone(args, 0);
      expect(r, args.join(' ')).toMatchObject({ code: 0, signal: null, stderr: '' }); // ended at the first write: no summary line either
    }
    const head = await runWithReaderGone([...tiny, '--prompt', 'Hi'], 3);
    expect(head).toMatchObject({ code: 0, signal: null });
    expect(head.stdout).toHaveLength(3);
    expect(head.stderr).not.toMatch(/EPIPE|\n\s+at /);
  });

  it('convert --tokenizer-out pads the tokenizer to a padded vocabulary, and the pair generates', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctcspec-cli-'));
    const { writeModelDir } = await import('../src/node/files.js');
    const { PRESETS } = await import('../src/model/presets.js');
    const { spreadWeights } = await import('./helpers.js');
    const { BpeTokenizer, bpeToJson } = await import('../src/tokenizer/index.js');
    const config = { ...PRESETS.tiny!, vocab_size: 320 }; // the tokenizer has 259 tokens
    await writeModelDir(join(dir, 'm'), config, spreadWeights(config, 9, 10), { tokenizerJson: bpeToJson(new BpeTokenizer([])) });
    await run(['convert', '--model', join(dir, 'm'), '--out', join(dir, 'model.bin'), '--tokenizer-out', join(dir, 'tokenizer.bin')]);
    const gen = async (args: string[]) => JSON.parse((await run(['generate', ...args, '--max-new-tokens', '10', '--temperature', '1', '--seed', '5', '--json', '--drafter', 'none'])).stdout).tokens;
    const fromDir = await gen(['--model', join(dir, 'm')]);
    expect(await gen(['--model', join(dir, 'model.bin'), '--tokenizer', join(dir, 'm', 'tokenizer.json')])).toEqual(fromDir);
    expect(await gen(['--model', join(dir, 'model.bin'), '--tokenizer', join(dir, 'tokenizer.bin')])).toHaveLength(10);
  });
});
