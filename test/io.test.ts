import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { headDim, weightShapes, type LlamaConfig } from '../src/model/config.js';
import { bf16ToF32, f16ToF32, numel, type DType, type HostTensor, type TensorMap } from '../src/tensor/dtype.js';
import { FormatError } from '../src/io/errors.js';
import { hfToLlama2cRows, llama2cToHfRows, readLlama2cCheckpoint, writeLlama2cCheckpoint } from '../src/io/llama2c.js';
import { parseSafetensors, serializeSafetensors } from '../src/io/safetensors.js';
import { checkWeights, randomWeights } from '../src/io/weights.js';

const SRC = 'fuzz/model.safetensors';
const BIN = 'fuzz/model.bin';

/** Bit patterns, so -0 vs 0 and every NaN payload count as different. */
const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

function expectSameTensors(a: TensorMap, b: TensorMap): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [name, t] of a) {
    const u = b.get(name)!;
    expect(u.shape, name).toEqual(t.shape);
    expect(bits(u.data), name).toEqual(bits(t.data));
  }
}

/** fn either succeeds or throws a FormatError whose message names `source`; nothing else. */
function onlyFormatError(fn: () => unknown, source: string): FormatError | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).file).toBe(source);
    expect((e as FormatError).message.startsWith(`${source}: `)).toBe(true);
    return e as FormatError;
  }
}

function expectFormatError(fn: () => unknown, source: string, ...fragments: (string | RegExp)[]): FormatError {
  const e = onlyFormatError(fn, source);
  expect(e, 'expected a FormatError').toBeDefined();
  for (const f of fragments) expect(e!.message).toMatch(f);
  return e!;
}

// ---------------------------------------------------------------- generators

/** Values exactly representable in `dtype`, so F16/BF16 round trips are exact. */
function arbValue(dtype: DType): fc.Arbitrary<number> {
  if (dtype === 'F32') return fc.float({ noNaN: true, noDefaultInfinity: true });
  const widen = dtype === 'F16' ? f16ToF32 : bf16ToF32;
  const expMask = dtype === 'F16' ? 0x7c00 : 0x7f80;
  return fc.integer({ min: 0, max: 0xffff }).filter((h) => (h & expMask) !== expMask).map(widen);
}

const arbName = fc.string({
  unit: fc.constantFrom('a', 'b', '.', '_', '0', '"', '\\', 'é', '中', '😀', ' '),
  minLength: 1,
  maxLength: 6,
});

function arbTensors(dtype: DType): fc.Arbitrary<TensorMap> {
  const arbTensor = fc
    .array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 3 })
    .chain((shape) =>
      fc
        .array(arbValue(dtype), { minLength: numel(shape), maxLength: numel(shape) })
        .map((vals): HostTensor => ({ shape, data: Float32Array.from(vals) })),
    );
  return fc
    .uniqueArray(fc.tuple(arbName, arbTensor), { selector: ([n]) => n, maxLength: 5 })
    .map((entries) => new Map(entries));
}

const arbDType = fc.constantFrom<DType>('F32', 'F16', 'BF16');

const arbConfig: fc.Arbitrary<LlamaConfig> = fc
  .record({
    heads: fc.integer({ min: 1, max: 4 }),
    kvPick: fc.nat(),
    halfHead: fc.integer({ min: 1, max: 3 }),
    layers: fc.integer({ min: 1, max: 2 }),
    ffn: fc.integer({ min: 1, max: 9 }),
    vocab: fc.integer({ min: 1, max: 11 }),
    seq: fc.integer({ min: 1, max: 6 }),
    tie: fc.boolean(),
  })
  .map(({ heads, kvPick, halfHead, layers, ffn, vocab, seq, tie }) => {
    const divisors = [1, 2, 3, 4].filter((d) => heads % d === 0);
    return {
      hidden_size: heads * 2 * halfHead,
      num_hidden_layers: layers,
      num_attention_heads: heads,
      num_key_value_heads: divisors[kvPick % divisors.length]!,
      intermediate_size: ffn,
      vocab_size: vocab,
      max_position_embeddings: seq,
      rope_theta: 10000,
      rms_norm_eps: 1e-5,
      tie_word_embeddings: tie,
    };
  });

