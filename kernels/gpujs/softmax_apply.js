// softmax_apply: out[r, c] = exp(x[r, c] - max[r]) / sum[r], 0 for -Infinity entries and rows
// x, out: (rows, cols), stats: (rows, 2) from softmax_stats
function softmax_apply(x, stats, cols) {
  const i = this.thread.x;
  const row = Math.floor(i / cols);
  const v = x[i];
  const sum = stats[row * 2 + 1];
  if (v < -3.4028234663852886e38 || sum <= 0) return 0;
  return Math.exp(v - stats[row * 2]) / sum;
}
