/**
 * Save and load a BpeTokenizer as a Hugging Face `tokenizer.json` (ByteLevel BPE, the
 * GPT-2 format), so the file also loads in the `tokenizers` library.
 *
 * Token strings use GPT-2's byte-to-unicode alphabet: each byte maps to one printable
 * character (bytes that are already printable map to themselves; the rest to U+0100 and
 * up), so "Ġthe" is the bytes " the". Our id layout (see bpe.ts) fixes where tokens sit:
 *   "<unk>" 0, "<s>" 1, "</s>" 2 (also listed in added_tokens),
 *   the byte-alphabet character of byte b at id b + 3,
 *   then the merged tokens, in the order the merges list creates them.
 * The loader accepts only files with this layout and says what is wrong otherwise.
 */
import { BYTE_OFFSET, BpeTokenizer, FIRST_MERGED_ID } from './bpe.js';
import { TokenizerError } from './tokenizer.js';

const CONTROL_TOKENS = ['<unk>', '<s>', '</s>']; // ids 0, 1, 2

/** GPT-2's bytes_to_unicode: byte -> the character that stands for it in token strings */
const BYTE_CHAR: readonly string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const chars: string[] = [];
  let next = 256; // non-printable bytes take U+0100.. in byte order
  for (let b = 0; b < 256; b++) chars.push(String.fromCharCode(printable(b) ? b : next++));
  return chars;
})();

function tokenString(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += BYTE_CHAR[b];
  return s;
}

export function bpeToJson(tok: BpeTokenizer): string {
  const strings = Array.from({ length: tok.vocabSize }, (_, id) =>
    id < BYTE_OFFSET ? CONTROL_TOKENS[id] : tokenString(tok.tokenBytes(id)),
  );
  const file = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: CONTROL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(strings.map((s, id) => [s, id])),
      merges: tok.merges.map((m) => `${strings[m.left]} ${strings[m.right]}`),
    },
  };
  return JSON.stringify(file, null, 2);
}

/** Parse and check a tokenizer.json; any problem is a TokenizerError naming `source`. */
export function bpeFromJson(text: string, source: string): BpeTokenizer {
  try {
    return parseTokenizerJson(text);
  } catch (e) {
    if (e instanceof TokenizerError) throw new TokenizerError(`${source}: ${e.message}`);
    throw e;
  }
}

function parseTokenizerJson(text: string): BpeTokenizer {
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`not valid JSON (${(e as Error).message})`);
  }
  const file = expectObject(root, 'the file');
  if (file.normalizer != null) throw new TokenizerError('normalizer must be null');
  const pre = expectObject(file.pre_tokenizer, 'pre_tokenizer');
  if (pre.type !== 'ByteLevel' || pre.use_regex === false || pre.add_prefix_space === true) {
    throw new TokenizerError('pre_tokenizer must be {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}');
  }
  const model = expectObject(file.model, 'model');
  if (model.type !== 'BPE') throw new TokenizerError(`model.type must be "BPE", not ${JSON.stringify(model.type)}`);
  if (model.byte_fallback === true) throw new TokenizerError('model.byte_fallback must be false');

  const strings = readVocab(expectObject(model.vocab, 'model.vocab'), file.added_tokens);
  const tok = new BpeTokenizer(readMerges(model.merges, strings));
  checkVocabMatchesMerges(tok, strings);
  return tok;
}

/** id -> token string, from model.vocab plus added_tokens, checked against our layout */
function readVocab(vocab: Record<string, unknown>, addedTokens: unknown): string[] {
  const strings: string[] = [];
  // contiguous ids can never reach the number of entries; this also keeps the array dense
  const idLimit = Object.keys(vocab).length + (Array.isArray(addedTokens) ? addedTokens.length : 0);
  const assign = (content: string, id: unknown, where: string) => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= idLimit) {
      throw new TokenizerError(`${where}: id of ${JSON.stringify(content)} must be an integer in 0..${idLimit - 1}, not ${JSON.stringify(id)}`);
    }
    const other = strings[id];
    if (other !== undefined && other !== content) {
      throw new TokenizerError(`${where}: id ${id} is used by both ${JSON.stringify(other)} and ${JSON.stringify(content)}`);
    }
    strings[id] = content;
  };
  for (const [content, id] of Object.entries(vocab)) assign(content, id, 'model.vocab');
  if (addedTokens !== undefined) {
    if (!Array.isArray(addedTokens)) throw new TokenizerError('added_tokens must be an array');
    addedTokens.forEach((entry, i) => {
      const t = expectObject(entry, `added_tokens[${i}]`);
      if (typeof t.content !== 'string') throw new TokenizerError(`added_tokens[${i}].content must be a string`);
      assign(t.content, t.id, `added_tokens[${i}]`);
    });
  }
  for (let id = 0; id < strings.length; id++) {
    if (strings[id] === undefined) throw new TokenizerError(`ids must run 0..${strings.length - 1} without gaps; id ${id} is missing`);
  }
  if (strings.length < FIRST_MERGED_ID) {
    throw new TokenizerError(`vocab has ${strings.length} tokens; it needs at least ${FIRST_MERGED_ID} (3 control tokens + 256 bytes)`);
  }
  CONTROL_TOKENS.forEach((content, id) => expectToken(strings, id, content));
  BYTE_CHAR.forEach((c, b) => expectToken(strings, b + BYTE_OFFSET, c));
  return strings;
}

function expectToken(strings: readonly string[], id: number, content: string): void {
  if (strings[id] !== content) {
    throw new TokenizerError(`id ${id} must be ${JSON.stringify(content)} in this layout, not ${JSON.stringify(strings[id])}`);
  }
}

/** merges as id pairs; accepts both "a b" strings and ["a", "b"] arrays */
function readMerges(merges: unknown, strings: readonly string[]): [number, number][] {
  if (!Array.isArray(merges)) throw new TokenizerError('model.merges must be an array');
  const idOf = new Map(strings.map((s, id) => [s, id]));
  return merges.map((m, rank): [number, number] => {
    const parts = typeof m === 'string' ? m.split(' ') : m;
    if (!Array.isArray(parts) || parts.length !== 2 || !parts.every((p) => typeof p === 'string')) {
      throw new TokenizerError(`merge ${rank} must be "left right" or [left, right], not ${JSON.stringify(m)}`);
    }
    const [left, right] = parts.map((p) => {
      const id = idOf.get(p);
      if (id === undefined) throw new TokenizerError(`merge ${rank} ${JSON.stringify(m)} uses unknown token ${JSON.stringify(p)}`);
      return id;
    });
    return [left, right];
  });
}

/** the merges, replayed, must create exactly the vocab's merged tokens, at the vocab's ids */
function checkVocabMatchesMerges(tok: BpeTokenizer, strings: readonly string[]): void {
  const built = Math.min(tok.vocabSize, strings.length);
  for (let id = FIRST_MERGED_ID; id < built; id++) {
    const made = tokenString(tok.tokenBytes(id));
    if (made !== strings[id]) {
      throw new TokenizerError(`vocab id ${id} is ${JSON.stringify(strings[id])} but the merges create ${JSON.stringify(made)} there`);
    }
  }
  if (tok.vocabSize !== strings.length) {
    throw new TokenizerError(`the merges create ${tok.vocabSize} tokens but the vocab has ${strings.length}`);
  }
}

function expectObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenizerError(`${what} must be an object`);
  }
  return value as Record<string, unknown>;
}