/** A header-only safetensors file (data section appended raw), for hand-made bad headers. */
function rawSafetensors(header: unknown, data = new Uint8Array(0), headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function headerLength(file: Uint8Array): number {
  return new DataView(file.buffer, file.byteOffset).getUint32(0, true);
}

// ---------------------------------------------------------------- safetensors

describe('safetensors', () => {
  it('round-trips every dtype exactly for representable values', () => {
    fc.assert(
      fc.property(
        arbDType.chain((dtype) => fc.tuple(fc.constant(dtype), arbTensors(dtype))),
        fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }),
        ([dtype, tensors], metadata) => {
          const file = serializeSafetensors(tensors, { dtype, metadata });
          expect((8 + headerLength(file)) % 8).toBe(0);
          const back = parseSafetensors(file, SRC);
          expectSameTensors(tensors, back.tensors);
          expect(back.metadata).toEqual(metadata);
        },
      ),
    );
  });

  it('writes names sorted with contiguous offsets', () => {
    const t = (n: number): HostTensor => ({ shape: [n], data: new Float32Array(n).fill(1) });
    const file = serializeSafetensors(new Map([['b', t(2)], ['a', t(3)], ['c', t(0)]]), { dtype: 'F16' });
    const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + headerLength(file))));
    expect(Object.keys(header)).toEqual(['a', 'b', 'c']);
    expect(header.a.data_offsets).toEqual([0, 6]);
    expect(header.b.data_offsets).toEqual([6, 10]);
    expect(header.c.data_offsets).toEqual([10, 10]);
    expect(file.length).toBe(8 + headerLength(file) + 10);
  });

  it('rounds F16/BF16 to nearest on write', () => {
    const tensors = new Map([['x', { shape: [2], data: Float32Array.from([1 + 2 ** -12, 1 / 3]) }]]);
    const f16 = parseSafetensors(serializeSafetensors(tensors, { dtype: 'F16' }), SRC).tensors.get('x')!;
    expect(Array.from(f16.data)).toEqual([1, f16ToF32(0x3555)]);
  });

  it('rejects truncation anywhere with a FormatError', () => {
    fc.assert(
      fc.property(arbDType.chain((d) => fc.tuple(fc.constant(d), arbTensors(d))), fc.double({ min: 0, max: 1, maxExcluded: true }), ([dtype, tensors], frac) => {
        const file = serializeSafetensors(tensors, { dtype });
        const cut = Math.floor(frac * file.length);
        expectFormatError(() => parseSafetensors(file.subarray(0, cut), SRC), SRC);
      }),
    );
  });

  it('header byte flips give a valid parse or a FormatError, never anything else', () => {
    fc.assert(
      fc.property(
        arbTensors('F32'),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        (tensors, flips) => {
          const file = serializeSafetensors(tensors).slice();
          const headerEnd = 8 + headerLength(file);
          for (const [at, x] of flips) file[at % headerEnd]! ^= x;
          onlyFormatError(() => parseSafetensors(file, SRC), SRC);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('random bytes give a FormatError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        onlyFormatError(() => parseSafetensors(bytes, SRC), SRC);
      }),
    );
  });

  it('bad shapes are FormatErrors naming the tensor', () => {
    const badDim = fc.oneof(
      fc.integer({ max: -1 }),
      fc.double({ noInteger: true }),
      fc.constantFrom(2 ** 53, 1e300, '3', null, true, [2], {}),
    );
    fc.assert(
      fc.property(fc.array(fc.nat(4)), badDim, fc.nat(), (shape, bad, at) => {
        const s: unknown[] = [...shape];
        s.splice(at % (s.length + 1), 0, bad);
        const file = rawSafetensors({ w: { dtype: 'F32', shape: s, data_offsets: [0, 0] } });
        const e = expectFormatError(() => parseSafetensors(file, SRC), SRC, /shape/);
        expect(e.tensor).toBe('w');
      }),
    );
  });

  it('a NaN or Inf anywhere is reported with the tensor name and the first bad index', () => {
    const patterns: Record<DType, number[]> = {
      F32: [0x7fc00000, 0x7f800000, 0xff800000],
      F16: [0x7e00, 0x7c00, 0xfc00],
      BF16: [0x7fc0, 0x7f80, 0xff80],
    };
    fc.assert(
      fc.property(
        arbDType.chain((d) => fc.tuple(fc.constant(d), arbTensors(d))),
        fc.nat(),
        fc.nat(),
        fc.nat(2),
        ([dtype, tensors], pick, where, which) => {
          const names = [...tensors.keys()].filter((n) => tensors.get(n)!.data.length > 0);
          fc.pre(names.length > 0);
          const name = names[pick % names.length]!;
          const n = tensors.get(name)!.data.length;
          const index = where % n;
          const file = serializeSafetensors(tensors, { dtype }).slice();
          const hl = headerLength(file);
          const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + hl)));
          const at = 8 + hl + header[name].data_offsets[0];
          const dv = new DataView(file.buffer);
          if (dtype === 'F32') dv.setUint32(at + 4 * index, patterns.F32[which]!, true);
          else dv.setUint16(at + 2 * index, patterns[dtype][which]!, true);
          const e = expectFormatError(() => parseSafetensors(file, SRC), SRC, `at index ${index} `, /non-finite/);
          expect(e.tensor).toBe(name);
        },
      ),
    );
  });

  describe('names the problem', () => {
    const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
    const eight = new Uint8Array(8);
    const cases: [string, Uint8Array, RegExp, string?][] = [
      ['short file', new Uint8Array(5), /5 bytes, too short/],
      ['header past end', (() => { const f = rawSafetensors({}); f[0] = 200; return f; })(), /runs past the end/],
      ['absurd header', (() => { const f = rawSafetensors({}); f[7] = 1; return f; })(), /absurdly large/],
      ['not UTF-8', rawSafetensors(null, undefined, '{"\xff"}'.replace('\xff', '\u00ff')).map((b, i) => (i === 10 ? 0xff : b)), /not valid UTF-8/],
      ['not JSON', rawSafetensors(null, undefined, '{"a":'), /not valid JSON/],
      ['not an object', rawSafetensors([1, 2]), /not an object/],
      ['entry not an object', rawSafetensors({ w: 3 }), /header entry is not an object/, 'w'],
      ['missing dtype', rawSafetensors({ w: { shape: [2], data_offsets: [0, 8] } }, eight), /no "dtype"/, 'w'],
      ['missing shape', rawSafetensors({ w: { dtype: 'F32', data_offsets: [0, 8] } }, eight), /no "shape"/, 'w'],
      ['missing offsets', rawSafetensors({ w: { dtype: 'F32', shape: [2] } }, eight), /no "data_offsets"/, 'w'],
      ['unsupported dtype', rawSafetensors({ w: { ...ok, dtype: 'I64' } }, eight), /unsupported dtype "I64"/, 'w'],
      ['prototype dtype', rawSafetensors({ w: { ...ok, dtype: 'toString' } }, eight), /unsupported dtype/, 'w'],
      ['bad offsets', rawSafetensors({ w: { ...ok, data_offsets: [0] } }, eight), /data_offsets must be/, 'w'],
      ['end before start', rawSafetensors({ w: { ...ok, data_offsets: [8, 0] } }, eight), /end is before start/, 'w'],
      ['out of range', rawSafetensors({ w: { ...ok, data_offsets: [4, 12] } }, eight), /past the end of the 8-byte data/, 'w'],
      ['wrong length', rawSafetensors({ w: { ...ok, shape: [3] } }, eight), /hold 8 bytes, but shape \[3\] of F32 needs 12/, 'w'],
      [
        'overlap',
        rawSafetensors({ a: ok, b: { ...ok, data_offsets: [4, 12] } }, new Uint8Array(12)),
        /overlap tensor "a"/,
        'b',
      ],
      ['gap', rawSafetensors({ a: { ...ok, data_offsets: [4, 12] } }, new Uint8Array(12)), /bytes \[0, 4\) .* not covered/],
      ['trailing', rawSafetensors({ a: ok }, new Uint8Array(12)), /4 trailing bytes/],
      ['bad metadata', rawSafetensors({ __metadata__: { a: 1 } }), /"__metadata__" value for "a" must be a string/],
    ];
    for (const [what, file, re, tensor] of cases) {
      it(what, () => {
        const e = expectFormatError(() => parseSafetensors(file, SRC), SRC, re);
        expect(e.tensor).toBe(tensor);
        if (tensor) expect(e.message.startsWith(`${SRC}: tensor "${tensor}": `)).toBe(true);
      });
    }
  });

  it('an empty tensor may sit anywhere', () => {
    const file = rawSafetensors(
      { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, e: { dtype: 'F16', shape: [0, 3], data_offsets: [4, 4] } },
      new Uint8Array(8),
    );
    expect(parseSafetensors(file, SRC).tensors.get('e')!.shape).toEqual([0, 3]);
  });

  it('refuses to write what it could not read back', () => {
    const one = (data: number[], shape = [data.length]): TensorMap => new Map([['w', { shape, data: Float32Array.from(data) }]]);
    expectFormatError(() => serializeSafetensors(one([NaN])), 'safetensors output', /non-finite value NaN at index 0/);
    expectFormatError(() => serializeSafetensors(one([1, 2], [3])), 'safetensors output', /does not describe 2 values/);
    expectFormatError(() => serializeSafetensors(one([1, 1e5]), { dtype: 'F16', source: 'o' }), 'o', /100000 at index 1 .* overflows F16/);
    expectFormatError(() => serializeSafetensors(one([3.4e38]), { dtype: 'BF16' }), 'safetensors output', /overflows BF16/);
  });
});

