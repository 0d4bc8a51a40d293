// embedding: out[t, d] = table[ids[t], d]   out: (T, D), ids: (T) as f32
function embedding(table, ids, D) {
  const i = this.thread.x;
  const t = Math.floor(i / D);
  const d = i - t * D;
  const id = Math.floor(ids[t]);
  return table[id * D + d];
}
