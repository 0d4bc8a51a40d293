/**
 * Any Hugging Face tokenizer.json, read by Hugging Face's own JavaScript library
 * (@huggingface/tokenizers, pure JS, any runtime): BPE over a byte-level alphabet (GPT-2,
 * Llama 3, Qwen) or SentencePiece pieces with byte fallback (Llama 2, Mistral), their
 * normalizers, Split pre-tokenizers and decoders, added and special tokens, and the
 * WordPiece and Unigram models. This file adds only what the library leaves to its caller.
 *
 * One loader for every model directory: our own tokenizer.json (written by
 * tokenizer-json.ts from bpe.ts's BpeTokenizer) is read here too. The library gives our
 * files the ids BpeTokenizer gives (test/tokenizer-hf.test.ts checks it on the shipped
 * model and on freshly trained ones), with one difference: in text, the literals "<unk>",
 * "<s>" and "</s>" encode as those special tokens, as in every Hugging Face tokenizer,
 * where BpeTokenizer spells them in bytes. BpeTokenizer stays for training and for writing
 * tokenizer.json and llama2.c's tokenizer.bin.
 *
 * What this class decides on top of the library:
 *   encode   never applies the post-processor's template; `bos: true` puts bosId first when
 *            the tokenizer starts sequences with it (tokenizer_config.json's add_bos_token,
 *            true when absent).
 *   decode   special tokens decode to nothing (skip_special_tokens), and spaces are never
 *            "cleaned up" (clean_up_tokenization_spaces: " ." stays " ."), so text the
 *            tokenizer can represent decodes back exactly and a stream's pieces join up to
 *            the whole decode. An id inside the range that names no token (a gap in a
 *            file's ids) decodes to nothing.
 *   BOS/EOS  tokenizer_config.json's bos_token / eos_token, then the model config's
 *            bos_token_id / eos_token_id (EOS may be a list: all of them go in eosIds), and
 *            without either file the special tokens "<s>" and "</s>" when the vocabulary
 *            has them (the Llama convention, which our own files follow).
 */
import { Tokenizer as Library } from '@huggingface/tokenizers';
import { BpeTokenizer } from './bpe.js';
import { bpeFromJson, bpeToJson } from './tokenizer-json.js';
import { TokenizerError, checkTokenId, type Tokenizer } from './tokenizer.js';

/**
 * The part of the library's Tokenizer used here. Its bundled declarations import their
 * own files without extensions, which NodeNext module resolution does not follow (the
 * import types as `any`), so the calls are typed here.
 */
interface LibraryTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[]; tokens: string[] };
  decode(ids: number[], options: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens: boolean): Map<string, number>;
  get_added_tokens_decoder(): Map<number, { special: boolean }>;
}

/** a config's token id field: one id, a list (eos_token_id in many models), or nothing */
export type TokenIds = number | readonly number[] | null | undefined;

export interface HfTokenizerOptions {
  /** tokenizer_config.json text (bos_token, eos_token, add_bos_token, special tokens) */
  config?: string;
  /** where the tokenizer_config.json text came from, for messages */
  configSource?: string;
  /** the model config's bos_token_id */
  bosTokenId?: TokenIds;
  /** the model config's eos_token_id */
  eosTokenId?: TokenIds;
}

/** the Llama convention's control tokens, used when no file names BOS / EOS */
const CONVENTIONAL_BOS = '<s>';
const CONVENTIONAL_EOS = '</s>';

/** the tokenizer models the library implements */
const MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram'];

/** decode as this file's header describes */
const DECODE_OPTIONS = { skip_special_tokens: true, clean_up_tokenization_spaces: false };

/** Read a tokenizer.json (+ tokenizer_config.json); any problem is a TokenizerError naming its file. */
export function readHfTokenizer(json: string, source: string, opts: HfTokenizerOptions = {}): HfTokenizer {
  const file = parseObject(json, source, 'tokenizer.json');
  const configSource = opts.configSource ?? 'tokenizer_config.json';
  const config = opts.config === undefined ? undefined : parseObject(opts.config, configSource, 'tokenizer_config.json');
  if (!Array.isArray(file.added_tokens)) {
    throw new TokenizerError(`${source}: added_tokens must be an array (a tokenizer.json file has one, perhaps empty)`);
  }
  const model = file.model as { type?: unknown } | null | undefined;
  if (typeof model?.type === 'string' && !MODEL_TYPES.includes(model.type)) {
    // the library would read any other type with a vocab as its "Legacy" word list
    throw new TokenizerError(`${source}: model.type ${JSON.stringify(model.type)} is none of ${MODEL_TYPES.join(', ')}`);
  }
  let library: LibraryTokenizer;
  try {
    library = new Library(file, config ?? {}) as LibraryTokenizer;
  } catch (e) {
    throw new TokenizerError(`${source}: @huggingface/tokenizers cannot read it: ${(e as Error).message}`);
  }
  return new HfTokenizer(library, json, opts.config, { source, configSource, config, bosTokenId: opts.bosTokenId, eosTokenId: opts.eosTokenId });
}

function parseObject(text: string, source: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${source}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenizerError(`${source}: a ${what} file holds a JSON object`);
  }
  return value as Record<string, unknown>;
}

