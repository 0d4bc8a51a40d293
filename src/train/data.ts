/**
 * Training data, runtime-neutral: the Brown corpus as plain text, the held-out split, the
 * BPE tokenizer trained on the training split, token streams, and batch sampling.
 * Reading files is the Node adapter's job (src/node/train-files.ts); everything here
 * works on bytes and strings.
 *
 * The pipeline:
 *   files (sorted by name) -> decodeUtf8Strict -> stripBrownTags -> CorpusDoc[]
 *   -> splitByDocument (every 20th document is validation)
 *   -> trainBpe on the training documents only
 *   -> encodeDocs: [BOS, ...ids(doc)] per document, concatenated into one Uint16 stream
 *   -> BatchSampler: B random windows of T+1 tokens per micro-batch (seeded, resumable)
 */
import { Rng } from '../util/random.js';
import { BOS_ID, trainBpe, type BpeTokenizer } from '../tokenizer/index.js';

export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

/** One document of the corpus: its file name and its plain text. */
export interface CorpusDoc {
  name: string;
  text: string;
}

// ---------------------------------------------------------------------------------------
// Bytes -> text

/**
 * Decode UTF-8, refusing malformed input: the error names `source` and the byte offset
 * of the first byte that cannot continue a well-formed sequence.
 */
export function decodeUtf8Strict(bytes: Uint8Array, source: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new DataError(`${source}: invalid UTF-8 at byte offset ${firstInvalidUtf8Byte(bytes)}`);
  }
}

/**
 * With `stream: true` a decoder accepts an unfinished sequence at the end of its input, so
 * "the prefix of length n decodes" is monotone in n: binary search finds the shortest
 * prefix that fails, and its last byte is the first bad one.
 */
function firstInvalidUtf8Byte(bytes: Uint8Array): number {
  const prefixDecodes = (n: number): boolean => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, n), { stream: true });
      return true;
    } catch {
      return false;
    }
  };
  if (prefixDecodes(bytes.length)) return bytes.length; // only an unfinished sequence at the end
  let lo = 0, hi = bytes.length; // prefixDecodes(lo) holds, prefixDecodes(hi) fails
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (prefixDecodes(mid)) lo = mid;
    else hi = mid;
  }
  return hi - 1;
}

// ---------------------------------------------------------------------------------------
// The Brown corpus: tagged text -> plain text

/** The 500 Brown documents are named ca01..cr09 (category letter a-r, then a number). */
export function isBrownDocName(name: string): boolean {
  return /^c[a-r]\d\d$/.test(name);
}

/** Tokens that take no space before them: closing punctuation and closing quotes. */
const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', "'", "''"]);
/** Tokens that take no space after them: opening brackets and opening double quotes. */
const NO_SPACE_AFTER = new Set(['(', '[', '``']);

/**
 * The exact rules that turn a tagged Brown file into plain text. They are data, not only
 * a comment, so the model card quotes the very text that describes the code below.
 */
export const BROWN_TEXT_RULES: readonly string[] = [
  'Layout. Each non-blank line is one sentence. A line that starts with a tab starts a new paragraph; ' +
    'a blank line also ends the paragraph; any other line continues the current paragraph. Sentences of ' +
    'a paragraph are joined with one space, paragraphs with one newline. The result has no leading or ' +
    'trailing whitespace.',
  'Tags. A line is split on whitespace into tokens `word/tag`; the word is everything before the LAST ' +
    '"/" (so `and/or/cc` keeps `and/or`), the tag is dropped. A token without "/" is kept whole.',
  "Quotes. The tokens `` and '' (the corpus' opening and closing double quotes) both become \". " +
    "Single quotes ' stay as they are.",
  "Spacing. Words are joined with one space, except: no space before , . ; : ? ! ) ] ' and a closing " +
    "quote (''), and no space after ( [ and an opening quote (``). Everything else, \"--\" and \"&\" " +
    'included, keeps its spaces. Case is kept.',
  'Abbreviations. A sentence-final "." right after a word that already ends in "." (`Jr./np ./.`) is ' +
    'dropped, so "Jr.." reads "Jr.". A word made only of dots (an ellipsis) does not absorb the period.',
];

/** Plain text of one tagged Brown file, by BROWN_TEXT_RULES (layout, tags, quotes, spacing, abbreviations). */
export function stripBrownTags(tagged: string): string {
  const paragraphs: string[] = [];
  let sentences: string[] = [];
  const endParagraph = (): void => {
    if (sentences.length > 0) paragraphs.push(sentences.join(' '));
    sentences = [];
  };
  for (const line of tagged.split('\n')) {
    if (line.trim() === '') {
      endParagraph();
      continue;
    }
    if (line.startsWith('\t')) endParagraph();
    const sentence = detokenize(line.trim().split(/\s+/).map(wordOf));
    if (sentence !== '') sentences.push(sentence);
  }
  endParagraph();
  return paragraphs.join('\n');
}

function wordOf(token: string): string {
  const slash = token.lastIndexOf('/');
  return slash < 0 ? token : token.slice(0, slash);
}

function detokenize(words: readonly string[]): string {
  let out = '';
  let prev: string | undefined;
  for (const word of words) {
    if (word === '') continue;
    if (word === '.' && prev !== undefined && prev.endsWith('.') && !/^\.+$/.test(prev)) continue;
    const space = prev !== undefined && !NO_SPACE_AFTER.has(prev) && !NO_SPACE_BEFORE.has(word);
    out += (space ? ' ' : '') + (word === '``' || word === "''" ? '"' : word);
    prev = word;
  }
  return out;
}

