// splice: out[i] = src[srcOffset + i - lo] for lo <= i < hi, else old[i] (i < oldLen), else 0
// (a write or copy into part of a buffer: a render target is written whole)
function splice(old, oldLen, src, srcOffset, lo, hi) {
  const i = this.thread.x;
  if (i >= lo && i < hi) return src[srcOffset + i - lo];
  if (i < oldLen) return old[i];
  return 0;
}
