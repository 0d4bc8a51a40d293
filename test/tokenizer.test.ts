import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { BYTE_OFFSET, BpeTokenizer, FIRST_MERGED_ID, preTokenize, trainBpe } from '../src/tokenizer/bpe.js';
import { readLlama2cTokenizer, writeLlama2cTokenizer } from '../src/tokenizer/llama2c.js';
import { bpeFromJson, bpeToJson } from '../src/tokenizer/tokenizer-json.js';
import { StreamDecoder, TokenizerError, type Tokenizer } from '../src/tokenizer/tokenizer.js';

const ENGLISH = `Once upon a time, in a small town by the sea, there lived a little girl named Lily.
Lily loved to play by the water. Every morning she ran to the beach with her dog, Max, and
they looked for shells in the sand. One day, Lily found a big shell that was shiny and pink.
"Look, Max!" she said. "It is the most beautiful shell in the whole world!" Max wagged his
tail and barked. Lily held the shell to her ear and heard the sound of the sea.
Her mother called her home for lunch. Lily ran back to the house and showed the shell to her
mother. Her mother smiled and said, "That is a very special shell. You should keep it safe."
Lily put the shell on the table by her bed. That night, she dreamed of the sea, of the fish
and the boats, and of the big waves that came to the beach. When she woke up, the sun was
shining and the birds were singing. Lily and Max went back to the beach to look for more
shells. They found a small blue shell, a long white shell and a round brown stone. Lily
was very happy. She thanked the sea for the gifts and went home with a big smile.
The next day it rained, so Lily and Max stayed in the house. They played with the shells on
the floor and made a little town of sand and stone. It was the best day of the week.
`;

const utf8 = (s: string) => new TextEncoder().encode(s);
const english = trainBpe(ENGLISH, 350);
const englishWords = [...new Set(preTokenize(ENGLISH))];

/** text that exercises merges (pieces of the corpus) mixed with arbitrary code points */
const mixedText = fc
  .array(fc.oneof(fc.constantFrom(...englishWords), fc.string({ unit: 'binary', maxLength: 6 })), { maxLength: 12 })
  .map((parts) => parts.join(''));
const anyText = fc.oneof(mixedText, fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }));

function expectTokenizerError(f: () => unknown, message: RegExp): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TokenizerError);
  expect((caught as Error).message).toMatch(message);
}

/** concatenating a StreamDecoder's output, token by token */
function streamDecode(tok: Tokenizer, ids: readonly number[]): string {
  const stream = new StreamDecoder(tok);
  return ids.map((id) => stream.push(id)).join('') + stream.flush();
}

/**
 * Reference trainer: recount every pair over every piece at each step, the plainest
 * reading of BPE. Returns the merges and the final segmentation of each distinct piece.
 */
function naiveTrain(corpus: string, vocabSize: number, minPairCount = 2) {
  const weights = new Map<string, number>();
  for (const p of preTokenize(corpus)) weights.set(p, (weights.get(p) ?? 0) + 1);
  const segs = new Map([...weights.keys()].map((p) => [p, Array.from(utf8(p), (b) => b + BYTE_OFFSET)]));
  const bytesOf: string[] = ['', '', ''];
  for (let b = 0; b < 256; b++) bytesOf.push(String.fromCharCode(b));
  const merges: [number, number][] = [];
  while (bytesOf.length < vocabSize) {
    const counts = new Map<string, number>();
    for (const [p, ids] of segs) {
      for (let i = 0; i + 1 < ids.length; i++) {
        const k = `${ids[i]},${ids[i + 1]}`;
        counts.set(k, (counts.get(k) ?? 0) + weights.get(p)!);
      }
    }
    let best: [number, number] | undefined;
    let bestCount = minPairCount - 1;
    for (const [k, c] of counts) {
      const [l, r] = k.split(',').map(Number);
      if (c > bestCount || (c === bestCount && best && (l < best[0] || (l === best[0] && r < best[1])))) {
        best = [l, r];
        bestCount = c;
      }
    }
    if (!best) break;
    const [l, r] = best;
    const joined = bytesOf[l] + bytesOf[r];
    let id = bytesOf.indexOf(joined, BYTE_OFFSET);
    if (id < 0) id = bytesOf.push(joined) - 1;
    merges.push(best);
    for (const [p, ids] of segs) {
      const out: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        if (ids[i] === l && ids[i + 1] === r) out.push(id), i++;
        else out.push(ids[i]);
      }
      segs.set(p, out);
    }
  }
  return { merges, segs };
}

