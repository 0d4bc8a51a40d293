/**
 * WebAssembly SIMD kernels for the CPU backend (the matmul, and the two inner loops of
 * attention), assembled byte by byte right here.
 *
 * Plain JavaScript has no vector arithmetic, so the CPU matmul tops out near 3 GFLOP/s.
 * WebAssembly's SIMD128 (f32x4: four f32 lanes per instruction) runs in Node 20, Deno,
 * Bun and browsers, so a tiny module keeps the core runtime-neutral with no toolchain,
 * no .wasm file and no dependency: this file writes the binary format itself.
 *
 * Reading order: the binary encoding (LEB128, sections), the opcodes we use, a small
 * function builder, the matmul kernel (loop structure written out like a C kernel), the
 * weighted sum of attention, the module around them, and how to instantiate it over an
 * arena's memory.
 *
 * The kernel uses only f32x4.mul + f32x4.add (relaxed-SIMD fma is not available
 * everywhere). It works on byte offsets into the memory the module imports, which is
 * where the CPU backend keeps its buffers (see arena.ts).
 */

import { ARENA_MAX_PAGES } from './arena.js';

// ---- binary encoding ----------------------------------------------------------------

/** unsigned LEB128: 7 bits per byte, low bits first, high bit set on all but the last */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** signed LEB128 of an i32 (as i32.const wants): stop once the rest is all sign bits */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** a vector: element count, then the elements */
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
/** a UTF-8 name: byte length, then the bytes */
const utf8 = (s: string): number[] => vec([...new TextEncoder().encode(s)].map((b) => [b]));
/** a section: id, byte length, contents */
const section = (id: number, contents: number[]): number[] => [id, ...uleb(contents.length), ...contents];

const MAGIC_VERSION = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]; // "\0asm", version 1
const SEC = { type: 1, import: 2, function: 3, export: 7, code: 10 } as const;

// value types
const I32 = 0x7f;
const F32 = 0x7d;
const F64 = 0x7c;
const V128 = 0x7b;
const FUNC_TYPE = 0x60; // (params) -> (results)
const EMPTY_BLOCK = 0x40; // block type of a block that yields nothing
const EXTERN_FUNC = 0x00; // import / export kinds
const EXTERN_MEMORY = 0x02;

// ---- opcodes --------------------------------------------------------------------------

const OP = {
  block: 0x02, // block <blocktype> ... end: br to it jumps past its end
  loop: 0x03, // loop <blocktype> ... end: br to it jumps back to its start
  if: 0x04, // if <blocktype> ... else ... end: pop i32, run the first arm when non-zero
  else: 0x05,
  end: 0x0b, // closes a block, loop or function body
  br: 0x0c, // br <depth>: jump to the enclosing label at <depth>
  brIf: 0x0d, // br_if <depth>: pop i32, jump when non-zero
  localGet: 0x20, // push local
  localSet: 0x21, // pop into local
  localTee: 0x22, // copy top of stack into local, leave it on the stack
  i32Load: 0x28, // i32.load <align> <offset>: pop address, push i32
  f32Load: 0x2a, // f32.load <align> <offset>: pop address, push f32
  f32Store: 0x38, // f32.store <align> <offset>: pop address and value
  i32Load8S: 0x2c, // i32.load8_s <align> <offset>: one signed byte
  i32Load16S: 0x2e, // i32.load16_s: two bytes, sign-extended
  i32Load16U: 0x2f, // i32.load16_u: two bytes, zero-extended
  i32Store8: 0x3a, // i32.store8: the low byte
  i32Store16: 0x3b, // i32.store16: the low two bytes
  i32Const: 0x41, // i32.const <sleb>
  f32Const: 0x43, // f32.const <4 bytes, little-endian>
  i32Eqz: 0x45, // push a == 0
  f32Eq: 0x5b, // push a == b (f32; false when either is NaN, true for 0 == -0)
  i32LtS: 0x48, // push a < b (signed)
  i32LtU: 0x49, // push a < b (unsigned)
  f64Gt: 0x64, // push a > b (f64; false when either is NaN)
  i32LeU: 0x4d, // push a <= b (unsigned)
  i32Add: 0x6a,
  i32Mul: 0x6c,
  i32DivU: 0x6e,
  i32And: 0x71,
  i32Or: 0x72,
  i32Shl: 0x74,
  i32ShrU: 0x76,
  f32Abs: 0x8b,
  f32Nearest: 0x90, // round to the nearest integer, ties to even
  f32Div: 0x95,
  f32Min: 0x96,
  f32Max: 0x97,
  i32TruncF32S: 0xa8, // f32 -> i32 toward zero (traps outside i32: callers keep values small)
  f32ReinterpretI32: 0xbe, // the same 32 bits seen as an f32
  f32Ne: 0x5c,
  f32Add: 0x92,
  f32Mul: 0x94,
  f32ConvertI32S: 0xb2, // i32 -> f32 (how we write 0.0 without an f32.const encoder)
  f64Sqrt: 0x9f,
  f64Add: 0xa0,
  f64Mul: 0xa2,
  f64Div: 0xa3,
  f32DemoteF64: 0xb6, // f64 -> f32, rounded to nearest (as storing into a Float32Array)
  f64ConvertI32U: 0xb8,
  f64PromoteF32: 0xbb, // f32 -> f64, exact
  drop: 0x1a, // pop and forget
  select: 0x1b, // pop a, b, cond: push cond ? a : b
} as const;
/** i32.trunc_sat_f32_s: f32 -> i32 toward zero, NaN -> 0, saturating (never traps) */
const I32_TRUNC_SAT_F32_S = [0xfc, 0x00];

const SIMD_PREFIX = 0xfd; // every SIMD opcode is this byte followed by a LEB128 u32
const SIMD = {
  v128Load: 0x00, // v128.load <align> <offset>: pop address, push 16 bytes
  v128Load8x8S: 0x01, // 8 int8 -> i16x8, sign-extended
  v128Load16x4S: 0x03, // 4 int16 -> i32x4, sign-extended
  v128Load16x4U: 0x04, // 4 uint16 -> i32x4, zero-extended
  v128Load32Zero: 0x5c, // 4 bytes into lane 0, the rest zero
  v128Store: 0x0b, // v128.store <align> <offset>: pop address and value
  v128Const: 0x0c, // v128.const <16 bytes>
  f32x4Splat: 0x13, // f32 -> the same value in all four lanes
  i8x16Shuffle: 0x0d, // i8x16.shuffle <16 lane indices into the 32 bytes of two operands>
  f32x4ExtractLane: 0x1f, // f32x4.extract_lane <lane>: v128 -> f32
  f32x4Eq: 0x41, // lane-wise a == b: all ones or all zeros
  v128And: 0x4e,
  v128AndNot: 0x4f, // a & ~b
  i8x16NarrowI16x8S: 0x65, // two i16x8 -> one i8x16, saturating
  i16x8NarrowI32x4S: 0x85, // two i32x4 -> one i16x8, saturating
  i16x8ExtendLowI8x16S: 0x87, // bytes 0-7 -> i16x8
  i16x8ExtendHighI8x16S: 0x88, // bytes 8-15 -> i16x8
  i32x4ExtendLowI16x8S: 0xa7, // i16 lanes 0-3 -> i32x4
  i32x4ExtendHighI16x8S: 0xa8, // i16 lanes 4-7 -> i32x4
  i32x4DotI16x8S: 0xba, // lane i = a[2i] b[2i] + a[2i+1] b[2i+1], i16 products summed in i32
  f32x4Abs: 0xe0,
  f32x4Nearest: 0x6a, // round each lane to the nearest integer (ties to even)
  i32x4Shl: 0xab, // shift each i32 lane left by an i32 count
  i32x4Add: 0xae,
  f32x4Add: 0xe4, // lane-wise a + b
  f32x4Sub: 0xe5,
  f32x4Mul: 0xe6, // lane-wise a * b
  f32x4Div: 0xe7,
  f32x4Min: 0xe8, // lane-wise min (NaN if either lane is NaN)
  f32x4Max: 0xe9, // lane-wise max (NaN if either lane is NaN)
  i32x4TruncSatF32x4S: 0xf8, // f32 lanes -> i32 lanes, toward zero
  f32x4ConvertI32x4S: 0xfa, // i32 lanes -> f32 lanes
} as const;

/** memarg alignment hints (log2 bytes): buffers are 16-aligned but rows of odd K are not */
const ALIGN_F32 = 2;
const ALIGN_BYTE = 0; // int8 quants, 16-bit weights: no promise

// ---- function builder -----------------------------------------------------------------

/** Collects one function's locals and instruction bytes, with helpers for the few forms we use. */
class FunctionBuilder {
  readonly code: number[] = [];
  private readonly localTypes: number[] = [];

  constructor(readonly params: readonly number[]) {}

  /** declare a local of `type`, return its index (params come first) */
  local(type: number): number {
    this.localTypes.push(type);
    return this.params.length + this.localTypes.length - 1;
  }
  locals(type: number, n: number): number[] {
    return Array.from({ length: n }, () => this.local(type));
  }

  op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }
  simd(opcode: number, ...immediates: number[]): this {
    return this.op(SIMD_PREFIX, ...uleb(opcode), ...immediates);
  }
  get(l: number): this {
    return this.op(OP.localGet, ...uleb(l));
  }
  set(l: number): this {
    return this.op(OP.localSet, ...uleb(l));
  }
  tee(l: number): this {
    return this.op(OP.localTee, ...uleb(l));
  }
  i32(v: number): this {
    return this.op(OP.i32Const, ...sleb(v));
  }
  /** v128.const of one i32 in all four lanes */
  i32x4(v: number): this {
    const b = new Uint8Array(Int32Array.of(v, v, v, v).buffer);
    return this.simd(SIMD.v128Const, ...b);
  }
  /** f32.const v */
  f32(v: number): this {
    return this.op(OP.f32Const, ...new Uint8Array(Float32Array.of(v).buffer));
  }
  /** v128.const of one f32 in all four lanes (little-endian bytes) */
  f32x4(v: number): this {
    const b = new Uint8Array(Float32Array.of(v, v, v, v).buffer);
    return this.simd(SIMD.v128Const, ...b);
  }
  /** local a = a + (value on the stack) */
  addTo(a: number, pushValue: () => void): this {
    this.get(a);
    pushValue();
    return this.op(OP.i32Add).set(a);
  }

  /** if (!cond) body  as  block { br_if(cond) out; body } */
  unless(cond: () => void, body: () => void): this {
    this.op(OP.block, EMPTY_BLOCK);
    cond();
    this.op(OP.brIf, 0);
    body();
    return this.op(OP.end);
  }

  /** if (cond) then else otherwise */
  ifElse(cond: () => void, then: () => void, otherwise: () => void): this {
    cond();
    this.op(OP.if, EMPTY_BLOCK);
    then();
    this.op(OP.else);
    otherwise();
    return this.op(OP.end);
  }

  /** while (cond) body  as  block { loop { br_if(!cond) out; body; br loop } } */
  whileLoop(cond: () => void, body: () => void): this {
    this.op(OP.block, EMPTY_BLOCK, OP.loop, EMPTY_BLOCK);
    cond();
    this.op(OP.i32Eqz, OP.brIf, 1);
    body();
    return this.op(OP.br, 0, OP.end, OP.end);
  }

  /** the code-section entry: byte size, locals run-length encoded by type, code, end */
  encode(): number[] {
    const runs: number[][] = [];
    for (let i = 0; i < this.localTypes.length; ) {
      let j = i;
      while (j < this.localTypes.length && this.localTypes[j] === this.localTypes[i]) j++;
      runs.push([...uleb(j - i), this.localTypes[i]!]);
      i = j;
    }
    const body = [...vec(runs), ...this.code, OP.end];
    return [...uleb(body.length), ...body];
  }
}

// ---- the matmul kernel ------------------------------------------------------------------

