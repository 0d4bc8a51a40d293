/**
 * The CTC drafting explainer (examples/explainer/) in headless Chromium, served by the
 * package's own static server: for a fixed prompt, drafter 'ctc' and tree budget 8, every
 * panel draws its content, the text it shows is plain greedy decoding's (computed here with
 * the library on the CPU), and stepping forward then back shows the same pictures. A
 * screenshot is saved as a CI artifact (CTCSPEC_ARTIFACTS, else test-artifacts/).
 * Also, in Node: the CTC head's frames hook (CtcHeadDrafter.onFrames) hands over one copy per
 * proposal, in step order, normalised, and they are the frames the drafts were read from.
 * Needs `npm run build` first (the page imports dist/).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadModel, SHIPPED_MODEL } from '../src/node/index.js';
import { PACKAGE_ROOT, serveStatic, type StaticServer } from '../src/node/serve.js';
import type { CtcFrames, CtcHeadDrafter } from '../src/draft/ctc-head.js';
import type { TextModel } from '../src/api/text-model.js';
import { ctcCollapse } from '../src/decode/ctc-best-path.js';
import { argmaxRow } from '../src/util/numeric.js';

const root = resolve(import.meta.dirname, '..');
const artifacts = process.env.CTCSPEC_ARTIFACTS ?? join(root, 'test-artifacts');
const PROMPT = 'The jury said';
const MAX_NEW_TOKENS = 32;
const TREE_BUDGET = 8;
const FRAMES = 8; // S of the shipped CTC head
/** longer than one autoplay tick of the page (1.4 s): a paused player must not move in it */
const AUTOPLAY_PAUSE_CHECK_MS = 2000;
const PANELS = ['text', 'stats', 'race', 'frames', 'best-path', 'beam', 'tree', 'mask'];
const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** what the page exposes as window.__explainer once a run is shown */
interface ExplainerState {
  ready: boolean;
  error?: string;
  backend: string;
  drafter: string;
  tokens: number[];
  plainTokens: number[];
  text: string;
  kinds: string[];
  acceptedPerStep: number[];
  index: number;
}

let lm: TextModel;
let expected: { tokens: number[]; text: string };
let server: StaticServer;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/src/index.js'))) throw new Error('dist/ is missing: run npm run build first');
  lm = await loadModel(SHIPPED_MODEL, { backend: 'cpu' });
  const plain = await lm.generate(PROMPT, { drafter: 'none', maxNewTokens: MAX_NEW_TOKENS });
  expected = { tokens: plain.tokens, text: plain.text };
  if (new Set(expected.tokens).size < 3) throw new Error(`reference output too uniform: ${expected.tokens}`);
  server = await serveStatic({ root: PACKAGE_ROOT, port: 0 });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

/** open the page with these query parameters and wait for both runs to be shown */
async function openExplainer(query: Record<string, string>): Promise<{ page: Page; state: ExplainerState; logs: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const logs: string[] = [];
  page.on('console', (m) => logs.push(m.text()));
  // an uncaught error (a module that does not load, say) ends the wait at once, with its message
  const crashed = new Promise<never>((_, fail) => page.on('pageerror', (e) => fail(new Error(`the page failed: ${e.message}\n${logs.join('\n')}`))));
  const params = new URLSearchParams({ prompt: PROMPT, drafter: 'ctc', treeBudget: String(TREE_BUDGET), maxNewTokens: String(MAX_NEW_TOKENS), autoplay: '0', ...query });
  await page.goto(`${server.url}examples/explainer/?${params}`);
  const shown = page.waitForFunction(() => {
    const s = (window as unknown as { __explainer?: ExplainerState }).__explainer;
    return s?.ready || s?.error;
  }, null, { timeout: 90_000 });
  await Promise.race([shown, crashed]);
  const state = await page.evaluate(() => {
    const s = (window as unknown as { __explainer: ExplainerState }).__explainer;
    return { ...s, index: s.index, show: undefined };
  });
  expect(state.error, logs.join('\n')).toBeUndefined();
  return { page, state, logs };
}

/** every panel's drawn content (its body's markup), keyed by panel */
function panelContents(page: Page): Promise<Record<string, string>> {
  return page.evaluate((ids) => Object.fromEntries(ids.map((id) => [id, document.querySelector(`#panel-${id} .body`)!.innerHTML])), PANELS);
}

