/**
 * Byte-level BPE: GPT-2's pre-tokenizer and byte alphabet, with Llama's id layout.
 *
 * Id layout (SentencePiece's byte-fallback layout, so llama2.c's tokenizer.bin maps 1:1):
 *   0 <unk>, 1 <s> (BOS), 2 </s> (EOS)   control tokens: no bytes, never produced by encoding
 *   3..258                               the single bytes 0x00..0xFF (id = byte + 3)
 *   259..                                one id per new token, in the order merges create them
 * A merge whose result has the same bytes as an earlier token reuses that token's id (as
 * Hugging Face's trainer does), so there can be more merges than merged tokens.
 *
 * Text never splits across pre-tokenizer pieces, and a piece of letters can never hold
 * '<' or '>', so text such as "<s>" always encodes as ordinary bytes, never as BOS.
 */
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

export const BYTE_OFFSET = 3; // id of byte 0x00
export const FIRST_MERGED_ID = BYTE_OFFSET + 256;

/**
 * GPT-2's split: contractions, letters with an optional leading space, digits, runs of
 * other symbols, and whitespace (a run of spaces leaves its last space to the next word).
 * Every code point falls in some alternative, so the pieces concatenate back to the text.
 */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export function preTokenize(text: string): string[] {
  return text.match(GPT2_SPLIT) ?? [];
}

/** merge `left` + `right` -> `id` */
export interface Merge {
  readonly left: number;
  readonly right: number;
  readonly id: number;
}

/** a pair of ids as one number, for Map keys */
const PAIR_BASE = 2 ** 24;
const pairKey = (left: number, right: number): number => left * PAIR_BASE + right;

/** every non-overlapping (left, right) in `ids`, scanning left to right, replaced by `id` */
function mergePair(ids: readonly number[], left: number, right: number, id: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (i + 1 < ids.length && ids[i] === left && ids[i + 1] === right) {
      out.push(id);
      i++;
    } else {
      out.push(ids[i]);
    }
  }
  return out;
}

/**
 * Length of the well-formed UTF-8 sequence at bytes[i], or 0 if there is none
 * (the table in RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
 */
function utf8SequenceLength(bytes: Uint8Array, i: number): number {
  const b0 = bytes[i];
  if (b0 < 0x80) return 1;
  let n: number;
  let lo = 0x80; // allowed range of the second byte
  let hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) n = 2;
  else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 === 0xe0) lo = 0xa0;
    if (b0 === 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 === 0xf0) lo = 0x90;
    if (b0 === 0xf4) hi = 0x8f;
  } else return 0;
  if (i + n > bytes.length) return 0;
  if (bytes[i + 1] < lo || bytes[i + 1] > hi) return 0;
  for (let k = 2; k < n; k++) if ((bytes[i + k] & 0xc0) !== 0x80) return 0;
  return n;
}

/** Token bytes by id, growing as merges create tokens. */
class TokenTable {
  readonly bytes: Uint8Array[] = [];
  private readonly idOf = new Map<string, number>(); // byteString(bytes) -> id

  constructor() {
    for (let id = 0; id < BYTE_OFFSET; id++) this.bytes.push(new Uint8Array(0)); // control tokens
    for (let b = 0; b < 256; b++) this.add(Uint8Array.of(b));
  }

  get size(): number {
    return this.bytes.length;
  }

  /** a byte or an existing merged token: what a merge may join (control tokens have no bytes) */
  isMergeable(id: number): boolean {
    return Number.isInteger(id) && id >= BYTE_OFFSET && id < this.size;
  }

  /** the id of left's bytes + right's bytes: an existing token with those bytes, or a new one */
  merge(left: number, right: number): number {
    const bytes = concatBytes([this.bytes[left], this.bytes[right]]);
    return this.idOf.get(byteString(bytes)) ?? this.add(bytes);
  }

  private add(bytes: Uint8Array): number {
    const id = this.bytes.length;
    if (id >= PAIR_BASE) throw new TokenizerError(`vocab larger than ${PAIR_BASE} tokens`);
    this.bytes.push(bytes);
    this.idOf.set(byteString(bytes), id);
    return id;
  }
}

/** Caps the per-piece encode cache so a long stream of novel text cannot grow it forever. */
const CACHE_LIMIT = 100_000;

export class BpeTokenizer implements Tokenizer {
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  readonly eosIds: readonly number[] = [EOS_ID];
  /** in rank order: merges[r] is applied before merges[r + 1] */
  readonly merges: readonly Merge[];
  private readonly tokens: Uint8Array[]; // id -> bytes (empty for control tokens)
  private readonly rankOf = new Map<number, number>(); // pairKey(left, right) -> rank
  private readonly pieceCache = new Map<string, number[]>();
  private readonly utf8 = utf8Decoder();
  private readonly utf8Encoder = new TextEncoder();