/**
 * Tile shapes: a tile computes U tokens x R weight rows at once, so each weight vector
 * loaded is used U times and each x vector R times, with U*R independent f32x4
 * accumulators keeping the adders busy. Measured on x64 (Node 20, 64x288 @ 288x768):
 * 4 tokens x 2 rows 42 GFLOP/s, 2 x 4 41, 4 x 3 36, 6 x 2 32, 4 x 4 29 (16 accumulators
 * plus operands spill out of x64's 16 vector registers), 8 x 1 29. One token: see below.
 */
const TOKENS_PER_BLOCK = 4; // U for the token blocks of a batch (T >= 4)
const ROWS_PER_BATCH_TILE = 2; // R within those blocks
const PAIR_ROWS = 4; // R for a pair of tokens left over (T % 4 >= 2): 2 tokens x 4 rows
/**
 * A batch of fewer than SMALL_BATCH tokens (a tree of a few nodes) reads each weight row
 * once or twice, so, like one token, it waits on memory more than on the adders: its tiles
 * take one row at a time too, 4 vectors a pass (4 or 2 tokens x 1 row), a single stream. In
 * the shipped model (x64, Node 20, a chain of T nodes after 64 tokens, its matrix products
 * per forward): T = 2 1.50 -> 0.86 ms, T = 4 3.50 -> 1.57 ms; in SmolLM2-135M's matrices T = 2-4
 * 1.03-1.19x. Larger batches take the wider tiles, after reading each chunk through once
 * (CACHE_LINE below), and their arithmetic wins: one row at T = 6 measured 0.9-1.3x slower in both
 * models, at T = 8 and 16 0.92x and 0.83x in SmolLM2-135M.
 */
const SMALL_BATCH = 5;
/**
 * One token (decode) reads each weight once, so memory sets the pace, not the adders: one row
 * at a time, read front to back as a single stream, is faster than several rows side by side
 * (the f32 matmuls of SmolLM2-135M's shape, one token, x64, Node 20: 1 row 8.7-10.4 GB/s,
 * 2 rows 6.0-6.7, 4 rows 6.5-8.3). The row's loop handles 4 vectors (one 64-byte cache line of
 * f32) per pass, still adding them into its one accumulator in order, so every output is
 * summed exactly as in the other tiles and a token's logits do not depend on its batch.
 */
const ROWS_PER_TOKEN_TILE = 1;
const VECTORS_PER_TOKEN_PASS = 4;
/**
 * A batch reads its weights once per block of tokens. Read straight through, a matrix larger
 * than the cache then comes from memory once per block; so the rows go in chunks of about
 * CHUNK_BYTES, each chunk meeting every token block while it is still in cache.
 */
const CHUNK_BYTES = 64 * 1024;
const CHUNK_ROW_MULTIPLE = 4; // every tile's R divides it
/**
 * The wide tiles of a larger batch read 2 or 4 rows side by side, which this machine serves
 * slowly from memory or the last-level cache (see ROWS_PER_TOKEN_TILE); so before its tiles
 * a chunk is read once front to back, a byte per cache line, and the tiles then find it in
 * the core's own cache. x64, Node 20, f32, one thread: SmolLM2-135M-shaped prefill of 24
 * tokens 67-84 -> 98-104 tokens/s, of 8 tokens 51 -> 56-65; the shipped model's matrix
 * products for a chain of 8 nodes 3.0-3.4 -> 1.6-1.9 ms. Batches of one-row tiles (fewer than
 * SMALL_BATCH tokens) measured slower with it, and Q8_0 batches, bound by their arithmetic, the same.
 */
const CACHE_LINE = 64;

/**
 * for (n0 = 0; n0 < N; n0 = nEnd) { nEnd = min(n0 + chunk, N); body }, with chunk the rows
 * of about CHUNK_BYTES at `rowBytes` bytes each (the i32 local), a multiple of
 * CHUNK_ROW_MULTIPLE and at least that many
 */
function emitRowChunks(f: FunctionBuilder, N: number, rowBytes: number, L: { n0: number; nEnd: number; chunk: number }, body: () => void): void {
  f.i32(CHUNK_BYTES).get(rowBytes).i32(1).op(OP.i32Or, OP.i32DivU) // (| 1: no division by 0 when K is 0)
    .i32(~(CHUNK_ROW_MULTIPLE - 1)).op(OP.i32And).set(L.chunk);
  f.unless(() => f.get(L.chunk), () => f.i32(CHUNK_ROW_MULTIPLE).set(L.chunk));
  f.i32(0).set(L.n0);
  f.whileLoop(
    () => f.get(L.n0).get(N).op(OP.i32LtU),
    () => {
      f.get(L.n0).get(L.chunk).op(OP.i32Add).tee(L.nEnd).get(N).get(L.nEnd).get(N).op(OP.i32LtU, OP.select).set(L.nEnd);
      body();
      f.get(L.nEnd).set(L.n0);
    },
  );
}

/**
 * Weights stream from memory once per token, and a kernel busy with the arithmetic of one
 * block leaves the memory system idle unless the next lines are already on their way: each
 * row's loop touches (loads and drops) a byte this far ahead of where it reads, so the
 * caches fetch ahead of the arithmetic. The weight buffers are padded by as much (weights.ts),
 * so the touch never leaves them. Q8_0 kernels only, once per block of 32 (decode in
 * SmolLM2-135M's shape, x64, Node 20: about 1.5x tokens/s at 128-384 bytes over none); in
 * the 16-bit kernels, whose loop reads 8 bytes a row, a touch per iteration or per cache line
 * measured slower than none.
 */
export const READ_AHEAD_BYTES = 256;
/** touch the byte READ_AHEAD_BYTES past the address `at` pushes */
const touchAhead = (f: FunctionBuilder, at: () => void) => {
  at();
  f.op(OP.i32Load8S, ALIGN_BYTE, ...uleb(READ_AHEAD_BYTES), OP.drop);
};

/**
 * How a matmul reads its weights: f32 as stored, or 16-bit values widened to f32 in
 * registers (exactly: every f16 and bf16 value is an f32 value). Each pushes the f32x4 of
 * four weights (vector) or the f32 of one (scalar) from the address on the stack.
 */
interface WeightElements {
  log2Bytes: number; // bytes per weight, as a shift: 2 (f32) or 1 (16-bit)
  /** the four weights at the address on the stack plus `offset` bytes */
  vector(f: FunctionBuilder, offset: number): void;
  scalar(f: FunctionBuilder): void;
}
const F32_WEIGHTS: WeightElements = {
  log2Bytes: 2,
  vector: (f, offset) => f.simd(SIMD.v128Load, ALIGN_F32, ...uleb(offset)),
  scalar: (f) => f.op(OP.f32Load, ALIGN_F32, 0),
};
/** bfloat16 is the top half of an f32: zero-extend to 32 bits, shift left 16 */
const BF16_SHIFT = 16;
const BF16_WEIGHTS: WeightElements = {
  log2Bytes: 1,
  vector: (f, offset) => f.simd(SIMD.v128Load16x4U, ALIGN_BYTE, ...uleb(offset)).i32(BF16_SHIFT).simd(SIMD.i32x4Shl),
  scalar: (f) => f.op(OP.i32Load16U, ALIGN_BYTE, 0).i32(BF16_SHIFT).op(OP.i32Shl, OP.f32ReinterpretI32),
};
/**
 * IEEE half to f32 without a conversion instruction: sign-extend the 16 bits, shift left 13
 * so the 5 exponent and 10 mantissa bits land under f32's exponent and mantissa (the sign
 * copies fill bit 31 and bits 28-30), keep bit 31 and bits 13-27, and multiply by
 * 2^(127 - 15) to rebias the exponent. Exact for normal and subnormal halves (a subnormal
 * becomes an f32 subnormal first); Inf and NaN would come out finite, and weight files
 * never hold them (the readers refuse them).
 */
const F16_SHIFT = 13;
const F16_KEEP = 0x8fffe000 | 0; // bit 31 (sign), bits 13-27 (exponent and mantissa)
const F16_REBIAS = 2 ** 112;
const F16_WEIGHTS: WeightElements = {
  log2Bytes: 1,
  vector: (f, offset) => f.simd(SIMD.v128Load16x4S, ALIGN_BYTE, ...uleb(offset)).i32(F16_SHIFT).simd(SIMD.i32x4Shl).i32x4(F16_KEEP).simd(SIMD.v128And).f32x4(F16_REBIAS).simd(SIMD.f32x4Mul),
  scalar: (f) => f.op(OP.i32Load16S, ALIGN_BYTE, 0).i32(F16_SHIFT).op(OP.i32Shl).i32(F16_KEEP).op(OP.i32And, OP.f32ReinterpretI32).f32(F16_REBIAS).op(OP.f32Mul),
};

/**
 * matmul(out, x, w, T, K, N, ldx, ldw, ldo): out (T, N) = x (T, K) @ w (N, K)^T, all f32,
 * the three arrays given as byte offsets into memory and their row strides in elements
 * (ldx = ldw = K and ldo = N for dense matrices; attention uses wider ones to read one
 * head out of (T, H, hd) and (S, KVH, hd)). As C:
 *
 *   for (n0 = 0; n0 < N; n0 += chunk) {                     // chunks of ~64 KiB of rows
 *     nEnd = min(n0 + chunk, N)
 *     for (t = 0; t + 4 <= T; t += 4) {                      // blocks of 4 tokens
 *       for (n = n0; n + 2 <= nEnd; n += 2) tile(4 tokens, 2 rows);
 *       for (; n < nEnd; n++)             tile(4 tokens, 1 row);
 *     }
 *     for (; t + 2 <= T; t += 2) {                           // a pair left over
 *       for (n = n0; n + 4 <= nEnd; n += 4) tile(2 tokens, 4 rows);
 *       for (; n < nEnd; n++)             tile(2 tokens, 1 row);
 *     }
 *     for (; t < T; t++)                                      // the last token, if any
 *       for (n = n0; n < nEnd; n++)       tile(1 token, 1 row);
 *   }
 *   (T < SMALL_BATCH: the 4- and 2-token blocks take tiles of 1 row too, which, like the last
 *   token's, run their k loop 4 vectors a pass; otherwise each chunk is first read through
 *   once, see CACHE_LINE)
 *
 *   tile(U tokens, R rows):      // acc[u][r]: f32x4, four partial sums of out[t+u, n+r]
 *     for (k = 0; k < K & ~3; k += 4) {
 *       xv[u] = x[(t+u)*ldx + k..]                                     for each u
 *       wv = w[(n+r)*ldw + k..];  acc[u][r] += xv[u] * wv              for each r, u
 *     }
 *     s[u][r] = (lane 0 + lane 1) + (lane 2 + lane 3) of acc[u][r]   horizontal sum
 *     for (; k < K; k++) s[u][r] += x[t+u, k] * w[n+r, k]         scalar tail, K % 4
 *     out[t+u, n+r] = s[u][r]
 */
