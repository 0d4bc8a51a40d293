// add: out[i] = a[i] + b[i]
function add(a, b) {
  return a[this.thread.x] + b[this.thread.x];
}
