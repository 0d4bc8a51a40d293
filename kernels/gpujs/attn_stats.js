// attn_stats: for each row (t, h) of scores, over the slots it sees, in slot order:
// out[2 row] = max, out[2 row + 1] = sum of exp(score - max)   scores: (T, H, slots), out: (T, H, 2)
function attn_stats(scores, hidden, masked, H, past, slots) {
  const i = this.thread.x;
  const row = Math.floor(i / 2);
  const t = Math.floor(row / H);
  let seen = slots;
  if (masked !== 1) seen = past + t + 1;
  let max = -3.4028234663852886e38;
  for (let s = 0; s < seen; s++) {
    let visible = 1;
    if (masked === 1) {
      if (hidden[(t * slots + s) * 2] > 0.5) visible = 0;
    }
    if (visible === 1) max = Math.max(max, scores[row * slots + s]);
  }
  if (i - row * 2 === 0) return max;
  let sum = 0;
  for (let j = 0; j < seen; j++) {
    let visible = 1;
    if (masked === 1) {
      if (hidden[(t * slots + j) * 2] > 0.5) visible = 0;
    }
    if (visible === 1) sum += Math.exp(scores[row * slots + j] - max);
  }
  return sum;
}
