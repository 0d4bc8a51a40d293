/**
 * A tokenizer in GGUF's tokenizer.ggml.* keys, both ways.
 *
 * Writing, from a Hugging Face tokenizer.json (ours included), as llama.cpp loads it:
 *   BPE with byte_fallback (SentencePiece style: Llama 2, Mistral)  -> model 'llama':
 *       tokens, scores (minus the rank of the merge that makes a piece), token_type
 *   byte-level BPE (GPT-2, Llama 3, Qwen2, our own)                 -> model 'gpt2':
 *       tokens, token_type, merges, and the pre-tokenizer by its llama.cpp name
 *   the whole tokenizer.json in tokenizer.huggingface.json, so our reader gets it back exactly
 * A model with no tokenizer of its own (random weights) gets the byte-level vocabulary of an
 * untrained BpeTokenizer (0 <unk>, 1 <s>, 2 </s>, 3..258 the bytes): any text tokenizes, as
 * bytes. The token list has exactly vocab_size entries, as llama.cpp requires (it sizes
 * the embedding by it): a shorter vocabulary is padded with "[PAD<id>]" pieces of type unused.
 *
 * Reading: tokenizer.huggingface.json when the file has it, else a tokenizer.json assembled
 * from tokenizer.ggml.*, read by @huggingface/tokenizers (tokenizer/hf.ts).
 */
import type { GgufValue } from './gguf-file.js';

/** llama.cpp's token types (tokenizer.ggml.token_type) */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export const HF_JSON_KEY = 'tokenizer.huggingface.json';

