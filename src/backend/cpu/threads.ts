/**
 * Worker threads for the CPU backend's wasm kernels: every core on one matmul, or on one
 * token's attention.
 *
 * The workers share the arena's memory (a shared WebAssembly.Memory) and each holds its own
 * instance of the same kernel module, so a kernel call on a worker reads and writes the very
 * buffers the main thread does. A matmul is split by output rows, attention by query heads:
 * the main thread computes the first part itself while each worker computes one of the
 * others. Every output value is computed by the same instructions whatever the split (each
 * row's dot products never look at other rows, each head's softmax at other heads), so
 * results are bit-identical for any number of threads: greedy decoding, tree verification
 * and the golden tests do not depend on it.
 *
 * Signalling goes through a small SharedArrayBuffer of i32 slots, one 64-byte line per
 * worker, and Atomics; nothing is posted or allocated per call:
 *
 *   main:   write kernel and args into worker w's line; job[w] = ++seq; notify(job[w])
 *           ... compute part 0 ...
 *           wait until done[w] == seq for every w
 *   worker: wait until job != last; run the kernel; done = job; notify(done)
 *
 * Waiting spins briefly on Atomics.load (a wake-up through the kernel costs tens of
 * microseconds, as long as a small matmul), then blocks in Atomics.wait so an idle worker
 * uses no CPU. A browser's main thread may not block, so there it spins until done.
 *
 * Starting a worker is runtime-specific (worker_threads in Node, Web Workers elsewhere), so
 * the backend is given a `SpawnWorker`: `webWorkerSpawner` here, the Node one in src/node/.
 * Workers join as they become ready; until then the main thread does their share.
 */

/** A started worker: what the pool needs of a Web Worker or a worker_threads Worker. */
export interface WorkerHandle {
  postMessage(message: unknown): void;
  terminate(): unknown;
}

/**
 * Start a worker running `source`, a classic script that calls a function with the port
 * to receive its first message on (see `workerSource`). `portExpression` is how that
 * script reaches the port: `self` in a Web Worker, worker_threads' `parentPort` in Node.
 */
export type SpawnWorker = (source: (portExpression: string) => string) => WorkerHandle;

/** Web Workers (browsers, Deno, Bun) from a Blob URL; null where the runtime has none. */
export function webWorkerSpawner(): SpawnWorker | null {
  const W = (globalThis as { Worker?: new (url: string, opts?: { type?: 'classic' | 'module' }) => WorkerHandle }).Worker;
  if (typeof W !== 'function' || typeof Blob !== 'function' || typeof URL?.createObjectURL !== 'function') return null;
  return (source) => {
    const url = URL.createObjectURL(new Blob([source('self')], { type: 'text/javascript' }));
    // Deno only runs module workers; a plain script is also a module, so ask for one everywhere
    return new W(url, { type: 'module' });
  };
}

/** The kernel signature the pool runs: nine i32 arguments (byte offsets and sizes). */
export type RowKernel = (a0: number, a1: number, a2: number, a3: number, a4: number, a5: number, a6: number, a7: number, a8: number) => void;

/**
 * How to split each kernel by output rows: `n`, the index of the argument holding the row
 * count N; `steps(args, out)`, how much each argument advances per output row (bytes for
 * pointers; 0 for those that stay put: the input x, sizes, strides); `macs(args)`, its
 * multiply-adds; `align`, the rows a part starts on a multiple of. Rows [n0, n1) are then
 * the same call with args[i] + n0 * steps[i] and N = n1 - n0.
 *   out (T, N) with row stride ldo: the n0-th column is 4 * n0 bytes on
 *   w (N, K) f32 with row stride ldw: 4 * ldw bytes a row (2 * ldw in 16 bits)
 *   Q8_0 w: quants (N, Kp) int8 and scales (N, Kp / 32) f32, Kp = K rounded up to 32
 *   attendHeads: a row is a query head (the kernel finds its rows from its index h0)
 * Matmuls start parts on multiples of 4 rows, the single-token kernel's tile height.
 */
