/**
 * The interface every tokenizer provides, and the pieces they share: the error type,
 * id checking, and a streaming decoder for generation output.
 *
 * Three tokenizers implement it: HfTokenizer (any Hugging Face tokenizer.json, ours
 * included), BpeTokenizer (our byte-level BPE, for training and writing files) and
 * Llama2cTokenizer (llama2.c's tokenizer.bin). The last two use the Llama id layout for
 * control tokens: 0 = <unk>, 1 = <s> (BOS), 2 = </s> (EOS). Control and special tokens
 * carry no text: decode skips them.
 *
 * The interface speaks text, not bytes: a decoder such as SentencePiece's (byte fallback, a
 * space dropped at the start of the text) gives no fixed bytes per token, so what one token
 * adds to the text is found by decoding it behind its neighbours (StreamDecoder).
 */
export interface Tokenizer {
  /** ids run 0..vocabSize - 1 */
  readonly vocabSize: number;
  /** the beginning-of-sequence token; undefined when the tokenizer has none */
  readonly bosId: number | undefined;
  /** the end-of-sequence token, eosIds[0]; undefined when none is known */
  readonly eosId: number | undefined;
  /** every token that ends a sequence (a model config may name several), eosId first */
  readonly eosIds: readonly number[];
  /** text -> ids; `bos: true` puts BOS first when the tokenizer starts sequences with one (default false) */
  encode(text: string, opts?: { bos?: boolean }): number[];
  /** ids -> text; control tokens add nothing; bytes that are not valid UTF-8 become U+FFFD */
  decode(ids: readonly number[]): string;
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

const REPLACEMENT_CHARACTER = '\uFFFD';

/**
 * How far back in `before` a context id is looked for: an id that decodes to text sits
 * within the last few of any real prompt, and this bounds the work for a long one.
 */
const CONTEXT_SCAN = 64;

/**
 * What a tokenizer's ids read as after the ids in `before`: decoding can depend on what
 * came before (SentencePiece decoders drop the space that starts the text, llama2.c drops
 * it after BOS), so the ids are decoded behind context ids from `before` and the context's
 * own text is removed. The context is the last id that decodes to text on its own, and the
 * id just before the new ones when that one decodes to nothing (a control token). Should
 * the context's text not start the joint decoding (no decoder here does that), the ids are
 * decoded alone.
 */
class ContextDecoder {
  private context: number[] = [];
  private contextText = '';
  private lastTextId: number | undefined;

  /** `before`: ids already there; those outside the vocabulary (a padded model's) are passed over */
  constructor(
    private readonly tok: Tokenizer,
    before: readonly number[],
  ) {
    const known = before.slice(-CONTEXT_SCAN).filter((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize);
    // ids that end inside a character give no context: what follows completes it, so the
    // context's text would not start the joint decoding; the new ids are decoded alone
    if (!tok.decode(known).endsWith(REPLACEMENT_CHARACTER)) this.advance(known);
  }

  /** the ids after the context, as text */
  textOf(ids: readonly number[]): string {
    if (this.context.length === 0) return this.tok.decode(ids);
    const joint = this.tok.decode([...this.context, ...ids]);
    return joint.startsWith(this.contextText) ? joint.slice(this.contextText.length) : this.tok.decode(ids);
  }

  /** the ids now come before whatever is decoded next */
  advance(ids: readonly number[]): void {
    if (ids.length === 0) return;
    for (let i = ids.length - 1; i >= 0; i--) {
      if (this.tok.decode([ids[i]]) !== '') {
        this.lastTextId = ids[i];
        break;
      }
    }
    const prevId = ids[ids.length - 1]!;
    if (this.lastTextId === undefined) {
      // nothing has shown text yet: a piece can still be text that the start of a sequence
      // swallows (SentencePiece strips the first leading space, so "▁" alone decodes to ''),
      // and only the whole run so far decodes what follows it right
      this.context = [...this.context, ...ids].slice(-CONTEXT_SCAN);
    } else {
      this.context = this.lastTextId === prevId ? [prevId] : [this.lastTextId, prevId];
    }
    this.contextText = this.tok.decode(this.context);
  }
}

/** The text `ids` add after `before` (the prompt), as a StreamDecoder given `before` emits it. */
export function decodeAfter(tok: Tokenizer, before: readonly number[], ids: readonly number[]): string {
  return new ContextDecoder(tok, before).textOf(ids);
}

/**
 * Turns generated ids into text as they arrive, never splitting a character. A token may
 * end inside a UTF-8 sequence (byte-fallback pieces such as <0xE2>, or a byte-level merge
 * that splits one), which decodes to a trailing U+FFFD; so the ids since the last complete
 * point are kept, and their text is returned up to, not including, a trailing U+FFFD. (An
 * incomplete sequence at the end decodes to exactly one U+FFFD, the WHATWG rule, so every
 * character before it is final.) Once their text ends complete, those ids become context
 * for the next ones (see ContextDecoder). The concatenation of every `push` and the final
 * `flush` equals decodeAfter(tok, before, ids), which is tok.decode(ids) without `before`.
 */
export class StreamDecoder {
  private readonly context: ContextDecoder;
  private pending: number[] = []; // ids since the last complete point
  private shown = 0; // UTF-16 units of the pending ids' text already returned

  /** `before`: the ids the output continues (the prompt), so its first piece reads as it would after them */
  constructor(tok: Tokenizer, before: readonly number[] = []) {
    this.context = new ContextDecoder(tok, before);
  }

  /** the text completed by this token (often '', sometimes several characters) */
  push(id: number): string {
    this.pending.push(id);
    const text = this.context.textOf(this.pending);
    const complete = !text.endsWith(REPLACEMENT_CHARACTER);
    const final = Math.max(this.shown, complete ? text.length : text.length - 1);
    const out = text.slice(this.shown, final);
    if (complete) {
      this.context.advance(this.pending);
      this.pending = [];
      this.shown = 0;
    } else {
      this.shown = final;
    }
    return out;
  }

  /** end of output: an incomplete character left over becomes U+FFFD (pushing on continues after these ids) */
  flush(): string {
    const rest = this.pending.length > 0 ? this.context.textOf(this.pending).slice(this.shown) : '';
    this.context.advance(this.pending);
    this.pending = [];
    this.shown = 0;
    return rest;
  }
}