// ---------------------------------------------------------------- weights

describe('checkWeights', () => {
  const config = { ...fc.sample(arbConfig, { numRuns: 1, seed: 7 })[0]!, num_hidden_layers: 2, tie_word_embeddings: false };

  it('accepts exactly the weights of the config', () => {
    fc.assert(
      fc.property(arbConfig, fc.integer(), (c, seed) => {
        checkWeights(c, randomWeights(c, seed), 'w');
      }),
    );
  });

  it('catches a missing tensor', () => {
    const w = randomWeights(config, 1);
    w.delete('model.layers.1.mlp.up_proj.weight');
    const [F, D] = [config.intermediate_size, config.hidden_size];
    const e = expectFormatError(() => checkWeights(config, w, 'm'), 'm', `1 missing: model.layers.1.mlp.up_proj.weight [${F}, ${D}]`);
    expect(e.tensor).toBe('model.layers.1.mlp.up_proj.weight');
  });

  it('catches a wrong shape, with expected and found', () => {
    const w = randomWeights(config, 1);
    const [F, D] = [config.intermediate_size, config.hidden_size];
    w.set('model.layers.0.mlp.down_proj.weight', { shape: [F, D], data: new Float32Array(F * D) });
    expectFormatError(() => checkWeights(config, w, 'm'), 'm', `model.layers.0.mlp.down_proj.weight: expected [${D}, ${F}], found [${F}, ${D}]`);
  });

  it('catches a shape that disagrees with its data', () => {
    const w = randomWeights(config, 1);
    w.set('model.norm.weight', { shape: [config.hidden_size], data: new Float32Array(1 + config.hidden_size) });
    expectFormatError(() => checkWeights(config, w, 'm'), 'm', /model.norm.weight: shape .* but \d+ values/);
  });

  it('catches an extra tensor, and lists every problem at once', () => {
    const w = randomWeights(config, 1);
    w.set('model.layers.2.input_layernorm.weight', { shape: [4], data: new Float32Array(4) });
    w.delete('model.embed_tokens.weight');
    const e = expectFormatError(
      () => checkWeights(config, w, 'm'),
      'm',
      /1 missing: model.embed_tokens.weight .*; 1 unexpected: model.layers.2.input_layernorm.weight \[4\]/,
    );
    expect(e.tensor).toBeUndefined();
  });

  it('hints at tie_word_embeddings when lm_head is the problem', () => {
    const w = randomWeights(config, 1);
    expectFormatError(() => checkWeights({ ...config, tie_word_embeddings: true }, w, 'm'), 'm', /unexpected: lm_head.weight.*tie_word_embeddings: true/);
  });
});