function matmulFunction(W: WeightElements = F32_WEIGHTS): FunctionBuilder {
  const f = new FunctionBuilder([I32, I32, I32, I32, I32, I32, I32, I32, I32]);
  const narrow = W.log2Bytes !== 2; // weights narrower than x: their own byte offset within a row
  const [out, x, w, T, K, N, ldx, ldw, ldo] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const maxU = TOKENS_PER_BLOCK, maxR = Math.max(ROWS_PER_BATCH_TILE, PAIR_ROWS, ROWS_PER_TOKEN_TILE);
  const L = {
    Kb: f.local(I32), // K * 4: bytes of a row's dot product
    K4b: f.local(I32), // (K & ~3) * 4: bytes covered by the vector loop
    xRow: f.local(I32), // ldx * 4: bytes from one row of x to the next
    wRow: f.local(I32), // ldw * 4
    oRow: f.local(I32), // ldo * 4
    t: f.local(I32),
    n: f.local(I32),
    n0: f.local(I32), // the chunk's rows [n0, nEnd), chunk rows at most
    nEnd: f.local(I32),
    chunk: f.local(I32),
    k: f.local(I32), // byte offset within a row of x
    kw: f.local(I32), // byte offset within a row of w (16-bit weights; f32 weights use k)
    Kw: f.local(I32), // bytes of a row's K weights
    xt: f.local(I32), // &x[t, 0]
    ot: f.local(I32), // &out[t, 0]
    wn: f.local(I32), // &w[n, 0]
    on: f.local(I32), // &out[t, n]
    xp: f.locals(I32, maxU), // &x[t+u, 0]
    wp: f.locals(I32, maxR), // &w[n+r, 0]
    acc: f.locals(V128, maxU * maxR), // acc[u * maxR + r]
    xv: f.locals(V128, maxU),
    wv: f.local(V128),
    s: f.locals(F32, maxU * maxR), // s[u * maxR + r]
    xs: f.locals(F32, maxU),
    ws: f.local(F32),
  };
  const acc = (u: number, r: number) => L.acc[u * maxR + r]!;
  const sum = (u: number, r: number) => L.s[u * maxR + r]!;
  const kw = narrow ? L.kw : L.k;
  const stepK = (xBytes: number) => {
    f.addTo(L.k, () => f.i32(xBytes));
    if (narrow) f.addTo(L.kw, () => f.i32(xBytes >> (2 - W.log2Bytes)));
  };

  /** one tile of U tokens x R rows at (t, n), then n += R; P vectors per pass of its loop */
  const tile = (U: number, R: number, P = 1) => {
    for (let u = 0; u < U; u++) f.get(L.xt).i32(u).get(L.xRow).op(OP.i32Mul, OP.i32Add).set(L.xp[u]!);
    for (let r = 0; r < R; r++) f.get(L.wn).i32(r).get(L.wRow).op(OP.i32Mul, OP.i32Add).set(L.wp[r]!);
    f.simd(SIMD.v128Const, ...new Array<number>(16).fill(0)); // acc[..] = 0: tee down the chain, set the last
    for (let u = 0; u < U; u++) for (let r = 0; r < R; r++) (u === U - 1 && r === R - 1 ? f.set(acc(u, r)) : f.tee(acc(u, r)));

    f.i32(0).set(L.k);
    if (narrow) f.i32(0).set(L.kw);
    /** acc[u][r] += x[t+u, k + 4j..] * w[n+r, k + 4j..] for every u and r */
    const vectorStep = (j: number) => {
      for (let u = 0; u < U; u++) f.get(L.xp[u]!).get(L.k).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, ...uleb(16 * j)).set(L.xv[u]!);
      for (let r = 0; r < R; r++) {
        f.get(L.wp[r]!).get(kw).op(OP.i32Add);
        W.vector(f, (16 * j) >> (2 - W.log2Bytes));
        f.set(L.wv);
        for (let u = 0; u < U; u++) f.get(acc(u, r)).get(L.xv[u]!).get(L.wv).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Add).set(acc(u, r));
      }
    };
    if (P > 1) {
      f.whileLoop(
        () => f.get(L.k).i32(16 * P).op(OP.i32Add).get(L.K4b).op(OP.i32LeU),
        () => {
          for (let j = 0; j < P; j++) vectorStep(j);
          stepK(16 * P);
        },
      );
    }
    f.whileLoop(
      () => f.get(L.k).get(L.K4b).op(OP.i32LtU),
      () => {
        vectorStep(0);
        stepK(16);
      },
    );

    for (let u = 0; u < U; u++) {
      for (let r = 0; r < R; r++) {
        const a = acc(u, r);
        f.get(a).simd(SIMD.f32x4ExtractLane, 0).get(a).simd(SIMD.f32x4ExtractLane, 1).op(OP.f32Add);
        f.get(a).simd(SIMD.f32x4ExtractLane, 2).get(a).simd(SIMD.f32x4ExtractLane, 3).op(OP.f32Add);
        f.op(OP.f32Add).set(sum(u, r));
      }
    }

    f.whileLoop(
      () => f.get(L.k).get(L.Kb).op(OP.i32LtU),
      () => {
        for (let u = 0; u < U; u++) f.get(L.xp[u]!).get(L.k).op(OP.i32Add, OP.f32Load, ALIGN_F32, 0).set(L.xs[u]!);
        for (let r = 0; r < R; r++) {
          f.get(L.wp[r]!).get(kw).op(OP.i32Add);
          W.scalar(f);
          f.set(L.ws);
          for (let u = 0; u < U; u++) f.get(sum(u, r)).get(L.xs[u]!).get(L.ws).op(OP.f32Mul, OP.f32Add).set(sum(u, r));
        }
        stepK(4);
      },
    );

    // out[t+u, n+r] at on + u*oRow + 4r (the 4r as the store's constant offset)
    for (let u = 0; u < U; u++) {
      for (let r = 0; r < R; r++) {
        f.get(L.on).i32(u).get(L.oRow).op(OP.i32Mul, OP.i32Add).get(sum(u, r)).op(OP.f32Store, ALIGN_F32, ...uleb(4 * r));
      }
    }
    f.addTo(L.n, () => f.i32(R));
    f.addTo(L.wn, () => f.i32(R).get(L.wRow).op(OP.i32Mul));
    f.addTo(L.on, () => f.i32(4 * R));
  };

  /** the chunk's rows [n0, nEnd) for the tokens at t (full tiles of R rows, then single rows), then t += U */
  const tokenBlock = (U: number, R: number, P = 1) => {
    f.get(L.n0).set(L.n).get(w).get(L.n0).get(L.wRow).op(OP.i32Mul, OP.i32Add).set(L.wn).get(L.ot).get(L.n0).i32(2).op(OP.i32Shl, OP.i32Add).set(L.on);
    f.whileLoop(() => f.get(L.n).i32(R).op(OP.i32Add).get(L.nEnd).op(OP.i32LeU), () => tile(U, R, P));
    if (R > 1) f.whileLoop(() => f.get(L.n).get(L.nEnd).op(OP.i32LtU), () => tile(U, 1));
    f.addTo(L.t, () => f.i32(U));
    f.addTo(L.xt, () => f.i32(U).get(L.xRow).op(OP.i32Mul));
    f.addTo(L.ot, () => f.i32(U).get(L.oRow).op(OP.i32Mul));
  };

  f.get(K).i32(2).op(OP.i32Shl).set(L.Kb);
  f.get(K).i32(~3).op(OP.i32And).i32(2).op(OP.i32Shl).set(L.K4b);
  f.get(ldx).i32(2).op(OP.i32Shl).set(L.xRow);
  f.get(ldw).i32(W.log2Bytes).op(OP.i32Shl).set(L.wRow);
  f.get(K).i32(W.log2Bytes).op(OP.i32Shl).set(L.Kw);
  f.get(ldo).i32(2).op(OP.i32Shl).set(L.oRow);
  /** read the chunk's rows [n0, nEnd) once, front to back, a byte per cache line (CACHE_LINE) */
  const readThrough = () => {
    f.get(w).get(L.n0).get(L.wRow).op(OP.i32Mul, OP.i32Add).set(L.wn).get(L.n0).set(L.n);
    f.whileLoop(() => f.get(L.n).get(L.nEnd).op(OP.i32LtU), () => {
      f.i32(0).set(L.kw);
      f.whileLoop(() => f.get(L.kw).get(L.Kw).op(OP.i32LtU), () => {
        f.get(L.wn).get(L.kw).op(OP.i32Add, OP.i32Load8S, ALIGN_BYTE, 0, OP.drop);
        f.addTo(L.kw, () => f.i32(CACHE_LINE));
      });
      f.addTo(L.n, () => f.i32(1)).addTo(L.wn, () => f.get(L.wRow));
    });
  };
  /** blocks of 4 tokens while they fit, then a pair */
  const blocks = (rows4: number, rows2: number, passes: number) => {
    f.whileLoop(() => f.get(L.t).i32(TOKENS_PER_BLOCK).op(OP.i32Add).get(T).op(OP.i32LeU), () => tokenBlock(TOKENS_PER_BLOCK, rows4, passes));
    f.whileLoop(() => f.get(L.t).i32(2).op(OP.i32Add).get(T).op(OP.i32LeU), () => tokenBlock(2, rows2, passes));
  };
  emitRowChunks(f, N, L.wRow, L, () => {
    f.i32(0).set(L.t).get(x).set(L.xt).get(out).set(L.ot);
    f.ifElse(
      () => f.get(T).i32(SMALL_BATCH).op(OP.i32LtU),
      () => blocks(1, 1, VECTORS_PER_TOKEN_PASS),
      () => {
        readThrough();
        blocks(ROWS_PER_BATCH_TILE, PAIR_ROWS, 1);
      },
    );
    f.whileLoop(() => f.get(L.t).get(T).op(OP.i32LtU), () => tokenBlock(1, ROWS_PER_TOKEN_TILE, VECTORS_PER_TOKEN_PASS));
  });
  return f;
}

// ---- Q8_0 weights -----------------------------------------------------------------------

/**
 * Q8_0 in memory: a (N, K) matrix as int8 quants (N, Kp), Kp = K rounded up to a whole block
 * of 32 (the padding quants are 0), and f32 scales (N, Kp / 32); weight [n, k] stands for
 * quants[n, k] * scales[n, k / 32]. Quant rows are whole blocks, so every row of a 16-aligned
 * matrix starts 16-aligned. (llama.cpp's 34-byte block interleaves the scale with its quants:
 * that is its file format; kept apart, a block is two aligned v128 loads.)
 *
 * Two ways to multiply by it:
 *   matmulQ8F32   x stays f32: each block's quants widen to f32 and multiply x; the block's
 *                 sum is scaled once
 *   quantizeQ8 + matmulQ8Q8   x is first quantized the same way, per block of 32 (one call,
 *                 before the matmul), then blocks meet as int8 x int8 dot products summed in
 *                 i32 (exact), scaled by x's scale times w's: llama.cpp's way
 */
const Q8_BLOCK = 32;
const Q8_MAX = 127;
const INT8_MIN = -128;
const INT8_MAX = 127;
const Q8_BLOCK_SHIFT = 5; // log2(Q8_BLOCK)
const Q8_TOKENS_PER_BLOCK = 2; // U for token pairs of a batch: 2 tokens x 2 rows
const Q8_PAIR_ROWS = 2;
const Q8_ROWS_PER_TOKEN_TILE = 1; // R for a single token (decode): one row at a time, as in matmulFunction (SmolLM2-135M decode, x64, Node 20: 35-43 tokens/s against 29-33 with 2 rows)

/** push Kp = K rounded up to a multiple of 32, from the i32 local K */
const pushPaddedK = (f: FunctionBuilder, K: number) => f.get(K).i32(Q8_BLOCK - 1).op(OP.i32Add).i32(~(Q8_BLOCK - 1)).op(OP.i32And);

/**
 * The loops around a tile of U tokens x R rows, as in matmulFunction: chunks of rows (about
 * CHUNK_BYTES of quants each); within a chunk, token blocks of Q8_TOKENS_PER_BLOCK while they
 * fit, then single tokens; within each, tiles of R rows, then single rows. `rows` names the
 * per-row pointers (set to the chunk's first row at each token block, advanced R rows per
 * tile), `tokens` the per-token ones (set to their base at each chunk, advanced per token
 * block); `out` and L.ot likewise.
 */
