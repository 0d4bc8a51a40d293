#!/usr/bin/env node
/**
 * Redraws the bench charts from their recorded runs: for every bench/results/*.json that holds
 * `runs` (what `npx ctcspec bench` writes), the .svg beside it, drawn by benchSvg, the code the
 * bench itself draws with. The numbers come from the JSON alone; nothing is measured again.
 *
 *   npm run build && node scripts/redraw-charts.mjs [RESULTS_DIR]    (default bench/results)
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchSvg } from '../dist/src/node/bench-spec.js';

const dir = process.argv[2] ?? fileURLToPath(new URL('../bench/results', import.meta.url));

/** The chart's mode line, as `ctcspec bench` words it: greedy, or the sampling settings. */
function modeOf(sampling) {
  if (!sampling) return 'greedy';
  return `temperature ${sampling.temperature}${sampling.topP === undefined ? '' : `, top-p ${sampling.topP}`}`;
}

let drawn = 0;
for (const name of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
  const data = JSON.parse(readFileSync(join(dir, name), 'utf8'));
  if (!Array.isArray(data.runs)) continue; // engine benches: tables of rows, no chart
  const svgPath = join(dir, name.replace(/\.json$/, '.svg'));
  writeFileSync(svgPath, benchSvg(data.runs, modeOf(data.sampling)));
  console.log(`wrote ${svgPath} (${data.runs.length} runs)`);
  drawn++;
}
if (drawn === 0) {
  console.error(`no bench results with runs in ${dir}`);
  process.exit(1);
}