describe('byte-level BPE', () => {
  test('training reaches the requested vocab size and compresses its corpus', () => {
    expect(english.vocabSize).toBe(350);
    const ids = english.encode(ENGLISH);
    expect(ids.length).toBeLessThan(utf8(ENGLISH).length / 2);
    expect(english.decode(ids)).toBe(ENGLISH);
    expect(english.encode(' the')).toHaveLength(1);
    expect(english.encode(' shell')).toHaveLength(1);
  });

  test('training matches a brute-force recount trainer, and encode matches its segmentation', () => {
    const piece = fc.stringMatching(/^ ?[ab]{1,5}$|^[ab]{1,4}[.!]$|^\n$/);
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), fc.integer({ min: 259, max: 300 }), (pieces, vocabSize) => {
        const corpus = pieces.join('');
        const expected = naiveTrain(corpus, vocabSize);
        const tok = trainBpe(corpus, vocabSize);
        expect(tok.merges.map((m) => [m.left, m.right])).toEqual(expected.merges);
        for (const [p, ids] of expected.segs) expect(tok.encode(p)).toEqual(ids);
      }),
      { numRuns: 200 },
    );
  });

  test('a merge whose bytes already exist reuses that token id', () => {
    // "ab"+"c" and "a"+"bc" both make "abc": the second merge must not add a token
    const tok = new BpeTokenizer([
      [0x61 + 3, 0x62 + 3], // 259 = "ab"
      [259, 0x63 + 3], // 260 = "abc"
      [0x62 + 3, 0x63 + 3], // 261 = "bc"
      [0x61 + 3, 261], // "abc" again: 260
    ]);
    expect(tok.vocabSize).toBe(262);
    expect(tok.merges[3].id).toBe(260);
    expect(tok.encode('abc')).toEqual([260]);
  });

  test('training is deterministic', () => {
    expect(trainBpe(ENGLISH, 350).merges).toEqual(english.merges);
  });

  test('decode(encode(s)) === s for well-formed strings', () => {
    fc.assert(fc.property(anyText, (s) => english.decode(english.encode(s)) === s), { numRuns: 500 });
  });

  test('encodeBytes of UTF-8 equals encode of the string', () => {
    fc.assert(fc.property(anyText, (s) => {
        expect(english.encodeBytes(utf8(s))).toEqual(english.encode(s));
      }));
  });

  test('decodeBytes(encodeBytes(b)) equals b for any bytes, including invalid UTF-8', () => {
    const bytes = fc.oneof(fc.uint8Array({ maxLength: 64 }), mixedText.map(utf8), fc.uint8Array({ min: 0x80, maxLength: 16 }));
    fc.assert(
      fc.property(bytes, (b) => {
        expect(english.decodeBytes(english.encodeBytes(b))).toEqual(b);
      }),
      { numRuns: 500 },
    );
  });

  test('invalid UTF-8 decodes to U+FFFD; a leading byte-order mark is kept', () => {
    expect(english.decode(english.encodeBytes(Uint8Array.of(0x61, 0xff, 0x62)))).toBe('a\uFFFDb');
    expect(english.decode(english.encode('\uFEFFhi'))).toBe('\uFEFFhi');
  });

  test('ordinary text never encodes to control tokens; bos puts BOS first', () => {
    expect(english.encode('<s></s><unk>').every((id) => id >= BYTE_OFFSET)).toBe(true);
    expect(english.decode(english.encode('<s>'))).toBe('<s>');
    fc.assert(
      fc.property(anyText, (s) => {
        const [first, ...rest] = english.encode(s, { bos: true });
        return first === english.bosId && rest.every((id) => id >= BYTE_OFFSET);
      }),
    );
  });

  test('control tokens decode to nothing', () => {
    expect(english.decode([1, ...english.encode('hi'), 2, 0])).toBe('hi');
  });

  test('an id out of range names the id and the vocab size', () => {
    expectTokenizerError(() => english.decode([5, 350]), /350.*vocab size 350/);
    expectTokenizerError(() => english.decodeBytes([-1]), /-1.*350/);
    expectTokenizerError(() => english.tokenBytes(2.5), /2\.5/);
  });

  test('vocab sizes below 259 are rejected', () => {
    expectTokenizerError(() => trainBpe('abc', 100), /259/);
  });

  test('streaming decode equals decode, even when tokens split characters', () => {
    const ids = fc.oneof(
      anyText.map((s) => english.encode(s)),
      fc.array(fc.integer({ min: 0, max: english.vocabSize - 1 }), { maxLength: 30 }),
    );
    fc.assert(fc.property(ids, (ids) => streamDecode(english, ids) === english.decode(ids)));
    const euro = [...utf8('€')].map((b) => b + BYTE_OFFSET); // one character over three tokens
    const stream = new StreamDecoder(english);
    expect(euro.map((id) => stream.push(id))).toEqual(['', '', '€']);
  });

  test('trains a 1000-token vocab on 1 MB of text in seconds', () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const lexicon = Array.from({ length: 5000 }, () =>
      Array.from({ length: 1 + Math.floor(random() * 8) }, () => 'etaoinshrdlucmfwypvbgkqjxz'[Math.floor(random() ** 2 * 26)]).join(''),
    );
    const words: string[] = [];
    for (let n = 0; n < 1_000_000; n += 6) words.push(lexicon[Math.floor(lexicon.length * random() ** 3)]);
    const start = performance.now();
    const tok = trainBpe(words.join(' '), 1000);
    expect(tok.vocabSize).toBe(1000);
    expect(performance.now() - start).toBeLessThan(10_000);
  });
});

