/**
 * Node adapter: drafters by name, for the CLI and the bench.
 *   none                 no drafts (the loop is plain decoding)
 *   lookup               prompt lookup (n-gram copy from the prompt and the output)
 *   ctc                  the CTC draft head in <model>/drafters/ctc (beam search candidates)
 *   ctc:best-path        the same head, one draft: argmax per frame, collapsed
 *   ctc:no-collapse      the same head, one draft: argmax per frame, blanks dropped, repeats kept
 *   ctc-ce               the same module trained with per-slot cross-entropy (<model>/drafters/ctc-ce)
 *   medusa               Medusa heads in <model>/drafters/medusa
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LlamaConfig } from '../model/config.js';
import type { TensorMap } from '../tensor/dtype.js';
import type { Drafter } from '../draft/drafter.js';
import { NoDrafter } from '../draft/none.js';
import { PromptLookupDrafter } from '../draft/lookup.js';
import { CtcHeadDrafter, type CtcDraftOptions, type CtcHeadConfig } from '../draft/ctc-head.js';
import { MedusaDrafter, type MedusaConfig } from '../draft/medusa.js';
import { frozenBase } from '../draft/head-io.js';
import { readDraftHead } from './train-drafter.js';

export const DRAFTER_NAMES = ['none', 'lookup', 'ctc', 'ctc:best-path', 'ctc:no-collapse', 'ctc-ce', 'medusa'] as const;

export interface LoadedDrafterFactory {
  name: string;
  /** a fresh drafter (each holds its own state; give each model its own) */
  make: () => Drafter;
}

/** Resolve a drafter name to a factory, reading trained heads from `modelDir/drafters/`. */
export async function loadDrafter(
  name: string,
  modelDir: string | undefined,
  base: { config: LlamaConfig; tensors: TensorMap },
  opts: { beam?: number } = {},
): Promise<LoadedDrafterFactory> {
  if (name === 'none') return { name, make: () => new NoDrafter() };
  if (name === 'lookup') return { name, make: () => new PromptLookupDrafter() };
  const [head, variant] = name.split(':') as [string, string | undefined];
  if (!['ctc', 'ctc-ce', 'medusa'].includes(head) || (variant && !(head === 'ctc' && ['best-path', 'no-collapse'].includes(variant)))) {
    throw new Error(`unknown drafter "${name}": expected one of ${DRAFTER_NAMES.join(', ')}`);
  }
  if (!modelDir) throw new Error(`drafter "${name}" needs a trained head: pass --model DIR with DIR/drafters/${head}`);
  const dir = join(modelDir, 'drafters', head);
  if (!existsSync(join(dir, 'config.json'))) {
    throw new Error(`drafter "${name}": no trained head at ${dir} (train one with: npx ctcspec train-drafter --kind ${head === 'medusa' ? 'medusa' : 'ctc'}${head === 'ctc-ce' ? ' --loss ce' : ''})`);
  }
  const { config, tensors } = await readDraftHead(dir);
  const frozen = frozenBase(base.config, base.tensors);
  if (config.kind === 'medusa') return { name, make: () => new MedusaDrafter(config as MedusaConfig, tensors, frozen) };
  const o: CtcDraftOptions = {};
  if (opts.beam !== undefined) {
    if (!(Number.isInteger(opts.beam) && opts.beam >= 1)) throw new Error(`--beam must be an integer >= 1, got ${opts.beam}`);
    o.topK = opts.beam;
    o.beamWidth = Math.max(8, 2 * opts.beam); // prefixes kept per frame: room for K distinct results
  }
  if (variant === 'best-path') o.candidates = 'best-path';
  if (variant === 'no-collapse') o.collapse = false;
  return { name, make: () => new CtcHeadDrafter(config as CtcHeadConfig, tensors, frozen, o) };
}
