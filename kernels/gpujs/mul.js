// mul: out[i] = a[i] * b[i]
function mul(a, b) {
  return a[this.thread.x] * b[this.thread.x];
}
