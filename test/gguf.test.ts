/**
 * GGUF: our writer's files read back by our reader (exact for F32/F16/BF16, within one
 * quantization step for Q8_0/Q4_0), read by an independent parser (@huggingface/gguf) with
 * the same metadata and tensor table, the rotary permutation checked against a brute-force
 * rope, a GGUF model generating what the same model from safetensors generates, and corrupt
 * files refused with a FormatError naming the problem.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { gguf as hfGguf } from '@huggingface/gguf';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig, weightShapes, type LlamaConfig } from '../src/model/config.js';
import { randomWeights } from '../src/io/weights.js';
import { readGgufBytes, writeGguf, type GgufDType } from '../src/io/gguf.js';
import { ggufDims, ggufTensorName } from '../src/io/gguf-llama.js';
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
          for (let i = 0; i < t.data.length; i++) {
            const x = t.data[i]!;
            if (!matrix || dtype === 'F32' || (!blocks && dtype !== 'F16' && dtype !== 'BF16')) expect(back.data[i]).toBe(x);
            else if (dtype === 'F16' || dtype === 'BF16') expect(back.data[i]).toBe(roundTrip[dtype](x));
            else {
              // one step of the block's scale: max|x| / 127 (Q8_0), max|x| / 8 (Q4_0), plus the f16 rounding of the scale
              const row = Math.floor(i / t.shape[1]!), col = i % t.shape[1]!, start = row * t.shape[1]! + col - (col % 32);
              let amax = 0;
              for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(t.data[start + j]!));
              const step = dtype === 'Q8_0' ? amax / 127 : amax / 8;
              expect(Math.abs(back.data[i]! - x)).toBeLessThanOrEqual(step * 1.002 + 1e-12);
            }
          }
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