  /** `pairs`: the merges in rank order, each as [left id, right id] */
  constructor(pairs: readonly (readonly [number, number])[]) {
    const table = new TokenTable();
    this.merges = pairs.map(([left, right], rank) => {
      const what = `merge ${rank} (${left} + ${right})`;
      for (const id of [left, right]) {
        if (!table.isMergeable(id)) {
          throw new TokenizerError(`${what}: id ${id} is not a byte or an earlier merged token (${table.size} tokens so far)`);
        }
      }
      const key = pairKey(left, right);
      if (this.rankOf.has(key)) throw new TokenizerError(`${what} repeats merge ${this.rankOf.get(key)}`);
      this.rankOf.set(key, rank);
      return { left, right, id: table.merge(left, right) };
    });
    this.tokens = table.bytes;
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    const ids = opts.bos ? [BOS_ID] : [];
    this.appendText(ids, text);
    return ids;
  }

  /** Valid UTF-8 runs encode as text would; each invalid byte becomes its own byte token. */
  encodeBytes(bytes: Uint8Array): number[] {
    const ids: number[] = [];
    let start = 0; // first byte of the current valid run
    let i = 0;
    while (i < bytes.length) {
      const n = utf8SequenceLength(bytes, i);
      if (n > 0) {
        i += n;
        continue;
      }
      this.appendText(ids, this.utf8.decode(bytes.subarray(start, i)));
      ids.push(bytes[i] + BYTE_OFFSET);
      start = ++i;
    }
    this.appendText(ids, this.utf8.decode(bytes.subarray(start)));
    return ids;
  }

  decode(ids: readonly number[]): string {
    return this.utf8.decode(this.decodeBytes(ids));
  }

  decodeBytes(ids: readonly number[]): Uint8Array {
    return concatBytes(ids.map((id) => this.piece(id)));
  }

  tokenBytes(id: number): Uint8Array {
    return this.piece(id).slice();
  }

  private piece(id: number): Uint8Array {
    checkTokenId(id, this.vocabSize);
    return this.tokens[id];
  }

  private appendText(ids: number[], text: string): void {
    for (const piece of preTokenize(text)) {
      for (const id of this.encodePiece(piece)) ids.push(id);
    }
  }

  private encodePiece(piece: string): number[] {
    const cached = this.pieceCache.get(piece);
    if (cached) return cached;
    const bytes = this.utf8Encoder.encode(piece);
    const ids = this.applyMerges(Array.from(bytes, (b) => b + BYTE_OFFSET));
    if (this.pieceCache.size >= CACHE_LIMIT) this.pieceCache.clear();
    this.pieceCache.set(piece, ids);
    return ids;
  }

  /**
   * Repeatedly merge the adjacent pair of lowest rank. Training applied merges in rank
   * order to every word, so this reproduces exactly what training did to this piece.
   */
  private applyMerges(ids: number[]): number[] {
    while (ids.length > 1) {
      let best = Infinity;
      for (let i = 0; i + 1 < ids.length; i++) {
        const rank = this.rankOf.get(pairKey(ids[i], ids[i + 1]));
        if (rank !== undefined && rank < best) best = rank;
      }
      if (best === Infinity) break;
      const { left, right, id } = this.merges[best];
      ids = mergePair(ids, left, right, id);
    }
    return ids;
  }
}

// ---------------------------------------------------------------------------------------
// Training

export interface TrainBpeOptions {
  /** stop early once the most frequent pair occurs fewer times than this (default 2) */
  minPairCount?: number;
}

/**
 * Learn merges from `corpus` until the vocab has `vocabSize` tokens (fewer if no pair
 * occurs `minPairCount` times). Each step merges the most frequent adjacent pair, counted
 * over pre-tokenizer pieces weighted by how often each piece occurs; ties go to the pair
 * with the smaller (left, right) ids, so training is deterministic.
 */
export function trainBpe(corpus: string, vocabSize: number, opts: TrainBpeOptions = {}): BpeTokenizer {
  if (!Number.isInteger(vocabSize) || vocabSize < FIRST_MERGED_ID) {
    throw new TokenizerError(`vocab size ${vocabSize} must be an integer >= ${FIRST_MERGED_ID} (3 control tokens + 256 bytes)`);
  }
  const minPairCount = opts.minPairCount ?? 2;
  const pairs = new PairCounts(corpus);
  const table = new TokenTable();
  const merges: [number, number][] = [];
  while (table.size < vocabSize) {
    const best = pairs.mostFrequent(minPairCount);
    if (best === undefined) break;
    const [left, right] = best;
    merges.push([left, right]);
    pairs.merge(left, right, table.merge(left, right));
  }
  return new BpeTokenizer(merges);
}