/** counts of the marks each panel draws on a drafting step */
function panelCounts(page: Page) {
  return page.evaluate(() => {
    const count = (selector: string) => document.querySelectorAll(selector).length;
    const text = (selector: string) => document.querySelector(selector)?.textContent ?? '';
    return {
      heatCells: count('#panel-frames rect.cell'),
      bestCells: count('#panel-frames rect.cell.best'),
      pathRows: count('#panel-best-path .path-row'),
      pathChips: count('#panel-best-path .path-row:first-child .chip'),
      collapsed: text('#panel-best-path .path-row:nth-child(3)'),
      candidates: count('#panel-beam tr.candidate'),
      treeNodes: count('#panel-tree g.node'),
      acceptedNodes: count('#panel-tree g.node.accepted'),
      bonusNodes: count('#panel-tree g.node.bonus'),
      maskCells: count('#panel-mask rect.cell'),
      maskRows: count('#panel-mask text.row-label'),
      acceptedText: text('#panel-text .text .accepted'),
      bonusText: text('#panel-text .text .bonus'),
      raceLines: count('#panel-race polyline.run'),
      statsRows: count('#panel-stats tr'),
      text: text('#panel-text .text'),
    };
  });
}

const stepIndex = (page: Page) => page.evaluate(() => (window as unknown as { __explainer: ExplainerState }).__explainer.index);

describe('the explainer page', () => {
  it('CPU backend: every panel draws, the text is plain greedy decoding, back and forward show the same steps', async () => {
    const { page, state } = await openExplainer({ backend: 'cpu' });
    try {
      expect(state.backend).toBe('cpu');
      expect(state.drafter).toBe('ctc');
      expect(state.tokens).toEqual(expected.tokens);
      expect(state.plainTokens).toEqual(expected.tokens);
      expect(state.text).toBe(expected.text);
      expect(state.kinds[0]).toBe('prefill');
      expect(state.kinds.slice(1).every((k) => k === 'draft')).toBe(true); // a fixed budget of 8: every step drafts
      expect(state.acceptedPerStep.some((n) => n > 0)).toBe(true);

      // forward through every step with the button, recording what each panel shows
      const last = state.kinds.length - 1;
      const forward: Record<string, string>[] = [];
      for (let i = 0; i <= last; i++) {
        expect(await stepIndex(page)).toBe(i);
        forward.push(await panelContents(page));
        const counts = await panelCounts(page);
        expect(counts.raceLines).toBe(2);
        expect(counts.statsRows).toBeGreaterThan(1);
        expect(counts.text.startsWith(PROMPT)).toBe(true);
        if (state.kinds[i] === 'draft') {
          const accepted = state.acceptedPerStep[i]!;
          expect(counts.bestCells, `step ${i}`).toBe(FRAMES); // one argmax per frame
          expect(counts.heatCells % FRAMES).toBe(0);
          expect(counts.heatCells).toBeGreaterThanOrEqual(2 * FRAMES); // BLANK and at least one token
          expect(counts.pathRows).toBe(3);
          expect(counts.pathChips).toBe(FRAMES);
          expect(counts.candidates).toBeGreaterThan(0);
          const treeSize = counts.treeNodes - counts.bonusNodes; // root + draft nodes
          expect(counts.bonusNodes).toBe(1);
          expect(treeSize).toBeGreaterThanOrEqual(2);
          expect(treeSize - 1).toBeLessThanOrEqual(TREE_BUDGET);
          expect(counts.acceptedNodes).toBe(accepted);
          expect(counts.maskRows).toBe(treeSize);
          expect(counts.maskCells).toBe(treeSize * (treeSize + 1)); // the cache column and one per node
          expect(counts.acceptedText.length > 0).toBe(accepted > 0);
        }
        if (i < last) await page.click('#forward');
      }
      expect(await page.isDisabled('#forward')).toBe(true);

      // the last step's text: the prompt, then exactly plain greedy decoding's continuation
      expect((await panelCounts(page)).text).toBe(PROMPT + lm.tokenizer.decode(expected.tokens));

      // back to the first step: each step's panels as they were on the way forward
      for (let i = last; i >= 0; i--) {
        expect(await stepIndex(page)).toBe(i);
        expect(await panelContents(page), `step ${i}`).toEqual(forward[i]);
        if (i > 0) await page.click('#back');
      }
      expect(await page.isDisabled('#back')).toBe(true);

      // and the slider lands on the same pictures
      const best = state.acceptedPerStep.indexOf(Math.max(...state.acceptedPerStep));
      await page.locator('#slider').fill(String(best));
      expect(await panelContents(page)).toEqual(forward[best]);
      const counts = await panelCounts(page);
      expect(counts.acceptedText.length).toBeGreaterThan(0);
      expect(counts.bonusText.length).toBeGreaterThan(0);

      // autoplay steps forward by itself, and pauses
      await page.click('#first');
      await page.click('#play');
      await page.waitForFunction(() => (window as unknown as { __explainer: ExplainerState }).__explainer.index > 0, null, { timeout: 10_000 });
      await page.click('#play');
      const paused = await stepIndex(page);
      await page.waitForTimeout(AUTOPLAY_PAUSE_CHECK_MS);
      expect(await stepIndex(page)).toBe(paused);

      mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, 'explainer-cpu.png') });
    } finally {
      await page.close();
    }
  });

  it('WebGPU (software adapter): the same output, and the panels draw', async () => {
    const { page, state, logs } = await openExplainer({ fallback: '1', step: 'best' });
    try {
      expect(state.backend, logs.join('\n')).toBe('webgpu');
      expect(state.tokens).toEqual(expected.tokens);
      expect(state.plainTokens).toEqual(expected.tokens);
      const counts = await panelCounts(page);
      expect(counts.bestCells).toBe(FRAMES);
      expect(counts.candidates).toBeGreaterThan(0);
      expect(counts.acceptedNodes).toBe(Math.max(...state.acceptedPerStep));
      mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, 'explainer-webgpu.png') });
    } finally {
      await page.close();
    }
  });
});