const paddedK = (K: number) => Math.ceil(K / 32) * 32;
export const ROW_SPLIT = {
  // (out, x, w, T, K, N, ldx, ldw, ldo)
  matmul: { n: 5, steps: (a: Int32Array, s: Int32Array) => { s[0] = 4; s[2] = 4 * a[7]!; }, macs: (a: Int32Array) => a[3]! * a[4]! * a[5]!, align: 4 },
  matmulBf16: { n: 5, steps: (a: Int32Array, s: Int32Array) => { s[0] = 4; s[2] = 2 * a[7]!; }, macs: (a: Int32Array) => a[3]! * a[4]! * a[5]!, align: 4 },
  matmulF16: { n: 5, steps: (a: Int32Array, s: Int32Array) => { s[0] = 4; s[2] = 2 * a[7]!; }, macs: (a: Int32Array) => a[3]! * a[4]! * a[5]!, align: 4 },
  // (out, x, wq, ws, T, K, N, ldx, ldo)
  matmulQ8F32: { n: 6, steps: (a: Int32Array, s: Int32Array) => { s[0] = 4; s[2] = paddedK(a[5]!); s[3] = paddedK(a[5]!) / 8; }, macs: (a: Int32Array) => a[4]! * a[5]! * a[6]!, align: 4 },
  // (out, xq, xs, wq, ws, T, K, N, ldo)
  matmulQ8Q8: { n: 7, steps: (a: Int32Array, s: Int32Array) => { s[0] = 4; s[3] = paddedK(a[6]!); s[4] = paddedK(a[6]!) / 8; }, macs: (a: Int32Array) => a[5]! * a[6]! * a[7]!, align: 4 },
  // (out, q, k, sc, hd, n, heads, h0, args): a row is a query head, n slots x hd each
  attendHeads: { n: 6, steps: (a: Int32Array, s: Int32Array) => { s[7] = 1; }, macs: (a: Int32Array) => a[4]! * a[5]! * a[6]!, align: 1 },
} as const;
export type SplitKernel = keyof typeof ROW_SPLIT;
/** Kernels a worker can run, by index in this list. */
export const POOL_KERNELS = Object.keys(ROW_SPLIT) as SplitKernel[];
const ARGS = 9;

/** i32 slots per worker: one 64-byte cache line, so workers' slots never share a line */
const LINE = 16;
const SLOT = { job: 0, done: 1, ready: 2, kernel: 3, args: 4 } as const;
const STOP = -1; // kernel index that ends a worker
/** Atomics.load polls before a waiting thread blocks (tens of microseconds; bench/threads.ts compares others) */
export const SPINS = 20000;

/**
 * The worker's program, as source text: it must not close over anything in this module, so
 * it is written out in full, with its constants passed in its first message.
 */
function workerMain(port: { once?: (e: string, f: (d: unknown) => void) => void; onmessage?: unknown }): void {
  type Init = { memory: WebAssembly.Memory; module: WebAssembly.Module; control: SharedArrayBuffer; index: number; names: string[]; layout: { line: number; job: number; done: number; ready: number; kernel: number; args: number; stop: number; spins: number } };
  const start = (init: Init) => {
    const { memory, module, control, index, names, layout: L } = init;
    const exports = new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, (...a: number[]) => void>;
    const fns = names.map((n) => exports[n]!);
    const c = new Int32Array(control);
    const base = index * L.line, a = base + L.args;
    Atomics.store(c, base + L.ready, 1);
    Atomics.notify(c, base + L.ready);
    let seen = 0;
    for (;;) {
      for (let i = 0; i < L.spins && Atomics.load(c, base + L.job) === seen; i++);
      while (Atomics.load(c, base + L.job) === seen) Atomics.wait(c, base + L.job, seen);
      seen = Atomics.load(c, base + L.job);
      const k = c[base + L.kernel]!;
      if (k === L.stop) return;
      fns[k]!(c[a]!, c[a + 1]!, c[a + 2]!, c[a + 3]!, c[a + 4]!, c[a + 5]!, c[a + 6]!, c[a + 7]!, c[a + 8]!); // the nine i32 of a RowKernel
      Atomics.store(c, base + L.done, seen);
      Atomics.notify(c, base + L.done);
    }
  };
  if (typeof port.once === 'function') port.once('message', (d) => start(d as Init)); // worker_threads
  else port.onmessage = (e: { data: Init }) => start(e.data); // Web Worker
}

/** The worker script: workerMain's source applied to the port. */
export function workerSource(portExpression: string): string {
  return `(${workerMain.toString()})(${portExpression});`;
}

/** Whether this thread may block in Atomics.wait (not a browser's main thread). */
function canBlock(): boolean {
  const c = new Int32Array(new SharedArrayBuffer(4));
  try {
    Atomics.wait(c, 0, 1); // returns 'not-equal' at once where waiting is allowed
    return true;
  } catch {
    return false;
  }
}

export class KernelPool {
  /** workers in use: those started, counted from the first (the main thread is one more) */
  get readyWorkers(): number {
    return this.ready;
  }
  /** resolves once every worker has started, or rejects with why one could not */
  readonly started: Promise<void>;

  private readonly control: Int32Array;
  private readonly workers: WorkerHandle[] = [];
  private ready = 0;
  private seq = 0;
  /** kernel calls split across threads so far */
  splitCalls = 0;
  private readonly args = new Int32Array(ARGS); // the call being split
  private readonly steps = new Int32Array(ARGS); // its bytes per output row, per argument
  private readonly blocking = canBlock();

