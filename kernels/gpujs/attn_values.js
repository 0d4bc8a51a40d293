// attn_values: out[t, h, d] = sum_s exp(score[t, h, s] - max) v[s, h / group, d] / sum over the
// slots row t sees, in slot order (a hidden slot's value row is never read)
// scores: (T, H, slots), stats: (T, H, 2) from attn_stats, v: (slots, KVH, hd), out: (T, H, hd)
function attn_values(scores, stats, v, hidden, masked, H, KVH, hd, past, slots) {
  const i = this.thread.x;
  const row = Math.floor(i / hd);
  const d = i - row * hd;
  const t = Math.floor(row / H);
  const h = row - t * H;
  const max = stats[row * 2];
  const vo = Math.floor(h / (H / KVH)) * hd + d;
  let seen = slots;
  if (masked !== 1) seen = past + t + 1;
  let acc = 0;
  for (let s = 0; s < seen; s++) {
    let visible = 1;
    if (masked === 1) {
      if (hidden[(t * slots + s) * 2] > 0.5) visible = 0;
    }
    if (visible === 1) acc += Math.exp(scores[row * slots + s] - max) * v[s * KVH * hd + vo];
  }
  return acc / stats[row * 2 + 1];
}
