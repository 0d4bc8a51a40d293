/**
 * The WebGL backend (gpu.js) runs only in a browser, so the tests drive it from Node: a
 * headless Chromium page (test/gpujs-page/) holds the real backend, and `RemoteBackend` here
 * implements Backend by queueing every call and sending the queue to the page at the next
 * read, the Backend's one wait point. So the same test bodies, helpers and model code that
 * run on the CPU and WebGPU backends run on WebGL unchanged, with one page round trip per
 * read. Errors in the page surface at that read.
 *
 * Chromium is Debian's (/usr/bin/chromium, through playwright-core); without a GPU its WebGL
 * runs on SwiftShader. Needs `npm run build` (the page imports dist/).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { AttentionParams, Backend, Buf } from '../src/backend/backend.js';
import type { GpujsStats } from '../src/backend/gpujs/gpujs.js';
import { PACKAGE_ROOT, serveStatic, type StaticServer } from '../src/node/serve.js';

const root = resolve(import.meta.dirname, '..');
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const PAGE_READY_MS = 60_000;

type Arg = number | Float32Array | Int32Array | Float64Array | { buf: number } | null | AttentionParams | number[] | { buf: number }[];
type Command = [string, ...Arg[]];

class RemoteBuf implements Buf {
  constructor(
    readonly length: number,
    readonly id: number,
  ) {}
}

export class RemoteBackend implements Backend {
  readonly name = 'webgl';
  private queue: Command[] = [];
  private nextId = 1;
  constructor(
    private readonly page: Page,
    readonly description: string,
    readonly software: boolean,
  ) {}

  alloc(length: number): Buf {
    const b = new RemoteBuf(length, this.nextId++);
    this.queue.push(['alloc', b.id, length]);
    return b;
  }
  write(dst: Buf, data: Float32Array, dstOffset = 0): void {
    this.queue.push(['write', ref(dst), data.slice(), dstOffset]);
  }
  async read(src: Buf, dst: Float32Array, srcOffset = 0): Promise<void> {
    this.queue.push(['read', id(src), dst.length, srcOffset]);
    const [values] = await this.flush();
    dst.set(values!);
  }
  async readMany(srcs: readonly Buf[], dsts: readonly Float32Array[]): Promise<void> {
    this.queue.push(['readMany', srcs.map(id), dsts.map((d) => d.length)]);
    const values = await this.flush();
    dsts.forEach((d, i) => d.set(values[i]!));
  }
  free(buf: Buf): void {
    this.queue.push(['free', id(buf)]);
  }

  embedding(out: Buf, table: Buf, ids: Int32Array, D: number): void {
    this.queue.push(['embedding', ref(out), ref(table), ids.slice(), D]);
  }
  rmsnorm(out: Buf, x: Buf, w: Buf, T: number, D: number, eps: number): void {
    this.queue.push(['rmsnorm', ref(out), ref(x), ref(w), T, D, eps]);
  }
  matmul(out: Buf, x: Buf, w: Buf, T: number, K: number, N: number): void {
    this.queue.push(['matmul', ref(out), ref(x), ref(w), T, K, N]);
  }
  add(out: Buf, a: Buf, b: Buf, n: number): void {
    this.queue.push(['add', ref(out), ref(a), ref(b), n]);
  }
  mul(out: Buf, a: Buf, b: Buf, n: number): void {
    this.queue.push(['mul', ref(out), ref(a), ref(b), n]);
  }
  siluGate(out: Buf, gate: Buf, up: Buf, n: number): void {
    this.queue.push(['siluGate', ref(out), ref(gate), ref(up), n]);
  }
  rope(x: Buf, positions: Int32Array, T: number, nHeads: number, headDim: number, invFreq: Float64Array): void {
    this.queue.push(['rope', ref(x), positions.slice(), T, nHeads, headDim, invFreq.slice()]);
  }
  addBias(x: Buf, bias: Buf, rows: number, cols: number): void {
    this.queue.push(['addBias', ref(x), ref(bias), rows, cols]);
  }
  attention(out: Buf, q: Buf, kCache: Buf, vCache: Buf, p: AttentionParams): void {
    this.queue.push(['attention', ref(out), ref(q), ref(kCache), ref(vCache), { ...p, mask: p.mask ? p.mask.slice() : null }]);
  }
  softmax(out: Buf, x: Buf, rows: number, cols: number): void {
    this.queue.push(['softmax', ref(out), ref(x), rows, cols]);
  }
  argmax(out: Buf, x: Buf, rows: number, cols: number): void {
    this.queue.push(['argmax', ref(out), ref(x), rows, cols]);
  }
  copy(dst: Buf, dstOffset: number, src: Buf, srcOffset: number, n: number): void {
    this.queue.push(['copy', ref(dst), dstOffset, ref(src), srcOffset, n]);
  }

  /** run what is queued in the page; the values of its reads, in order */
  async flush(): Promise<Float32Array[]> {
    const batch = this.queue;
    this.queue = [];
    const r = await this.page.evaluate((b) => (window as unknown as PageApi).__gpujs.exec(b), batch);
    if (r.error) throw new Error(`webgl (${this.description}): ${r.error}`);
    return r.results;
  }

  /** the page backend's counters (after running what is queued) */
  async stats(): Promise<GpujsStats> {
    await this.flush();
    return this.page.evaluate(() => (window as unknown as PageApi).__gpujs.stats());
  }
}

interface PageApi {
  __gpujs: {
    ready: boolean;
    error?: string;
    description: string;
    software: boolean;
    exec(batch: Command[]): Promise<{ results: Float32Array[]; error?: string }>;
    stats(): GpujsStats;
  };
}

const id = (b: Buf): number => (b as RemoteBuf).id;
const ref = (b: Buf): { buf: number } => ({ buf: id(b) });

export interface WebglSession {
  backend: RemoteBackend;
  browser: Browser;
  server: StaticServer;
  page: Page;
  close(): Promise<void>;
}

/** headless Chromium on the package's own static server, the test page open, its backend ready */
export async function openWebgl(): Promise<WebglSession> {
  if (!existsSync(join(root, 'dist/src/backend/gpujs/index.js'))) throw new Error('dist/ is missing the WebGL backend: run npm run build first');
  const server = await serveStatic({ root: PACKAGE_ROOT, port: 0 });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(m.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(`${server.url}test/gpujs-page/`);
    await page.waitForFunction(() => (window as unknown as Partial<PageApi>).__gpujs !== undefined, null, { timeout: PAGE_READY_MS }).catch(() => {
      throw new Error(`the WebGL test page did not start:\n${logs.join('\n')}`);
    });
    const info = await page.evaluate(() => {
      const g = (window as unknown as PageApi).__gpujs;
      return { ready: g.ready, error: g.error, description: g.description, software: g.software };
    });
    if (!info.ready) throw new Error(`no WebGL backend in the page: ${info.error}\n${logs.join('\n')}`);
    const backend = new RemoteBackend(page, info.description, info.software);
    return {
      backend, browser, server, page,
      close: async () => {
        await browser.close();
        await server.close();
      },
    };
  } catch (e) {
    await browser.close();
    await server.close();
    throw e;
  }
}