interface SpecialTokenSources {
  source: string;
  configSource: string;
  config: Record<string, unknown> | undefined;
  bosTokenId?: TokenIds;
  eosTokenId?: TokenIds;
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosIds: readonly number[];
  /** whether encode(text, { bos: true }) puts bosId first */
  readonly addsBos: boolean;

  /** use readHfTokenizer */
  constructor(
    private readonly library: LibraryTokenizer,
    /** the tokenizer.json text it was read from (to copy beside converted weights) */
    readonly json: string,
    /** the tokenizer_config.json text, when there was one */
    readonly configJson: string | undefined,
    names: SpecialTokenSources,
  ) {
    this.vocabSize = maxId(library) + 1;
    ({ bosId: this.bosId, eosIds: this.eosIds, addsBos: this.addsBos } = specialTokens(library, this.vocabSize, names));
  }

  get eosId(): number | undefined {
    return this.eosIds[0];
  }

  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    const { ids, tokens } = this.library.encode(text, { add_special_tokens: false });
    const missing = ids.findIndex((id) => id === undefined);
    if (missing >= 0) {
      throw new TokenizerError(`the piece ${JSON.stringify(tokens[missing])} is not in the vocabulary, and the tokenizer has no unk_token to stand for it`);
    }
    return opts.bos && this.addsBos ? [this.bosId!, ...ids] : ids;
  }

  decode(ids: readonly number[]): string {
    for (const id of ids) checkTokenId(id, this.vocabSize);
    const named = ids.filter((id) => this.library.id_to_token(id) !== undefined);
    return named.length === 0 ? '' : this.library.decode(named, DECODE_OPTIONS);
  }
}

/** BOS, EOS and whether encode adds BOS, from the sources in the order this file's header gives */
function specialTokens(library: LibraryTokenizer, vocabSize: number, names: SpecialTokenSources): { bosId: number | undefined; eosIds: number[]; addsBos: boolean } {
  const { config } = names;
  const fail = (where: string, problem: string) => new TokenizerError(`${where}: ${problem}`);
  const byName = (field: 'bos_token' | 'eos_token'): number[] => {
    const value = config?.[field];
    if (value === undefined || value === null) return [];
    const content = typeof value === 'object' ? (value as { content?: unknown }).content : value;
    if (typeof content !== 'string') throw fail(names.configSource, `${field} must be a token (a string or {"content": ...}), not ${JSON.stringify(value)}`);
    const id = library.token_to_id(content);
    if (id === undefined) throw fail(names.configSource, `${field} ${JSON.stringify(content)} is not a token of ${names.source}`);
    return [id];
  };
  const byId = (field: 'bos_token_id' | 'eos_token_id', value: TokenIds): number[] => {
    const ids = value === null || value === undefined ? [] : typeof value === 'number' ? [value] : [...value];
    if (ids.some((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize)) {
      throw fail(names.source, `the model's ${field} ${JSON.stringify(value)} is not a token id of this tokenizer (0..${vocabSize - 1})`);
    }
    return ids;
  };
  const conventional = (content: string): number[] => {
    if (config !== undefined) return [];
    const id = library.token_to_id(content);
    return id !== undefined && library.get_added_tokens_decoder().get(id)?.special ? [id] : [];
  };
  const firstOf = (...choices: (() => number[])[]): number[] => {
    for (const choice of choices) {
      const ids = choice();
      if (ids.length > 0) return ids;
    }
    return [];
  };
  const bosId = firstOf(() => byName('bos_token'), () => byId('bos_token_id', names.bosTokenId), () => conventional(CONVENTIONAL_BOS))[0];
  const eosIds = firstOf(() => [...byId('eos_token_id', names.eosTokenId), ...byName('eos_token')], () => conventional(CONVENTIONAL_EOS));
  const addBos = config?.add_bos_token;
  if (addBos !== undefined && addBos !== null && typeof addBos !== 'boolean') {
    throw fail(names.configSource, `add_bos_token must be true or false, not ${JSON.stringify(addBos)}`);
  }
  return { bosId, eosIds: [...new Set(eosIds)], addsBos: bosId !== undefined && addBos !== false };
}

function maxId(library: LibraryTokenizer): number {
  let max = -1;
  for (const id of library.get_vocab(true).values()) max = Math.max(max, id);
  return max;
}

/**
 * Our byte-level BPE behind a tokenizer, for what only it can do (write llama2.c's
 * tokenizer.bin): the tokenizer itself, or the BpeTokenizer an HfTokenizer's file describes
 * when that file has our layout; undefined for any other tokenizer.
 */
export function asBpeTokenizer(tok: Tokenizer): BpeTokenizer | undefined {
  if (tok instanceof BpeTokenizer) return tok;
  if (!(tok instanceof HfTokenizer)) return undefined;
  try {
    return bpeFromJson(tok.json, 'tokenizer.json');
  } catch (e) {
    if (e instanceof TokenizerError) return undefined;
    throw e;
  }
}

/** The tokenizer.json text to write beside a model's weights: an HfTokenizer's own file, or our BPE written out. */
export function tokenizerJsonOf(tok: Tokenizer): string | undefined {
  if (tok instanceof HfTokenizer) return tok.json;
  if (tok instanceof BpeTokenizer) return bpeToJson(tok);
  return undefined;
}
