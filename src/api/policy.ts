/**
 * The library's defaults, one function each, called alike by the library API, the CLI and the
 * bench: which drafter 'auto' means, and which tree budget (src/decode/cost-model.ts autoBudget).
 */
import type { Backend } from '../backend/backend.js';
import type { Llama } from '../model/llama.js';
import { autoBudget, fixedBudget, type BudgetPolicy } from '../decode/cost-model.js';
import type { FileSource } from './source.js';

export interface DrafterChoice {
  name: string;
  /** why this drafter, in a sentence a user reads */
  reason: string;
}

/**
 * 'auto': the model's CTC head when it has one. On the CPU its cheapest form (the draft
 * vocabulary, one best-path draft): verifying grows about linearly with the tree there, so
 * only cheap, likely drafts pay. On a GPU the full prefix beam search: a wider tree costs
 * little more than one token. Whether a step drafts at all is the budget's decision.
 * On a software GPU adapter (llvmpipe, SwiftShader) plain decoding: the device's work runs
 * on the CPU cores, its trees cost what a CPU's do without the CPU backend's cheap head, and
 * single fresh runs measured slower with drafting than without (bench/results/default-vs-none.md).
 */
export async function chooseDrafter(backend: Pick<Backend, 'name' | 'software'>, source: FileSource | undefined): Promise<DrafterChoice> {
  const has = async (path: string) => source !== undefined && (await source.read(path).catch(() => undefined)) !== undefined;
  if (!(await has('drafters/ctc/config.json'))) return { name: 'none', reason: 'the model has no CTC draft head (drafters/ctc/): plain decoding' };
  if (backend.software) {
    return { name: 'none', reason: `plain decoding: a software ${backend.name} adapter runs on the CPU cores, where drafting did not pay in fresh runs (ask for drafter ctc to draft anyway)` };
  }
  if (backend.name === 'cpu' && (await has('draft-vocab.json'))) {
    return { name: 'ctc:short:best-path', reason: 'the CTC head, in its cheapest form on the CPU (draft vocabulary, best path)' };
  }
  return { name: 'ctc', reason: 'the CTC head (prefix beam search)' };
}

/** The budget policy for `treeBudget`: a fixed number of nodes, or 'auto' (learns what pays). */
export function makeBudget(treeBudget: number | 'auto', model: Llama): { maxNodes: number; policy: BudgetPolicy } {
  if (treeBudget !== 'auto') {
    if (!(Number.isInteger(treeBudget) && treeBudget >= 0)) throw new RangeError(`treeBudget must be an integer >= 0 or 'auto', got ${treeBudget}`);
    return { maxNodes: treeBudget, policy: fixedBudget(treeBudget) };
  }
  const policy = autoBudget(model.backend.name); // learns online what pays: no measurement up front
  return { maxNodes: policy.maxNodes, policy };
}
