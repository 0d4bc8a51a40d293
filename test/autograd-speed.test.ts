/**
 * Training throughput (forward + backward + AdamW) of the shipped-size candidates.
 * Slow, so it runs only when asked:  TRAIN_BENCH=1 npx vitest run test/autograd-speed.test.ts
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { parseConfig, paramCount } from '../src/model/config.js';
import { Tape } from '../src/train/autograd.js';
import { LlamaParams, llamaLoss } from '../src/train/llama-train.js';
import { AdamW, clipGradNorm } from '../src/train/optim.js';
import { Rng } from '../src/util/random.js';

const sizes = [
  { D: 128, L: 8, H: 4, F: 352 },
  { D: 96, L: 6, H: 4, F: 256 },
];

describe.skipIf(!process.env.TRAIN_BENCH)('training speed', () => {
  for (const { D, L, H, F } of sizes) {
    it(`D=${D} L=${L} H=${H} F=${F} V=1024, 8x128 tokens per step`, () => {
      const config = parseConfig({
        hidden_size: D, num_hidden_layers: L, num_attention_heads: H, num_key_value_heads: H,
        intermediate_size: F, vocab_size: 1024, max_position_embeddings: 256, tie_word_embeddings: true,
      });
      const B = 8, T = 128, backend = new CpuBackend(), tape = new Tape(backend);
      const params = LlamaParams.random(backend, config, 1);
      const opt = new AdamW(params.vars);
      const rng = new Rng(2);
      const tokens = Int32Array.from({ length: B * (T + 1) }, () => rng.int(1024));
      const phases = { forward: 0, backward: 0, optim: 0 };
      const steps = 5;
      let first = 0, last = 0, arenaAfterFirst = 0;
      const arenaMB = () => (backend.arena ? backend.arena.memory.buffer.byteLength / 2 ** 20 : 0);
      for (let s = 0; s <= steps; s++) {
        const t0 = performance.now();
        params.zeroGrad();
        const loss = llamaLoss(params, config, tokens, B, T, tape);
        const t1 = performance.now();
        tape.backward(loss);
        const t2 = performance.now();
        clipGradNorm(params.vars.values(), 1);
        opt.step(1e-3);
        const t3 = performance.now();
        if (s === 0) first = loss.data[0]!;
        last = loss.data[0]!;
        tape.reset();
        if (s === 0) arenaAfterFirst = arenaMB();
        if (s === 0) continue; // warm-up step (pool, JIT)
        phases.forward += t1 - t0;
        phases.backward += t2 - t1;
        phases.optim += t3 - t2;
      }
      const ms = (phases.forward + phases.backward + phases.optim) / steps;
      console.log(
        `D=${D} L=${L} F=${F}: ${paramCount(config)} params, ${ms.toFixed(0)} ms/step ` +
          `(fwd ${(phases.forward / steps).toFixed(0)}, bwd ${(phases.backward / steps).toFixed(0)}, adamw ${(phases.optim / steps).toFixed(0)}), ` +
          `${((B * T * 1000) / ms).toFixed(0)} tokens/s; loss ${first.toFixed(3)} -> ${last.toFixed(3)}; wasm memory ${arenaAfterFirst.toFixed(0)} MB after step 1, ${arenaMB().toFixed(0)} MB at the end`,
      );
      expect(arenaMB()).toBe(arenaAfterFirst); // later steps reuse the pool
      expect(last).toBeLessThan(first); // the same batch, so it must fit it
    }, 120_000);
  }
});
