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
const V128 = 0x7b;
const FUNC_TYPE = 0x60; // (params) -> (results)
const EMPTY_BLOCK = 0x40; // block type of a block that yields nothing
const EXTERN_FUNC = 0x00; // import / export kinds
const EXTERN_MEMORY = 0x02;

// ---- opcodes --------------------------------------------------------------------------

const OP = {
  block: 0x02, // block <blocktype> ... end: br to it jumps past its end
  loop: 0x03, // loop <blocktype> ... end: br to it jumps back to its start
  end: 0x0b, // closes a block, loop or function body
  br: 0x0c, // br <depth>: jump to the enclosing label at <depth>
  brIf: 0x0d, // br_if <depth>: pop i32, jump when non-zero
  localGet: 0x20, // push local
  localSet: 0x21, // pop into local
  localTee: 0x22, // copy top of stack into local, leave it on the stack
  f32Load: 0x2a, // f32.load <align> <offset>: pop address, push f32
  f32Store: 0x38, // f32.store <align> <offset>: pop address and value
  i32Const: 0x41, // i32.const <sleb>
  i32Eqz: 0x45, // push a == 0
  f32Eq: 0x5b, // push a == b (f32; false when either is NaN, true for 0 == -0)
  i32LtU: 0x49, // push a < b (unsigned)
  i32LeU: 0x4d, // push a <= b (unsigned)
  i32Add: 0x6a,
  i32Mul: 0x6c,
  i32And: 0x71,
  i32Shl: 0x74,
  f32Add: 0x92,
  f32Mul: 0x94,
  f32ConvertI32S: 0xb2, // i32 -> f32 (how we write 0.0 without an f32.const encoder)
} as const;

const SIMD_PREFIX = 0xfd; // every SIMD opcode is this byte followed by a LEB128 u32
const SIMD = {
  v128Load: 0x00, // v128.load <align> <offset>: pop address, push 16 bytes
  v128Store: 0x0b, // v128.store <align> <offset>: pop address and value
  v128Const: 0x0c, // v128.const <16 bytes>
  f32x4Splat: 0x13, // f32 -> the same value in all four lanes
  i8x16Shuffle: 0x0d, // i8x16.shuffle <16 lane indices into the 32 bytes of two operands>
  f32x4ExtractLane: 0x1f, // f32x4.extract_lane <lane>: v128 -> f32
  f32x4Eq: 0x41, // lane-wise a == b: all ones or all zeros
  v128AndNot: 0x4f, // a & ~b
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
} as const;

/** memarg alignment hints (log2 bytes): buffers are 16-aligned but rows of odd K are not */
const ALIGN_F32 = 2;

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
 * plus operands spill out of x64's 16 vector registers), 8 x 1 29. One token: 4 rows
 * 30 GFLOP/s, 8 rows 28, 2 rows 20 (288 x 768).
 */
const TOKENS_PER_BLOCK = 4; // U for the token blocks of a batch (T >= 4)
const ROWS_PER_BATCH_TILE = 2; // R within those blocks
const PAIR_ROWS = 4; // R for a pair of tokens left over (T % 4 >= 2): 2 tokens x 4 rows
const ROWS_PER_TOKEN_TILE = 4; // R for single tokens (decode): 4 rows x 1 token

