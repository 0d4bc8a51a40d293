/**
 * Node adapter: drafters by name, for the CLI and the bench.
 *   none                 no drafts (the loop is plain decoding)
 *   lookup               prompt lookup (n-gram copy from the prompt and the output)
 *   NAME                 the trained head in <model>/drafters/NAME (its config.json says CTC or
 *                        Medusa); shipped: ctc (the CTC draft head), ctc-ce (the same module
 *                        trained with per-slot cross-entropy), medusa (Medusa heads)
 *   NAME:best-path       a CTC head, one draft: argmax per frame, collapsed
 *   NAME:no-collapse     a CTC head, one draft: argmax per frame, blanks dropped, repeats kept
 *   NAME:short           a CTC head whose frames emit only <model>/draft-vocab.json's tokens
 *                        (the base model's most frequent outputs); combines with the above,
 *                        e.g. ctc:short:best-path
 * A CTC head trained with the CTC loss proposes the top drafts of a prefix beam search.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
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

/** the drafters the bench runs by default (every shipped head and the ablation variants) */
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
  const [head, ...variants] = name.split(':') as [string, ...string[]];
  const known = (dir: string | undefined) => (dir && existsSync(join(dir, 'drafters')) ? readdirSync(join(dir, 'drafters')).filter((d) => existsSync(join(dir, 'drafters', d, 'config.json'))) : []);
  const badVariants = variants.some((v) => !['best-path', 'no-collapse', 'short'].includes(v)) || new Set(variants).size < variants.length || (variants.includes('best-path') && variants.includes('no-collapse'));
  if (!/^[\w.-]+$/.test(head) || badVariants) {
    throw new Error(`unknown drafter "${name}": expected none, lookup, or a head in <model>/drafters/ (optionally with :best-path or :no-collapse, and :short)${known(modelDir).length ? `; found: ${known(modelDir).join(', ')}` : ''}`);
  }
  if (!modelDir) throw new Error(`drafter "${name}" needs a trained head: pass --model DIR with DIR/drafters/${head}`);
  const dir = join(modelDir, 'drafters', head);
  if (!existsSync(join(dir, 'config.json'))) {
    const found = known(modelDir);
    throw new Error(
      `unknown drafter "${name}": no trained head at ${dir}` +
        (found.length ? ` (heads there: ${found.join(', ')})` : '') +
        ` (train one with: npx ctcspec train-drafter --kind ${head === 'medusa' ? 'medusa' : 'ctc'}${head === 'ctc-ce' ? ' --loss ce' : ''}${['ctc', 'ctc-ce', 'medusa'].includes(head) ? '' : ` --out ${dir}`})`,
    );
  }
  const { config, tensors } = await readDraftHead(dir);
  const frozen = frozenBase(base.config, base.tensors);
  if (config.kind === 'medusa') {
    if (variants.length) throw new Error(`drafter "${name}": ${variants.join(':')} applies to CTC heads; ${head} holds Medusa heads`);
    return { name, make: () => new MedusaDrafter(config as MedusaConfig, tensors, frozen) };
  }
  const o: CtcDraftOptions = {};
  if (opts.beam !== undefined) {
    if (!(Number.isInteger(opts.beam) && opts.beam >= 1)) throw new Error(`--beam must be an integer >= 1, got ${opts.beam}`);
    o.topK = opts.beam;
    o.beamWidth = Math.max(8, 2 * opts.beam); // prefixes kept per frame: room for K distinct results
  }
  if (variants.includes('best-path')) o.candidates = 'best-path';
  if (variants.includes('no-collapse')) o.collapse = false;
  if (variants.includes('short')) {
    const vocabFile = join(modelDir, 'draft-vocab.json');
    if (!existsSync(vocabFile)) throw new Error(`drafter "${name}": no draft vocabulary at ${vocabFile} (make one with scripts/draft-vocab.mjs)`);
    const parsed = JSON.parse(readFileSync(vocabFile, 'utf8')) as { tokens?: unknown };
    if (!Array.isArray(parsed.tokens)) throw new Error(`${vocabFile}: expected {"tokens": [token ids]}`);
    o.shortlist = parsed.tokens as number[];
  }
  return { name, make: () => new CtcHeadDrafter(config as CtcHeadConfig, tensors, frozen, o) };
}
