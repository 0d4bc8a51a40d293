// Run by test/cpu-threads.test.ts under Deno and Bun: the CPU backend on 2 threads through
// Web Workers (the runtime-neutral spawner), against 1 thread, on a few shapes. Prints JSON.
import { CpuBackend } from '../dist/src/backend/cpu/cpu.js';

const one = new CpuBackend();
const two = new CpuBackend({ threads: 2, minWorkPerThread: 1 });
await two.ready;
async function matmul(be, T, K, N) {
  const x = be.alloc(T * K), w = be.alloc(N * K), o = be.alloc(T * N);
  be.write(x, Float32Array.from({ length: T * K }, (_, i) => Math.sin(i * 1.3)));
  be.write(w, Float32Array.from({ length: N * K }, (_, i) => Math.cos(i * 0.7)));
  be.matmul(o, x, w, T, K, N);
  const r = new Float32Array(T * N);
  await be.read(o, r);
  return Array.from(r);
}
let same = true;
for (const [T, K, N] of [[1, 7, 5], [3, 64, 33], [5, 129, 101], [1, 288, 768]]) {
  const a = await matmul(one, T, K, N), b = await matmul(two, T, K, N);
  same &&= a.every((v, i) => Object.is(v, b[i]));
}
console.log(JSON.stringify({ threads: two.threads, note: two.threadsNote, splitCalls: two.splitCalls, same }));
two.close(); // a Deno process waits for its workers until they are closed
