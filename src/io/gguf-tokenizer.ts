/**
 * A tokenizer in GGUF's tokenizer.ggml.* keys, both ways.
 *
 * Writing, from a Hugging Face tokenizer.json (ours included), as llama.cpp loads it:
 *   BPE with byte_fallback (SentencePiece style: Llama 2, Mistral)  -> model 'llama':
 *       tokens, scores (-id: earlier pieces win, as in a SentencePiece BPE model), token_type
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
  if (spm) {
    entries.push(['tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: types.map((t, id) => (t === TOKEN_TYPE.normal ? -id : 0)) }]);
  } else {
    const merges = (model.merges ?? []).map((m) => (typeof m === 'string' ? m : m.join(' ')));
    entries.push(['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: merges }]);
    entries.push(['tokenizer.ggml.pre', { type: 'string', value: preTokenizerName(file) }]);
  }
  return entries;
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