/**
 * matmul(out, x, w, T, K, N, ldx, ldw, ldo): out (T, N) = x (T, K) @ w (N, K)^T, all f32,
 * the three arrays given as byte offsets into memory and their row strides in elements
 * (ldx = ldw = K and ldo = N for dense matrices; attention uses wider ones to read one
 * head out of (T, H, hd) and (S, KVH, hd)). As C:
 *
 *   for (t = 0; t + 4 <= T; t += 4) {                        // blocks of 4 tokens
 *     for (n = 0; n + 2 <= N; n += 2) tile(4 tokens, 2 rows);
 *     for (; n < N; n++)              tile(4 tokens, 1 row);
 *   }
 *   if (t + 2 <= T) {                                         // a pair left over
 *     for (n = 0; n + 4 <= N; n += 4) tile(2 tokens, 4 rows);
 *     for (; n < N; n++)              tile(2 tokens, 1 row);
 *     t += 2;
 *   }
 *   for (; t < T; t++) {                                      // the last token, if any
 *     for (n = 0; n + 4 <= N; n += 4) tile(1 token, 4 rows);
 *     for (; n < N; n++)              tile(1 token, 1 row);
 *   }
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
function matmulFunction(): FunctionBuilder {
  const f = new FunctionBuilder([I32, I32, I32, I32, I32, I32, I32, I32, I32]);
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
    k: f.local(I32), // byte offset within a row
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

  /** one tile of U tokens x R rows at (t, n), then n += R */
  const tile = (U: number, R: number) => {
    for (let u = 0; u < U; u++) f.get(L.xt).i32(u).get(L.xRow).op(OP.i32Mul, OP.i32Add).set(L.xp[u]!);
    for (let r = 0; r < R; r++) f.get(L.wn).i32(r).get(L.wRow).op(OP.i32Mul, OP.i32Add).set(L.wp[r]!);
    f.simd(SIMD.v128Const, ...new Array<number>(16).fill(0)); // acc[..] = 0: tee down the chain, set the last
    for (let u = 0; u < U; u++) for (let r = 0; r < R; r++) (u === U - 1 && r === R - 1 ? f.set(acc(u, r)) : f.tee(acc(u, r)));

    f.i32(0).set(L.k);
    f.whileLoop(
      () => f.get(L.k).get(L.K4b).op(OP.i32LtU),
      () => {
        for (let u = 0; u < U; u++) f.get(L.xp[u]!).get(L.k).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, 0).set(L.xv[u]!);
        for (let r = 0; r < R; r++) {
          f.get(L.wp[r]!).get(L.k).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, 0).set(L.wv);
          for (let u = 0; u < U; u++) f.get(acc(u, r)).get(L.xv[u]!).get(L.wv).simd(SIMD.f32x4Mul).simd(SIMD.f32x4Add).set(acc(u, r));
        }
        f.addTo(L.k, () => f.i32(16));
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
          f.get(L.wp[r]!).get(L.k).op(OP.i32Add, OP.f32Load, ALIGN_F32, 0).set(L.ws);
          for (let u = 0; u < U; u++) f.get(sum(u, r)).get(L.xs[u]!).get(L.ws).op(OP.f32Mul, OP.f32Add).set(sum(u, r));
        }
        f.addTo(L.k, () => f.i32(4));
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

  /** all rows for the tokens at t (full tiles of R rows, then single rows), then t += U */
  const tokenBlock = (U: number, R: number) => {
    f.i32(0).set(L.n).get(w).set(L.wn).get(L.ot).set(L.on);
    f.whileLoop(() => f.get(L.n).i32(R).op(OP.i32Add).get(N).op(OP.i32LeU), () => tile(U, R));
    f.whileLoop(() => f.get(L.n).get(N).op(OP.i32LtU), () => tile(U, 1));
    f.addTo(L.t, () => f.i32(U));
    f.addTo(L.xt, () => f.i32(U).get(L.xRow).op(OP.i32Mul));
    f.addTo(L.ot, () => f.i32(U).get(L.oRow).op(OP.i32Mul));
  };

  f.get(K).i32(2).op(OP.i32Shl).set(L.Kb);
  f.get(K).i32(~3).op(OP.i32And).i32(2).op(OP.i32Shl).set(L.K4b);
  f.get(ldx).i32(2).op(OP.i32Shl).set(L.xRow);
  f.get(ldw).i32(2).op(OP.i32Shl).set(L.wRow);
  f.get(ldo).i32(2).op(OP.i32Shl).set(L.oRow);
  f.i32(0).set(L.t).get(x).set(L.xt).get(out).set(L.ot);
  f.whileLoop(() => f.get(L.t).i32(TOKENS_PER_BLOCK).op(OP.i32Add).get(T).op(OP.i32LeU), () => tokenBlock(TOKENS_PER_BLOCK, ROWS_PER_BATCH_TILE));
  f.whileLoop(() => f.get(L.t).i32(2).op(OP.i32Add).get(T).op(OP.i32LeU), () => tokenBlock(2, PAIR_ROWS));
  f.whileLoop(() => f.get(L.t).get(T).op(OP.i32LtU), () => tokenBlock(1, ROWS_PER_TOKEN_TILE));
  return f;
}