function emitQ8Loops(
  f: FunctionBuilder, out: number, T: number, N: number, Kp: number,
  L: { t: number; n: number; n0: number; nEnd: number; chunk: number; on: number; ot: number; oRow: number },
  rows: { at: number; base: number; stride: number }[], tokens: { at: number; base: number; stride: number }[],
  tile: (U: number, R: number) => void,
): void {
  const tokenBlock = (U: number, R: number) => {
    f.get(L.n0).set(L.n).get(L.ot).get(L.n0).i32(2).op(OP.i32Shl, OP.i32Add).set(L.on);
    for (const p of rows) f.get(p.base).get(L.n0).get(p.stride).op(OP.i32Mul, OP.i32Add).set(p.at);
    const oneTile = (Rt: number) => {
      tile(U, Rt);
      f.addTo(L.n, () => f.i32(Rt)).addTo(L.on, () => f.i32(4 * Rt));
      for (const p of rows) f.addTo(p.at, () => f.i32(Rt).get(p.stride).op(OP.i32Mul));
    };
    f.whileLoop(() => f.get(L.n).i32(R).op(OP.i32Add).get(L.nEnd).op(OP.i32LeU), () => oneTile(R));
    if (R > 1) f.whileLoop(() => f.get(L.n).get(L.nEnd).op(OP.i32LtU), () => oneTile(1));
    f.addTo(L.t, () => f.i32(U)).addTo(L.ot, () => f.i32(U).get(L.oRow).op(OP.i32Mul));
    for (const p of tokens) f.addTo(p.at, () => f.i32(U).get(p.stride).op(OP.i32Mul));
  };
  emitRowChunks(f, N, Kp, L, () => {
    f.i32(0).set(L.t).get(out).set(L.ot);
    for (const p of tokens) f.get(p.base).set(p.at);
    f.whileLoop(() => f.get(L.t).i32(Q8_TOKENS_PER_BLOCK).op(OP.i32Add).get(T).op(OP.i32LeU), () => tokenBlock(Q8_TOKENS_PER_BLOCK, Q8_PAIR_ROWS));
    f.whileLoop(() => f.get(L.t).get(T).op(OP.i32LtU), () => tokenBlock(1, Q8_ROWS_PER_TOKEN_TILE));
  });
}

/** push the horizontal sum (lane 0 + lane 1) + (lane 2 + lane 3) of the v128 local a */
const pushLaneSum = (f: FunctionBuilder, a: number) => {
  f.get(a).simd(SIMD.f32x4ExtractLane, 0).get(a).simd(SIMD.f32x4ExtractLane, 1).op(OP.f32Add);
  f.get(a).simd(SIMD.f32x4ExtractLane, 2).get(a).simd(SIMD.f32x4ExtractLane, 3).op(OP.f32Add);
  f.op(OP.f32Add);
};

/**
 * matmulQ8F32(out, x, wq, ws, T, K, N, ldx, ldo): out (T, N) = x (T, K) @ w^T with w (N, K)
 * in Q8_0 (quants wq, scales ws, as above) and x f32, row strides ldx, ldo in elements. Rows
 * [n0, n1) alone: wq + n0 Kp, ws + n0 Kp / 8 bytes, out + 4 n0, N = n1 - n0. As C:
 *
 *   tile(U tokens, R rows):                 acc[u][r], bacc[u][r]: f32x4
 *     for (b = 0; b < K / 32; b++) {        whole blocks
 *       bacc = 0
 *       for (j = 0; j < 32; j += 8)         8 quants -> two f32x4: lo (j..j+3), hi (j+4..j+7)
 *         bacc[u][r] += x[t+u, 32b+j ..] * lo[r] + ...hi                       (mul, add, mul, add)
 *       acc[u][r] += bacc[u][r] * scale[n+r, b]
 *     }
 *     if (K % 32) {                          the last, partial block: groups of 4, then one at a time
 *       bacc = 0; for (k < K & ~3; k += 4) bacc[u][r] += x[t+u, k..] * f32(q[n+r, k..])
 *       acc[u][r] += bacc[u][r] * scale[n+r, last]
 *     }
 *     s = (lane 0 + lane 1) + (lane 2 + lane 3) of acc
 *     if (K % 32) { ts = 0; for (; k < K; k++) ts += x[t+u, k] * q[n+r, k];  s += ts * scale[n+r, last] }
 *     out[t+u, n+r] = s
 *
 * Each output's arithmetic is the same in every tile shape, so results do not depend on T,
 * N or where a row split falls.
 */
function matmulQ8F32Function(): FunctionBuilder {
  const f = new FunctionBuilder([I32, I32, I32, I32, I32, I32, I32, I32, I32]);
  const [out, x, wq, ws, T, K, N, ldx, ldo] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const maxU = Q8_TOKENS_PER_BLOCK, maxR = Math.max(Q8_PAIR_ROWS, Q8_ROWS_PER_TOKEN_TILE);
  const L = {
    Kp: f.local(I32), // quant row bytes
    sRow: f.local(I32), // scale row bytes, Kp / 8
    full: f.local(I32), // K & ~31: quants in whole blocks
    K4: f.local(I32), // K & ~3
    xRow: f.local(I32), oRow: f.local(I32),
    t: f.local(I32), n: f.local(I32), n0: f.local(I32), nEnd: f.local(I32), chunk: f.local(I32),
    kq: f.local(I32), // element index within a row (= byte offset in a quant row)
    kx: f.local(I32), // kq * 4: byte offset in a row of x
    last: f.local(I32), // byte offset of the partial block's scale in a scale row
    xt: f.local(I32), ot: f.local(I32), qn: f.local(I32), sn: f.local(I32), on: f.local(I32),
    xp: f.locals(I32, maxU), qp: f.locals(I32, maxR), sp: f.locals(I32, maxR),
    acc: f.locals(V128, maxU * maxR), bacc: f.locals(V128, maxU * maxR),
    xv: f.locals(V128, 2 * maxU), lo: f.local(V128), hi: f.local(V128), q8: f.local(V128),
    s: f.locals(F32, maxU * maxR), ts: f.locals(F32, maxU * maxR), xs: f.locals(F32, maxU), wsc: f.local(F32),
  };
  const ix = (u: number, r: number) => u * maxR + r;
  const zero = (locals: number[]) => {
    f.simd(SIMD.v128Const, ...new Array<number>(16).fill(0));
    locals.forEach((l, i) => (i === locals.length - 1 ? f.set(l) : f.tee(l)));
  };
  /** bacc[u][r] += xv[u][half] * w, for the tile's u */
  const macc = (U: number, r: number, half: number, w: number) => {
    for (let u = 0; u < U; u++) f.get(L.bacc[ix(u, r)]!).get(L.xv[2 * u + half]!).get(w).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Add).set(L.bacc[ix(u, r)]!);
  };
  /** acc[u][r] += bacc[u][r] * splat(scale at sp[r] + scaleAt) */
  const scaleIn = (U: number, R: number, pushScaleOffset: () => void) => {
    for (let r = 0; r < R; r++) {
      f.get(L.sp[r]!);
      pushScaleOffset();
      f.op(OP.i32Add, OP.f32Load, ALIGN_F32, 0).simd(SIMD.f32x4Splat).set(L.lo);
      for (let u = 0; u < U; u++) f.get(L.acc[ix(u, r)]!).get(L.bacc[ix(u, r)]!).get(L.lo).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Add).set(L.acc[ix(u, r)]!);
    }
  };
  const tileAccs = (U: number, R: number, which: number[]) => {
    const out: number[] = [];
    for (let u = 0; u < U; u++) for (let r = 0; r < R; r++) out.push(which[ix(u, r)]!);
    return out;
  };
  const partial = () => f.get(K).i32(Q8_BLOCK - 1).op(OP.i32And, OP.i32Eqz); // true: no partial block

  const tile = (U: number, R: number) => {
    for (let u = 0; u < U; u++) f.get(L.xt).i32(u).get(L.xRow).op(OP.i32Mul, OP.i32Add).set(L.xp[u]!);
    for (let r = 0; r < R; r++) {
      f.get(L.qn).i32(r).get(L.Kp).op(OP.i32Mul, OP.i32Add).set(L.qp[r]!);
      f.get(L.sn).i32(r).get(L.sRow).op(OP.i32Mul, OP.i32Add).set(L.sp[r]!);
    }
    zero(tileAccs(U, R, L.acc));
    f.i32(0).set(L.kq).i32(0).set(L.kx);
    f.whileLoop(
      () => f.get(L.kq).get(L.full).op(OP.i32LtU),
      () => {
        zero(tileAccs(U, R, L.bacc));
        for (let r = 0; r < R; r++) touchAhead(f, () => f.get(L.qp[r]!).get(L.kq).op(OP.i32Add));
        for (let j = 0; j < Q8_BLOCK; j += 8) {
          for (let u = 0; u < U; u++) {
            for (let half = 0; half < 2; half++) f.get(L.xp[u]!).get(L.kx).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, ...uleb(4 * j + 16 * half)).set(L.xv[2 * u + half]!);
          }
          for (let r = 0; r < R; r++) {
            f.get(L.qp[r]!).get(L.kq).op(OP.i32Add).simd(SIMD.v128Load8x8S, ALIGN_BYTE, ...uleb(j)).set(L.q8);
            f.get(L.q8).simd(SIMD.i32x4ExtendLowI16x8S).simd(SIMD.f32x4ConvertI32x4S).set(L.lo);
            f.get(L.q8).simd(SIMD.i32x4ExtendHighI16x8S).simd(SIMD.f32x4ConvertI32x4S).set(L.hi);
            macc(U, r, 0, L.lo);
            macc(U, r, 1, L.hi);
          }
        }
        scaleIn(U, R, () => f.get(L.kq).i32(3).op(OP.i32ShrU)); // block kq/32, 4 bytes a scale
        f.addTo(L.kq, () => f.i32(Q8_BLOCK)).addTo(L.kx, () => f.i32(4 * Q8_BLOCK));
      },
    );
    f.unless(partial, () => {
      zero(tileAccs(U, R, L.bacc));
      f.whileLoop(
        () => f.get(L.kq).get(L.K4).op(OP.i32LtU),
        () => {
          for (let u = 0; u < U; u++) f.get(L.xp[u]!).get(L.kx).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, 0).set(L.xv[2 * u]!);
          for (let r = 0; r < R; r++) {
            f.get(L.qp[r]!).get(L.kq).op(OP.i32Add).simd(SIMD.v128Load32Zero, ALIGN_BYTE, 0);
            f.simd(SIMD.i16x8ExtendLowI8x16S).simd(SIMD.i32x4ExtendLowI16x8S).simd(SIMD.f32x4ConvertI32x4S).set(L.lo);
            macc(U, r, 0, L.lo);
          }
          f.addTo(L.kq, () => f.i32(4)).addTo(L.kx, () => f.i32(16));
        },
      );
      scaleIn(U, R, () => f.get(L.last));
    });
    for (let u = 0; u < U; u++) for (let r = 0; r < R; r++) {
      pushLaneSum(f, L.acc[ix(u, r)]!);
      f.set(L.s[ix(u, r)]!);
    }
    f.unless(partial, () => {
      for (let u = 0; u < U; u++) for (let r = 0; r < R; r++) f.i32(0).op(OP.f32ConvertI32S).set(L.ts[ix(u, r)]!);
      f.whileLoop(
        () => f.get(L.kq).get(K).op(OP.i32LtU),
        () => {
          for (let u = 0; u < U; u++) f.get(L.xp[u]!).get(L.kx).op(OP.i32Add, OP.f32Load, ALIGN_F32, 0).set(L.xs[u]!);
          for (let r = 0; r < R; r++) {
            f.get(L.qp[r]!).get(L.kq).op(OP.i32Add, OP.i32Load8S, ALIGN_BYTE, 0, OP.f32ConvertI32S).set(L.wsc);
            for (let u = 0; u < U; u++) f.get(L.ts[ix(u, r)]!).get(L.xs[u]!).get(L.wsc).op(OP.f32Mul, OP.f32Add).set(L.ts[ix(u, r)]!);
          }
          f.addTo(L.kq, () => f.i32(1)).addTo(L.kx, () => f.i32(4));
        },
      );
      for (let r = 0; r < R; r++) {
        f.get(L.sp[r]!).get(L.last).op(OP.i32Add, OP.f32Load, ALIGN_F32, 0).set(L.wsc);
        for (let u = 0; u < U; u++) f.get(L.s[ix(u, r)]!).get(L.ts[ix(u, r)]!).get(L.wsc).op(OP.f32Mul, OP.f32Add).set(L.s[ix(u, r)]!);
      }
    });
    for (let u = 0; u < U; u++) for (let r = 0; r < R; r++) {
      f.get(L.on).i32(u).get(L.oRow).op(OP.i32Mul, OP.i32Add).get(L.s[ix(u, r)]!).op(OP.f32Store, ALIGN_F32, ...uleb(4 * r));
    }
  };

  pushPaddedK(f, K).set(L.Kp);
  f.get(L.Kp).i32(3).op(OP.i32ShrU).set(L.sRow);
  f.get(K).i32(~(Q8_BLOCK - 1)).op(OP.i32And).set(L.full);
  f.get(K).i32(~3).op(OP.i32And).set(L.K4);
  f.get(L.full).i32(3).op(OP.i32ShrU).set(L.last);
  f.get(ldx).i32(2).op(OP.i32Shl).set(L.xRow);
  f.get(ldo).i32(2).op(OP.i32Shl).set(L.oRow);
  emitQ8Loops(f, out, T, N, L.Kp, L, [{ at: L.qn, base: wq, stride: L.Kp }, { at: L.sn, base: ws, stride: L.sRow }], [{ at: L.xt, base: x, stride: L.xRow }], tile);
  return f;
}

