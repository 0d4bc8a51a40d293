// matmul: out[t, n] = sum_k x[t, k] * w[n, k], k in order   x: (T, K), w: (N, K), out: (T, N)
// One invocation per output: a row's value does not depend on T (batch invariance).
function matmul(x, w, K, N) {
  const i = this.thread.x;
  const t = Math.floor(i / N);
  const xo = t * K;
  const wo = (i - t * N) * K;
  let acc = 0;
  for (let k = 0; k < K; k++) {
    acc += x[xo + k] * w[wo + k];
  }
  return acc;
}
