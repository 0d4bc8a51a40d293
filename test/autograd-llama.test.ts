/**
 * The Llama training loss: its value equals the inference model's (src/model/llama.ts)
 * next-token cross-entropy and an f64 re-derivation, and its gradient matches finite
 * differences of that f64 loss on sampled parameters.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { Llama } from '../src/model/llama.js';
import { Tape } from '../src/train/autograd.js';
import { LlamaParams, llamaHidden, llamaLoss } from '../src/train/llama-train.js';
import { Rng } from '../src/util/random.js';
import * as ref from './autograd-reference.js';
import { centralDiff } from './autograd-reference.js';
import { spreadWeights, tinyConfig } from './helpers.js';

const backend = new CpuBackend();
const tape = new Tape(backend);

const batch = tinyConfig.chain((c) =>
  fc.record({ config: fc.constant(c), B: fc.integer({ min: 1, max: 3 }), T: fc.integer({ min: 1, max: 6 }), seed: fc.nat() }),
);

function randomTokens(rng: Rng, V: number, B: number, T: number, pad = false): Int32Array {
  const tokens = Int32Array.from({ length: B * (T + 1) }, () => rng.int(V));
  if (pad) for (let b = 0; b < B; b++) for (let t = T + 1 - rng.int(T + 1); t <= T; t++) if (t > 0) tokens[b * (T + 1) + t] = -1;
  return tokens;
}

describe('llamaLoss', () => {
  it('equals the inference model fed token by token', async () => {
    await fc.assert(
      fc.asyncProperty(batch, async ({ config, B, T, seed }) => {
        const params = new LlamaParams(backend, config, spreadWeights(config, seed % 1000, 5));
        const tokens = randomTokens(new Rng(seed), config.vocab_size, B, T);
        const loss = llamaLoss(params, config, tokens, B, T, tape).data[0]!;
        const hidden = llamaHidden(params, config, tokens.filter((_, i) => i % (T + 1) < T), B, T, tape);
        const hid = Float32Array.from(hidden.data);
        tape.reset();

        const model = new Llama(backend, config, params.toTensorMap());
        const D = config.hidden_size;
        let sum = 0, maxHidDiff = 0;
        for (let b = 0; b < B; b++) {
          model.reset();
          for (let t = 0; t < T; t++) {
            const logits = await model.forward([tokens[b * (T + 1) + t]!]);
            const m = Math.max(...logits);
            const lse = m + Math.log(logits.reduce((s, x) => s + Math.exp(x - m), 0));
            sum += lse - logits[tokens[b * (T + 1) + t + 1]!]!;
            const h = await model.lastHiddenState();
            for (let i = 0; i < D; i++) maxHidDiff = Math.max(maxHidDiff, Math.abs(h[i]! - hid[(b * T + t) * D + i]!));
          }
        }
        expect(Math.abs(loss - sum / (B * T))).toBeLessThan(1e-4 * Math.max(1, Math.abs(loss)));
        expect(maxHidDiff).toBeLessThan(1e-4);
      }),
      { numRuns: 25 },
    );
  });

  it('gradient matches f64 finite differences (sampled parameters, padded rows)', () => {
    fc.assert(
      fc.property(batch, ({ config, B, T, seed }) => {
        const rng = new Rng(seed);
        const weights = spreadWeights(config, seed % 1000, 5);
        const params = new LlamaParams(backend, config, weights);
        const tokens = randomTokens(rng, config.vocab_size, B, T, true);
        params.zeroGrad();
        const loss = llamaLoss(params, config, tokens, B, T, tape);
        tape.backward(loss);

        const w64 = new Map([...weights].map(([k, t]) => [k, Float64Array.from(t.data)]));
        const f = () => ref.llamaLoss(w64, config, tokens, B, T);
        expect(Math.abs(loss.data[0]! - f())).toBeLessThan(1e-4 * Math.max(1, f()));
        tape.reset();
        for (const [name, p] of params.vars) {
          const x = w64.get(name)!, g = p.grad!;
          const picks = Array.from({ length: 4 }, () => rng.int(x.length));
          const num = picks.map((i) => centralDiff(f, x, i));
          const scale = Math.max(1e-3, ...num.map(Math.abs), ...picks.map((i) => Math.abs(g[i]!)));
          picks.forEach((i, j) => expect(Math.abs(g[i]! - num[j]!), `${name}[${i}]`).toBeLessThan(2e-3 * scale));
        }
      }),
      { numRuns: 25 },
    );
  });

  it('round-trips through a TensorMap and rejects wrong shapes', () => {
    fc.assert(
      fc.property(tinyConfig, (config) => {
        const p = LlamaParams.random(backend, config, 4);
        const m = p.toTensorMap();
        const q = new LlamaParams(backend, config, m);
        for (const [k, t] of m) expect(Array.from(q.get(k).data)).toEqual(Array.from(t.data));
        const bad = new Map(m);
        bad.set('model.norm.weight', { shape: [config.hidden_size + 1], data: new Float32Array(config.hidden_size + 1) });
        expect(() => new LlamaParams(backend, config, bad)).toThrow(/model.norm.weight/);
        bad.delete('model.norm.weight');
        expect(() => new LlamaParams(backend, config, bad)).toThrow(/missing/);
      }),
      { numRuns: 10 },
    );
  });
});
