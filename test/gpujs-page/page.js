// Runs Backend calls sent from Node (test/gpujs-remote.ts) on the WebGL backend in this page.
// A batch is a list of [op, ...args]; a buffer is named { buf: id }; the results of the
// batch's reads come back in order. The first failing call ends the batch with its message.
import { createGpujsBackend } from '/dist/src/backend/gpujs/index.js';

const bufs = new Map();
let backend;

const resolve = (a) => (a !== null && typeof a === 'object' && 'buf' in a ? bufOf(a.buf) : a);
function bufOf(id) {
  const b = bufs.get(id);
  if (!b) throw new Error(`no buffer ${id} in the page`);
  return b;
}

async function exec(batch) {
  const results = [];
  for (let i = 0; i < batch.length; i++) {
    const [op, ...args] = batch[i];
    try {
      if (op === 'alloc') bufs.set(args[0], backend.alloc(args[1]));
      else if (op === 'free') backend.free(bufOf(args[0])); // kept: a later use must report 'used after free'
      else if (op === 'read') {
        const dst = new Float32Array(args[1]);
        await backend.read(bufOf(args[0]), dst, args[2]);
        results.push(dst);
      } else if (op === 'readMany') {
        const dsts = args[1].map((n) => new Float32Array(n));
        await backend.readMany(args[0].map(bufOf), dsts);
        results.push(...dsts);
      } else backend[op](...args.map(resolve));
    } catch (e) {
      return { error: `${op}: ${e.message}`, results };
    }
  }
  return { results };
}

try {
  backend = createGpujsBackend(window.GPU);
  window.__gpujs = { ready: true, description: backend.description, software: backend.software, exec, stats: () => ({ ...backend.stats }) };
} catch (e) {
  window.__gpujs = { ready: false, error: e.message };
}