/** Corpus files -> documents: strict UTF-8, tags stripped, empty documents refused. */
export function brownDocs(files: readonly { name: string; bytes: Uint8Array }[], source: string): CorpusDoc[] {
  if (files.length === 0) throw new DataError(`${source}: the corpus is empty (no document files)`);
  const docs = files.map(({ name, bytes }) => ({ name, text: stripBrownTags(decodeUtf8Strict(bytes, `${source}/${name}`)) }));
  const empty = docs.find((d) => d.text === '');
  if (empty) throw new DataError(`${source}/${empty.name}: the document has no text`);
  return docs;
}

// ---------------------------------------------------------------------------------------
// Held-out split

/** Every `every`-th document (in the given order, 1-based: the 20th, 40th, ...) is held out. */
export function splitByDocument(docs: readonly CorpusDoc[], every = 20): { train: CorpusDoc[]; val: CorpusDoc[] } {
  const train: CorpusDoc[] = [], val: CorpusDoc[] = [];
  docs.forEach((d, i) => ((i + 1) % every === 0 ? val : train).push(d));
  if (train.length === 0 || val.length === 0) {
    throw new DataError(`${docs.length} documents cannot be split into training and validation (every ${every}th is held out)`);
  }
  return { train, val };
}

// ---------------------------------------------------------------------------------------
// Tokens

/** BPE on the training documents only (joined with newlines), so validation text stays unseen. */
export function trainTokenizer(train: readonly CorpusDoc[], vocabSize: number): BpeTokenizer {
  return trainBpe(train.map((d) => d.text).join('\n'), vocabSize);
}

/** [BOS, ...ids(doc)] for each document, concatenated. Ids must fit in 16 bits. */
export function encodeDocs(tok: BpeTokenizer, docs: readonly CorpusDoc[]): Uint16Array {
  if (tok.vocabSize > 65536) throw new DataError(`vocab size ${tok.vocabSize} does not fit 16-bit token ids`);
  const ids: number[] = [];
  for (const d of docs) {
    ids.push(BOS_ID);
    for (const id of tok.encode(d.text)) ids.push(id);
  }
  return Uint16Array.from(ids);
}

/** What prepared data was made from, and how much of it there is (the cache manifest; the model card quotes it). */
export interface DataManifest {
  key: string;
  corpus: { dir: string; package?: string; files: number; bytes: number };
  textRulesVersion: number;
  split: { every: number; train: string[]; val: string[] };
  vocabSize: number; // requested
  tokenizerVocab: number; // what BPE produced
  chars: { train: number; val: number };
  tokens: { train: number; val: number };
}

// ---------------------------------------------------------------------------------------
// Batches

/**
 * Random windows of T+1 tokens (T inputs, each followed by its target), B at a time, from
 * a seeded PRNG. The PRNG's state is the sampler's whole state: save it in a checkpoint,
 * pass it back as `state`, and the batches continue exactly where they left off.
 */
export class BatchSampler {
  private rng: Rng;

  constructor(
    private readonly tokens: Uint16Array,
    readonly B: number,
    readonly T: number,
    state: number,
  ) {
    checkEnoughTokens(tokens.length, B, T, 'training split');
    this.rng = new Rng(state);
  }

  /** the PRNG state (mulberry32 is fully described by its one 32-bit word) */
  get state(): number {
    return this.rng.state;
  }

  /** Fill `out` (B*(T+1)) with the next micro-batch: row b = tokens[s_b .. s_b + T]. */
  next(out: Int32Array): void {
    const { B, T } = this;
    const starts = this.tokens.length - T; // valid starts: 0 .. length - (T+1)
    for (let b = 0; b < B; b++) {
      const s = this.rng.int(starts);
      for (let t = 0; t <= T; t++) out[b * (T + 1) + t] = this.tokens[s + t]!;
    }
  }
}

function checkEnoughTokens(n: number, B: number, T: number, what: string): void {
  if (!(Number.isInteger(B) && B > 0 && Number.isInteger(T) && T > 0)) {
    throw new DataError(`batch size ${B} and sequence length ${T} must be positive integers`);
  }
  if (n < T + 1) {
    throw new DataError(`the ${what} has ${n} tokens, too few for one sequence of ${T + 1} tokens (seq length ${T} + 1 target)`);
  }
}

/**
 * The fixed validation set: up to `maxSeqs` windows of T+1 tokens, spread evenly over the
 * validation stream (not overlapping), grouped into batches of at most B rows.
 */
export function validationBatches(tokens: Uint16Array, B: number, T: number, maxSeqs: number): Int32Array[] {
  checkEnoughTokens(tokens.length, B, T, 'validation split');
  const fit = Math.floor(tokens.length / (T + 1)); // non-overlapping windows that fit
  const n = Math.min(fit, maxSeqs);
  const stride = Math.floor(fit / n) * (T + 1);
  const batches: Int32Array[] = [];
  for (let first = 0; first < n; first += B) {
    const rows = Math.min(B, n - first);
    const batch = new Int32Array(rows * (T + 1));
    for (let r = 0; r < rows; r++) {
      const s = (first + r) * stride;
      for (let t = 0; t <= T; t++) batch[r * (T + 1) + t] = tokens[s + t]!;
    }
    batches.push(batch);
  }
  return batches;
}
