// softmax_stats: for each row r of x (rows, cols): out[2 r] = max over its finite entries,
// out[2 r + 1] = sum of exp(x - max) (0 when every entry is -Infinity)
// -Infinity entries are told apart from finite ones by x < -3.4028234663852886e38 (-max f32)
function softmax_stats(x, cols) {
  const i = this.thread.x;
  const row = Math.floor(i / 2);
  const base = row * cols;
  let max = -3.4028234663852886e38;
  let any = 0;
  for (let c = 0; c < cols; c++) {
    const v = x[base + c];
    if (v >= -3.4028234663852886e38) {
      any = 1;
      max = Math.max(max, v);
    }
  }
  if (i - row * 2 === 0) return max;
  let sum = 0;
  if (any === 1) {
    for (let j = 0; j < cols; j++) {
      const u = x[base + j];
      if (u >= -3.4028234663852886e38) sum += Math.exp(u - max);
    }
  }
  return sum;
}
