// attn_scores: out[t, h, s] = q[t, h, :] . k[s, h / group, :] * scale + bias[t, s] for a
// slot s that row t sees, 0 for a hidden one (its key row is never read: it may hold Infinity)
// q: (T, H, hd), k: (slots, KVH, hd), out: (T, H, slots)
// hidden: (T, slots, 2) = (1 if hidden else 0, additive bias) when masked; causal otherwise
function attn_scores(q, k, hidden, masked, H, KVH, hd, past, slots, scale) {
  const i = this.thread.x;
  const row = Math.floor(i / slots);
  const s = i - row * slots;
  const t = Math.floor(row / H);
  const h = row - t * H;
  let bias = 0;
  if (masked === 1) {
    if (hidden[(t * slots + s) * 2] > 0.5) return 0;
    bias = hidden[(t * slots + s) * 2 + 1];
  } else if (s > past + t) {
    return 0;
  }
  const qo = row * hd;
  const ko = (s * KVH + Math.floor(h / (H / KVH))) * hd;
  let acc = 0;
  for (let d = 0; d < hd; d++) {
    acc += q[qo + d] * k[ko + d];
  }
  return acc * scale + bias;
}
