/**
 * Drafters by name, read from the model's folder in any runtime (a FileSource):
 *   none                 no drafts: plain decoding
 *   lookup               prompt lookup (n-gram copy from the prompt and the output)
 *   NAME                 the trained head in drafters/NAME/ (its config.json says CTC or Medusa);
 *                        the shipped model has ctc, ctc-l6, ctc-ce (the CTC module trained with
 *                        per-slot cross-entropy) and medusa
 *   NAME:best-path       a CTC head, one draft: argmax per frame, collapsed
 *   NAME:no-collapse     a CTC head, one draft: argmax per frame, blanks dropped, repeats kept
 *   NAME:short           a CTC head whose frames emit only draft-vocab.json's tokens (the base
 *                        model's most frequent outputs); combines with the above, e.g.
 *                        ctc:short:best-path
 * A CTC head trained with the CTC loss otherwise proposes the top drafts of a prefix beam search.
 */
import type { Backend } from '../backend/backend.js';
import type { LlamaConfig } from '../model/config.js';
import type { TensorMap } from '../tensor/dtype.js';
import type { Drafter } from '../draft/drafter.js';
import { NoDrafter } from '../draft/none.js';
import { PromptLookupDrafter } from '../draft/lookup.js';
import { CtcHeadDrafter, checkCtcHeadConfig, type CtcDraftOptions } from '../draft/ctc-head.js';
import { MedusaDrafter, checkMedusaConfig } from '../draft/medusa.js';
import { checkHeadFitsBase, frozenBase, parseHeadTensors, parseJsonObject, type FrozenBase } from '../draft/head-io.js';
import { parseDraftVocab } from '../draft/draft-vocab.js';
import { readRequired, readText, type FileSource } from './source.js';
import { locate } from '../io/checkpoint.js';

/** CTC variants a name may carry after the head's name */
const VARIANTS = ['best-path', 'no-collapse', 'short'];
/**
 * Most candidates kept from the prefix beam search. The tree budget caps what is verified
 * anyway (at most 32 nodes), and the search's cost grows with the beam: beyond this a larger
 * beam only costs time.
 */
export const MAX_BEAM = 64;

/** A drafter name that names no drafter (a typo, a head that is not there, a bad variant). */
export class UnknownDrafterError extends Error {
  override name = 'UnknownDrafterError';
}

export interface DrafterOptions {
  /** CTC heads: candidates kept from the prefix beam search (default 4) */
  beam?: number;
}

/** A drafter name resolved to its trained weights, ready to make drafters. */
export interface DrafterFactory {
  name: string;
  /**
   * a fresh drafter (each holds its own state: give each model its own); a trained head runs
   * on `backend` when given (the base model's, say), else on a CPU backend of its own
   */
  make: (backend?: Backend) => Drafter;
}

/** Resolve a drafter name, reading trained heads from `source` (the model's folder). */
export async function loadDrafter(
  name: string,
  source: FileSource | undefined,
  /** the base model: its config, and its embedding and LM head (from `frozenBase()` when it has one, else from `tensors`) */
  base: { config: LlamaConfig; tensors: TensorMap; frozenBase?: () => Promise<FrozenBase> },
  opts: DrafterOptions = {},
): Promise<DrafterFactory> {
  if (name === 'none') return { name, make: () => new NoDrafter() };
  if (name === 'lookup') return { name, make: () => new PromptLookupDrafter() };
  const [head, ...variants] = name.split(':') as [string, ...string[]];
  const badVariants =
    variants.some((v) => !VARIANTS.includes(v)) || new Set(variants).size < variants.length || (variants.includes('best-path') && variants.includes('no-collapse'));
  if (!/^[\w.-]+$/.test(head) || badVariants) {
    const found = source ? await knownHeads(source) : [];
    throw new UnknownDrafterError(
      `unknown drafter "${name}": expected none, lookup, or a head in drafters/ (optionally with :best-path or :no-collapse, and :short)` +
        (found.length ? `; found: ${found.join(', ')}` : ''),
    );
  }
  if (!source) throw new UnknownDrafterError(`drafter "${name}" needs a trained head: load the model from a folder that has drafters/${head}/`);
  const configText = await readText(source, `drafters/${head}/config.json`);
  if (configText === undefined) {
    const found = await knownHeads(source);
    throw new UnknownDrafterError(
      `unknown drafter "${name}": no trained head at ${locate(source, `drafters/${head}`)}` +
        (found.length ? ` (heads there: ${found.join(', ')})` : '') +
        ` (train one with: npx ctcspec train-drafter --kind ${head === 'medusa' ? 'medusa' : 'ctc'}${head === 'ctc-ce' ? ' --loss ce' : ''} --out <model>/drafters/${head})`,
    );
  }
  const configPath = locate(source, `drafters/${head}/config.json`), weightsPath = locate(source, `drafters/${head}/model.safetensors`);
  const raw = parseJsonObject(configText, configPath);
  const config = raw.kind === 'medusa' ? checkMedusaConfig(raw, configPath) : checkCtcHeadConfig(raw, configPath);
  checkHeadFitsBase(config, base.config, configPath);
  const tensors = parseHeadTensors(await readRequired(source, `drafters/${head}/model.safetensors`, 'a draft head needs its weights'), weightsPath);
  const frozen = base.frozenBase ? await base.frozenBase() : frozenBase(base.config, base.tensors);
  if (config.kind === 'medusa') {
    if (variants.length) throw new UnknownDrafterError(`drafter "${name}": ${variants.join(':')} applies to CTC heads; ${head} holds Medusa heads`);
    return { name, make: (backend) => new MedusaDrafter(config, tensors, frozen, {}, backend) };
  }
  const o: CtcDraftOptions = {};
  if (opts.beam !== undefined) {
    if (!(Number.isInteger(opts.beam) && opts.beam >= 1 && opts.beam <= MAX_BEAM)) throw new RangeError(`beam must be an integer in [1, ${MAX_BEAM}], got ${opts.beam}`);
    o.topK = opts.beam;
    o.beamWidth = Math.max(8, 2 * opts.beam); // prefixes kept per frame: room for K distinct results
  }
  if (variants.includes('best-path')) o.candidates = 'best-path';
  if (variants.includes('no-collapse')) o.collapse = false;
  if (variants.includes('short')) {
    const text = await readText(source, 'draft-vocab.json');
    const path = locate(source, 'draft-vocab.json');
    if (text === undefined) throw new Error(`drafter "${name}": no draft vocabulary at ${path} (train-drafter writes one when it distills; scripts/draft-vocab.mjs remakes it from a distillation cache)`);
    o.shortlist = parseDraftVocab(text, base.config.vocab_size, path);
  }
  return { name, make: (backend) => new CtcHeadDrafter(config, tensors, frozen, o, backend) };
}

/** the heads in drafters/, when the source can list them */
async function knownHeads(source: FileSource): Promise<string[]> {
  const names = (await source.list?.('drafters').catch(() => [])) ?? [];
  const heads: string[] = [];
  for (const n of names.sort()) if ((await source.read(`drafters/${n}/config.json`).catch(() => undefined)) !== undefined) heads.push(n);
  return heads;
}
