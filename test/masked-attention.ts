/**
 * The masking rule of Backend.attention, as a property any backend must meet: a slot that a
 * query row does not see contributes exactly nothing to that row, whatever its key and value
 * rows hold. Infinity, -Infinity, NaN or 3e38 in the k and v rows of hidden slots must give
 * the same bits as finite values there (a score of q . k + -Infinity with k = Infinity is
 * NaN, and so is a weight of 0 times a value of Infinity).
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import type { AttentionParams, Backend } from '../src/backend/backend.js';

/** what a poisoned element of a hidden k or v row holds: values that overflow or propagate */
const POISON = [Infinity, -Infinity, NaN, 3e38, -3e38];
/** mask entries: visible (0, or a finite additive bias) or hidden */
const MASK_VALUES = [0, 0, -0.5, -Infinity];

export interface MaskedShapeLimits {
  maxPast: number;
  maxHeadDim: number;
}

interface MaskedCase {
  T: number;
  past: number;
  KVH: number;
  group: number;
  hd: number;
  causal: boolean; // null mask: row t hides the slots after past + t
  q: Float32Array; // (T, H, hd)
  k: Float32Array; // (slots, KVH, hd) finite
  v: Float32Array; // (slots, KVH, hd) finite
  poisoned: boolean[]; // (slots) slots whose k and v rows are poisoned
  seesPoison: boolean[]; // (T) rows allowed to see poisoned slots (not checked)
  maskValues: number[]; // (T * slots)
  anchor: number[]; // (T) a slot each row sees, never poisoned for rows that hide poison
  poison: number[]; // (slots * KVH * hd * 2) candidate poison values for k then v
  poisonAt: boolean[]; // same length: which elements of a poisoned row get poison
}

const finite = (n: number) => fc.float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true, min: -4, max: 4 });
const bools = (n: number) => fc.array(fc.boolean(), { minLength: n, maxLength: n });

function maskedCase(limits: MaskedShapeLimits): fc.Arbitrary<MaskedCase> {
  const shape = fc.record({
    T: fc.integer({ min: 1, max: 6 }),
    past: fc.integer({ min: 0, max: limits.maxPast }),
    KVH: fc.integer({ min: 1, max: 3 }),
    group: fc.constantFrom(1, 2, 3),
    hd: fc.oneof(fc.integer({ min: 1, max: Math.min(70, limits.maxHeadDim) }), fc.constantFrom(4, 32, 36, limits.maxHeadDim)),
    causal: fc.boolean(),
  });
  return shape.chain((d) => {
    const H = d.KVH * d.group, slots = d.past + d.T, kv = slots * d.KVH * d.hd;
    return fc.record({
      T: fc.constant(d.T), past: fc.constant(d.past), KVH: fc.constant(d.KVH), group: fc.constant(d.group), hd: fc.constant(d.hd), causal: fc.constant(d.causal),
      q: finite(d.T * H * d.hd),
      k: finite(kv),
      v: finite(kv),
      poisoned: bools(slots),
      seesPoison: fc.array(fc.constantFrom(false, false, false, true), { minLength: d.T, maxLength: d.T }),
      maskValues: fc.array(fc.constantFrom(...MASK_VALUES), { minLength: d.T * slots, maxLength: d.T * slots }),
      anchor: fc.array(fc.nat(slots - 1), { minLength: d.T, maxLength: d.T }),
      poison: fc.array(fc.constantFrom(...POISON), { minLength: 2 * kv, maxLength: 2 * kv }),
      poisonAt: fc.array(fc.constantFrom(true, true, false), { minLength: 2 * kv, maxLength: 2 * kv }),
    });
  });
}

/**
 * The mask of a case and the rows it checks: a row that hides poison hides every poisoned
 * slot and sees at least its anchor, which is then kept clean; rows that see poison are
 * not checked. Causal cases poison only slots no checked row sees (s > past + t).
 */
function layout(c: MaskedCase): { mask: Float32Array | null; poisoned: boolean[]; checked: boolean[] } {
  const slots = c.past + c.T, poisoned = c.poisoned.slice();
  if (c.causal) {
    const checked = c.seesPoison.map((sees) => !sees);
    // a slot is poisoned only if every checked row hides it
    for (let s = 0; s < slots; s++) for (let t = 0; t < c.T; t++) if (checked[t] && s <= c.past + t) poisoned[s] = false;
    return { mask: null, poisoned, checked };
  }
  const checked = c.seesPoison.map((sees) => !sees);
  for (let t = 0; t < c.T; t++) if (checked[t]) poisoned[c.anchor[t]!] = false;
  const mask = Float32Array.from(c.maskValues);
  for (let t = 0; t < c.T; t++) {
    const row = t * slots;
    if (checked[t]) for (let s = 0; s < slots; s++) if (poisoned[s]) mask[row + s] = -Infinity;
    mask[row + c.anchor[t]!] = 0; // every row sees at least one slot
  }
  return { mask, poisoned, checked };
}

async function runAttention(be: Backend, q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionParams): Promise<Float32Array> {
  const up = (a: Float32Array) => {
    const b = be.alloc(a.length);
    be.write(b, a);
    return b;
  };
  const qb = up(q), kb = up(k), vb = up(v), out = be.alloc(q.length);
  be.attention(out, qb, kb, vb, p);
  const host = new Float32Array(q.length);
  await be.read(out, host);
  for (const b of [qb, kb, vb, out]) be.free(b);
  return host;
}

/**
 * For random shapes, masks (at least one visible slot per row) and poison in the k and v rows
 * of hidden slots: every row that hides the poisoned slots gives exactly the bits it gives
 * with finite values in those rows.
 */
export async function checkHiddenSlotsAddNothing(be: Backend, limits: MaskedShapeLimits, numRuns: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(maskedCase(limits), async (c) => {
      const H = c.KVH * c.group, row = c.KVH * c.hd, { mask, poisoned, checked } = layout(c);
      const p: AttentionParams = { T: c.T, nHeads: H, nKvHeads: c.KVH, headDim: c.hd, past: c.past, mask };
      const k = Float32Array.from(c.k), v = Float32Array.from(c.v);
      poisoned.forEach((isPoisoned, s) => {
        if (!isPoisoned) return;
        for (let i = s * row; i < (s + 1) * row; i++) {
          if (c.poisonAt[i]) k[i] = c.poison[i]!;
          if (c.poisonAt[k.length + i]) v[i] = c.poison[k.length + i]!;
        }
      });
      const clean = await runAttention(be, c.q, c.k, c.v, p);
      const dirty = await runAttention(be, c.q, k, v, p);
      const width = H * c.hd;
      for (let t = 0; t < c.T; t++) {
        if (!checked[t]) continue;
        const want = Array.from(clean.subarray(t * width, (t + 1) * width));
        expect(want.every(Number.isFinite)).toBe(true); // finite inputs: the comparison means something
        expect(Array.from(dirty.subarray(t * width, (t + 1) * width)), `row ${t}`).toEqual(want);
      }
    }),
    { numRuns },
  );
}