describe('randomWeights', () => {
  it('is deterministic, with ones for norms and small matrices', () => {
    const c: LlamaConfig = { ...fc.sample(arbConfig, { numRuns: 1, seed: 3 })[0]!, hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 256, num_hidden_layers: 2 };
    const a = randomWeights(c, 42), b = randomWeights(c, 42), other = randomWeights(c, 43);
    expectSameTensors(a, b);
    expect(bits(a.get('model.embed_tokens.weight')!.data)).not.toEqual(bits(other.get('model.embed_tokens.weight')!.data));
    expect([...a.keys()]).toEqual([...weightShapes(c).keys()]);
    expect(a.get('model.layers.1.post_attention_layernorm.weight')!.data.every((x) => x === 1)).toBe(true);
    const std = (d: Float32Array): number => Math.sqrt(d.reduce((s, x) => s + x * x, 0) / d.length);
    expect(std(a.get('model.embed_tokens.weight')!.data)).toBeCloseTo(0.02, 2);
    expect(std(a.get('model.layers.0.self_attn.o_proj.weight')!.data)).toBeCloseTo(0.01, 2); // 0.02 / sqrt(2*2)
  });
});

// ---------------------------------------------------------------- llama2.c

/** HF rotary: rotate_half pairs (i, i + hd/2) in each head. */
function ropeRotateHalf(q: number[], heads: number, hd: number, pos: number): number[] {
  const out = [...q];
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      const a = h * hd + i, b = a + hd / 2;
      const f = pos * 10000 ** ((-2 * i) / hd);
      out[a] = q[a]! * Math.cos(f) - q[b]! * Math.sin(f);
      out[b] = q[a]! * Math.sin(f) + q[b]! * Math.cos(f);
    }
  }
  return out;
}

