/**
 * llama2.c's `tokenizer.bin`: reading it (so llama2.c models such as stories15M run here)
 * and writing one from our BPE (so our models run in llama2.c's run.c).
 *
 * Format, little endian:
 *   int32 max_token_length
 *   vocab_size times: float32 score, int32 len, len bytes (the piece, no terminator)
 * vocab_size is not stored: it comes from the model file, so the reader takes it as a
 * parameter and rejects a file with too few bytes or bytes left over.
 *
 * Pieces follow SentencePiece: ids 0..2 are the control tokens, and a piece "<0xXX>"
 * stands for the single byte XX (byte fallback uses id = byte + 3). A model whose vocab_size
 * is padded past its tokenizer's gets placeholder pieces "<pad_ID>" for the extra ids.
 */
import { BYTE_OFFSET, FIRST_MERGED_ID, type BpeTokenizer } from './bpe.js';
import {
  BOS_ID,
  EOS_ID,
  TokenizerError,
  byteString,
  checkTokenId,
  concatBytes,
  utf8Decoder,
  type Tokenizer,
} from './tokenizer.js';

const CONTROL_PIECES = ['<unk>', '\n<s>\n', '\n</s>\n']; // as in llama2.c's own tokenizer.bin
const NEVER_MERGED_SCORE = -1e6; // bytes and control tokens: below every merged token
const NO_MERGE_SCORE = -1e10; // run.c's starting best score

// ---------------------------------------------------------------------------------------
// Writing

/**
 * Our BPE as run.c sees it. Single bytes are written as themselves when printable ASCII
 * (run.c's encoder looks up " " and plain characters as strings) and as "<0xXX>" otherwise
 * (run.c's decoder turns that back into the byte); merged tokens are their raw bytes.
 * A merged token scores minus the rank of the merge that first made it, so run.c's
 * "merge the highest-scoring pair" follows our merge order.
 *
 * run.c only finds a merged token by concatenating two pieces' strings, so merged tokens
 * that contain a "<0xXX>" byte (control characters, bytes of split UTF-8 characters) are
 * out of its reach: such text still encodes correctly, in more tokens. run.c also treats
 * pieces as C strings, so a token containing a 0x00 byte would be cut short there.
 *
 * `vocabSize` is the model's (run.c reads exactly that many entries); a model whose
 * vocabulary is padded past the tokenizer's gets one placeholder per extra id (see
 * paddingPieces).
 */
