/**
 * The README's "Use your own model" commands, run as written, in order, on a small model
 * folder made here (random weights, a byte-level tokenizer, a chat template), with DIR that
 * folder and `npx ctcspec` the built CLI. Only speed options are added (fewer tokens, a short
 * distillation and training run), never ones that change what a command does.
 * Needs `npm run build` first (npm test does it).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PRESETS } from '../src/model/presets.js';
import { writeModelDir } from '../src/node/files.js';
import { BpeTokenizer, bpeToJson } from '../src/tokenizer/index.js';
import { spreadWeights } from './helpers.js';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'dist/src/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'ctcspec-readme-'));
const DIR = join(work, 'model');

/** speed options per command (the README runs them at their defaults) */
const QUICK: Record<string, string[]> = {
  generate: ['--max-new-tokens', '24', '--json'],
  'train-drafter': ['--steps', '6', '--distill-seqs', '12', '--distill-len', '40', '--positions', '16', '--seqs', '2', '--checkpoint-dir', join(work, 'ckpt')],
  chat: ['--max-new-tokens', '6', '--json'],
};

function readmeCommands(): string[][] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const block = /<!-- commands: test\/readme\.test\.ts -->\s*```sh\n([\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('README.md: the commands block of "Use your own model" is missing');
  return block[1]!
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter(Boolean)
    .map((line) => [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!));
}

function run(args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c));
  child.stderr.on('data', (c: Buffer) => (stderr += c));
  child.stdin.end(input);
  return new Promise((done) => child.on('close', (code) => done({ code, stdout, stderr })));
}

beforeAll(async () => {
  if (!existsSync(cli)) throw new Error('dist/ is missing: run npm run build first');
  const config = { ...PRESETS.tiny!, max_position_embeddings: 128 };
  await writeModelDir(DIR, config, spreadWeights(config, 5, 10), { tokenizerJson: bpeToJson(new BpeTokenizer([])) });
  writeFileSync(
    join(DIR, 'tokenizer_config.json'),
    JSON.stringify({ bos_token: '<s>', eos_token: '</s>', chat_template: "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}" }),
  );
});

describe('README: use your own model', () => {
  it('every command runs as written, and the head it trains drafts with output = plain decoding', { timeout: 600_000 }, async () => {
    const commands = readmeCommands();
    expect(commands.map((c) => c.slice(0, 3).join(' '))).toEqual([
      'npx ctcspec generate', 'npx ctcspec train-drafter', 'npx ctcspec generate', 'npx ctcspec chat', 'npx ctcspec generate',
    ]);
    const outputs: { drafter: string; tokens: number[]; stats: { steps: number } }[] = [];
    for (const command of commands) {
      const args = command.slice(2).map((a) => (a === 'DIR' ? DIR : a));
      const { code, stdout, stderr } = await run([...args, ...(QUICK[args[0]!] ?? [])], args[0] === 'chat' ? 'Hello\n' : '');
      expect(code, `${command.join(' ')}\n${stderr}`).toBe(0);
      if (args[0] === 'generate' && !args.includes('--chat')) outputs.push(JSON.parse(stdout));
      if (args[0] === 'chat' || args.includes('--chat')) expect(stdout.trim().length).toBeGreaterThan(0);
    }
    expect(existsSync(join(DIR, 'drafters/ctc/config.json'))).toBe(true);
    const [before, after] = outputs;
    expect(before!.drafter).toBe('none'); // no head yet: plain decoding, and it says so
    expect(after!.drafter).toMatch(/^ctc/); // the trained head, by the 'auto' policy
    expect(after!.tokens).toEqual(before!.tokens);
  });
});