/** run.c rotary: adjacent pairs (2i, 2i+1), freq = 1 / 10000^((2i) / head_size). */
function ropeInterleaved(q: number[], heads: number, hd: number, pos: number): number[] {
  const out = [...q];
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      const a = h * hd + 2 * i, b = a + 1;
      const f = pos * 10000 ** ((-2 * i) / hd);
      out[a] = q[a]! * Math.cos(f) - q[b]! * Math.sin(f);
      out[b] = q[a]! * Math.sin(f) + q[b]! * Math.cos(f);
    }
  }
  return out;
}

/**
 * export.py's permute_reverse on a vector, written independently of src/io:
 * w.view(n_heads, 2, hd/2).transpose(1, 2).reshape(-1), i.e. out[h, i, j] = w[h, j, i].
 */
function exportPermute(v: number[], heads: number, hd: number): number[] {
  const out = new Array<number>(v.length);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < 2; j++)
      for (let i = 0; i < hd / 2; i++) out[h * hd + i * 2 + j] = v[h * hd + j * (hd / 2) + i]!;
  return out;
}

const matvec = (w: Float32Array, x: number[]): number[] =>
  Array.from({ length: w.length / x.length }, (_, r) => x.reduce((s, xi, c) => s + w[r * x.length + c]! * xi, 0));
const dot = (a: number[], b: number[]): number => a.reduce((s, x, i) => s + x * b[i]!, 0);

