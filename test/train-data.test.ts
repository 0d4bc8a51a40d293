import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BatchSampler,
  brownDocs,
  DataError,
  decodeUtf8Strict,
  encodeDocs,
  splitByDocument,
  stripBrownTags,
  trainTokenizer,
  validationBatches,
} from '../src/train/data.js';
import { BOS_ID } from '../src/tokenizer/index.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('stripBrownTags', () => {
  it('turns hand-checked corpus lines into plain text', () => {
    // the first two paragraphs of ca01, verbatim
    const ca01 =
      '\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at investigation/nn of/in ' +
      "Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/`` no/at evidence/nn ''/'' that/cs any/dti " +
      'irregularities/nns took/vbd place/nn ./.\n\n\n\tThe/at jury/nn further/rbr said/vbd in/in term-end/nn ' +
      'presentments/nns that/cs the/at City/nn-tl Executive/jj-tl Committee/nn-tl ,/, which/wdt had/hvd over-all/jj ' +
      'charge/nn of/in the/at election/nn ,/, ``/`` deserves/vbz the/at praise/nn ./.\n';
    expect(stripBrownTags(ca01)).toBe(
      `The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced "no evidence" that any irregularities took place.\n` +
        'The jury further said in term-end presentments that the City Executive Committee, which had over-all charge of the election, "deserves the praise.',
    );
    // ck01: a paragraph of several sentence lines, a quote closing before the period
    const ck01 =
      "\t``/`` The/at blueberry/nn pie/nn is/bez good/jj ,/, Scotty/np ./.\nI/ppss recommend/vb it/ppo ''/'' ./.\n" +
      'He/pps looked/vbd at/in his/pp$ son/nn ./.\n\n\n\tScotty/np did/dod not/* go/vb ./.\n';
    expect(stripBrownTags(ck01)).toBe('"The blueberry pie is good, Scotty. I recommend it". He looked at his son.\nScotty did not go.');
  });

  it('keeps words with slashes, brackets, dashes and abbreviations readable', () => {
    expect(stripBrownTags('\t(/( Robertson/np ,/, 1937/cd )/) and/or/cc x/nn --/-- y/nn ;/. Ivan/np Allen/np Jr./np ./.')).toBe(
      '(Robertson, 1937) and/or x -- y; Ivan Allen Jr.',
    );
    expect(stripBrownTags("\tWhat/wdt ?/. he/pps said/vbd :/: '/' no/rb '/' !/.")).toBe("What? he said:' no'!");
    expect(stripBrownTags('\tWait/vb .../... ./.')).toBe('Wait ....');
    expect(stripBrownTags('\n\n  \n')).toBe('');
  });

  it('keeps every word: removing whitespace gives the words concatenated', () => {
    const word = fc.oneof(
      fc.stringMatching(/^[A-Za-z0-9'-]{1,6}$/),
      fc.constantFrom(',', ';', ':', '?', '!', '(', ')', '``', "''", '--', '&'),
    );
    const line = fc.array(fc.tuple(word, fc.stringMatching(/^[a-z$*+-]{1,4}$/)), { minLength: 1, maxLength: 12 });
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 5 }), (lines) => {
        const tagged = lines.map((l) => '\t' + l.map(([w, t]) => `${w}/${t}`).join(' ')).join('\n');
        const expected = lines.flat().map(([w]) => (w === '``' || w === "''" ? '"' : w)).join('');
        expect(stripBrownTags(tagged).replace(/\s/g, '')).toBe(expected);
        expect(stripBrownTags(tagged).split('\n')).toHaveLength(lines.length);
      }),
    );
  });
});

describe('corpus errors', () => {
  it('names the file and byte offset of invalid UTF-8', () => {
    const bytes = new Uint8Array([...enc('The/at cat/nn'), 0xc3, 0x28, ...enc(' sat/vbd')]);
    expect(() => brownDocs([{ name: 'ca01', bytes: enc('\tOk/uh ./.') }, { name: 'ca02', bytes }], 'corpus')).toThrow(
      'corpus/ca02: invalid UTF-8 at byte offset 14',
    );
    expect(() => decodeUtf8Strict(new Uint8Array([0x61, 0xff]), 'f')).toThrow('f: invalid UTF-8 at byte offset 1');
    expect(() => decodeUtf8Strict(new Uint8Array([0x61, 0xe2, 0x82]), 'f')).toThrow('f: invalid UTF-8 at byte offset 3');
    expect(decodeUtf8Strict(enc('h\u00e9 \u20ac'), 'f')).toBe('h\u00e9 \u20ac');
  });

  it('refuses an empty corpus and an empty document', () => {
    expect(() => brownDocs([], 'corpus')).toThrow(new DataError('corpus: the corpus is empty (no document files)'));
    expect(() => brownDocs([{ name: 'ca01', bytes: enc('\n\n  \n') }], 'corpus')).toThrow('corpus/ca01: the document has no text');
  });

  it('refuses too few tokens for one sequence', () => {
    expect(() => new BatchSampler(new Uint16Array(10), 2, 10, 0)).toThrow(/training split has 10 tokens, too few for one sequence of 11/);
    expect(() => validationBatches(new Uint16Array(5), 2, 8, 4)).toThrow(/validation split has 5 tokens/);
  });
});

describe('split, tokens, batches', () => {
  const docs = Array.from({ length: 45 }, (_, i) => ({ name: `d${String(i).padStart(2, '0')}`, text: `document ${i} says hello` }));

  it('holds out every 20th document', () => {
    const { train, val } = splitByDocument(docs, 20);
    expect(val.map((d) => d.name)).toEqual(['d19', 'd39']);
    expect(train).toHaveLength(43);
    expect(() => splitByDocument(docs.slice(0, 19), 20)).toThrow(/cannot be split/);
  });

  it('encodes each document after a BOS, with a tokenizer trained on training text', () => {
    const tok = trainTokenizer(docs, 300);
    const ids = encodeDocs(tok, docs.slice(0, 2));
    expect(ids[0]).toBe(BOS_ID);
    expect(tok.decode([...ids.subarray(1)].filter((i) => i !== BOS_ID))).toBe('document 0 says hellodocument 1 says hello');
    expect([...ids].filter((i) => i === BOS_ID)).toHaveLength(2);
  });

  it('samples windows of T+1 tokens and continues exactly from a saved state', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 1, max: 5 }), (seed, k) => {
        const tokens = Uint16Array.from({ length: 300 }, (_, i) => i);
        const a = new BatchSampler(tokens, 3, 7, seed);
        const batch = new Int32Array(3 * 8);
        for (let i = 0; i < k; i++) a.next(batch);
        const b = new BatchSampler(tokens, 3, 7, a.state);
        const next = new Int32Array(3 * 8);
        a.next(batch);
        b.next(next);
        expect(next).toEqual(batch);
        for (let r = 0; r < 3; r++) for (let t = 1; t < 8; t++) expect(batch[r * 8 + t]).toBe(batch[r * 8 + t - 1]! + 1);
      }),
    );
  });

  it('builds a fixed validation set of non-overlapping windows', () => {
    const tokens = Uint16Array.from({ length: 100 }, (_, i) => i);
    const batches = validationBatches(tokens, 2, 9, 5);
    expect(batches.map((b) => b.length)).toEqual([20, 20, 10]);
    expect([...batches[2]!.subarray(0, 3)]).toEqual([80, 81, 82]);
  });
});