/**
 * quantizeQ8(xq, xs, x, T, K, ldx): the rows of x (T, K) f32 (row stride ldx elements) as Q8_0
 * activations, xq (T, Kp) int8 values with zero padding, each held in 16 bits (2 Kp bytes a
 * row: the matmul reads them as they meet the widened weights, once per row of w, and
 * widening them here once saves it that work: SmolLM2-135M's Q8_0 matrices, one token,
 * 1.04-1.07x), and xs (T, Kp / 32) f32 scales, per block:
 *   amax = max |x|, d = amax / 127, id = d != 0 ? 1 / d : 0, q = nearest(x * id) (ties to
 *   even), saturated to [-128, 127] (|x * id| <= 127 up to rounding, except when d is so small
 *   that 1 / d overflows), NaN (from Inf or NaN in x) becoming 0
 * (llama.cpp's rule for activations, with d kept in f32 rather than rounded to f16). Whole
 * blocks in f32x4, a partial last block one value at a time; NaN in a block gives its scale NaN.
 */
function quantizeQ8Function(): FunctionBuilder {
  const f = new FunctionBuilder([I32, I32, I32, I32, I32, I32]);
  const [xq, xs, x, T, K, ldx] = [0, 1, 2, 3, 4, 5];
  const VECTORS = Q8_BLOCK / 4;
  const L = {
    Kp: f.local(I32), full: f.local(I32), t: f.local(I32), k: f.local(I32), j: f.local(I32),
    xr: f.local(I32), qr: f.local(I32), sr: f.local(I32), // rows of x, xq, xs
    v: f.locals(V128, VECTORS), m: f.local(V128), idv: f.local(V128), q8: f.local(V128),
    amax: f.local(F32), d: f.local(F32), id: f.local(F32),
  };
  /** d and id from amax, d stored at sr + k/8 */
  const scales = () => {
    f.get(L.amax).f32(Q8_MAX).op(OP.f32Div).set(L.d);
    f.i32(1).op(OP.f32ConvertI32S).get(L.d).op(OP.f32Div).f32(0).get(L.d).f32(0).op(OP.f32Ne, OP.select).set(L.id);
    f.get(L.sr).get(L.k).i32(3).op(OP.i32ShrU, OP.i32Add).get(L.d).op(OP.f32Store, ALIGN_F32, 0);
  };
  pushPaddedK(f, K).set(L.Kp);
  f.get(K).i32(~(Q8_BLOCK - 1)).op(OP.i32And).set(L.full);
  f.i32(0).set(L.t).get(x).set(L.xr).get(xq).set(L.qr).get(xs).set(L.sr);
  f.whileLoop(
    () => f.get(L.t).get(T).op(OP.i32LtU),
    () => {
      f.i32(0).set(L.k);
      f.whileLoop(
        () => f.get(L.k).get(L.full).op(OP.i32LtU),
        () => {
          for (let i = 0; i < VECTORS; i++) f.get(L.xr).get(L.k).i32(2).op(OP.i32Shl, OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, ...uleb(16 * i)).set(L.v[i]!);
          f.get(L.v[0]!).simd(SIMD.f32x4Abs);
          for (let i = 1; i < VECTORS; i++) f.get(L.v[i]!).simd(SIMD.f32x4Abs).simd(SIMD.f32x4Max);
          f.set(L.m);
          for (let lane = 1; lane < 4; lane++) f.get(L.m).get(L.m).get(L.m).simd(SIMD.i8x16Shuffle, ...laneBroadcast(lane)).simd(SIMD.f32x4Max).set(L.m);
          f.get(L.m).simd(SIMD.f32x4ExtractLane, 0).set(L.amax);
          scales();
          f.get(L.id).simd(SIMD.f32x4Splat).set(L.idv);
          /** push the i16x8 of vectors i, i + 1 quantized */
          const half = (i: number) => {
            for (const v of [L.v[i]!, L.v[i + 1]!]) f.get(v).get(L.idv).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Nearest).simd(SIMD.i32x4TruncSatF32x4S);
            f.simd(SIMD.i16x8NarrowI32x4S);
          };
          for (let i = 0; i < VECTORS; i += 4) {
            // 16 values saturated to int8, then stored widened: two i16x8 at qr + 2 (k + 4i)
            half(i);
            half(i + 2);
            f.simd(SIMD.i8x16NarrowI16x8S).set(L.q8);
            for (const [hi, op] of [[0, SIMD.i16x8ExtendLowI8x16S], [1, SIMD.i16x8ExtendHighI8x16S]] as const) {
              f.get(L.qr).get(L.k).i32(1).op(OP.i32Shl, OP.i32Add).get(L.q8).simd(op).simd(SIMD.v128Store, ALIGN_BYTE, ...uleb(8 * i + 16 * hi));
            }
          }
          f.addTo(L.k, () => f.i32(Q8_BLOCK));
        },
      );
      f.unless(() => f.get(L.k).get(L.Kp).op(OP.i32LtU, OP.i32Eqz), () => {
        // the partial block: amax, scales, then 32 quants (zero past K)
        f.i32(0).op(OP.f32ConvertI32S).set(L.amax).get(L.k).set(L.j);
        f.whileLoop(
          () => f.get(L.j).get(K).op(OP.i32LtU),
          () => {
            f.get(L.amax).get(L.xr).get(L.j).i32(2).op(OP.i32Shl, OP.i32Add, OP.f32Load, ALIGN_F32, 0, OP.f32Abs, OP.f32Max).set(L.amax);
            f.addTo(L.j, () => f.i32(1));
          },
        );
        scales();
        f.get(L.k).set(L.j);
        f.whileLoop(
          () => f.get(L.j).get(K).op(OP.i32LtU),
          () => {
            f.get(L.qr).get(L.j).i32(1).op(OP.i32Shl, OP.i32Add);
            f.get(L.xr).get(L.j).i32(2).op(OP.i32Shl, OP.i32Add, OP.f32Load, ALIGN_F32, 0).get(L.id).op(OP.f32Mul, OP.f32Nearest);
            f.f32(INT8_MIN).op(OP.f32Max).f32(INT8_MAX).op(OP.f32Min, ...I32_TRUNC_SAT_F32_S); // saturate as the vector path's narrowing does
            f.op(OP.i32Store16, ALIGN_BYTE, 0);
            f.addTo(L.j, () => f.i32(1));
          },
        );
        f.whileLoop(
          () => f.get(L.j).get(L.Kp).op(OP.i32LtU),
          () => {
            f.get(L.qr).get(L.j).i32(1).op(OP.i32Shl, OP.i32Add).i32(0).op(OP.i32Store16, ALIGN_BYTE, 0); // the padding
            f.addTo(L.j, () => f.i32(1));
          },
        );
      });
      f.addTo(L.t, () => f.i32(1));
      f.addTo(L.xr, () => f.get(ldx).i32(2).op(OP.i32Shl));
      f.addTo(L.qr, () => f.get(L.Kp).i32(1).op(OP.i32Shl));
      f.addTo(L.sr, () => f.get(L.Kp).i32(3).op(OP.i32ShrU));
    },
  );
  return f;
}

/**
 * matmulQ8Q8(out, xq, xs, wq, ws, T, K, N, ldo): out (T, N) = x @ w^T with both in Q8_0 (x
 * from quantizeQ8: quants (T, Kp) in 16 bits each, scales (T, Kp / 32); w as above). Rows [n0, n1) alone:
 * wq + n0 Kp, ws + n0 Kp / 8, out + 4 n0, N = n1 - n0. Per block of 32, all padding included
 * (zero quants add nothing): the four i16x8 of x and of w meet in i32x4.dot_i16x8_s, summed
 * (d0 + d1) + (d2 + d3) in i32 (exact: |sum| <= 32 * 128 * 128), then
 *   acc[u][r] += f32(isum) * splat(xs[t+u, b] * ws[n+r, b])
 * and out = (lane 0 + lane 1) + (lane 2 + lane 3): the same arithmetic in every tile shape.
 */
function matmulQ8Q8Function(): FunctionBuilder {
  const f = new FunctionBuilder([I32, I32, I32, I32, I32, I32, I32, I32, I32]);
  const [out, xq, xs, wq, ws, T, K, N, ldo] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const maxU = Q8_TOKENS_PER_BLOCK, maxR = Math.max(Q8_PAIR_ROWS, Q8_ROWS_PER_TOKEN_TILE);
  const L = {
    Kp: f.local(I32), sRow: f.local(I32), oRow: f.local(I32), xRow: f.local(I32), // xRow = 2 Kp: x's quants are 16-bit
    kx: f.local(I32), // 2 kq: byte offset of the block in a row of x
    t: f.local(I32), n: f.local(I32), n0: f.local(I32), nEnd: f.local(I32), chunk: f.local(I32), kq: f.local(I32), ks: f.local(I32), // kq / 8: byte offset of the block's scale
    xt: f.local(I32), xst: f.local(I32), ot: f.local(I32), qn: f.local(I32), sn: f.local(I32), on: f.local(I32),
    xp: f.locals(I32, maxU), xsp: f.locals(I32, maxU), qp: f.locals(I32, maxR), sp: f.locals(I32, maxR),
    acc: f.locals(V128, maxU * maxR), x16: f.locals(V128, 4 * maxU), w16: f.locals(V128, 4), raw: f.local(V128),
    dx: f.locals(F32, maxU), dw: f.local(F32),
  };
  const ix = (u: number, r: number) => u * maxR + r;
  /** four i16x8 from the 32 bytes at the address pushed by `at` */
  const widen = (at: () => void, into: number[]) => {
    for (let half = 0; half < 2; half++) {
      at();
      f.simd(SIMD.v128Load, ALIGN_BYTE, ...uleb(16 * half)).set(L.raw);
      f.get(L.raw).simd(SIMD.i16x8ExtendLowI8x16S).set(into[2 * half]!);
      f.get(L.raw).simd(SIMD.i16x8ExtendHighI8x16S).set(into[2 * half + 1]!);
    }
  };
  const dot = (u: number, i: number) => f.get(L.x16[4 * u + i]!).get(L.w16[i]!).simd(SIMD.i32x4DotI16x8S);
  const tile = (U: number, R: number) => {
    for (let u = 0; u < U; u++) {
      f.get(L.xt).i32(u).get(L.xRow).op(OP.i32Mul, OP.i32Add).set(L.xp[u]!);
      f.get(L.xst).i32(u).get(L.sRow).op(OP.i32Mul, OP.i32Add).set(L.xsp[u]!);
    }
    for (let r = 0; r < R; r++) {
      f.get(L.qn).i32(r).get(L.Kp).op(OP.i32Mul, OP.i32Add).set(L.qp[r]!);
      f.get(L.sn).i32(r).get(L.sRow).op(OP.i32Mul, OP.i32Add).set(L.sp[r]!);
    }
    f.simd(SIMD.v128Const, ...new Array<number>(16).fill(0));
    const accs: number[] = [];
    for (let u = 0; u < U; u++) for (let r = 0; r < R; r++) accs.push(L.acc[ix(u, r)]!);
    accs.forEach((l, i) => (i === accs.length - 1 ? f.set(l) : f.tee(l)));
    f.i32(0).set(L.kq).i32(0).set(L.ks).i32(0).set(L.kx);
    f.whileLoop(
      () => f.get(L.kq).get(L.Kp).op(OP.i32LtU),
      () => {
        for (let u = 0; u < U; u++) {
          for (let i = 0; i < 4; i++) f.get(L.xp[u]!).get(L.kx).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_BYTE, ...uleb(16 * i)).set(L.x16[4 * u + i]!);
          f.get(L.xsp[u]!).get(L.ks).op(OP.i32Add, OP.f32Load, ALIGN_F32, 0).set(L.dx[u]!);
        }
        for (let r = 0; r < R; r++) {
          touchAhead(f, () => f.get(L.qp[r]!).get(L.kq).op(OP.i32Add));
          widen(() => f.get(L.qp[r]!).get(L.kq).op(OP.i32Add), L.w16);
          f.get(L.sp[r]!).get(L.ks).op(OP.i32Add, OP.f32Load, ALIGN_F32, 0).set(L.dw);
          for (let u = 0; u < U; u++) {
            const a = L.acc[ix(u, r)]!;
            f.get(a);
            dot(u, 0);
            dot(u, 1);
            f.simd(SIMD.i32x4Add);
            dot(u, 2);
            dot(u, 3);
            f.simd(SIMD.i32x4Add).simd(SIMD.i32x4Add).simd(SIMD.f32x4ConvertI32x4S);
            f.get(L.dx[u]!).get(L.dw).op(OP.f32Mul).simd(SIMD.f32x4Splat).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Add).set(a);
          }
        }
        f.addTo(L.kq, () => f.i32(Q8_BLOCK)).addTo(L.ks, () => f.i32(4)).addTo(L.kx, () => f.i32(2 * Q8_BLOCK));
      },
    );
    for (let u = 0; u < U; u++) for (let r = 0; r < R; r++) {
      f.get(L.on).i32(u).get(L.oRow).op(OP.i32Mul, OP.i32Add);
      pushLaneSum(f, L.acc[ix(u, r)]!);
      f.op(OP.f32Store, ALIGN_F32, ...uleb(4 * r));
    }
  };
  pushPaddedK(f, K).set(L.Kp);
  f.get(L.Kp).i32(3).op(OP.i32ShrU).set(L.sRow);
  f.get(L.Kp).i32(1).op(OP.i32Shl).set(L.xRow);
  f.get(ldo).i32(2).op(OP.i32Shl).set(L.oRow);
  emitQ8Loops(f, out, T, N, L.Kp, L, [{ at: L.qn, base: wq, stride: L.Kp }, { at: L.sn, base: ws, stride: L.sRow }], [{ at: L.xt, base: xq, stride: L.xRow }, { at: L.xst, base: xs, stride: L.sRow }], tile);
  return f;
}

