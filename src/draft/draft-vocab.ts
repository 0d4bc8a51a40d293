/**
 * A model's draft vocabulary, `<model>/draft-vocab.json` (written by train-drafter
 * when it distills, src/train/draft-vocab.ts):
 * the tokens a CTC head's frames may emit in its `:short` form, runtime-neutral.
 *
 *   {"tokens": [id, ...], ...}   distinct token ids of the base vocabulary, at least one;
 *                                other fields (description, coverage) are notes for people
 *
 * The order of `tokens` is kept: a shortlisted frame's class i is the token tokens[i].
 */
import { FormatError } from '../io/errors.js';

const MAX_SHOWN_CHARS = 40; // of a bad value quoted in an error

/** Parse and check a draft-vocab.json; every problem is a FormatError naming `source`. */
export function parseDraftVocab(text: string, vocabSize: number, source: string): number[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FormatError(source, `not valid JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FormatError(source, 'expected a JSON object {"tokens": [token ids]}');
  const tokens = (raw as { tokens?: unknown }).tokens;
  if (!Array.isArray(tokens)) throw new FormatError(source, `field "tokens" must be an array of token ids, got ${describe(tokens)}`);
  if (tokens.length === 0) throw new FormatError(source, 'field "tokens" is empty: a draft vocabulary needs at least one token');
  const firstIndex = new Map<number, number>(); // token id -> where it first occurs
  tokens.forEach((id: unknown, i) => {
    if (typeof id !== 'number' || !Number.isInteger(id)) throw new FormatError(source, `tokens[${i}] must be an integer token id, got ${describe(id)}`);
    if (id < 0 || id >= vocabSize) throw new FormatError(source, `tokens[${i}] = ${id} is outside the model's vocabulary [0, ${vocabSize})`);
    const first = firstIndex.get(id);
    if (first !== undefined) throw new FormatError(source, `tokens[${i}] = ${id} repeats tokens[${first}]: the token ids must be distinct`);
    firstIndex.set(id, i);
  });
  return tokens as number[];
}

/** a short rendering of a JSON value for an error message */
function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const json = JSON.stringify(v);
  return json.length > MAX_SHOWN_CHARS ? `${json.slice(0, MAX_SHOWN_CHARS)}...` : json;
}
