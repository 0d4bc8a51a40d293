// silu_gate: out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g))
function silu_gate(gate, up) {
  const g = gate[this.thread.x];
  return (g / (1 + Math.exp(-g))) * up[this.thread.x];
}
