// rms_scale: out[t] = 1 / sqrt(mean(x[t, :]^2) + eps)   x: (T, D), out: (T)
function rms_scale(x, D, eps) {
  const base = this.thread.x * D;
  let ss = 0;
  for (let d = 0; d < D; d++) {
    const v = x[base + d];
    ss += v * v;
  }
  return 1 / Math.sqrt(ss / D + eps);
}
