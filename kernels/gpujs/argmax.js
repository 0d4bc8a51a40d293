// argmax: out[r] = the first index of the largest x[r, :], as f32 (exact below 2^24); NaN and
// -Infinity entries never win (as the CPU's argmaxRow: index 0 when nothing else does)
// x: (rows, cols), out: (rows)
function argmax(x, cols) {
  const base = this.thread.x * cols;
  let best = 0;
  let at = 0;
  let found = 0;
  for (let c = 0; c < cols; c++) {
    const v = x[base + c];
    if (v >= -3.4028234663852886e38) {
      if (found === 0 || v > best) {
        best = v;
        at = c;
        found = 1;
      }
    }
  }
  return at;
}