describe('tokenizer.json', () => {
  const json = bpeToJson(english);

  test('save then load gives the same merges and encodings', () => {
    const loaded = bpeFromJson(json, 'english.json');
    expect(loaded.merges).toEqual(english.merges);
    expect(bpeToJson(loaded)).toBe(json);
    fc.assert(fc.property(anyText, (s) => {
        expect(loaded.encode(s)).toEqual(english.encode(s));
      }));
  });

  test('uses the standard ByteLevel BPE format', () => {
    const file = JSON.parse(json);
    expect(file.pre_tokenizer).toMatchObject({ type: 'ByteLevel', add_prefix_space: false, use_regex: true });
    expect(file.decoder.type).toBe('ByteLevel');
    expect(file.model.type).toBe('BPE');
    expect(file.added_tokens.map((t: { content: string }) => t.content)).toEqual(['<unk>', '<s>', '</s>']);
    expect(file.model.vocab['<s>']).toBe(1);
    expect(file.model.vocab['Ġ']).toBe(0x20 + BYTE_OFFSET); // GPT-2's character for the space byte
    expect(file.model.vocab['Ċ']).toBe(0x0a + BYTE_OFFSET); // ... and for newline
    expect(file.model.vocab['a']).toBe(0x61 + BYTE_OFFSET);
    expect(file.model.vocab['Ġthe']).toBe(english.encode(' the')[0]);
    expect(Object.keys(file.model.vocab)).toHaveLength(350);
    expect(file.model.merges[0]).toMatch(/^\S+ \S+$/);
  });

  /** the file, edited by `edit`, must fail to load with a message matching `message` */
  function expectBroken(edit: (file: any) => void, message: RegExp) {
    const file = JSON.parse(json);
    edit(file);
    expectTokenizerError(() => bpeFromJson(JSON.stringify(file), 'bad.json'), new RegExp(`^bad.json: .*${message.source}`));
  }

  test('malformed files fail with a message naming the source and the problem', () => {
    expectTokenizerError(() => bpeFromJson('{"model": ', 'bad.json'), /^bad.json: not valid JSON/);
    expectBroken((f) => delete f.model, /model must be an object/);
    expectBroken((f) => delete f.model.merges, /model.merges must be an array/);
    expectBroken((f) => (f.model.type = 'WordPiece'), /model.type must be "BPE"/);
    expectBroken((f) => (f.pre_tokenizer = null), /pre_tokenizer/);
    expectBroken((f) => (f.model.vocab.x = 'seven'), /id of "x" must be an integer/);
    expectBroken((f) => (f.model.vocab.Ġthe = 5), /id 5 is used by both/);
    expectBroken((f) => delete f.model.vocab.Ġthe, /id \d+ is missing/);
    expectBroken((f) => (f.model.merges[3] = 'Ġ zzz'), /merge 3 .* unknown token "zzz"/);
    expectBroken((f) => (f.model.merges[3] = 'Ġt'), /merge 3 must be "left right"/);
    expectBroken((f) => (f.model.merges[0] = '<s> a'), /merge 0 .*not a byte or an earlier merged token/);
    expectBroken((f) => f.model.merges.pop(), /merges create 349 tokens but the vocab has 350/);
    expectBroken((f) => f.model.merges.reverse(), /not a byte or an earlier merged token|vocab id/);
    expectBroken((f) => {
      [f.model.vocab.a, f.model.vocab.b] = [f.model.vocab.b, f.model.vocab.a];
    }, /id 100 must be "a"/);
    expectBroken((f) => {
      const atSeven = Object.keys(f.model.vocab).find((k) => f.model.vocab[k] === 7)!;
      [f.model.vocab['<s>'], f.model.vocab[atSeven], f.added_tokens[1].id] = [7, 1, 7];
    }, /id 1 must be "<s>"/);
  });

  test('fuzzed files load or fail with TokenizerError, nothing else', () => {
    const edit = fc.oneof(
      fc.nat().map((n) => (s: string) => s.slice(0, n % s.length)),
      fc.tuple(fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 })).map(
        ([n, x]) => (s: string) => s.slice(0, n % s.length) + x + s.slice((n % s.length) + 1),
      ),
    );
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 3 }), (edits) => {
        const text = edits.reduce((s, f) => f(s), json);
        try {
          bpeFromJson(text, 'fuzz.json').encode('the shell');
        } catch (e) {
          expect(e).toBeInstanceOf(TokenizerError);
          expect((e as Error).message).toMatch(/^fuzz.json: /);
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe('llama2.c tokenizer.bin', () => {
  const bin = writeLlama2cTokenizer(english);
  const llama = readLlama2cTokenizer(bin, english.vocabSize, 'english.bin');

  test('write then read decodes our ids to the same bytes', () => {
    const ids = fc.array(fc.integer({ min: 0, max: english.vocabSize - 1 }).filter((id) => id !== 1), { maxLength: 40 });
    fc.assert(fc.property(ids, (ids) => {
        expect(llama.decodeBytes(ids)).toEqual(english.decodeBytes(ids));
      }));
  });

  test('writes control tokens and bytes the way run.c expects', () => {
    const piece = (id: number) => new TextDecoder().decode(llamaPieces(bin)[id]);
    expect([0, 1, 2].map(piece)).toEqual(['<unk>', '\n<s>\n', '\n</s>\n']);
    expect(piece(0x20 + BYTE_OFFSET)).toBe(' ');
    expect(piece(0x0a + BYTE_OFFSET)).toBe('<0x0A>');
    expect(piece(0xff + BYTE_OFFSET)).toBe('<0xFF>');
    expect(piece(english.encode(' the')[0])).toBe(' the');
  });

  test("run.c's encoder over the written file reproduces our merges", () => {
    expect(llama.encode('the', { bos: true })).toEqual([1, ...english.encode(' the')]);
    expect(llama.encode('shell')).toEqual(english.encode(' shell'));
    expect(llama.encode('shell')).toHaveLength(1);
    // score-greedy merging is close to, though not always exactly, rank-ordered BPE
    const words = ENGLISH.split(/\s+/).filter((w) => w.length > 0);
    const same = words.filter((w) => JSON.stringify(llama.encode(w)) === JSON.stringify(english.encode(' ' + w)));
    expect(same.length).toBeGreaterThan(0.9 * words.length);
  });

  test('decode(encode(s, {bos: true})) === s; without BOS the dummy-prefix space stays', () => {
    fc.assert(fc.property(anyText, (s) => llama.decode(llama.encode(s, { bos: true })) === s), { numRuns: 300 });
    expect(llama.decode(llama.encode('hi'))).toBe(' hi');
    const bytes = fc.uint8Array({ minLength: 1, maxLength: 40 });
    fc.assert(fc.property(bytes, (b) => {
        expect(llama.decodeBytes(llama.encodeBytes(b))).toEqual(Uint8Array.of(0x20, ...b));
      }));
  });

  test('streaming decode drops the space after BOS like decode does', () => {
    fc.assert(
      fc.property(anyText, (s) => {
        const ids = llama.encode(s, { bos: true });
        return streamDecode(llama, ids) === s && streamDecode(llama, ids) === llama.decode(ids);
      }),
    );
    // BOS anywhere, control tokens, split characters: the pieces still join up to decode
    const id = fc.oneof(fc.constantFrom(0, 1, 2), fc.integer({ min: 0, max: english.vocabSize - 1 }));
    fc.assert(fc.property(fc.array(id, { maxLength: 30 }), (ids) => streamDecode(llama, ids) === llama.decode(ids)), { numRuns: 300 });
    expect(streamDecode(llama, llama.encode('hi there', { bos: true }))).toBe('hi there');
    expect(streamDecode(llama, [...llama.encode('hi'), 1, ...llama.encode('there')])).toBe(' hithere'); // as decode reads BOS mid-text
  });

  test("reads a SentencePiece-style file and follows run.c's algorithm", () => {
    // as in Llama's own vocab: every byte is "<0xXX>", and text pieces follow
    const pieces: [string, number][] = [['<unk>', 0], ['\n<s>\n', 0], ['\n</s>\n', 0]];
    for (let b = 0; b < 256; b++) pieces.push([`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0]);
    const text: [string, number][] = [[' ', -1], ['h', -2], ['e', -3], ['l', -4], ['o', -5], ['ll', -6], ['he', -7], ['hell', -8], ['hello', -9], [' hello', -10], ['é', -11]];
    const tok = readLlama2cTokenizer(llamaFile([...pieces, ...text]), pieces.length + text.length, 'sp.bin');
    const id = (p: string) => pieces.length + text.findIndex(([s]) => s === p);
    expect(tok.encode('hello', { bos: true })).toEqual([1, id(' hello')]);
    expect(tok.encode('hé!')).toEqual([id(' '), id('h'), id('é'), 0x21 + BYTE_OFFSET]);
    expect(tok.encode('ñ')).toEqual([id(' '), 0xc3 + BYTE_OFFSET, 0xb1 + BYTE_OFFSET]); // byte fallback
    expect(tok.decode([1, id(' hello'), id(' hello'), 0x0a + BYTE_OFFSET])).toBe('hello hello\n');
    expect(tok.decode([1, 0x20 + BYTE_OFFSET])).toBe(' '); // "<0x20>" is not a piece starting with a space
  });

  test('a padded vocabulary: placeholders up to the model\'s vocab size, read back by us and readable by run.c', () => {
    const V = english.vocabSize;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 70 }), (extra) => {
        const padded = writeLlama2cTokenizer(english, V + extra);
        const back = readLlama2cTokenizer(padded, V + extra, 'padded.bin'); // exactly V + extra entries, no bytes left over
        expect(back.vocabSize).toBe(V + extra);
        const pieces = llamaPieces(padded);
        expect(pieces.slice(0, V)).toEqual(llamaPieces(bin)); // the tokenizer's own entries unchanged
        for (let id = V; id < V + extra; id++) {
          expect(pieces[id]!.length).toBeGreaterThan(0); // run.c's fread(piece, len, 1) fails on len 0
          expect(back.decode([id])).toMatch(/^<pad_\d+_*>$/);
        }
        fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: V - 1 }), { maxLength: 30 }), (ids) => {
          expect(back.decodeBytes(ids)).toEqual(llama.decodeBytes(ids));
        }), { numRuns: 20 });
        fc.assert(fc.property(anyText, (s) => {
          expect(back.encode(s, { bos: true })).toEqual(llama.encode(s, { bos: true })); // placeholders never enter an encoding
        }), { numRuns: 20 });
      }),
      { numRuns: 10 },
    );
    expectTokenizerError(() => writeLlama2cTokenizer(english, V - 1), /vocab size 349 must be an integer >= the tokenizer's 350 tokens/);
  });

  test('a placeholder that two pieces would spell gets a mark', () => {
    // merged tokens spelling "<pad_300" (each merge adds one byte): with the byte token ">",
    // run.c's encoder would form "<pad_300>" from "<pad_300>" in a prompt
    const spelled = '<pad_300';
    const merges: [number, number][] = [];
    for (let i = 1; i < spelled.length; i++) merges.push([i === 1 ? spelled.charCodeAt(0) + BYTE_OFFSET : FIRST_MERGED_ID + i - 2, spelled.charCodeAt(i) + BYTE_OFFSET]);
    const tok = new BpeTokenizer(merges);
    expect(new TextDecoder().decode(tok.tokenBytes(tok.vocabSize - 1))).toBe(spelled);
    const text = llamaPieces(writeLlama2cTokenizer(tok, 302)).map((p) => new TextDecoder().decode(p));
    expect(text.slice(tok.vocabSize)).toEqual([...Array.from({ length: 300 - tok.vocabSize }, (_, i) => `<pad_${tok.vocabSize + i}>`), '<pad_300_>', '<pad_301>']);
    const known = new Set(text.slice(0, tok.vocabSize));
    for (const p of text.slice(tok.vocabSize)) for (let cut = 1; cut < p.length; cut++) expect(known.has(p.slice(0, cut)) && known.has(p.slice(cut))).toBe(false);
  });

  test('a truncated file or one with bytes left over fails with a useful message', () => {
    expectTokenizerError(() => readLlama2cTokenizer(bin.subarray(0, 2), 350, 'tok.bin'), /^tok.bin: truncated: max_token_length/);
    expectTokenizerError(() => readLlama2cTokenizer(bin.subarray(0, bin.length - 1), 350, 'tok.bin'), /^tok.bin: truncated: token 349 of 350/);
    expectTokenizerError(() => readLlama2cTokenizer(bin, 351, 'tok.bin'), /truncated: token 350 of 351/);
    expectTokenizerError(() => readLlama2cTokenizer(bin, 349, 'tok.bin'), /bytes left over after 349 tokens/);
    expectTokenizerError(() => readLlama2cTokenizer(bin, 100, 'tok.bin'), /vocab size 100/);
  });

  test('fuzzed files load or fail with TokenizerError, nothing else', () => {
    const corrupt = fc.tuple(fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }));
    fc.assert(
      fc.property(corrupt, fc.boolean(), ([cut, flips], truncate) => {
        const bytes = bin.slice(0, truncate ? cut % bin.length : bin.length);
        for (const [at, value] of flips) if (bytes.length > 0) bytes[at % bytes.length] = value;
        try {
          const tok = readLlama2cTokenizer(bytes, 350, 'fuzz.bin');
          tok.decode(tok.encode('the shell', { bos: true }));
        } catch (e) {
          expect(e).toBeInstanceOf(TokenizerError);
          expect((e as Error).message).toMatch(/^fuzz.bin: /);
        }
      }),
      { numRuns: 300 },
    );
  });
});

/** a tokenizer.bin from (piece, score) pairs */
function llamaFile(entries: readonly [string, number][]): Uint8Array {
  const pieces = entries.map(([s]) => utf8(s));
  const out = new Uint8Array(4 + pieces.reduce((n, p) => n + 8 + p.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, Math.max(...pieces.map((p) => p.length)), true);
  let offset = 4;
  entries.forEach(([, score], i) => {
    view.setFloat32(offset, score, true);
    view.setInt32(offset + 4, pieces[i].length, true);
    out.set(pieces[i], offset + 8);
    offset += 8 + pieces[i].length;
  });
  return out;
}

/** the raw pieces of a tokenizer.bin (no checks: for looking at what the writer wrote) */
function llamaPieces(bin: Uint8Array): Uint8Array[] {
  const view = new DataView(bin.buffer, bin.byteOffset, bin.byteLength);
  const pieces: Uint8Array[] = [];
  for (let offset = 4; offset < bin.length; ) {
    const len = view.getInt32(offset + 4, true);
    pieces.push(bin.slice(offset + 8, offset + 8 + len));
    offset += 8 + len;
  }
  return pieces;
}