describe('llama2.c checkpoint', () => {
  it('round-trips exactly: read(write(x)) == x', () => {
    fc.assert(
      fc.property(arbConfig, fc.integer(), (config, seed) => {
        const tensors = randomWeights(config, seed);
        const back = readLlama2cCheckpoint(writeLlama2cCheckpoint(config, tensors), BIN);
        expect(back.config).toEqual(config);
        expectSameTensors(tensors, back.tensors);
      }),
    );
  });

  it('writes the run.c layout: header, permuted wq/wk, RoPE tables, wcls only when unshared', () => {
    fc.assert(
      fc.property(arbConfig, fc.integer(), (c, seed) => {
        const w = randomWeights(c, seed);
        const file = writeLlama2cCheckpoint(c, w);
        const i32 = new Int32Array(file.buffer, 0, 7);
        const V = c.tie_word_embeddings ? c.vocab_size : -c.vocab_size;
        expect(Array.from(i32)).toEqual([c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, V, c.max_position_embeddings]);
        const f32 = new Float32Array(file.buffer, 28);
        const D = c.hidden_size, L = c.num_hidden_layers, hd = headDim(c), S = c.max_position_embeddings;
        // wq of layer 0 follows the embedding table and rms_att_weight of every layer
        const wq0 = f32.subarray(c.vocab_size * D + L * D, c.vocab_size * D + L * D + D * D);
        expect(bits(wq0)).toEqual(bits(hfToLlama2cRows(w.get('model.layers.0.self_attn.q_proj.weight')!.data, c.num_attention_heads, hd, D)));
        // freq_cis_real then freq_cis_imag sit between rms_final_weight and the optional wcls
        const freqStart = f32.length - (c.tie_word_embeddings ? 0 : c.vocab_size * D) - S * hd;
        const cosT = f32.subarray(freqStart, freqStart + S * (hd / 2));
        const sinT = f32.subarray(freqStart + S * (hd / 2), freqStart + S * hd);
        for (let p = 0; p < S; p++) {
          for (let i = 0; i < hd / 2; i++) {
            const f = p / 10000 ** ((2 * i) / hd);
            expect(cosT[p * (hd / 2) + i]).toBeCloseTo(Math.cos(f), 6);
            expect(sinT[p * (hd / 2) + i]).toBeCloseTo(Math.sin(f), 6);
          }
        }
        if (!c.tie_word_embeddings) {
          expect(bits(f32.subarray(f32.length - c.vocab_size * D))).toEqual(bits(w.get('lm_head.weight')!.data));
        }
      }),
      { numRuns: 30 },
    );
  });

  it('permutes rows as export.py does: [a, b, c, d] -> [a, c, b, d] per head', () => {
    const w = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]); // 2 heads of head_size 4, one column
    expect(Array.from(hfToLlama2cRows(w, 2, 4, 1))).toEqual([0, 2, 1, 3, 10, 12, 11, 13]);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), (heads, half, cols) => {
        const x = Float32Array.from({ length: heads * 2 * half * cols }, (_, i) => i);
        expect(Array.from(llama2cToHfRows(hfToLlama2cRows(x, heads, 2 * half, cols), heads, 2 * half, cols))).toEqual(Array.from(x));
      }),
    );
  });

  it('the permutation makes interleaved RoPE agree with rotate-half RoPE', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: 0, max: 50 }),
        fc.integer(),
        (heads, half, posQ, posK, seed) => {
          const hd = 2 * half, D = heads * hd;
          const c: LlamaConfig = {
            hidden_size: D, num_hidden_layers: 1, num_attention_heads: heads, num_key_value_heads: heads,
            intermediate_size: 1, vocab_size: 1, max_position_embeddings: 1, rope_theta: 10000, rms_norm_eps: 1e-5, tie_word_embeddings: true,
          };
          const w = randomWeights(c, seed);
          const x = Array.from(w.get('model.embed_tokens.weight')!.data, (v) => v * 50);
          const wq = w.get('model.layers.0.self_attn.q_proj.weight')!.data;
          const wk = w.get('model.layers.0.self_attn.k_proj.weight')!.data;
          const q = matvec(wq, x), k = matvec(wk, x);
          const P = (v: number[]): number[] => exportPermute(v, heads, hd);
          expect(Array.from(hfToLlama2cRows(Float32Array.from(q), heads, hd, 1))).toEqual(P(Array.from(Float32Array.from(q))));
          // on vectors: rope_interleaved(P q) == P rope_rotate_half(q), element for element
          const lhs = ropeInterleaved(P(q), heads, hd, posQ);
          const rhs = P(ropeRotateHalf(q, heads, hd, posQ));
          lhs.forEach((v, i) => expect(v).toBeCloseTo(rhs[i]!, 6));
          // through the weights: run.c's q/k from the permuted file give the HF attention scores
          const bin = readLlama2cCheckpoint(writeLlama2cCheckpoint(c, w), BIN);
          expect(bits(bin.tensors.get('model.layers.0.self_attn.q_proj.weight')!.data)).toEqual(bits(wq));
          const qL = matvec(hfToLlama2cRows(wq, heads, hd, D), x), kL = matvec(hfToLlama2cRows(wk, heads, hd, D), x);
          for (let h = 0; h < heads; h++) {
            const head = (v: number[]): number[] => v.slice(h * hd, (h + 1) * hd);
            const sHF = dot(head(ropeRotateHalf(q, heads, hd, posQ)), head(ropeRotateHalf(k, heads, hd, posK)));
            const sL = dot(head(ropeInterleaved(qL, heads, hd, posQ)), head(ropeInterleaved(kL, heads, hd, posK)));
            expect(sL).toBeCloseTo(sHF, 9);
          }
        },
      ),
    );
  });

  describe('names the problem', () => {
    const config: LlamaConfig = {
      hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1,
      intermediate_size: 3, vocab_size: 5, max_position_embeddings: 4, rope_theta: 10000, rms_norm_eps: 1e-5, tie_word_embeddings: false,
    };
    const good = writeLlama2cCheckpoint(config, randomWeights(config, 9));
    const withHeader = (field: number, value: number): Uint8Array => {
      const f = good.slice();
      new DataView(f.buffer).setInt32(4 * field, value, true);
      return f;
    };

    it('short file', () => expectFormatError(() => readLlama2cCheckpoint(good.subarray(0, 27), BIN), BIN, /27 bytes, too short for the 28-byte header/));
    it('versioned export', () => {
      const f = good.slice();
      new DataView(f.buffer).setUint32(0, 0x616b3432, true); // export.py: struct.pack('I', 0x616b3432)
      expectFormatError(() => readLlama2cCheckpoint(f, BIN), BIN, /version 1\/2 export.*legacy/);
    });
    it('non-positive dims', () => {
      expectFormatError(() => readLlama2cCheckpoint(withHeader(2, 0), BIN), BIN, /n_layers = 0 must be positive/);
      expectFormatError(() => readLlama2cCheckpoint(withHeader(4, -1), BIN), BIN, /n_kv_heads = -1 must be positive/);
      expectFormatError(() => readLlama2cCheckpoint(withHeader(5, 0), BIN), BIN, /vocab_size = 0 must be non-zero/);
    });
    it('a corrupt header claiming 2^31 layers fails fast on the size, allocating nothing', () =>
      expectFormatError(() => readLlama2cCheckpoint(withHeader(2, 2 ** 31 - 1), BIN), BIN, /n_layers=2147483647 .* truncated by/));
    it('dim not divisible by n_heads', () => expectFormatError(() => readLlama2cCheckpoint(withHeader(3, 3), BIN), BIN, /dim 8 is not divisible by n_heads 3/));
    it('n_heads not divisible by n_kv_heads', () =>
      expectFormatError(() => readLlama2cCheckpoint(withHeader(4, 3), BIN), BIN, /n_heads 2 is not divisible by n_kv_heads 3/));
    it('truncated', () => expectFormatError(() => readLlama2cCheckpoint(good.subarray(0, good.length - 4), BIN), BIN, `implies ${good.length}: truncated by 4 bytes`));
    it('extra bytes', () => {
      const f = new Uint8Array(good.length + 8);
      f.set(good);
      expectFormatError(() => readLlama2cCheckpoint(f, BIN), BIN, /8 extra bytes/);
    });
    it('shared classifier flag flips the expected size', () =>
      expectFormatError(() => readLlama2cCheckpoint(withHeader(5, 5), BIN), BIN, /vocab_size=5 .*: 160 extra bytes/));
    it('NaN in a weight', () => {
      const f = good.slice();
      new DataView(f.buffer).setFloat32(28 + 4 * 3, NaN, true);
      const e = expectFormatError(() => readLlama2cCheckpoint(f, BIN), BIN, /token_embedding_table.*NaN at index 3/);
      expect(e.tensor).toBe('model.embed_tokens.weight');
    });
    it('write refuses what run.c cannot represent', () => {
      const w = randomWeights(config, 9);
      expectFormatError(() => writeLlama2cCheckpoint({ ...config, rope_theta: 500000 }, w), 'llama2.c checkpoint', /"rope_theta" is 500000/);
      expectFormatError(() => writeLlama2cCheckpoint({ ...config, rms_norm_eps: 1e-6 }, w, 'x.bin'), 'x.bin', /"rms_norm_eps" is 0.000001/);
      w.delete('lm_head.weight');
      expectFormatError(() => writeLlama2cCheckpoint(config, w), 'llama2.c checkpoint', /missing: lm_head.weight/);
    });
  });

  it('truncations, header flips and random bytes only ever raise FormatError', () => {
    fc.assert(
      fc.property(
        arbConfig,
        fc.double({ min: 0, max: 1, maxExcluded: true }),
        fc.array(fc.tuple(fc.nat(27), fc.integer({ min: 1, max: 255 })), { maxLength: 3 }),
        (c, frac, flips) => {
          const file = writeLlama2cCheckpoint(c, randomWeights(c, 1));
          expectFormatError(() => readLlama2cCheckpoint(file.subarray(0, Math.floor(frac * file.length)), BIN), BIN);
          const flipped = file.slice();
          for (const [at, x] of flips) flipped[at]! ^= x;
          onlyFormatError(() => readLlama2cCheckpoint(flipped, BIN), BIN);
        },
      ),
      { numRuns: 300 },
    );
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (b) => void onlyFormatError(() => readLlama2cCheckpoint(b, BIN), BIN)));
  });
});
