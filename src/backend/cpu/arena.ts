/**
 * One WebAssembly.Memory that holds every buffer of a SIMD CPU backend, so the wasm
 * kernels read weights and activations in place, with no copies.
 *
 * A bump allocator with a free list per block size: blocks are 16-byte aligned (one
 * v128), freed blocks are reused by later allocations of the same size, and the memory
 * grows when the top passes its end. Models allocate their weights and activations
 * once, so exact-size reuse is all the token loop needs (it allocates nothing).
 *
 * Growing detaches the old ArrayBuffer: every Float32Array over it becomes empty. Only
 * the arena grows the memory, so `buffer` (the current ArrayBuffer) tells a buffer
 * whether its cached view is stale; see CpuBuf.data.
 *
 * Blocks whose owner is garbage collected without free() are reclaimed through a
 * FinalizationRegistry, as the plain Float32Array buffers would have been.
 *
 * A shared arena (for the worker threads of threads.ts) is a shared WebAssembly.Memory: its
 * buffer is a SharedArrayBuffer that every worker's instance of the kernels reads and
 * writes in place. A shared memory must declare its maximum up front (4 GiB here: only
 * address space is reserved) and growing it never detaches the old buffer, but `buffer`
 * still changes identity, so the same staleness test holds.
 */
const PAGE = 65536; // bytes per wasm page
const ALIGN = 16;
/** the most pages one memory may have: 4 GiB, the wasm32 limit (a shared memory declares it as its maximum) */
export const ARENA_MAX_PAGES = 65536;
const MAX_PAGES = ARENA_MAX_PAGES;
/** the most bytes one arena can hold */
export const ARENA_MAX_BYTES = MAX_PAGES * PAGE;

export class Arena {
  readonly memory: WebAssembly.Memory;
  /** memory.buffer as of the last grow (a SharedArrayBuffer when shared) */
  buffer: ArrayBufferLike;
  private top = 0; // first byte never handed out
  private readonly freeBySize = new Map<number, number[]>(); // block bytes -> offsets
  private readonly live = new Map<number, number>(); // offset -> block bytes
  private readonly reclaim = new FinalizationRegistry<number>((offset) => this.release(offset));

  /** `shared`: a memory worker threads can use too (needs SharedArrayBuffer, see sharedMemorySupported) */
  constructor(readonly shared = false) {
    this.memory = shared ? new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true }) : new WebAssembly.Memory({ initial: 1 });
    this.buffer = this.memory.buffer;
  }

  /** `bytes` zero-filled bytes, 16-aligned, owned by `owner`: returns the byte offset */
  alloc(bytes: number, owner: object): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let offset = this.freeBySize.get(size)?.pop();
    if (offset !== undefined) {
      new Uint8Array(this.buffer, offset, size).fill(0); // fresh memory is zero, reused is not
    } else {
      offset = this.top;
      this.ensure(offset + size);
      this.top = offset + size;
    }
    this.live.set(offset, size);
    this.reclaim.register(owner, offset, owner);
    return offset;
  }

  /** give back `owner`'s block (registered with the owner, so a stale second free cannot hit a reused block) */
  free(offset: number, owner: object): void {
    if (!this.reclaim.unregister(owner)) throw new Error(`arena: block at ${offset} is not allocated to this owner (double free?)`);
    this.release(offset);
  }

  /** a Float32Array over `length` f32 at `offset`, valid until the next grow */
  f32(offset: number, length: number): Float32Array {
    return new Float32Array(this.buffer, offset, length);
  }

  private release(offset: number): void {
    const size = this.live.get(offset)!;
    this.live.delete(offset);
    let list = this.freeBySize.get(size);
    if (!list) this.freeBySize.set(size, (list = []));
    list.push(offset);
  }

  /** grow so that `end` bytes fit: at least half again the current size, to grow rarely */
  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength / PAGE;
    const need = Math.ceil(end / PAGE);
    if (need <= have) return;
    if (need > MAX_PAGES) throw new RangeError(`arena: ${end} bytes exceed the 4 GiB of a wasm32 memory`);
    const want = Math.min(MAX_PAGES, Math.max(need, Math.ceil(have * 1.5)));
    try {
      this.memory.grow(want - have);
    } catch {
      this.memory.grow(need - have); // the generous size was refused; try the bare minimum
    }
    this.buffer = this.memory.buffer;
  }
}

/**
 * Whether this runtime can share a wasm memory with workers: SharedArrayBuffer exists (in a
 * browser only on a cross-origin isolated page) and a shared WebAssembly.Memory can be made.
 */
export function sharedMemorySupported(): boolean {
  if (typeof SharedArrayBuffer !== 'function') return false;
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}