/**
 * Adjacent-pair counts over the corpus's distinct pieces, kept up to date as merges
 * happen. A merge revisits only the pieces that contain the merged pair (found through
 * `piecesWith`), so its cost is proportional to those pieces, not to the corpus.
 */
class PairCounts {
  private readonly pieces: number[][] = []; // distinct piece -> its current token ids
  private readonly weights: number[] = []; // distinct piece -> occurrences in the corpus
  private readonly count = new Map<number, number>(); // pairKey -> weighted occurrences (> 0)
  private readonly piecesWith = new Map<number, Set<number>>(); // pairKey -> pieces holding it
  private readonly heap = new PairHeap(); // every current count is in it; stale entries skipped

  constructor(corpus: string) {
    const occurrences = new Map<string, number>();
    for (const piece of preTokenize(corpus)) occurrences.set(piece, (occurrences.get(piece) ?? 0) + 1);
    const encoder = new TextEncoder();
    for (const [piece, weight] of occurrences) {
      const p = this.pieces.length;
      this.pieces.push(Array.from(encoder.encode(piece), (b) => b + BYTE_OFFSET));
      this.weights.push(weight);
      this.forEachPair(this.pieces[p], (key) => {
        this.count.set(key, (this.count.get(key) ?? 0) + weight);
        this.indexOf(key).add(p);
      });
    }
    for (const [key, c] of this.count) this.heap.push(c, key);
  }

  /** the most frequent pair as [left, right], or undefined if none occurs minCount times */
  mostFrequent(minCount: number): [number, number] | undefined {
    for (let top = this.heap.pop(); top; top = this.heap.pop()) {
      const [c, key] = top;
      if (this.count.get(key) !== c) continue; // stale: the count changed after this push
      if (c < minCount) return undefined;
      return [Math.floor(key / PAIR_BASE), key % PAIR_BASE];
    }
    return undefined;
  }

  merge(left: number, right: number, id: number): void {
    const key = pairKey(left, right);
    for (const p of [...this.indexOf(key)]) {
      this.replacePiece(p, mergePair(this.pieces[p], left, right, id));
    }
    this.count.delete(key);
    this.piecesWith.delete(key);
  }

  private replacePiece(p: number, next: number[]): void {
    const weight = this.weights[p];
    const delta = new Map<number, number>();
    const oldPairs = new Set<number>();
    const nextPairs = new Set<number>();
    this.forEachPair(this.pieces[p], (key) => {
      delta.set(key, (delta.get(key) ?? 0) - weight);
      oldPairs.add(key);
    });
    this.forEachPair(next, (key) => {
      delta.set(key, (delta.get(key) ?? 0) + weight);
      nextPairs.add(key);
    });
    for (const [key, d] of delta) {
      if (d === 0) continue;
      const c = (this.count.get(key) ?? 0) + d;
      if (c > 0) {
        this.count.set(key, c);
        this.heap.push(c, key);
      } else {
        this.count.delete(key);
      }
    }
    for (const key of oldPairs) if (!nextPairs.has(key)) this.piecesWith.get(key)?.delete(p);
    for (const key of nextPairs) this.indexOf(key).add(p);
    this.pieces[p] = next;
  }

  private indexOf(key: number): Set<number> {
    let set = this.piecesWith.get(key);
    if (!set) this.piecesWith.set(key, (set = new Set()));
    return set;
  }

  private forEachPair(ids: readonly number[], f: (key: number) => void): void {
    for (let i = 0; i + 1 < ids.length; i++) f(pairKey(ids[i], ids[i + 1]));
  }
}

/** Max-heap of (count, pairKey): higher count first, then smaller key (the tie-break). */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): [number, number] | undefined {
    if (this.counts.length === 0) return undefined;
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const last = this.counts.length - 1;
    this.swap(0, last);
    this.counts.pop();
    this.keys.pop();
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let first = i;
      if (l < last && this.before(l, first)) first = l;
      if (r < last && this.before(r, first)) first = r;
      if (first === i) break;
      this.swap(i, first);
      i = first;
    }
    return top;
  }

  private before(i: number, j: number): boolean {
    const ci = this.counts[i];
    const cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j], this.counts[i]];
    [this.keys[i], this.keys[j]] = [this.keys[j], this.keys[i]];
  }
}
