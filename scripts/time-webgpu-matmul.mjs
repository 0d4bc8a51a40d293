// Quick GFLOP/s of the WebGPU matmul kernels (not a test): a 768x288 matrix-vector product
// (matmul_vec, the decode path) and a 64x288x768 matmul (matmul_tiled, prefill / verify).
// Usage: npm run build && node scripts/time-webgpu-matmul.mjs [--gpu]
// (software fallback adapter by default; --gpu uses Dawn's default adapter)
import { existsSync } from 'node:fs';

const base = existsSync(new URL('../dist/src/node/webgpu.js', import.meta.url)) ? '../dist/src' : '../dist';
const { createNodeWebGPU } = await import(`${base}/node/webgpu.js`);
const { WebGPUBackend } = await import(`${base}/backend/webgpu/webgpu.js`);

const backend = await createNodeWebGPU({ fallback: !process.argv.includes('--gpu') });
console.log(`adapter: ${backend.description}`);

async function time(b, T, K, N, reps) {
  const x = b.alloc(T * K), w = b.alloc(N * K), out = b.alloc(T * N);
  b.write(x, Float32Array.from({ length: T * K }, () => Math.random() - 0.5));
  b.write(w, Float32Array.from({ length: N * K }, () => Math.random() - 0.5));
  const one = new Float32Array(1);
  for (let i = 0; i < 3; i++) b.matmul(out, x, w, T, K, N); // warm up: pipeline, bind group
  await b.read(out, one);
  let best = Infinity;
  for (let trial = 0; trial < 5; trial++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) b.matmul(out, x, w, T, K, N);
    await b.read(out, one);
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  for (const buf of [x, w, out]) b.free(buf);
  return { ms: best, gflops: (2 * T * K * N) / (best * 1e6) };
}

const fmt = (r) => `${r.ms.toFixed(3)} ms/launch, ${r.gflops.toFixed(2)} GFLOP/s`;
console.log(`matvec 768x288 (T=1), ${JSON.stringify(backend.matvec)}: ${fmt(await time(backend, 1, 288, 768, 200))}`);
console.log(`tiled 64x288x768: ${fmt(await time(backend, 64, 288, 768, 20))}`);
if (process.argv.includes('--sweep')) {
  for (const matvec of [{ WG: 32, LANES: 1 }, { WG: 64, LANES: 1 }, { WG: 64, LANES: 4 }, { WG: 64, LANES: 8 }, { WG: 128, LANES: 16 }, { WG: 128, LANES: 32 }, { WG: 128, LANES: 64 }, { WG: 128, LANES: 128 }]) {
    const b = new WebGPUBackend(backend.device, { matvec });
    console.log(`  matvec ${JSON.stringify(matvec)}: ${fmt(await time(b, 1, 288, 768, 200))}`);
    console.log(`  matvec 4096x4096 ${JSON.stringify(matvec)}: ${fmt(await time(b, 1, 4096, 4096, 20))}`);
  }
}
process.exit(0);
