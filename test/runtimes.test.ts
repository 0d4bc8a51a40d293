/**
 * The examples run in every runtime we claim: Node and Bun (the `webgpu` npm package),
 * Deno (built-in navigator.gpu) and headless Chromium (navigator.gpu, via playwright-core),
 * each on its WebGPU backend, and each must produce the CPU backend's greedy tokens for a
 * tiny model written to a temporary directory. Needs `npm run build` first (npm test does it).
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium } from 'playwright-core';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { Llama } from '../src/model/llama.js';
import { generate } from '../src/decode/generate.js';
import { PRESETS } from '../src/model/presets.js';
import { BpeTokenizer, bpeToJson } from '../src/tokenizer/index.js';
import { writeModelDir } from '../src/node/files.js';
import { spreadWeights } from './helpers.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
const env = { ...process.env, CTCSPEC_WEBGPU: 'fallback', EGL_PLATFORM: 'surfaceless' };

let dir: string;
let expected: number[];

/** the last stdout line is the example's JSON result */
function result(stdout: string): { runtime: string; backend: string; tokens: number[]; text: string } {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!);
}

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/src/index.js'))) throw new Error('dist/ is missing: run npm run build first');
  dir = mkdtempSync(join(tmpdir(), 'ctcspec-model-'));
  const config = PRESETS.tiny!;
  const tensors = spreadWeights(config, 11, 10);
  const tokenizer = new BpeTokenizer([]);
  await writeModelDir(dir, config, tensors, { tokenizerJson: bpeToJson(tokenizer) });
  const model = new Llama(new CpuBackend(), config, tensors);
  expected = (await generate(model, tokenizer.encode('Once upon a time', { bos: true }), { maxNewTokens: 24 })).tokens;
  // a comparison worth making: the tiny model's greedy output is not one repeated token
  if (new Set(expected).size < 3) throw new Error(`reference output too uniform: ${expected}`);
});

describe('examples run on WebGPU in every runtime', () => {
  it('node (webgpu npm package)', async () => {
    const { stdout } = await run(process.execPath, [join(root, 'dist/examples/node.js'), dir], { env, cwd: root });
    const r = result(stdout);
    expect(r.backend).toBe('webgpu');
    expect(r.tokens).toEqual(expected);
  });

  it('bun (webgpu npm package)', async () => {
    const { stdout } = await run(bin('bun'), [join(root, 'examples/bun.ts'), dir], { env, cwd: root });
    const r = result(stdout);
    expect(r.backend).toBe('webgpu');
    expect(r.tokens).toEqual(expected);
  });

  it('deno (built-in navigator.gpu)', async () => {
    const { stdout } = await run(bin('deno'), ['run', '--unstable-webgpu', '--allow-read', '--allow-env', join(root, 'examples/deno.ts'), dir], {
      env: { ...env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
      cwd: root,
    });
    const r = result(stdout);
    expect(r.backend).toBe('webgpu');
    expect(r.tokens).toEqual(expected);
  });

  describe('browser', () => {
    let server: Server;
    let base: string;
    const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.map': 'application/json' };
    beforeAll(async () => {
      // serves the repository root, and the test model under /model/
      server = createServer((req, res) => {
        const url = new URL(req.url!, 'http://x');
        const path = url.pathname.startsWith('/model/') ? join(dir, url.pathname.slice(7)) : join(root, url.pathname);
        const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'index.html') : path;
        if (!existsSync(file)) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
      });
      await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
      const addr = server.address();
      base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    });
    afterAll(() => server?.close());

    it('headless chromium (navigator.gpu)', async () => {
      const browser = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      });
      try {
        const page = await browser.newPage();
        const logs: string[] = [];
        page.on('console', (m) => logs.push(m.text()));
        page.on('pageerror', (e) => logs.push(String(e)));
        await page.goto(`${base}/examples/browser/?model=/model/&fallback=1`);
        await page.waitForFunction(() => (window as unknown as { __ctcspecResult?: unknown }).__ctcspecResult, null, { timeout: 90_000 });
        const r = await page.evaluate(() => (window as unknown as { __ctcspecResult: { backend: string; tokens: number[]; error?: string } }).__ctcspecResult);
        expect(r.error, logs.join('\n')).toBeUndefined();
        expect(r.backend, logs.join('\n')).toBe('webgpu');
        expect(r.tokens).toEqual(expected);
      } finally {
        await browser.close();
      }
    });
  });
});