// ---- the attention kernel's weighted sum ---------------------------------------------------

/**
 * weightedSum(out, p, v, n, hd, ldv): out[i] = sum_{s < n, p[s] != 0} p[s] * v[s*ldv + i] for
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

function weightedSumFunction(): FunctionBuilder {
  const f = new FunctionBuilder([I32, I32, I32, I32, I32, I32]);
  const [out, p, v, n, hd, ldv] = [0, 1, 2, 3, 4, 5];
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
  return f;
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
 * expShift(x, n, max): x[j] = exp(x[j] - max) in place, j < n, n a multiple of 4 (attention
 * pads its score rows); -Infinity entries become exactly 0. The caller sums the row: a
 * lane-wise sum here would add a node's entries in an order that depends on where the
 * masked gaps of a tree fall, and attention must not depend on them.
 */
function expShiftFunction(): FunctionBuilder {
  const f = new FunctionBuilder([I32, I32, F32]);
  const [x, n, max] = [0, 1, 2];
  const L = { i: f.local(I32), end: f.local(I32), mx: f.local(V128), xv: f.local(V128), v: f.local(V128), k: f.local(V128), r: f.local(V128) };
  f.get(n).i32(2).op(OP.i32Shl).set(L.end);
  f.get(max).simd(SIMD.f32x4Splat).set(L.mx);
  f.i32(0).set(L.i);
  f.whileLoop(
    () => f.get(L.i).get(L.end).op(OP.i32LtU),
    () => {
      f.get(x).get(L.i).op(OP.i32Add).simd(SIMD.v128Load, ALIGN_F32, 0).tee(L.xv).get(L.mx).simd(SIMD.f32x4Sub).set(L.v);
      f.get(x).get(L.i).op(OP.i32Add); // store address, under the value
      emitExp(f, L.v, L.k, L.r);
      f.get(L.xv).f32x4(-Infinity).simd(SIMD.f32x4Eq).simd(SIMD.v128AndNot); // -Infinity -> exactly 0
      f.simd(SIMD.v128Store, ALIGN_F32, 0);
      f.addTo(L.i, () => f.i32(16));
    },
  );
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
 *   (func (export "weightedSum") (param out p v n hd ldv i32) ...)
 *   (func (export "expSumRows") (param x rows cols out i32) ...)
 *   (func (export "siluGate") (param out gate up n i32) ...)
 *   (func (export "expShift") (param x n i32) (param max f32) ...))
 */
export function kernelModuleBytes(shared = false): Uint8Array<ArrayBuffer> {
  const fns: [string, FunctionBuilder][] = [
    ['matmul', matmulFunction()],
    ['weightedSum', weightedSumFunction()],
    ['expSumRows', expSumRowsFunction()],
    ['siluGate', siluGateFunction()],
    ['expShift', expShiftFunction()],
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
  /** out[i] = sum_{s < n} p[s] v[s*ldv + i], i < hd, slots of weight 0 skipped (see weightedSumFunction) */
  weightedSum(out: number, p: number, v: number, n: number, hd: number, ldv: number): void;
  /** out[2r] = max of row r of x (rows, cols), out[2r + 1] = sum of exp(x - max) (see expSumRowsFunction) */
  expSumRows(x: number, rows: number, cols: number, out: number): void;
  /** out[i] = gate[i] / (1 + exp(-gate[i])) * up[i], i < n (see siluGateFunction) */
  siluGate(out: number, gate: number, up: number, n: number): void;
  /** x[j] = exp(x[j] - max) in place, j < n, n % 4 == 0, -Infinity -> 0 (see expShiftFunction) */
  expShift(x: number, n: number, max: number): void;
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