  /**
   * `workers` threads beside the main one, each instantiating `module` over `memory` (a
   * shared memory), started through `spawn`.
   */
  constructor(
    memory: WebAssembly.Memory,
    module: WebAssembly.Module,
    workers: number,
    spawn: SpawnWorker,
    private readonly minMacsPerPart = MIN_MACS_PER_PART,
    private readonly spins = SPINS,
  ) {
    this.control = new Int32Array(new SharedArrayBuffer(Math.max(1, workers) * LINE * 4));
    const layout = { line: LINE, ...SLOT, stop: STOP, spins: this.spins };
    const startedOne: Promise<void>[] = [];
    for (let w = 0; w < workers; w++) {
      const worker = spawn(workerSource);
      (worker as { unref?: () => void }).unref?.(); // a Node worker must not keep the process alive
      this.workers.push(worker);
      worker.postMessage({ memory, module, control: this.control.buffer, index: w, names: [...POOL_KERNELS], layout });
      startedOne.push(this.whenReady(w));
    }
    this.started = Promise.all(startedOne).then(() => undefined);
  }

  /**
   * resolves when worker w has instantiated its kernels. The pool uses workers 0 .. ready-1,
   * so a job is never posted to a worker that has not started (it would run it later).
   */
  private async whenReady(w: number): Promise<void> {
    const c = this.control, at = w * LINE + SLOT.ready;
    while (Atomics.load(c, at) === 0) await new Promise((res) => setTimeout(res, 1));
    while (this.ready < this.workers.length && Atomics.load(c, this.ready * LINE + SLOT.ready) === 1) this.ready++;
  }

  /**
   * Run `kernel` (a POOL_KERNELS name) with arguments a0..a8 on every ready thread, split by
   * output rows (ROW_SPLIT); `local` is the main thread's instance of it, which runs the
   * first part while the workers run the others.
   */
  run(kernel: SplitKernel, local: RowKernel, a0: number, a1: number, a2: number, a3: number, a4: number, a5: number, a6: number, a7: number, a8: number): void {
    const a = this.args, step = this.steps, how = ROW_SPLIT[kernel];
    a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3; a[4] = a4; a[5] = a5; a[6] = a6; a[7] = a7; a[8] = a8;
    const N = a[how.n]!;
    const parts = Math.min(this.ready + 1, Math.ceil(N / how.align), Math.floor(how.macs(a) / Math.max(1, this.minMacsPerPart)));
    if (parts <= 1) {
      local(a0, a1, a2, a3, a4, a5, a6, a7, a8);
      return;
    }
    step.fill(0);
    how.steps(a, step);
    const c = this.control, seq = ++this.seq, k = POOL_KERNELS.indexOf(kernel);
    this.splitCalls++;
    for (let p = 1; p < parts; p++) {
      const n0 = partStart(p, parts, N, how.align), base = (p - 1) * LINE, at = base + SLOT.args;
      c[base + SLOT.kernel] = k;
      for (let i = 0; i < ARGS; i++) c[at + i] = a[i]! + n0 * step[i]!;
      c[at + how.n] = partStart(p + 1, parts, N, how.align) - n0;
      Atomics.store(c, base + SLOT.job, seq);
      Atomics.notify(c, base + SLOT.job);
    }
    a[how.n] = partStart(1, parts, N, how.align);
    local(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!);
    for (let p = 1; p < parts; p++) this.waitDone((p - 1) * LINE + SLOT.done, seq);
  }

  private waitDone(at: number, seq: number): void {
    const c = this.control;
    for (let i = 0; i < this.spins; i++) if (Atomics.load(c, at) === seq) return;
    for (;;) {
      const v = Atomics.load(c, at);
      if (v === seq) return;
      if (this.blocking) Atomics.wait(c, at, v);
    }
  }

  /** stop the workers (their memory stays with the arena) */
  close(): void {
    for (let w = 0; w < this.workers.length; w++) {
      const base = w * LINE;
      this.control[base + SLOT.kernel] = STOP;
      Atomics.store(this.control, base + SLOT.job, ++this.seq);
      Atomics.notify(this.control, base + SLOT.job);
      void this.workers[w]!.terminate();
    }
    this.workers.length = 0;
    this.ready = 0;
  }
}

/** the first of the N rows that part p of `parts` computes: whole multiples of `align`, the last part takes the rest */
function partStart(p: number, parts: number, N: number, align: number): number {
  return Math.min(N, Math.ceil((N * p) / parts / align) * align);
}

/** multiply-adds a part must have to be worth waking a worker for */
export const MIN_MACS_PER_PART = 65536;
