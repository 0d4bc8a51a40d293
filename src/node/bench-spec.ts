/**
 * `ctcspec bench`: speculative decoding on a fixed prompt set, every drafter on every backend,
 * against plain decoding in the same process.
 *
 * Prompt set (documented, deterministic): the 25 held-out Brown documents (every 20th file in
 * sorted order, the validation split of train-base), tokenized with the model's tokenizer;
 * from each, two prompts of 32 tokens: the document's first 32 tokens (after BOS) and tokens
 * 256..287 (no BOS). That is 50 prompts of text the base model never trained on.
 *
 * Per backend and drafter: beta = tokens emitted / base forwards (prefill counted, the bonus
 * token counted), gamma = tokens/s over plain `generate`'s tokens/s on the same prompts in the
 * same process (each speculative run is paired with a plain run of the same prompt right
 * next to it, in alternating order, so a machine whose speed drifts affects both alike), and the share of wall time
 * spent drafting and verifying. Every greedy output
 * is compared token for token with plain decoding; mismatches are reported, not hidden.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Backend } from '../backend/backend.js';
import { Llama } from '../model/llama.js';
import type { LlamaConfig } from '../model/config.js';
import type { TensorMap } from '../tensor/dtype.js';
import type { WeightFormat } from '../tensor/weight-format.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { Drafter } from '../draft/drafter.js';
import { generate } from '../decode/generate.js';
import { generateSpeculative } from '../decode/speculative.js';
import { autoBudget, fixedBudget, measureVerifyCost, type BudgetPolicy } from '../decode/cost-model.js';
import { brownDocs, splitByDocument } from '../train/data.js';
import { barChartSvg } from '../train/svg.js';
import { brownCorpusDir, readCorpusFiles, SPLIT_EVERY } from './train-files.js';

export const PROMPT_LEN = 32;
export const PROMPT_OFFSETS = [0, 256];

/** The bench prompt set: 2 prompts from each held-out Brown document (see the header). */
export async function benchPrompts(tokenizer: Tokenizer, count = 50): Promise<number[][]> {
  const dir = brownCorpusDir();
  const docs = brownDocs(await readCorpusFiles(dir), dir);
  const { val } = splitByDocument(docs, SPLIT_EVERY);
  const prompts: number[][] = [];
  for (const offset of PROMPT_OFFSETS) {
    for (const doc of val) {
      const ids = tokenizer.encode(doc.text);
      if (ids.length < offset + PROMPT_LEN) continue;
      const window = ids.slice(offset, offset + PROMPT_LEN);
      prompts.push(offset === 0 && tokenizer.bosId !== undefined ? [tokenizer.bosId, ...window] : window);
    }
  }
  if (prompts.length < count) throw new Error(`only ${prompts.length} bench prompts could be made, ${count} asked`);
  return prompts.slice(0, count);
}

export interface DrafterRun {
  backend: string;
  drafter: string;
  prompts: number;
  tokens: number;
  steps: number;
  beta: number; // tokens per base forward
  tokensPerSecond: number;
  gamma: number; // tokensPerSecond / plain tokensPerSecond
  draftShare: number; // drafting time / wall time
  verifyShare: number; // verification time / wall time
  /** greedy: prompts whose output differs from plain greedy decoding; sampling: null (outputs are random; the law is tested in test/speculative-sampling.test.ts) */
  mismatches: number | null;
  meanTreeBudget?: string;
}

export interface SpecBenchOptions {
  backends: { name: string; backend: Backend }[];
  config: LlamaConfig;
  tensors: TensorMap;
  /** the weight matrices' format where a backend holds it (LlamaOptions.weights; default as stored) */
  weights?: WeightFormat;
  prompts: number[][];
  maxNewTokens: number;
  /** drafter name -> a fresh drafter for this backend's model */
  drafters: { name: string; make: (model: Llama) => Drafter }[];
  treeBudget: number | 'auto';
  maxDraftLen: number;
  /** sampling instead of greedy decoding: temperature > 0, optional top-p; prompt i uses seed + i */
  sampling?: { temperature: number; topP?: number; seed: number };
  log: (msg: string) => void;
}