/** the llama.cpp pre-tokenizer of a byte-level tokenizer.json's split pattern */
const PRE_TOKENIZERS: [RegExp, string][] = [
  [/^\(\?i:'s\|'t\|'re\|'ve\|'m\|'ll\|'d\)\|\[\^\\r\\n\\p\{L\}\\p\{N\}\]\?\\p\{L\}\+\|\\p\{N\}\{1,3\}/, 'llama-bpe'],
  [/^\(\?i:'s\|'t\|'re\|'ve\|'m\|'ll\|'d\)\|\[\^\\r\\n\\p\{L\}\\p\{N\}\]\?\\p\{L\}\+\|\\p\{N\}\|/, 'qwen2'],
];

interface TokenizerJson {
  added_tokens?: { id: number; content: string; special?: boolean }[];
  pre_tokenizer?: { type?: string; pretokenizers?: unknown[]; pattern?: { Regex?: string } } | null;
  model?: { type?: string; byte_fallback?: boolean; unk_token?: string | null; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
}

export interface TokenizerMetadataOptions {
  vocabSize: number;
  bosId?: number;
  eosIds?: readonly number[];
  /** whether llama.cpp should put BOS first (tokenizer_config.json's add_bos_token; default true when there is a BOS) */
  addBos?: boolean;
  /** a chat template, stored as tokenizer.chat_template */
  chatTemplate?: string;
}

/** The tokenizer.* entries for a tokenizer.json. */
export function tokenizerMetadata(json: string, o: TokenizerMetadataOptions): [string, GgufValue][] {
  const entries = fromTokenizerJson(json, o.vocabSize);
  const ids = (key: string, id: number | undefined) => id !== undefined && entries.push([key, { type: 'u32', value: id }]);
  ids('tokenizer.ggml.bos_token_id', o.bosId);
  ids('tokenizer.ggml.eos_token_id', o.eosIds?.[0]);
  entries.push(['tokenizer.ggml.add_bos_token', { type: 'bool', value: o.addBos ?? o.bosId !== undefined }]);
  entries.push(['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }]);
  if (o.chatTemplate !== undefined) entries.push(['tokenizer.chat_template', { type: 'string', value: o.chatTemplate }]);
  entries.push([HF_JSON_KEY, { type: 'string', value: json }]);
  return entries;
}

/** "<0x0A>": SentencePiece's piece for a byte */
export function bytePiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

function fromTokenizerJson(text: string, vocabSize: number): [string, GgufValue][] {
  const file = JSON.parse(text) as TokenizerJson;
  const model = file.model ?? {};
  if (model.type !== 'BPE' || !model.vocab) throw new Error(`only BPE tokenizers can be written to GGUF (this one is ${JSON.stringify(model.type)})`);
  const tokens: (string | undefined)[] = new Array(vocabSize);
  const types: number[] = new Array(vocabSize).fill(TOKEN_TYPE.normal);
  for (const [piece, id] of Object.entries(model.vocab)) if (id < vocabSize) tokens[id] = piece;
  for (const t of file.added_tokens ?? []) {
    if (t.id >= vocabSize) continue;
    tokens[t.id] = t.content;
    types[t.id] = t.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
  }
  const spm = model.byte_fallback === true;
  for (let id = 0; id < vocabSize; id++) {
    if (tokens[id] === undefined) {
      tokens[id] = `[PAD${id}]`;
      types[id] = TOKEN_TYPE.unused;
    } else if (spm && /^<0x[0-9A-F]{2}>$/.test(tokens[id]!)) {
      types[id] = TOKEN_TYPE.byte;
    }
    if (model.unk_token && tokens[id] === model.unk_token) types[id] = TOKEN_TYPE.unknown;
  }
  const entries: [string, GgufValue][] = [
    ['tokenizer.ggml.model', { type: 'string', value: spm ? 'llama' : 'gpt2' }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens as string[] }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: types }],
  ];
  const merges = (model.merges ?? []).map((m) => (typeof m === 'string' ? m : m.join(' ')));
  if (spm) {
    entries.push(['tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: pieceScores(tokens as string[], types, merges) }]);
  } else {
    entries.push(['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: merges }]);
    entries.push(['tokenizer.ggml.pre', { type: 'string', value: preTokenizerName(file) }]);
  }
  return entries;
}

/**
 * SentencePiece scores for BPE pieces: llama.cpp merges the adjacent pair whose joined piece
 * scores highest, Hugging Face the pair listed first, so a piece scores minus the rank of the
 * first merge that makes it; a piece no merge makes (a single character) ranks after all of
 * them, by id; control, byte and unused pieces score 0 (they never merge).
 */
function pieceScores(tokens: string[], types: number[], merges: string[]): number[] {
  const firstRank = new Map<string, number>();
  merges.forEach((m, rank) => {
    const joined = m.replace(' ', '');
    if (!firstRank.has(joined)) firstRank.set(joined, rank);
  });
  return tokens.map((t, id) => (types[id] !== TOKEN_TYPE.normal ? 0 : -(firstRank.get(t) ?? merges.length + id)));
}

/** llama.cpp's name for the pre-tokenizer: a known split pattern, else GPT-2's ('gpt-2') */
function preTokenizerName(file: TokenizerJson): string {
  const pre = file.pre_tokenizer;
  const parts = pre?.type === 'Sequence' ? (pre.pretokenizers as TokenizerJson['pre_tokenizer'][]) : [pre];
  for (const part of parts) {
    const pattern = part?.pattern?.Regex;
    if (part?.type === 'Split' && pattern) for (const [re, name] of PRE_TOKENIZERS) if (re.test(pattern)) return name;
  }
  return 'gpt-2';
}

// ---------------------------------------------------------------------------- reading

/** the split patterns of llama.cpp's byte-level pre-tokenizers, by tokenizer.ggml.pre */
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const SPLIT_OF_PRE: Record<string, string> = { 'llama-bpe': LLAMA3_SPLIT, llama3: LLAMA3_SPLIT, 'llama-v3': LLAMA3_SPLIT, qwen2: QWEN2_SPLIT };
/** SentencePiece's word-boundary mark */
const SPACE_MARK = '\u2581';

/**
 * A tokenizer.json for the tokenizer.ggml.* keys (model 'llama' or 'gpt2'), or a message
 * saying what is missing. 'llama': BPE with byte fallback over the pieces, its merges made
 * as Hugging Face's SentencePiece converter makes them (every split of a piece into two
 * pieces, the higher-scored result first); 'gpt2': byte-level BPE with the file's merges,
 * split as tokenizer.ggml.pre names (GPT-2's pattern for a name not known here).
 */
export function tokenizerJsonFromGgml(meta: Map<string, GgufValue>): string | { missing: string } {
  const model = meta.get('tokenizer.ggml.model')?.value;
  const strings = (key: string) => (meta.get(key)?.type === 'array' && typeof (meta.get(key)!.value as unknown[])[0] === 'string' ? (meta.get(key)!.value as string[]) : undefined);
  const numbers = (key: string) => (meta.get(key)?.type === 'array' ? (meta.get(key)!.value as number[]) : undefined);
  const tokens = strings('tokenizer.ggml.tokens');
  if (!tokens) return { missing: 'tokenizer.ggml.tokens (the pieces)' };
  const types = numbers('tokenizer.ggml.token_type') ?? tokens.map(() => TOKEN_TYPE.normal);
  if (types.length !== tokens.length) return { missing: `a tokenizer.ggml.token_type of ${tokens.length} entries (it has ${types.length})` };
  const vocab: Record<string, number> = {};
  tokens.forEach((t, id) => { if (!Object.hasOwn(vocab, t)) vocab[t] = id; });
  const added = tokens.flatMap((content, id) => {
    const type = types[id]!;
    if (type !== TOKEN_TYPE.control && type !== TOKEN_TYPE.userDefined && type !== TOKEN_TYPE.unknown) return [];
    return [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: type !== TOKEN_TYPE.userDefined }];
  });
  const unkId = meta.get('tokenizer.ggml.unknown_token_id')?.value;
  const unk = typeof unkId === 'number' ? tokens[unkId] ?? null : (tokens.find((_, id) => types[id] === TOKEN_TYPE.unknown) ?? null);
  const bpe = (merges: string[], extra: Record<string, unknown>) => ({
    type: 'BPE', dropout: null, unk_token: unk, continuing_subword_prefix: null, end_of_word_suffix: null, vocab, merges, ...extra,
  });
  if (model === 'llama') {
    const scores = numbers('tokenizer.ggml.scores') ?? tokens.map((_, id) => -id);
    if (scores.length !== tokens.length) return { missing: `a tokenizer.ggml.scores of ${tokens.length} entries (it has ${scores.length})` };
    const prefix = meta.get('tokenizer.ggml.add_space_prefix')?.value !== false;
    const normalizers = [...(prefix ? [{ type: 'Prepend', prepend: SPACE_MARK }] : []), { type: 'Replace', pattern: { String: ' ' }, content: SPACE_MARK }];
    return JSON.stringify({
      version: '1.0', truncation: null, padding: null, added_tokens: added,
      normalizer: { type: 'Sequence', normalizers }, pre_tokenizer: null, post_processor: null,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: SPACE_MARK }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
          ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
        ],
      },
      model: bpe(pieceMerges(tokens, types, scores, vocab), { fuse_unk: true, byte_fallback: true }),
    });
  }
  if (model === 'gpt2') {
    const merges = strings('tokenizer.ggml.merges') ?? (numbers('tokenizer.ggml.merges')?.length === 0 ? [] : undefined);
    if (!merges) return { missing: 'tokenizer.ggml.merges (a gpt2 tokenizer needs its merges)' };
    const pre = meta.get('tokenizer.ggml.pre')?.value;
    const split = typeof pre === 'string' ? SPLIT_OF_PRE[pre] : undefined;
    const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: split === undefined };
    return JSON.stringify({
      version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
      pre_tokenizer: split === undefined ? byteLevel : { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: split }, behavior: 'Isolated', invert: false }, byteLevel] },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: bpe(merges, { fuse_unk: false, byte_fallback: false, ignore_merges: split === LLAMA3_SPLIT }),
    });
  }
  return { missing: `a tokenizer model this library reads (tokenizer.ggml.model is ${JSON.stringify(model)}; supported: llama, gpt2)` };
}

/** SentencePiece merges: each normal piece split into two pieces, higher score first, then by the halves' ids */
function pieceMerges(tokens: string[], types: number[], scores: number[], vocab: Record<string, number>): string[] {
  const merges: { left: string; right: string; score: number; l: number; r: number }[] = [];
  tokens.forEach((piece, id) => {
    if (types[id] !== TOKEN_TYPE.normal) return;
    const chars = [...piece];
    for (let cut = 1; cut < chars.length; cut++) {
      const left = chars.slice(0, cut).join(''), right = chars.slice(cut).join('');
      const l = vocab[left], r = vocab[right];
      if (l !== undefined && r !== undefined && Object.hasOwn(vocab, left) && Object.hasOwn(vocab, right)) merges.push({ left, right, score: scores[id]!, l, r });
    }
  });
  merges.sort((a, b) => b.score - a.score || a.l - b.l || a.r - b.r);
  return merges.map((m) => `${m.left} ${m.right}`);
}