// ---- attention after the scores: softmax and the weighted sum, per query head --------------

/**
 * The weighted sum, emitted into a kernel over the i32 locals {out, p, v, n, hd, ldv}:
 * out[i] = sum_{s < n, p[s] != 0} p[s] * v[s*ldv + i] for
 * i < hd, offsets in bytes, strides in elements: one query head's attention output, the
 * softmax weights p over n cache slots of one kv head. Each lane adds its slots in order
 * s = 0, 1, ... whatever hd and n are, so a row's result does not depend on the rest of the
 * batch. A slot of weight exactly 0 is skipped, not multiplied: that is how a masked slot
 * (weight 0) adds nothing even when its value row holds Infinity or NaN (0 * Infinity is
 * NaN); for finite values skipping adds the same +0 the product would. As C:
 *
 *   for (i = 0; i + 32 <= hd; i += 32)                       // eight f32x4 accumulators
 *     acc[0..7] = 0; for (s < n) if (p[s] != 0) acc[c] += splat(p[s]) * v[s*ldv + i + 4c ..]; store
 *   for (; i + 4 <= hd; i += 4)                              // one
 *     acc = 0;       for (s < n) if (p[s] != 0) acc    += splat(p[s]) * v[s*ldv + i ..];      store
 *   for (; i < hd; i++)                                      // scalar tail
 *     a = 0;         for (s < n) if (p[s] != 0) a      += p[s] * v[s*ldv + i];                store
 */
const SUM_VECTORS = 8;

function emitWeightedSum(f: FunctionBuilder, A: { out: number; p: number; v: number; n: number; hd: number; ldv: number }): void {
  const { out, p, v, n, hd, ldv } = A;
  const L = {
    i: f.local(I32), // byte offset within a row of v / out
    s: f.local(I32),
    pp: f.local(I32), // &p[s]
    vp: f.local(I32), // &v[s*ldv + i]
    vRow: f.local(I32), // ldv * 4
    wideEnd: f.local(I32), // (hd & ~31) * 4
    vecEnd: f.local(I32), // (hd & ~3) * 4
    end: f.local(I32), // hd * 4
    acc: f.locals(V128, SUM_VECTORS),
    ps: f.local(V128),
    w: f.local(F32), // p[s]
    a: f.local(F32),
  };
  /** push p[s] == 0, keeping p[s] in w */
  const zeroWeight = () => f.get(L.pp).op(OP.f32Load, ALIGN_F32, 0).tee(L.w).i32(0).op(OP.f32ConvertI32S, OP.f32Eq);
  f.get(ldv).i32(2).op(OP.i32Shl).set(L.vRow);
  f.get(hd).i32(~(4 * SUM_VECTORS - 1)).op(OP.i32And).i32(2).op(OP.i32Shl).set(L.wideEnd);
  f.get(hd).i32(~3).op(OP.i32And).i32(2).op(OP.i32Shl).set(L.vecEnd);
  f.get(hd).i32(2).op(OP.i32Shl).set(L.end);
  f.i32(0).set(L.i);

  /** one pass over the slots for the C f32x4 vectors at lane offset i, then i += 16C */
  const vectorPass = (C: number) => {
    f.simd(SIMD.v128Const, ...new Array<number>(16).fill(0));
    for (let c = 0; c < C; c++) (c === C - 1 ? f.set(L.acc[c]!) : f.tee(L.acc[c]!));
    f.i32(0).set(L.s).get(p).set(L.pp).get(v).get(L.i).op(OP.i32Add).set(L.vp);
    f.whileLoop(
      () => f.get(L.s).get(n).op(OP.i32LtU),
      () => {
        f.unless(zeroWeight, () => {
          f.get(L.w).simd(SIMD.f32x4Splat).set(L.ps);
          for (let c = 0; c < C; c++) {
            f.get(L.acc[c]!).get(L.ps).get(L.vp).simd(SIMD.v128Load, ALIGN_F32, ...uleb(16 * c));
            f.simd(SIMD.f32x4Mul).simd(SIMD.f32x4Add).set(L.acc[c]!);
          }
        });
        f.addTo(L.s, () => f.i32(1)).addTo(L.pp, () => f.i32(4)).addTo(L.vp, () => f.get(L.vRow));
      },
    );
    for (let c = 0; c < C; c++) f.get(out).get(L.i).op(OP.i32Add).get(L.acc[c]!).simd(SIMD.v128Store, ALIGN_F32, ...uleb(16 * c));
    f.addTo(L.i, () => f.i32(16 * C));
  };
  f.whileLoop(() => f.get(L.i).get(L.wideEnd).op(OP.i32LtU), () => vectorPass(SUM_VECTORS));
  f.whileLoop(() => f.get(L.i).get(L.vecEnd).op(OP.i32LtU), () => vectorPass(1));
  f.whileLoop(
    () => f.get(L.i).get(L.end).op(OP.i32LtU),
    () => {
      f.i32(0).op(OP.f32ConvertI32S).set(L.a);
      f.i32(0).set(L.s).get(p).set(L.pp).get(v).get(L.i).op(OP.i32Add).set(L.vp);
      f.whileLoop(
        () => f.get(L.s).get(n).op(OP.i32LtU),
        () => {
          f.unless(zeroWeight, () => f.get(L.a).get(L.w).get(L.vp).op(OP.f32Load, ALIGN_F32, 0).op(OP.f32Mul, OP.f32Add).set(L.a));
          f.addTo(L.s, () => f.i32(1)).addTo(L.pp, () => f.i32(4)).addTo(L.vp, () => f.get(L.vRow));
        },
      );
      f.get(out).get(L.i).op(OP.i32Add).get(L.a).op(OP.f32Store, ALIGN_F32, 0);
      f.addTo(L.i, () => f.i32(4));
    },
  );
}

// ---- exp and the log-sum-exp of rows -------------------------------------------------------

/**
 * f32x4 exp, lanes clamped to [-87, 88] (e^-87 ~ 1.6e-38 stands in for anything smaller,
 * e^88 ~ 1.7e38 for anything larger), pushed on the stack from the v128 in local `v`:
 *   n = nearest(v / ln 2), r = v - n ln 2 (|r| <= ln2 / 2; ln 2 split in a part with 16
 *   significant bits, so n * LN2_HI is exact, and the rest), e^r by its Taylor series to r^7
 *   (truncation error < r^8 / 8! ~ 5e-9, below f32 rounding), times 2^n built from the
 *   exponent bits ((n + 127) << 23). Relative error a few f32 ulps.
 */
const LN2_HI = 0.693145751953125;
const LN2_LO = 1.428606765330187e-6;
function emitExp(f: FunctionBuilder, v: number, n: number, r: number): void {
  f.get(v).f32x4(-87).simd(SIMD.f32x4Max).f32x4(88).simd(SIMD.f32x4Min).tee(v);
  f.f32x4(Math.LOG2E).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Nearest).set(n);
  f.get(v).get(n).f32x4(LN2_HI).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Sub);
  f.get(n).f32x4(LN2_LO).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Sub).set(r);
  // Horner from the inside: acc = 1, then acc = 1 + (r / k) acc for k = 7 .. 1
  f.f32x4(1);
  for (let k = 7; k >= 1; k--) f.get(r).f32x4(1 / k).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Mul).f32x4(1).simd(SIMD.f32x4Add);
  // times 2^n: the f32 whose exponent field is n + 127
  f.get(n).simd(SIMD.i32x4TruncSatF32x4S).i32x4(127).simd(SIMD.i32x4Add).i32(23).simd(SIMD.i32x4Shl);
  f.simd(SIMD.f32x4Mul);
}

/**
 * expSumRows(x, rows, cols, out): for each row r of x (rows, cols), out[2r] = max_c x[r, c]
 * and out[2r + 1] = sum_c exp(x[r, c] - max), so logsumexp = max + log(sum) (wasm has no
 * log; the caller takes it). Four lanes of partial sums, then lane 0 + 1 + 2 + 3; the
 * scalar tail goes through the same vector exp one value at a time. NaN anywhere in a row
 * makes its max NaN.
 */