export async function runSpecBench(o: SpecBenchOptions): Promise<{ runs: DrafterRun[]; verifyCost: Record<string, number[]> }> {
  const runs: DrafterRun[] = [];
  const verifyCost: Record<string, number[]> = {};
  const maxBudget = o.treeBudget === 'auto' ? 32 : o.treeBudget;
  for (const { name: backendName, backend } of o.backends) {
    const model = new Llama(backend, o.config, o.tensors, { maxBatch: Math.max(64, maxBudget + 1), weights: o.weights });
    const cost = await measureVerifyCost(model, maxBudget + 1, { past: 64, repeats: 7 });
    verifyCost[backendName] = Array.from(cost);
    o.log(`[${backendName}] verify cost relative to 1 token: ` + [1, 2, 4, 8, 16, 32].filter((t) => t <= cost.length).map((t) => `${t}: ${(cost[t - 1]! / cost[0]!).toFixed(2)}x`).join(', '));

    // plain decoding: the reference tokens and the baseline speed
    const sampler = (i: number) => (o.sampling ? { temperature: o.sampling.temperature, topP: o.sampling.topP, seed: o.sampling.seed + i } : {});
    await generate(model, o.prompts[0]!, { maxNewTokens: 8 }); // warm-up
    const reference: number[][] = [];
    let plainTokens = 0, plainMs = 0;
    for (const [i, p] of o.prompts.entries()) {
      const r = await generate(model, p, { ...sampler(i), maxNewTokens: o.maxNewTokens });
      reference.push(r.tokens);
      plainTokens += r.stats.newTokens;
      plainMs += r.stats.wallMs;
    }
    const plainTps = (plainTokens / plainMs) * 1000;
    runs.push({ backend: backendName, drafter: 'plain', prompts: o.prompts.length, tokens: plainTokens, steps: plainTokens, beta: 1, tokensPerSecond: plainTps, gamma: 1, draftShare: 0, verifyShare: 1, mismatches: o.sampling ? null : 0 });
    o.log(`[${backendName}] plain: ${plainTps.toFixed(1)} tokens/s`);

    for (const d of o.drafters) {
      const drafter = d.make(model);
      const budget: BudgetPolicy = o.treeBudget === 'auto' ? autoBudget(backendName) : fixedBudget(o.treeBudget);
      const opts = { maxNewTokens: o.maxNewTokens, treeBudget: maxBudget, maxDraftLen: o.maxDraftLen, budget };
      // Warm-up. The plain path is hot (JIT, wasm tier-up) from the reference runs above; the
      // drafter's code runs as hot before any timing, or the first budget decisions would judge
      // drafting by unoptimised code (measured: a drafter declined in one run, kept in another).
      for (let i = 0; i < 4; i++) await generateSpeculative(model, o.prompts[i % o.prompts.length]!, drafter, { ...opts, ...sampler(i), budget: fixedBudget(Math.min(4, maxBudget)) });
      await generateSpeculative(model, o.prompts[0]!, drafter, { ...opts, maxNewTokens: 8 }); // budget learning
      let tokens = 0, steps = 0, wall = 0, draft = 0, verify = 0, mismatches = 0, pairedTokens = 0, pairedMs = 0;
      for (let i = 0; i < o.prompts.length; i++) {
        // plain decoding of the same prompt right next to it: a shared machine drifts, and
        // pairing makes the drift hit both sides of the ratio alike. The order alternates: the
        // second run of a pair is 1-2% faster (measured: plain then plain), which would
        // otherwise favour one side. Prompts come in pairs (a document's start, then its
        // middle), so the order follows 0 1 1 0 0 1 1 0 ...: each kind of prompt is run in
        // both orders equally often.
        const runPlain = () => generate(model, o.prompts[i]!, { ...sampler(i), maxNewTokens: o.maxNewTokens });
        const runSpec = () => generateSpeculative(model, o.prompts[i]!, drafter, { ...opts, ...sampler(i) });
        let plain, r;
        if (((i >> 1) + i) % 2 === 0) {
          plain = await runPlain();
          r = await runSpec();
        } else {
          r = await runSpec();
          plain = await runPlain();
        }
        pairedTokens += plain.stats.newTokens;
        pairedMs += plain.stats.wallMs;
        tokens += r.stats.newTokens;
        steps += r.stats.steps;
        wall += r.stats.wallMs;
        draft += r.stats.draftMs;
        verify += r.stats.verifyMs;
        if (r.tokens.join() !== reference[i]!.join()) mismatches++;
      }
      const tps = (tokens / wall) * 1000;
      const run: DrafterRun = {
        backend: backendName, drafter: d.name, prompts: o.prompts.length, tokens, steps, beta: tokens / steps,
        tokensPerSecond: tps, gamma: tps / ((pairedTokens / pairedMs) * 1000), draftShare: draft / wall, verifyShare: verify / wall, mismatches: o.sampling ? null : mismatches,
      };
      runs.push(run);
      o.log(`[${backendName}] ${d.name}: beta ${run.beta.toFixed(2)}, ${tps.toFixed(1)} tokens/s, gamma ${run.gamma.toFixed(2)}${o.sampling ? '' : `, mismatches ${mismatches}`}`);
    }
  }
  return { runs, verifyCost };
}

export function benchTable(runs: readonly DrafterRun[]): string {
  const sampled = runs.some((r) => r.mismatches === null);
  const lines = [
    `| backend | drafter | beta (tokens/step) | tokens/s | gamma (vs plain) | draft % | verify % | ${sampled ? 'output' : 'output = plain greedy'} |`,
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of runs) {
    lines.push(
      `| ${r.backend} | ${r.drafter} | ${r.beta.toFixed(2)} | ${r.tokensPerSecond.toFixed(1)} | ${r.gamma.toFixed(2)} | ${(100 * r.draftShare).toFixed(1)} | ${(100 * r.verifyShare).toFixed(1)} | ${r.mismatches === null ? 'sampled (same law: tested)' : r.mismatches === 0 ? `yes (${r.prompts}/${r.prompts})` : `NO: ${r.mismatches} differ`} |`,
    );
  }
  return lines.join('\n');
}

export function benchSvg(runs: readonly DrafterRun[], mode = 'greedy'): string {
  const shown = runs.filter((r) => r.drafter !== 'plain');
  const backends = [...new Set(shown.map((r) => r.backend))];
  // one backend: named once in the title, not under every bar
  const label = (r: DrafterRun): string => (backends.length > 1 ? `${r.drafter} (${r.backend})` : r.drafter);
  return barChartSvg(
    shown.map((r) => ({ label: label(r), values: [r.beta, r.gamma] })),
    [
      { name: 'beta: tokens per base-model step', color: '#4477aa' },
      { name: 'gamma: speed over plain decoding', color: '#ee6677' },
    ],
    {
      title: `Speculative decoding, held-out Brown prompts (${backends.join(', ')}, ${mode})`,
      groupLabel: backends.length > 1 ? 'drafter (backend)' : 'drafter',
      valueLabel: 'ratio',
      reference: { value: 1, name: '1 = plain decoding' },
    },
  );
}

export function writeBenchFiles(jsonPath: string, svgPath: string, data: unknown, svg: string): void {
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(data, null, 2) + '\n');
  mkdirSync(dirname(svgPath), { recursive: true });
  writeFileSync(svgPath, svg);
}
