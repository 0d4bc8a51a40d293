/**
 * The library API on the shipped model: drafting by default with output equal to plain
 * greedy decoding, streaming, concurrency, abort, and the same model over HTTP (urlSource).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { dirSource, loadModel, SHIPPED_MODEL } from '../src/node/index.js';
import { chooseDrafter, urlSource, type StreamEvent, type TextModel } from '../src/index.js';
import { loadModel as loadModelAnywhere } from '../src/api/text-model.js';

let lm: TextModel;
const PROMPTS = ['The jury said', 'It was a', 'In the morning the', 'He'];

beforeAll(async () => {
  lm = await loadModel(SHIPPED_MODEL);
});

describe('TextModel.generate', () => {
  it("drafts with the CTC head by default ('auto') and emits plain greedy decoding's tokens", async () => {
    for (const p of PROMPTS) {
      const plain = await lm.generate(p, { drafter: 'none', maxNewTokens: 48 });
      const auto = await lm.generate(p, { maxNewTokens: 48 });
      const fixed = await lm.generate(p, { drafter: 'ctc', treeBudget: 8, maxNewTokens: 48 });
      expect(auto.drafter.name).toBe('ctc:short:best-path'); // the CPU policy with a draft vocabulary
      expect(auto.tokens).toEqual(plain.tokens);
      expect(fixed.tokens).toEqual(plain.tokens);
      expect(fixed.text).toBe(plain.text);
      expect(fixed.stats.tokensPerStep).toBeGreaterThan(1); // a fixed budget drafts every step
    }
  });

  it('names what it cannot do: an unknown drafter lists the heads there; a bad beam is refused', async () => {
    await expect(lm.generate('x', { drafter: 'nope' })).rejects.toThrow(/no trained head .*heads there: ctc, ctc-ce, ctc-l6, medusa/);
    await expect(lm.generate('x', { drafter: 'ctc:sideways' })).rejects.toThrow(/unknown drafter "ctc:sideways"/);
    await expect(lm.generate('x', { drafter: 'ctc', beam: 1e6 })).rejects.toThrow(/beam must be an integer in \[1, 64\]/);
  });
});

describe("the 'auto' drafter policy", () => {
  it('the CTC head on a GPU, its cheap form on the CPU, plain decoding on a software adapter or without a head', async () => {
    const shipped = dirSource(SHIPPED_MODEL);
    expect((await chooseDrafter({ name: 'webgpu' }, shipped)).name).toBe('ctc');
    expect((await chooseDrafter({ name: 'cpu' }, shipped)).name).toBe('ctc:short:best-path');
    const software = await chooseDrafter({ name: 'webgpu', software: true }, shipped);
    expect(software.name).toBe('none');
    expect(software.reason).toMatch(/software webgpu adapter/);
    expect((await chooseDrafter({ name: 'webgpu' }, undefined)).reason).toMatch(/no CTC draft head/);
  });
});

describe('TextModel.stream', () => {
  it('yields step events whose emitted tokens and text pieces add up to the result', async () => {
    const events: StreamEvent[] = [];
    for await (const e of lm.stream('The jury said', { drafter: 'ctc', treeBudget: 8, maxNewTokens: 40 })) events.push(e);
    const done = events.at(-1);
    if (done?.type !== 'done') throw new Error('the stream did not end with its result');
    const steps = events.filter((e) => e.type === 'step');
    expect(steps.flatMap((e) => e.emitted)).toEqual(done.result.tokens);
    expect(events.filter((e) => e.type === 'text').map((e) => e.text).join('')).toBe(done.result.text);
    expect(steps[0]!.kind).toBe('prefill');
    const drafted = steps.filter((e) => e.kind === 'draft');
    expect(drafted.length).toBeGreaterThan(0);
    for (const s of drafted) {
      expect(s.tree!.size).toBeGreaterThan(0);
      expect(s.emitted).toEqual([...s.accepted, s.bonus].slice(0, s.emitted.length));
    }
    expect(steps.length).toBe(done.result.stats.steps);
  });

  it('leaving the loop early aborts the generation, and the model stays usable', async () => {
    const alone = await lm.generate('It was a', { maxNewTokens: 30 });
    let n = 0;
    for await (const e of lm.stream('The jury said', { maxNewTokens: 200 })) if (e.type === 'step' && ++n === 3) break;
    expect(n).toBe(3);
    expect((await lm.generate('It was a', { maxNewTokens: 30 })).tokens).toEqual(alone.tokens);
  });

  it('an AbortSignal stops generate and stream with its reason', async () => {
    const ctl = new AbortController();
    ctl.abort(new Error('stop here'));
    await expect(lm.generate('It was a', { signal: ctl.signal })).rejects.toThrow('stop here');
    const later = new AbortController();
    const seen: StreamEvent[] = [];
    await expect(
      (async () => {
        for await (const e of lm.stream('It was a', { maxNewTokens: 100, signal: later.signal })) {
          seen.push(e);
          if (seen.length === 2) later.abort(new Error('enough'));
        }
      })(),
    ).rejects.toThrow('enough');
  });
});

describe('one model, concurrent calls', () => {
  it('N calls at once each return what the same call returns alone (property)', async () => {
    const call = fc.record({
      prompt: fc.constantFrom(...PROMPTS),
      drafter: fc.constantFrom('auto', 'none', 'ctc', 'lookup', 'medusa'),
      maxNewTokens: fc.integer({ min: 1, max: 24 }),
      temperature: fc.constantFrom(0, 0.8),
      seed: fc.integer({ min: 0, max: 5 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(call, { minLength: 2, maxLength: 4 }), async (calls) => {
        const run = (c: (typeof calls)[number]) => lm.generate(c.prompt, { drafter: c.drafter, maxNewTokens: c.maxNewTokens, temperature: c.temperature, seed: c.seed, treeBudget: 4 });
        const together = await Promise.all(calls.map(run));
        for (const [i, c] of calls.entries()) expect(together[i]!.tokens).toEqual((await run(c)).tokens);
      }),
      { numRuns: 8 },
    );
  });
});

describe('loading over HTTP (browsers, Deno)', () => {
  it('urlSource reads the model and its heads; 404 means a missing file', async () => {
    const fromDisk: typeof fetch = async (input) => {
      const path = new URL(String(input instanceof Request ? input.url : input)).pathname.replace(/^\/model\//, '');
      try {
        return new Response(await readFile(join(SHIPPED_MODEL, path)));
      } catch {
        return new Response('not found', { status: 404, statusText: 'Not Found' });
      }
    };
    const remote = await loadModelAnywhere(urlSource('http://models.test/model/', fromDisk));
    const local = await lm.generate('The jury said', { drafter: 'none', maxNewTokens: 24 });
    const viaHttp = await remote.generate('The jury said', { drafter: 'ctc', maxNewTokens: 24, treeBudget: 4 });
    expect(viaHttp.tokens).toEqual(local.tokens);
    expect(viaHttp.stats.tokensPerStep).toBeGreaterThan(1);
    await expect(loadModelAnywhere(urlSource('http://models.test/nothing/', fromDisk))).rejects.toThrow(/config\.json: file not found/);
  });

  it('dirSource keeps paths inside the model directory', async () => {
    await expect(dirSource(SHIPPED_MODEL).read('../../package.json')).rejects.toThrow(/outside the model directory/);
  });
});