function expSumRowsFunction(): FunctionBuilder {
  const f = new FunctionBuilder([I32, I32, I32, I32]);
  const [x, rows, cols, out] = [0, 1, 2, 3];
  const L = {
    r: f.local(I32),
    row: f.local(I32), // &x[r, 0]
    c: f.local(I32), // byte offset in the row
    vecEnd: f.local(I32), // (cols & ~3) * 4
    end: f.local(I32), // cols * 4
    mx: f.local(V128),
    sum: f.local(V128),
    v: f.local(V128),
    n: f.local(V128),
    e: f.local(V128),
    m: f.local(F32),
  };
  f.get(cols).i32(~3).op(OP.i32And).i32(2).op(OP.i32Shl).set(L.vecEnd);
  f.get(cols).i32(2).op(OP.i32Shl).set(L.end);
  f.i32(0).set(L.r).get(x).set(L.row);
  f.whileLoop(
    () => f.get(L.r).get(rows).op(OP.i32LtU),
    () => {
      // max: lanes over the vector part, then the tail, then across lanes
      f.f32x4(-Infinity).set(L.mx);
      f.i32(0).set(L.c);
      f.whileLoop(
        () => f.get(L.c).get(L.vecEnd).op(OP.i32LtU),
        () => {
          f.get(L.mx).get(L.row).get(L.c).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, 0).simd(SIMD.f32x4Max).set(L.mx);
          f.addTo(L.c, () => f.i32(16));
        },
      );
      f.whileLoop(
        () => f.get(L.c).get(L.end).op(OP.i32LtU),
        () => {
          f.get(L.mx).get(L.row).get(L.c).op(OP.i32Add).op(OP.f32Load, ALIGN_F32, 0).simd(SIMD.f32x4Splat).simd(SIMD.f32x4Max).set(L.mx);
          f.addTo(L.c, () => f.i32(4));
        },
      );
      for (let lane = 1; lane < 4; lane++) {
        f.get(L.mx).get(L.mx).get(L.mx).simd(SIMD.i8x16Shuffle, ...laneBroadcast(lane)).simd(SIMD.f32x4Max).set(L.mx);
      }
      f.get(L.mx).simd(SIMD.f32x4ExtractLane, 0).set(L.m);
      f.get(L.m).simd(SIMD.f32x4Splat).set(L.mx); // the row max in every lane
      // sum of exp(x - max)
      f.f32x4(0).set(L.sum);
      f.i32(0).set(L.c);
      f.whileLoop(
        () => f.get(L.c).get(L.vecEnd).op(OP.i32LtU),
        () => {
          f.get(L.row).get(L.c).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, 0).get(L.mx).simd(SIMD.f32x4Sub).set(L.v);
          f.get(L.sum);
          emitExp(f, L.v, L.n, L.e);
          f.simd(SIMD.f32x4Add).set(L.sum);
          f.addTo(L.c, () => f.i32(16));
        },
      );
      f.whileLoop(
        () => f.get(L.c).get(L.end).op(OP.i32LtU),
        () => {
          // one value in all four lanes: add lane 0 of its exp only
          f.get(L.row).get(L.c).op(OP.i32Add).op(OP.f32Load, ALIGN_F32, 0).simd(SIMD.f32x4Splat).get(L.mx).simd(SIMD.f32x4Sub).set(L.v);
          f.get(L.sum);
          emitExp(f, L.v, L.n, L.e);
          f.f32x4(0).simd(SIMD.i8x16Shuffle, ...laneZeroOnly()).simd(SIMD.f32x4Add).set(L.sum);
          f.addTo(L.c, () => f.i32(4));
        },
      );
      // out[2r] = max, out[2r + 1] = (lane 0 + lane 1) + (lane 2 + lane 3)
      f.get(out).get(L.r).i32(3).op(OP.i32Shl, OP.i32Add).get(L.m).op(OP.f32Store, ALIGN_F32, 0);
      f.get(out).get(L.r).i32(3).op(OP.i32Shl, OP.i32Add);
      f.get(L.sum).simd(SIMD.f32x4ExtractLane, 0).get(L.sum).simd(SIMD.f32x4ExtractLane, 1).op(OP.f32Add);
      f.get(L.sum).simd(SIMD.f32x4ExtractLane, 2).get(L.sum).simd(SIMD.f32x4ExtractLane, 3).op(OP.f32Add);
      f.op(OP.f32Add).op(OP.f32Store, ALIGN_F32, 4);
      f.addTo(L.r, () => f.i32(1));
      f.addTo(L.row, () => f.get(L.end));
    },
  );
  return f;
}

/**
 * siluGate(out, gate, up, n): out[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up,
 * f32x4 over the first n & ~3 values, then the rest one at a time through the same vector
 * code (so every element gets the same arithmetic wherever it sits).
 */
function siluGateFunction(): FunctionBuilder {
  const f = new FunctionBuilder([I32, I32, I32, I32]);
  const [out, gate, up, n] = [0, 1, 2, 3];
  const L = { i: f.local(I32), vecEnd: f.local(I32), end: f.local(I32), g: f.local(V128), v: f.local(V128), k: f.local(V128), r: f.local(V128) };
  f.get(n).i32(~3).op(OP.i32And).i32(2).op(OP.i32Shl).set(L.vecEnd);
  f.get(n).i32(2).op(OP.i32Shl).set(L.end);
  /** silu(g) * u for the v128 in L.g, u pushed by `pushUp`, result on the stack */
  const body = (pushUp: () => void) => {
    f.f32x4(0).get(L.g).simd(SIMD.f32x4Sub).set(L.v); // v = -g
    f.get(L.g);
    emitExp(f, L.v, L.k, L.r);
    f.f32x4(1).simd(SIMD.f32x4Add).simd(SIMD.f32x4Div); // g / (1 + e^-g)
    pushUp();
    f.simd(SIMD.f32x4Mul);
  };
  f.i32(0).set(L.i);
  f.whileLoop(
    () => f.get(L.i).get(L.vecEnd).op(OP.i32LtU),
    () => {
      f.get(gate).get(L.i).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, 0).set(L.g);
      f.get(out).get(L.i).op(OP.i32Add);
      body(() => f.get(up).get(L.i).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, 0));
      f.simd(SIMD.v128Store, ALIGN_F32, 0);
      f.addTo(L.i, () => f.i32(16));
    },
  );
  f.whileLoop(
    () => f.get(L.i).get(L.end).op(OP.i32LtU),
    () => {
      f.get(gate).get(L.i).op(OP.i32Add).op(OP.f32Load, ALIGN_F32, 0).simd(SIMD.f32x4Splat).set(L.g);
      f.get(out).get(L.i).op(OP.i32Add);
      body(() => f.get(up).get(L.i).op(OP.i32Add).op(OP.f32Load, ALIGN_F32, 0).simd(SIMD.f32x4Splat));
      f.simd(SIMD.f32x4ExtractLane, 0).op(OP.f32Store, ALIGN_F32, 0);
      f.addTo(L.i, () => f.i32(4));
    },
  );
  return f;
}

/**
 * attendHeads(out, q, k, sc, hd, n, heads, h0, args): attention for query heads h0 .. h0 +
 * heads - 1 of one token, which sees cache slots 0 .. n-1. Head h reads its query at q + 4 h
 * hd, keys and values of kv head g = h / group at k + 4 g hd and v + 4 g hd (rows ldkv
 * apart), keeps its scores at sc + 4 h n4 (n4 = n rounded up to 4) and writes its output at
 * out + 4 h hd. args: byte offset of four i32: v, ldkv (elements), group, mask (byte offset
 * of the token's additive mask row of n f32, or -1: none). Per head:
 *
 *   s[j] = q . k[j] for j < n             (f32x4 lanes over k in order, (lane 0 + 1) + (lane 2 + 3),
 *                                          then k % 4 one at a time; 4 slots side by side, as
 *                                          independent sums)
 *   scale = 1 / sqrt(hd), max = -Infinity  (scaling, max, sum and normalising in f64; scores and
 *                                          weights stored in f32)
 *   for (j < n) {
 *     if (mask row) { m = mask[j]; if (m == -Infinity) { s[j] = -Infinity; continue }  x = s[j] scale + m }
 *     else x = s[j] scale                  (a masked slot's raw score may be Infinity or NaN: dropped)
 *     s[j] = f32(x); if (x > max) max = x
 *   }
 *   s[n .. n4) = -Infinity
 *   s[j] = exp(s[j] - f32(max)), f32x4 (emitExp), -Infinity -> exactly 0
 *   sum = 0; for (j < n) sum += s[j]       (f64, in slot order: masked zeros add nothing wherever they fall)
 *   s[j] = f32(s[j] * (1 / sum))
 *   out row = the weighted sum of the value rows (emitWeightedSum; weight-0 slots never read)
 *
 * Each head's arithmetic is its own and the same whatever the batch, the other rows of the
 * mask or the split across threads (by heads).
 */
