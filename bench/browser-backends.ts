/**
 * The browser backends side by side in headless Chromium (Debian's /usr/bin/chromium through
 * playwright-core): WebGPU, WebGL through gpu.js, and the CPU, each in a fresh page
 * (bench/browser/), on the held-out bench prompts (src/node/bench-spec.ts: benchPrompts).
 *
 *   npm run build && node dist/bench/browser-backends.js [--backends webgpu,webgl,cpu]
 *       [--prompts N] [--max-new-tokens N] [--tree-budget N] [--head-backend cpu|model]
 *       [--out PREFIX]
 *
 * Per backend: prefill tokens/s (prompt tokens over the prefill's time), decode tokens/s
 * (new tokens after the first over the rest of a plain greedy run), and gamma of the CTC head
 * (a drafted greedy run's tokens/s over a plain run's, on the same prompt, paired in
 * alternating order; the first prompt warms up and is left out). Every drafted output is
 * compared with plain greedy, and every backend's plain output with the CPU's: mismatches are
 * reported. On a machine without a GPU, WebGPU and WebGL both run on SwiftShader / the CPU
 * cores, and the report says which adapter ran. Writes PREFIX.json and PREFIX.md (default
 * bench/results/browser-backends).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { benchPrompts } from '../src/node/bench-spec.js';
import { loadModel, SHIPPED_MODEL } from '../src/node/index.js';
import { PACKAGE_ROOT, serveStatic } from '../src/node/serve.js';

const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
/** a backend's whole run in its page; longer means it hung */
const PAGE_TIMEOUT_MS = 1_800_000;
/** prompts run before the measured ones (compiles shaders, warms the JIT) */
const WARMUP_PROMPTS = 1;

interface Row {
  promptTokens: number;
  prefillMs: number;
  decodeTokens: number;
  decodeMs: number;
  plainTokensPerSecond: number;
  ctcTokensPerSecond: number;
  ctcTokensPerStep: number;
  sameTokens: boolean;
  plainTokens: number[];
}
interface PageResult {
  backend: string;
  description: string;
  why: string;
  rows: Row[];
}
interface Summary {
  backend: string;
  adapter: string;
  prompts: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  ctcTokensPerStep: number;
  gamma: number;
  draftedMismatches: number;
  cpuMismatches: number;
}

const { values: args } = parseArgs({
  options: {
    backends: { type: 'string', default: 'webgpu,webgl,cpu' },
    prompts: { type: 'string', default: '6' },
    'max-new-tokens': { type: 'string', default: '64' },
    'tree-budget': { type: 'string', default: '8' },
    'head-backend': { type: 'string', default: 'model' },
    out: { type: 'string', default: 'bench/results/browser-backends' },
  },
});

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: number[]) => (xs.length ? sum(xs) / xs.length : NaN);

async function main(): Promise<void> {
  const backends = args.backends!.split(',');
  const maxNewTokens = Number(args['max-new-tokens']), treeBudget = Number(args['tree-budget']);
  const cpuModel = await loadModel(SHIPPED_MODEL, { backend: 'cpu' });
  const prompts = await benchPrompts(cpuModel.tokenizer, Number(args.prompts) + WARMUP_PROMPTS);
  const expected: number[][] = [];
  for (const p of prompts) expected.push((await cpuModel.generate(p, { drafter: 'none', maxNewTokens, eosId: null })).tokens);

  const server = await serveStatic({ root: PACKAGE_ROOT, port: 0 });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  const summaries: Summary[] = [];
  try {
    for (const backend of backends) {
      const page = await browser.newPage();
      page.on('pageerror', (e) => console.error(`[${backend}] ${e.message}`));
      await page.goto(`${server.url}bench/browser/`);
      await page.waitForFunction(() => (window as unknown as { __bench?: unknown }).__bench);
      page.setDefaultTimeout(PAGE_TIMEOUT_MS);
      const r = await page.evaluate(
        (o) => (window as unknown as { __bench: { run(o: unknown): Promise<PageResult> } }).__bench.run(o),
        { backend, model: '/weights/base/', prompts, maxNewTokens, treeBudget, headBackend: args['head-backend'] },
      );
      await page.close();
      const rows = r.rows.slice(WARMUP_PROMPTS);
      const s: Summary = {
        backend: r.backend,
        adapter: r.description,
        prompts: rows.length,
        prefillTokensPerSecond: (sum(rows.map((x) => x.promptTokens)) / sum(rows.map((x) => x.prefillMs))) * 1000,
        decodeTokensPerSecond: (sum(rows.map((x) => x.decodeTokens)) / sum(rows.map((x) => x.decodeMs))) * 1000,
        ctcTokensPerStep: mean(rows.map((x) => x.ctcTokensPerStep)),
        gamma: mean(rows.map((x) => x.ctcTokensPerSecond / x.plainTokensPerSecond)),
        draftedMismatches: r.rows.filter((x) => !x.sameTokens).length,
        cpuMismatches: r.rows.filter((x, i) => JSON.stringify(x.plainTokens) !== JSON.stringify(expected[i])).length,
      };
      summaries.push(s);
      console.log(JSON.stringify(s));
    }
  } finally {
    await browser.close();
    await server.close();
  }
  const out = args.out!;
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(`${out}.json`, JSON.stringify({ maxNewTokens, treeBudget, headBackend: args['head-backend'], warmupPrompts: WARMUP_PROMPTS, summaries }, null, 2) + '\n');
  const md = [
    `# Browser backends (headless Chromium), shipped model, ${summaries[0]?.prompts ?? 0} bench prompts, ${maxNewTokens} new tokens, CTC head with tree budget ${treeBudget} (head on ${args['head-backend'] === 'model' ? 'the backend' : 'the CPU'})`,
    '',
    '| backend | adapter | prefill tokens/s | decode tokens/s | CTC tokens/step | gamma | drafted != plain | plain != CPU |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...summaries.map((s) => `| ${s.backend} | ${s.adapter} | ${s.prefillTokensPerSecond.toFixed(0)} | ${s.decodeTokensPerSecond.toFixed(1)} | ${s.ctcTokensPerStep.toFixed(2)} | ${s.gamma.toFixed(2)} | ${s.draftedMismatches} | ${s.cpuMismatches} |`),
    '',
  ].join('\n');
  writeFileSync(`${out}.md`, md);
  console.log(md);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