export function writeLlama2cTokenizer(tok: BpeTokenizer, vocabSize = tok.vocabSize): Uint8Array {
  if (!Number.isInteger(vocabSize) || vocabSize < tok.vocabSize) {
    throw new TokenizerError(`tokenizer.bin: the model's vocab size ${vocabSize} must be an integer >= the tokenizer's ${tok.vocabSize} tokens`);
  }
  const ascii = new TextEncoder();
  const pieces: Uint8Array[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    if (id < BYTE_OFFSET) pieces.push(ascii.encode(CONTROL_PIECES[id]));
    else if (id < FIRST_MERGED_ID) pieces.push(ascii.encode(bytePiece(id - BYTE_OFFSET)));
    else pieces.push(tok.tokenBytes(id));
  }
  pieces.push(...paddingPieces(pieces, vocabSize).map((p) => ascii.encode(p)));
  const scores = new Float32Array(vocabSize).fill(NEVER_MERGED_SCORE);
  for (let rank = tok.merges.length - 1; rank >= 0; rank--) scores[tok.merges[rank].id] = -rank; // first rank wins

  const maxTokenLength = pieces.reduce((m, p) => Math.max(m, p.length), 0);
  const out = new Uint8Array(4 + pieces.reduce((n, p) => n + 8 + p.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, maxTokenLength, true);
  let offset = 4;
  pieces.forEach((piece, id) => {
    view.setFloat32(offset, scores[id], true);
    view.setInt32(offset + 4, piece.length, true);
    out.set(piece, offset + 8);
    offset += 8 + piece.length;
  });
  return out;
}

/**
 * Placeholders for the ids from pieces.length to vocabSize - 1, "<pad_ID>". They may not be
 * empty: run.c reads each piece with fread(piece, len, 1) and stops with "failed read" when
 * that reads nothing, as it does for len 0. They must also stay out of every encoding:
 * run.c's encoder looks up single characters (at most 4 bytes, shorter than any
 * placeholder) and concatenations of two pieces, so a placeholder that is a piece already,
 * or that splits into two pieces, gets "_" added before its ">" until neither holds. (Its
 * own "<" and ">" occur once each, so a split never yields another placeholder.) A model
 * that emits a padded id shows the placeholder's text, in run.c as here.
 */
function paddingPieces(pieces: readonly Uint8Array[], vocabSize: number): string[] {
  const known = new Set(pieces.map(byteString));
  const formable = (p: string): boolean => {
    if (known.has(p)) return true;
    for (let cut = 1; cut < p.length; cut++) if (known.has(p.slice(0, cut)) && known.has(p.slice(cut))) return true;
    return false;
  };
  const out: string[] = [];
  for (let id = pieces.length; id < vocabSize; id++) {
    let mark = '';
    while (formable(`<pad_${id}${mark}>`)) mark += '_';
    out.push(`<pad_${id}${mark}>`);
  }
  return out;
}

function bytePiece(b: number): string {
  if (b >= 0x20 && b <= 0x7e) return String.fromCharCode(b);
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

// ---------------------------------------------------------------------------------------
// Reading

export function readLlama2cTokenizer(bytes: Uint8Array, vocabSize: number, source: string): Llama2cTokenizer {
  const fail = (problem: string) => new TokenizerError(`${source}: ${problem}`);
  if (!Number.isInteger(vocabSize) || vocabSize < FIRST_MERGED_ID) {
    throw fail(`vocab size ${vocabSize} must be an integer >= ${FIRST_MERGED_ID} (3 control tokens + 256 byte tokens)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (offset: number, n: number, what: string) => {
    if (offset + n > bytes.length) {
      throw fail(`truncated: ${what} needs bytes ${offset}..${offset + n - 1}, but the file has ${bytes.length} bytes`);
    }
  };
  need(0, 4, 'max_token_length');
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength < 0) throw fail(`max_token_length is ${maxTokenLength}`);

  const pieces: Uint8Array[] = [];
  const scores = new Float32Array(vocabSize);
  let offset = 4;
  for (let id = 0; id < vocabSize; id++) {
    need(offset, 8, `token ${id} of ${vocabSize}`);
    scores[id] = view.getFloat32(offset, true);
    const len = view.getInt32(offset + 4, true);
    offset += 8;
    if (len < 0 || len > maxTokenLength) {
      throw fail(`token ${id} has length ${len}, outside 0..max_token_length (${maxTokenLength})`);
    }
    need(offset, len, `token ${id} of ${vocabSize}`);
    pieces.push(bytes.slice(offset, offset + len));
    offset += len;
  }
  if (offset !== bytes.length) {
    throw fail(`${bytes.length - offset} bytes left over after ${vocabSize} tokens; is the vocab size right?`);
  }
  return new Llama2cTokenizer(pieces, scores);
}

/** "<0xXX>" -> XX, anything else -> undefined */
function parseBytePiece(piece: Uint8Array): number | undefined {
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(byteString(piece));
  return m ? parseInt(m[1], 16) : undefined;
}

/**
 * The tokenizer of llama2.c's run.c, step for step, so ids match what run.c produces.
 *
 * encode: optional BOS, then (for non-empty text) the dummy-prefix token " ", then one
 * token per UTF-8 character that is a piece (falling back to one token per byte,
 * id = byte + 3), then repeatedly merge the adjacent pair with the highest score whose
 * concatenated string is a piece (ties: leftmost). That loop is quadratic in the input
 * length, as in run.c; it is meant for prompts. Unlike run.c, bytes after a 0x00 are kept.
 *
 * decode: each piece's bytes, with "<0xXX>" as the byte XX, and with the leading space
 * dropped from the piece right after BOS. So decode(encode(s, {bos: true})) === s, while
 * without BOS the dummy-prefix space stays. Control tokens (ids 0..2) decode to nothing.
 */
export class Llama2cTokenizer implements Tokenizer {
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  readonly eosIds: readonly number[] = [EOS_ID];
  private readonly keys: string[]; // id -> byteString(piece)
  private readonly idOf = new Map<string, number>(); // run.c's sorted-vocab lookup; lowest id on duplicates
  private readonly text: Uint8Array[]; // id -> the bytes it decodes to
  private readonly spaceId: number | undefined;
  private readonly utf8 = utf8Decoder();
  private readonly utf8Encoder = new TextEncoder();

  constructor(
    private readonly pieces: readonly Uint8Array[],
    private readonly scores: Float32Array, // (vocabSize,)
  ) {
    this.keys = pieces.map(byteString);
    this.keys.forEach((key, id) => {
      if (!this.idOf.has(key)) this.idOf.set(key, id);
    });
    this.text = pieces.map((piece, id) => {
      if (id < BYTE_OFFSET) return new Uint8Array(0);
      const b = parseBytePiece(piece);
      return b === undefined ? piece : Uint8Array.of(b);
    });
    this.spaceId = this.idOf.get(' ');
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    return this.runEncode(this.utf8Encoder.encode(text), opts.bos ?? false);
  }

  encodeBytes(bytes: Uint8Array): number[] {
    return this.runEncode(bytes, false);
  }

  decode(ids: readonly number[]): string {
    return this.utf8.decode(this.decodeBytes(ids));
  }

  decodeBytes(ids: readonly number[]): Uint8Array {
    return concatBytes(ids.map((id, i) => this.pieceAfter(i > 0 ? ids[i - 1] : -1, id)));
  }

  tokenBytes(id: number): Uint8Array {
    return this.pieceAfter(-1, id).slice();
  }

  /** run.c's decode(prev, id) */
  private pieceAfter(prev: number, id: number): Uint8Array {
    checkTokenId(id, this.vocabSize);
    // SentencePiece drops the dummy-prefix space at the start of the text. run.c tests
    // the raw piece, so the byte token "<0x20>" keeps its space.
    const raw = this.pieces[id];
    if (prev === BOS_ID && id >= BYTE_OFFSET && raw[0] === 0x20) return raw.subarray(1);
    return this.text[id];
  }

  private runEncode(bytes: Uint8Array, bos: boolean): number[] {
    const ids = bos ? [BOS_ID] : [];
    if (bytes.length > 0 && this.spaceId !== undefined) ids.push(this.spaceId); // dummy prefix
    this.appendCharacters(ids, bytes);
    this.mergeByScore(ids);
    return ids;
  }

  /**
   * run.c groups a byte with up to 3 following continuation bytes (10xxxxxx) without
   * validating UTF-8, looks the group up as a piece, and otherwise emits its bytes.
   */
  private appendCharacters(ids: number[], bytes: Uint8Array): void {
    for (let start = 0; start < bytes.length; ) {
      let end = start + 1;
      while (end < bytes.length && end - start < 4 && (bytes[end] & 0xc0) === 0x80) end++;
      const group = bytes.subarray(start, end);
      const id = this.idOf.get(byteString(group));
      if (id !== undefined) ids.push(id);
      else for (const b of group) ids.push(b + BYTE_OFFSET);
      start = end;
    }
  }

  private mergeByScore(ids: number[]): void {
    for (;;) {
      let bestScore = NO_MERGE_SCORE;
      let bestId = -1;
      let bestAt = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const id = this.idOf.get(this.keys[ids[i]] + this.keys[ids[i + 1]]);
        if (id !== undefined && this.scores[id] > bestScore) {
          bestScore = this.scores[id];
          bestId = id;
          bestAt = i;
        }
      }
      if (bestAt < 0) return;
      ids.splice(bestAt, 2, bestId);
    }
  }
}