const SCORE_SLOTS = 4; // slots side by side in the scores: four independent sums keep the adders busy
function attendHeadsFunction(): FunctionBuilder {
  const f = new FunctionBuilder([I32, I32, I32, I32, I32, I32, I32, I32, I32]);
  const [out, q, k, sc, hd, nArg, heads, h0, args] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const L = {
    n: f.local(I32), n4: f.local(I32), v: f.local(I32), kRow: f.local(I32), group: f.local(I32), mask: f.local(I32),
    hdb: f.local(I32), hd4b: f.local(I32), h: f.local(I32), hEnd: f.local(I32), j: f.local(I32), kk: f.local(I32),
    row: f.local(I32), at: f.local(I32), qh: f.local(I32), kp: f.local(I32), kpi: f.locals(I32, SCORE_SLOTS),
    outRow: f.local(I32), vRow: f.local(I32), ldv: f.local(I32), kvCol: f.local(I32),
    scale: f.local(F64), max: f.local(F64), x: f.local(F64), sum: f.local(F64), inv: f.local(F64),
    m: f.local(F32), qs: f.local(F32), dot: f.locals(F32, SCORE_SLOTS),
    acc: f.locals(V128, SCORE_SLOTS), qv: f.local(V128),
    mx: f.local(V128), xv: f.local(V128), e: f.local(V128), kx: f.local(V128), r: f.local(V128),
  };
  const f64 = (c: number) => f.i32(c).op(OP.f64ConvertI32U); // a small whole number as f64
  /** j over [0, to) in `step` bytes; at = row + j */
  const overRow = (to: number, step: number, body: () => void) => {
    f.i32(0).set(L.j);
    f.whileLoop(() => f.get(L.j).get(to).op(OP.i32LtU), () => {
      f.get(L.row).get(L.j).op(OP.i32Add).set(L.at);
      body();
      f.addTo(L.j, () => f.i32(step));
    });
  };
  const loadS = () => f.get(L.at).op(OP.f32Load, ALIGN_F32, 0);
  /** s[j] = f32(x); if (x > max) max = x */
  const keep = () => {
    f.get(L.at).get(L.x).op(OP.f32DemoteF64, OP.f32Store, ALIGN_F32, 0);
    f.get(L.x).get(L.max).get(L.x).get(L.max).op(OP.f64Gt, OP.select).set(L.max);
  };
  /** the scores of S slots from the key row at kp on: s[j + i] = q . k[kp + i kRow], then j, kp advance */
  const scoreSlots = (S: number) => {
    for (let i = 0; i < S; i++) f.get(L.kp).i32(i).get(L.kRow).op(OP.i32Mul, OP.i32Add).set(L.kpi[i]!);
    f.simd(SIMD.v128Const, ...new Array<number>(16).fill(0));
    for (let i = 0; i < S; i++) (i === S - 1 ? f.set(L.acc[i]!) : f.tee(L.acc[i]!));
    f.i32(0).set(L.kk);
    f.whileLoop(() => f.get(L.kk).get(L.hd4b).op(OP.i32LtU), () => {
      f.get(L.qh).get(L.kk).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, 0).set(L.qv);
      for (let i = 0; i < S; i++) {
        f.get(L.acc[i]!).get(L.qv).get(L.kpi[i]!).get(L.kk).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, 0);
        f.simd(SIMD.f32x4Mul).simd(SIMD.f32x4Add).set(L.acc[i]!);
      }
      f.addTo(L.kk, () => f.i32(16));
    });
    for (let i = 0; i < S; i++) {
      pushLaneSum(f, L.acc[i]!);
      f.set(L.dot[i]!);
    }
    f.whileLoop(() => f.get(L.kk).get(L.hdb).op(OP.i32LtU), () => {
      f.get(L.qh).get(L.kk).op(OP.i32Add, OP.f32Load, ALIGN_F32, 0).set(L.qs);
      for (let i = 0; i < S; i++) f.get(L.dot[i]!).get(L.qs).get(L.kpi[i]!).get(L.kk).op(OP.i32Add, OP.f32Load, ALIGN_F32, 0, OP.f32Mul, OP.f32Add).set(L.dot[i]!);
      f.addTo(L.kk, () => f.i32(4));
    });
    for (let i = 0; i < S; i++) f.get(L.row).get(L.j).op(OP.i32Add).get(L.dot[i]!).op(OP.f32Store, ALIGN_F32, ...uleb(4 * i));
    f.addTo(L.j, () => f.i32(4 * S)).addTo(L.kp, () => f.i32(S).get(L.kRow).op(OP.i32Mul));
  };

  f.get(args).op(OP.i32Load, ALIGN_F32, 0).set(L.v);
  f.get(args).op(OP.i32Load, ALIGN_F32, 4).tee(L.ldv).i32(2).op(OP.i32Shl).set(L.kRow);
  f.get(args).op(OP.i32Load, ALIGN_F32, 8).set(L.group);
  f.get(args).op(OP.i32Load, ALIGN_F32, 12).set(L.mask);
  f.get(nArg).i32(2).op(OP.i32Shl).set(L.n); // n and n4 in bytes of a score row from here on
  f.get(L.n).i32(15).op(OP.i32Add).i32(~15).op(OP.i32And).set(L.n4);
  f.get(hd).i32(2).op(OP.i32Shl).set(L.hdb);
  f.get(hd).i32(~3).op(OP.i32And).i32(2).op(OP.i32Shl).set(L.hd4b);
  f64(1).get(hd).op(OP.f64ConvertI32U, OP.f64Sqrt, OP.f64Div).set(L.scale);
  f.get(h0).set(L.h).get(h0).get(heads).op(OP.i32Add).set(L.hEnd);
  f.whileLoop(() => f.get(L.h).get(L.hEnd).op(OP.i32LtU), () => {
    f.get(sc).get(L.h).get(L.n4).op(OP.i32Mul, OP.i32Add).set(L.row);
    f.get(out).get(L.h).get(L.hdb).op(OP.i32Mul, OP.i32Add).set(L.outRow);
    f.get(q).get(L.h).get(L.hdb).op(OP.i32Mul, OP.i32Add).set(L.qh);
    f.get(L.h).get(L.group).op(OP.i32DivU).get(L.hdb).op(OP.i32Mul).set(L.kvCol); // the kv head's byte offset in a cache row
    f.get(k).get(L.kvCol).op(OP.i32Add).set(L.kp);
    f.get(L.v).get(L.kvCol).op(OP.i32Add).set(L.vRow);
    // raw scores, masked slots too (their values are replaced below)
    f.i32(0).set(L.j);
    f.whileLoop(() => f.get(L.j).i32(4 * SCORE_SLOTS).op(OP.i32Add).get(L.n).op(OP.i32LeU), () => scoreSlots(SCORE_SLOTS));
    f.whileLoop(() => f.get(L.j).get(L.n).op(OP.i32LtU), () => scoreSlots(1));
    // scaled and masked, and their max
    f.f32(-Infinity).op(OP.f64PromoteF32).set(L.max);
    f.ifElse(() => f.get(L.mask).i32(0).op(OP.i32LtS), () => {
      overRow(L.n, 4, () => {
        loadS(); f.op(OP.f64PromoteF32).get(L.scale).op(OP.f64Mul).set(L.x);
        keep();
      });
    }, () => {
      overRow(L.n, 4, () => {
        f.get(L.mask).get(L.j).op(OP.i32Add, OP.f32Load, ALIGN_F32, 0).set(L.m);
        f.ifElse(() => f.get(L.m).f32(-Infinity).op(OP.f32Eq), () => {
          f.get(L.at).f32(-Infinity).op(OP.f32Store, ALIGN_F32, 0);
        }, () => {
          loadS(); f.op(OP.f64PromoteF32).get(L.scale).op(OP.f64Mul).get(L.m).op(OP.f64PromoteF32, OP.f64Add).set(L.x);
          keep();
        });
      });
    });
    // -Infinity up to the vector boundary, then e = exp(s - max) a vector at a time
    f.get(L.n).set(L.j);
    f.whileLoop(() => f.get(L.j).get(L.n4).op(OP.i32LtU), () => {
      f.get(L.row).get(L.j).op(OP.i32Add).f32(-Infinity).op(OP.f32Store, ALIGN_F32, 0);
      f.addTo(L.j, () => f.i32(4));
    });
    f.get(L.max).op(OP.f32DemoteF64).simd(SIMD.f32x4Splat).set(L.mx);
    overRow(L.n4, 16, () => {
      f.get(L.at).simd(SIMD.v128Load, ALIGN_F32, 0).tee(L.xv).get(L.mx).simd(SIMD.f32x4Sub).set(L.e);
      f.get(L.at); // store address, under the value
      emitExp(f, L.e, L.kx, L.r);
      f.get(L.xv).f32x4(-Infinity).simd(SIMD.f32x4Eq).simd(SIMD.v128AndNot); // -Infinity -> exactly 0
      f.simd(SIMD.v128Store, ALIGN_F32, 0);
    });
    // the sum in slot order, then normalise
    f64(0).set(L.sum);
    overRow(L.n, 4, () => {
      f.get(L.sum); loadS(); f.op(OP.f64PromoteF32, OP.f64Add).set(L.sum);
    });
    f64(1).get(L.sum).op(OP.f64Div).set(L.inv);
    overRow(L.n, 4, () => {
      f.get(L.at); loadS(); f.op(OP.f64PromoteF32).get(L.inv).op(OP.f64Mul, OP.f32DemoteF64, OP.f32Store, ALIGN_F32, 0);
    });
    // the weighted sum of the value rows; a masked slot has weight 0 and is never read
    emitWeightedSum(f, { out: L.outRow, p: L.row, v: L.vRow, n: nArg, hd, ldv: L.ldv });
    f.addTo(L.h, () => f.i32(1));
  });
  return f;
}

/** i8x16.shuffle lane bytes putting f32 lane `lane` of the first operand in every lane */
function laneBroadcast(lane: number): number[] {
  return Array.from({ length: 16 }, (_, i) => 4 * lane + (i % 4));
}
/** shuffle bytes keeping lane 0 of the first operand and lanes 1..3 of the second (zeros) */
function laneZeroOnly(): number[] {
  return Array.from({ length: 16 }, (_, i) => (i < 4 ? i : 16 + i));
}

// ---- the module ---------------------------------------------------------------------------

/**
 * (module
 *   (import "env" "memory" (memory 1))        ;; (memory 1 65536 shared) for worker threads
 *   (func (export "matmul") (param out x w T K N ldx ldw ldo i32) ...)
 *   (func (export "matmulBf16") ...) (func (export "matmulF16") ...)   the same, 16-bit w
 *   (func (export "quantizeQ8") (param xq xs x T K ldx i32) ...)
 *   (func (export "matmulQ8F32") (param out x wq ws T K N ldx ldo i32) ...)
 *   (func (export "matmulQ8Q8") (param out xq xs wq ws T K N ldo i32) ...)
 *   (func (export "attendHeads") (param out q k sc hd n heads h0 args i32) ...)
 *   (func (export "expSumRows") (param x rows cols out i32) ...)
 *   (func (export "siluGate") (param out gate up n i32) ...))
 */
export function kernelModuleBytes(shared = false): Uint8Array<ArrayBuffer> {
  const fns: [string, FunctionBuilder][] = [
    ['matmul', matmulFunction()],
    ['matmulBf16', matmulFunction(BF16_WEIGHTS)],
    ['matmulF16', matmulFunction(F16_WEIGHTS)],
    ['quantizeQ8', quantizeQ8Function()],
    ['matmulQ8F32', matmulQ8F32Function()],
    ['matmulQ8Q8', matmulQ8Q8Function()],
    ['attendHeads', attendHeadsFunction()],
    ['expSumRows', expSumRowsFunction()],
    ['siluGate', siluGateFunction()],
  ];
  const types = section(SEC.type, vec(fns.map(([, fn]) => [FUNC_TYPE, ...vec(fn.params.map((p) => [p])), ...vec([])])));
  // limits: min 1 page, no max; or shared (flag 3) with the 4 GiB max a shared memory must declare
  const limits = shared ? [0x03, ...uleb(1), ...uleb(ARENA_MAX_PAGES)] : [0x00, ...uleb(1)];
  const imports = section(SEC.import, vec([[...utf8('env'), ...utf8('memory'), EXTERN_MEMORY, ...limits]]));
  const functions = section(SEC.function, vec(fns.map((_, i) => uleb(i)))); // function i has type i
  const exports = section(SEC.export, vec(fns.map(([name], i) => [...utf8(name), EXTERN_FUNC, ...uleb(i)])));
  const code = section(SEC.code, vec(fns.map(([, fn]) => fn.encode())));
  return new Uint8Array([...MAGIC_VERSION, ...types, ...imports, ...functions, ...exports, ...code]);
}

/** The kernels, on byte offsets into the memory they were instantiated over. */
export interface WasmKernels {
  /** out = x @ w^T, with row strides in elements (see matmulFunction) */
  matmul(out: number, x: number, w: number, T: number, K: number, N: number, ldx: number, ldw: number, ldo: number): void;
  /** matmul with w of bfloat16 values (ldw in them), widened exactly in registers */
  matmulBf16(out: number, x: number, w: number, T: number, K: number, N: number, ldx: number, ldw: number, ldo: number): void;
  /** matmul with w of IEEE half values (ldw in them), widened exactly in registers */
  matmulF16(out: number, x: number, w: number, T: number, K: number, N: number, ldx: number, ldw: number, ldo: number): void;
  /** x (T, K) f32 -> Q8_0 quants xq (T, Kp), int8 values in 16 bits each, and scales xs (T, Kp / 32), Kp = K rounded up to 32 (see quantizeQ8Function) */
  quantizeQ8(xq: number, xs: number, x: number, T: number, K: number, ldx: number): void;
  /** out (T, N) = x (T, K) f32 @ w^T, w in Q8_0 as quants wq (N, Kp) and scales ws (N, Kp / 32) (see matmulQ8F32Function) */
  matmulQ8F32(out: number, x: number, wq: number, ws: number, T: number, K: number, N: number, ldx: number, ldo: number): void;
  /** out (T, N) = x @ w^T, both Q8_0: x from quantizeQ8, w as in matmulQ8F32 (see matmulQ8Q8Function) */
  matmulQ8Q8(out: number, xq: number, xs: number, wq: number, ws: number, T: number, K: number, N: number, ldo: number): void;
  /** attention for query heads h0 .. h0 + heads - 1 of one token over cache slots 0 .. n-1: scores, softmax, weighted sum (see attendHeadsFunction) */
  attendHeads(out: number, q: number, k: number, sc: number, hd: number, n: number, heads: number, h0: number, args: number): void;
  /** out[2r] = max of row r of x (rows, cols), out[2r + 1] = sum of exp(x - max) (see expSumRowsFunction) */
  expSumRows(x: number, rows: number, cols: number, out: number): void;
  /** out[i] = gate[i] / (1 + exp(-gate[i])) * up[i], i < n (see siluGateFunction) */
  siluGate(out: number, gate: number, up: number, n: number): void;
}

const compiled: (WebAssembly.Module | null | undefined)[] = []; // [plain, shared]; undefined: not tried yet; null: no SIMD here

/**
 * The compiled module (importing a plain or a shared memory), or null when this runtime's
 * WebAssembly rejects SIMD128 (compiled once each).
 */
export function simdModule(shared = false): WebAssembly.Module | null {
  const i = shared ? 1 : 0;
  if (compiled[i] === undefined) {
    const bytes = kernelModuleBytes(shared);
    // Synchronous compile keeps the backend constructor synchronous; the module is small.
    compiled[i] = typeof WebAssembly === 'object' && WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  return compiled[i]!;
}

/** whether this runtime runs the SIMD kernel (validating the kernel's own module) */
export function simdSupported(): boolean {
  return simdModule() !== null;
}

/** the kernels over `memory`; throws when SIMD is not supported */
export function instantiateKernels(memory: WebAssembly.Memory, shared = false): WasmKernels {
  const mod = simdModule(shared);
  if (!mod) throw new Error('WebAssembly SIMD128 is not supported by this runtime');
  const instance = new WebAssembly.Instance(mod, { env: { memory } });
  return instance.exports as unknown as WasmKernels;
}
