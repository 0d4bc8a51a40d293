/**
 * The examples run in every runtime we claim: Node and Bun (the `webgpu` npm package),
 * Deno (built-in navigator.gpu) and headless Chromium (navigator.gpu, via playwright-core),
 * each on its WebGPU backend, through the library API, drafting with the shipped model's CTC
 * head. Each must emit exactly plain greedy decoding's tokens: its own plain run's, and the
 * CPU backend's. Needs `npm run build` first (npm test does it).
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium } from 'playwright-core';
import { loadModel, SHIPPED_MODEL } from '../src/node/index.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
const env = { ...process.env, CTCSPEC_WEBGPU: 'fallback', EGL_PLATFORM: 'surfaceless' };
const dir = SHIPPED_MODEL;
const PROMPT = 'The jury said';

interface ExampleResult {
  runtime: string;
  backend: string;
  drafter: string;
  tokens: number[];
  plainTokens: number[];
  tokensPerStep: number;
  error?: string;
}
let expected: number[];

/** the last stdout line is the example's JSON result */
function result(stdout: string): ExampleResult {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!);
}

/** drafted with the CTC head (a fixed tree budget of 8: every step drafts), output = plain greedy */
function checkDrafted(r: ExampleResult, backend = 'webgpu'): void {
  expect(r.backend).toBe(backend);
  expect(r.drafter).toMatch(/^ctc/);
  expect(r.tokensPerStep).toBeGreaterThan(1);
  expect(r.tokens).toEqual(r.plainTokens);
  expect(r.tokens).toEqual(expected);
}

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/src/index.js'))) throw new Error('dist/ is missing: run npm run build first');
  const lm = await loadModel(dir, { backend: 'cpu' });
  expected = (await lm.generate(PROMPT, { drafter: 'none', maxNewTokens: 32 })).tokens;
  if (new Set(expected).size < 3) throw new Error(`reference output too uniform: ${expected}`);
});

describe('examples run on WebGPU in every runtime', () => {
  it('node (webgpu npm package)', async () => {
    const { stdout } = await run(process.execPath, [join(root, 'dist/examples/node.js'), dir, '--drafter', 'ctc', '--tree-budget', '8'], { env, cwd: root });
    checkDrafted(result(stdout));
  });

  it('node on the CPU, default budget: the CPU form of the CTC head, output = plain greedy', async () => {
    const { stdout } = await run(process.execPath, [join(root, 'dist/examples/node.js'), dir, '--cpu'], { env, cwd: root });
    const r = result(stdout);
    expect(r.drafter).toBe('ctc:short:best-path');
    expect(r.tokens).toEqual(expected);
    expect(r.plainTokens).toEqual(expected);
  });

  it('bun (webgpu npm package)', async () => {
    const { stdout } = await run(bin('bun'), [join(root, 'examples/bun.ts'), dir, '--drafter', 'ctc', '--tree-budget', '8'], { env, cwd: root });
    checkDrafted(result(stdout));
  });

  it('deno (built-in navigator.gpu)', async () => {
    const { stdout } = await run(bin('deno'), ['run', '--unstable-webgpu', '--allow-read', '--allow-env', join(root, 'examples/deno.ts'), dir, '--drafter', 'ctc', '--tree-budget', '8'], {
      env: { ...env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
      cwd: root,
    });
    checkDrafted(result(stdout));
  });

  describe('browser', () => {
    let server: Server;
    let base: string;
    const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json', '.map': 'application/json' };
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
        await page.goto(`${base}/examples/browser/?model=/model/&fallback=1&treeBudget=8&drafter=ctc`);
        await page.waitForFunction(() => (window as unknown as { __ctcspecResult?: unknown }).__ctcspecResult, null, { timeout: 90_000 });
        const r = await page.evaluate(() => (window as unknown as { __ctcspecResult: ExampleResult }).__ctcspecResult);
        expect(r.error, logs.join('\n')).toBeUndefined();
        checkDrafted(r);
      } finally {
        await browser.close();
      }
    });
  });
});
