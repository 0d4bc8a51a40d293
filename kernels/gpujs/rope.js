// rope: rotate pairs (j, j + half) of each head of x by the host's angle table
// x, out: (T, H, 2 half); cs: (T, half, 2) = cos, sin of pos[t] * invFreq[j], taken in f64 on the host
//   out[j] = x[j] cos - x[j + half] sin,   out[j + half] = x[j + half] cos + x[j] sin
function rope(x, cs, H, half) {
  const i = this.thread.x;
  const hd = half * 2;
  const t = Math.floor(i / (H * hd));
  const j = i - Math.floor(i / hd) * hd;
  let p = j;
  if (j >= half) p = j - half;
  const c = cs[(t * half + p) * 2];
  const s = cs[(t * half + p) * 2 + 1];
  if (j < half) return x[i] * c - x[i + half] * s;
  return x[i] * c + x[i - half] * s;
}
