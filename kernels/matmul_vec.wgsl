// matmul_vec: out[t, n] = x[t, :] . w[n, :]   out: (T, N), x: (T, K), w: (N, K) (nn.Linear)
// The decode (small T) path: each weight row is read once per token, so this kernel is
// bound by the weight bandwidth; vec4 loads and several rows per thread keep it streaming.
//
// Requires K % 4 == 0 (x and w are read as vec4); the launcher uses matmul_tiled otherwise.
// struct Params { T: u32, K: u32, N: u32 }
// bindings: 0 uniform Params, 1 out (rw), 2 x (r, vec4), 3 w (r, vec4)
// overrides: WG threads per workgroup; LANES threads that share one output row (power of
//   two dividing WG) and sum their partial dots with a workgroup reduction. Each thread
//   owns ROWS rows, so a workgroup covers (WG / LANES) * ROWS output rows.
//   GPUs want many lanes (coalesced reads along k): on an H100 (Dawn, Vulkan) a 4096x4096
//   matvec ran at 100 / 160 / 410 / 500 GFLOP/s with LANES 1 / 8 / 32 / 64 (WG 128). CPU
//   rasterisers (llvmpipe) want LANES = 1, no barriers at all (1.9 vs 1.3 GFLOP/s with 8),
//   so the launcher picks per adapter: WG 128 / LANES 64 on GPUs, WG 32 / LANES 1 on CPUs.
// dispatch: (ceil(N / rowsPerWorkgroup), T)
struct Params {
  T: u32,
  K: u32,
  N: u32,
}

override WG: u32 = 64u;
override LANES: u32 = 8u;
const ROWS = 2u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<f32>>;

var<workgroup> partial: array<vec2<f32>, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.y;
  let lane = lid % LANES;
  let n0 = (wid.x * (WG / LANES) + lid / LANES) * ROWS;
  let K4 = p.K / 4u;
  // rows past N re-read row N-1 (in bounds) and are never written
  let r0 = min(n0, p.N - 1u) * K4;
  let r1 = min(n0 + 1u, p.N - 1u) * K4;
  let xb = t * K4;
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  for (var k = lane; k < K4; k += LANES) {
    let xv = x[xb + k];
    a0 += xv * w[r0 + k];
    a1 += xv * w[r1 + k];
  }
  var s = vec2<f32>(a0.x + a0.y + a0.z + a0.w, a1.x + a1.y + a1.z + a1.w);
  if (LANES > 1u) {
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
      if (lane < stride) { partial[lid] += partial[lid + stride]; }
      workgroupBarrier();
    }
    s = partial[lid];
  }
  if (lane == 0u) {
    let o = t * p.N + n0;
    if (n0 < p.N) { out[o] = s.x; }
    if (n0 + 1u < p.N) { out[o + 1u] = s.y; }
  }
}