describe('CtcHeadDrafter.onFrames', () => {
  /** one generation's draft steps and the frames handed over during it */
  async function framesOfRun(drafterName: string) {
    const head = (await lm.drafter(drafterName)) as CtcHeadDrafter;
    const received: { frames: CtcFrames; snapshot: Float32Array }[] = [];
    head.onFrames = (frames) => received.push({ frames, snapshot: frames.logProbs.slice() });
    const steps = [];
    try {
      for await (const e of lm.stream(PROMPT, { drafter: drafterName, treeBudget: TREE_BUDGET, maxNewTokens: MAX_NEW_TOKENS })) {
        if (e.type === 'step' && e.kind === 'draft') steps.push(e);
      }
    } finally {
      head.onFrames = null;
    }
    return { steps, received };
  }

  it('one normalised copy per proposal, in step order: the root of each is its step tree root', async () => {
    const { steps, received } = await framesOfRun('ctc');
    expect(steps.length).toBeGreaterThan(1);
    expect(received.length).toBe(steps.length);
    received.forEach(({ frames, snapshot }, i) => {
      expect(frames.frames).toBe(FRAMES);
      expect(frames.classes).toBe(lm.config.vocab_size + 1);
      expect(frames.blankClass).toBe(lm.config.vocab_size);
      expect(frames.root).toBe(steps[i]!.tree!.tokens[0]);
      expect(frames.logProbs).toEqual(snapshot); // a copy: later proposals do not write into it
      for (let t = 0; t < FRAMES; t++) {
        let sum = 0;
        for (let c = 0; c < frames.classes; c++) sum += Math.exp(frames.logProbs[t * frames.classes + c]!);
        expect(Math.abs(sum - 1)).toBeLessThan(1e-4);
      }
    });
  });

  it('ctc:best-path drafts the collapse of the frames’ argmax path (cut to the step’s length)', async () => {
    const { steps, received } = await framesOfRun('ctc:best-path');
    expect(received.length).toBe(steps.length);
    received.forEach(({ frames }, i) => {
      const argmax = Array.from({ length: FRAMES }, (_, t) => argmaxRow(frames.logProbs, t * frames.classes, frames.classes));
      const collapsed = ctcCollapse(argmax, frames.blankClass);
      const candidates = steps[i]!.candidates;
      if (collapsed.length === 0) expect(candidates).toEqual([]);
      else {
        expect(candidates.length).toBe(1);
        expect(candidates[0]!.tokens.length).toBeGreaterThan(0);
        expect(candidates[0]!.tokens).toEqual(collapsed.slice(0, candidates[0]!.tokens.length));
      }
    });
  });

  it('unset (the default), nothing is copied and the drafts are the same', async () => {
    const head = (await lm.drafter('ctc')) as CtcHeadDrafter;
    expect(head.onFrames).toBeNull();
    const watched = await framesOfRun('ctc');
    const unwatched = [];
    for await (const e of lm.stream(PROMPT, { drafter: 'ctc', treeBudget: TREE_BUDGET, maxNewTokens: MAX_NEW_TOKENS })) {
      if (e.type === 'step' && e.kind === 'draft') unwatched.push(e.candidates);
    }
    expect(unwatched).toEqual(watched.steps.map((s) => s.candidates));
  });
});
