/** The `ctcspec` command as a user runs it (the built dist/, like `npx ctcspec`). */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'dist/src/cli/main.js');
const exec = promisify(execFile);
const run = (args: string[]) => exec(process.execPath, [cli, ...args], { cwd: root });
async function fails(args: string[]): Promise<string> {
  try {
    await run(args);
  } catch (e) {
    return (e as { stderr: string }).stderr;
  }
  throw new Error(`ctcspec ${args.join(' ')} succeeded, expected a failure`);
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
    const dir = mkdtempSync(join(tmpdir(), 'ctcspec-cli-'));
    // make a model dir from the random-init preset through the library, then convert both ways
    const { writeModelDir } = await import('../src/node/files.js');
    const { PRESETS } = await import('../src/model/presets.js');
    const { spreadWeights } = await import('./helpers.js');
    const { BpeTokenizer, bpeToJson } = await import('../src/tokenizer/index.js');
    await writeModelDir(join(dir, 'm'), PRESETS.tiny!, spreadWeights(PRESETS.tiny!, 9, 10), { tokenizerJson: bpeToJson(new BpeTokenizer([])) });
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

  it('bad input gets a clear error, not a stack trace', async () => {
    expect(await fails(['generate', '--random-init', 'nope'])).toMatch(/not a preset/);
    expect(await fails(['generate', '--random-init', 'tiny', '--backend', 'tpu'])).toMatch(/unknown backend "tpu"/);
    expect(await fails(['generate', '--random-init', 'tiny', '--max-new-tokens', 'ten'])).toMatch(/--max-new-tokens must be a number/);
    expect(await fails(['generate', '--model', '/nonexistent/model'])).toMatch(/model not found/);
    expect(await fails(['generate', '--random-init', 'tiny', '--prompt', 'x'.repeat(300)])).toMatch(/longer than the context length 256/);
    expect(await fails(['frobnicate'])).toMatch(/unknown command/);
    const dir = mkdtempSync(join(tmpdir(), 'ctcspec-cli-'));
    writeFileSync(join(dir, 'config.json'), '{"hidden_size": 30, "num_attention_heads": 4}');
    expect(await fails(['generate', '--model', dir])).toMatch(/config\.json/);
  });

  it('the README command: speculative generation on the shipped model, same tokens as plain decoding', async () => {
    const args = ['generate', '--prompt', 'The jury said', '--max-new-tokens', '24', '--json'];
    const spec = JSON.parse((await run(args)).stdout);
    expect(spec.drafter).toBe('ctc:short:best-path'); // the shipped CTC head, in the form that pays on the CPU, is the default
    expect(spec.stats.newTokens).toBe(24);
    expect(spec.stats.draftMs).toBeGreaterThanOrEqual(0);
    expect(spec.stats.verifyMs).toBeGreaterThan(0);
    const forced = JSON.parse((await run([...args, '--tree-budget', '16'])).stdout);
    const plain = JSON.parse((await run([...args, '--drafter', 'none'])).stdout);
    expect(plain.drafter).toBe('none');
    expect(spec.tokens).toEqual(plain.tokens);
    expect(forced.tokens).toEqual(plain.tokens);
    expect(forced.stats.steps).toBeLessThan(plain.stats.steps); // drafts were accepted (19 steps for 24 tokens when pinned)
    const unknown = await fails(['generate', '--drafter', 'oracle']);
    expect(unknown).toMatch(/unknown drafter "oracle"/);
    expect(unknown).toMatch(/heads there: .*ctc.*medusa/); // names what is there
    expect(await fails(['generate', '--drafter', 'medusa:best-path'])).toMatch(/applies to CTC heads/);
    expect(await fails(['generate', '--drafter', 'ctc:beam:x'])).toMatch(/unknown drafter/);
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
    expect(await fails(['bench', '--temperature=-1'])).toMatch(/--temperature must be >= 0/);
  });
});
