/**
 * Rotary embedding frequencies theta^(-2i/hd), i < hd/2, shared by every backend. Computed
 * and kept in f64, once per (hd, theta): in f32 the angle pos * invFreq is off by ~1e-4 rad
 * at position 5000, and the GPU's own f32 sin/cos drift too, so backends take cos/sin of
 * these f64 angles on the host.
 */
const cache = new Map<string, Float64Array>();

export function ropeInvFreq(headDim: number, theta: number): Float64Array {
  const key = `${headDim}:${theta}`;
  let f = cache.get(key);
  if (!f) {
    f = new Float64Array(headDim >> 1);
    for (let i = 0; i < f.length; i++) f[i] = Math.pow(theta, (-2 * i) / headDim);
    cache.set(key, f);
  }
  return f;
}
