// rms_apply: out[t, d] = x[t, d] * scale[t] * w[d]   x, out: (T, D), scale: (T), w: (D)
function rms_apply(x, scale, w, D) {
  const i = this.thread.x;
  const t = Math.floor(i / D);
  return x[i] * scale[t] * w[i - t * D];
}
