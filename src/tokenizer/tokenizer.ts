/**
 * The interface every tokenizer provides, and the pieces they share: the error type,
 * id checking, and a streaming decoder for generation output.
 *
 * Both tokenizers use the Llama id layout for control tokens: 0 = <unk>, 1 = <s> (BOS),
 * 2 = </s> (EOS). Control tokens carry no text: `tokenBytes` of them is empty, and
 * ordinary text never encodes to them.
 */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** text -> ids; `bos: true` puts BOS first (default false) */
  encode(text: string, opts?: { bos?: boolean }): number[];
  /** any bytes (valid UTF-8 or not) -> ids */
  encodeBytes(bytes: Uint8Array): number[];
  /** ids -> text; bytes that are not valid UTF-8 become U+FFFD (the WHATWG TextDecoder rule) */
  decode(ids: readonly number[]): string;
  decodeBytes(ids: readonly number[]): Uint8Array;
  /** the bytes one token stands for (empty for control tokens) */
  tokenBytes(id: number): Uint8Array;
}

export const UNK_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

export function checkTokenId(id: number, vocabSize: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new TokenizerError(`token id ${id} is out of range for vocab size ${vocabSize}`);
  }
}

/**
 * A UTF-8 decoder that keeps a leading U+FEFF: the default TextDecoder strips one, which
 * would break decode(encode(s)) === s for text that starts with a byte-order mark.
 */
export function utf8Decoder(): TextDecoder {
  return new TextDecoder('utf-8', { ignoreBOM: true });
}

/** one char per byte: a cheap Map key for a byte sequence */
export function byteString(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Turns generated ids into text as they arrive. A token may end in the middle of a
 * UTF-8 character (byte-fallback tokens, or a merge that splits one), so bytes are held
 * back until their character is complete. The concatenation of every `push` and the
 * final `flush` equals `tok.decode(ids)`.
 */
export class StreamDecoder {
  private readonly utf8 = utf8Decoder();
  private prevId = -1;

  constructor(private readonly tok: Tokenizer) {}

  /** the text completed by this token (often '', sometimes several characters) */
  push(id: number): string {
    // A token's bytes can depend on the token before it: llama2.c drops the leading
    // space of the piece right after BOS. decodeBytes knows each tokenizer's rule, and
    // BOS itself decodes to nothing, so [BOS, id] gives exactly this token's bytes.
    const bytes =
      this.prevId === this.tok.bosId ? this.tok.decodeBytes([this.prevId, id]) : this.tok.tokenBytes(id);
    this.prevId = id;
    return this.utf8.decode(bytes, { stream: true });
  }

  /** end of output: any incomplete character left over becomes U+FFFD */
  flush(): string {
    this.prevId = -1;
    return this.utf8.decode();
  }
}
