// add_bias: out[r, c] = x[r, c] + bias[c]   x, out: (rows, cols), bias: (cols)
function add_bias(x, bias, cols) {
  const i = this.thread.x;
  return x[i] + bias[i - Math.floor(i / cols) * cols];
}
