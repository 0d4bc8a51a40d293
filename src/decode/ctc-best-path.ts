/**
 * Best-path CTC decoding: the most likely class of each frame, then blank-collapse. It gives
 * the collapse of the single most probable frame path; ctc-beam.ts ranks collapsed drafts by
 * the total probability of all their paths instead.
 *
 *   ctcCollapse(frameIds, blank)                  merge runs of equal ids, then drop blanks
 *   ctcBestPath(logits, frames, classes, blank)   ctcCollapse(argmax of each frame)
 *
 * Example: ctcCollapse([1, 1, 0, 2, 2], 0) = [1, 2];  ctcCollapse([1, 0, 1], 0) = [1, 1]
 * (the blank between them keeps the repeat).
 */
import { argmaxRow } from '../util/numeric.js';

/** Blank-collapse: merge runs of equal frame ids, then drop blanks ([a a _ a b b] -> [a a b]). */
export function ctcCollapse(frameIds: ArrayLike<number>, blank: number): number[] {
  const out: number[] = [];
  for (let t = 0; t < frameIds.length; t++) {
    const id = frameIds[t]!;
    if (id !== blank && (t === 0 || id !== frameIds[t - 1])) out.push(id);
  }
  return out;
}

/**
 * Best-path decoding of logits (frames, classes), row-major, unnormalised: argmax per frame
 * (lowest id on ties), then blank-collapse. Logits may be -Infinity (not in a whole frame),
 * never NaN or +Infinity.
 */
export function ctcBestPath(logits: Float32Array, frames: number, classes: number, blank: number): number[] {
  const fn = 'ctcBestPath';
  if (!Number.isInteger(frames) || frames < 1) throw new RangeError(`${fn}: frames must be a positive integer, got ${frames}`);
  if (!Number.isInteger(classes) || classes < 1) throw new RangeError(`${fn}: classes must be a positive integer, got ${classes}`);
  if (!Number.isInteger(blank) || blank < 0 || blank >= classes) throw new RangeError(`${fn}: blank must be an integer in [0, ${classes}), got ${blank}`);
  if (logits.length !== frames * classes) {
    throw new RangeError(`${fn}: logits has length ${logits.length}, expected ${frames} * ${classes} = ${frames * classes}`);
  }
  const ids = new Int32Array(frames);
  for (let t = 0; t < frames; t++) {
    let anyFinite = false;
    for (let c = 0; c < classes; c++) {
      const v = logits[t * classes + c]!;
      if (Number.isNaN(v) || v === Infinity) throw new RangeError(`${fn}: logits[frame ${t}][${c}] is ${v}; logits must be finite or -Infinity`);
      if (v !== -Infinity) anyFinite = true;
    }
    if (!anyFinite) throw new RangeError(`${fn}: logits[frame ${t}] is -Infinity for every class; a frame needs one finite logit`);
    ids[t] = argmaxRow(logits, t * classes, classes);
  }
  return ctcCollapse(ids, blank);
}
