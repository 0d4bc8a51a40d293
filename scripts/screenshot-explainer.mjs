#!/usr/bin/env node
// The README's picture of the explainer: serves the package root, opens
// examples/explainer/ in headless Chromium at 1200 x 800 on the CPU backend (the same
// pictures on every machine), shows the step that accepted the most drafted tokens, and
// writes the screenshot. (Chromium's PNG is already compact: re-filtering every row and
// deflating at level 9 saved nothing on it.)
//
//   npm run build && node scripts/screenshot-explainer.mjs [out.png]   (default docs/explainer.png)
//   CHROMIUM=/path/to/chromium overrides /usr/bin/chromium
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { PACKAGE_ROOT, serveStatic } from '../dist/src/node/serve.js';

const VIEWPORT = { width: 1200, height: 800 };
const QUERY = new URLSearchParams({ backend: 'cpu', drafter: 'ctc', treeBudget: '8', maxNewTokens: '40', prompt: 'The jury said', autoplay: '0', step: 'best' });
const out = resolve(process.argv[2] ?? `${PACKAGE_ROOT}/docs/explainer.png`);

const server = await serveStatic({ root: PACKAGE_ROOT, port: 0 });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-quic', '--disable-background-networking', '--no-first-run'] });
try {
  const page = await browser.newPage({ viewport: VIEWPORT });
  let failure = null;
  page.on('pageerror', (e) => (failure = e));
  await page.goto(`${server.url}examples/explainer/?${QUERY}`);
  await page.waitForFunction(() => window.__explainer?.ready || window.__explainer?.error, null, { timeout: 120_000 });
  const state = await page.evaluate(() => ({ error: window.__explainer.error }));
  if (failure || state.error) throw new Error(`the page failed: ${failure?.message ?? state.error}`);
  const png = await page.screenshot();
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, png);
  console.log(`${out}: ${VIEWPORT.width} x ${VIEWPORT.height}, ${png.length} bytes`);
} finally {
  await browser.close();
  await server.close();
}
