// rmsnorm: out[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * w      x, out: (T, D), w: (D)
//
// struct Params { T: u32, D: u32, eps: f32 }
// bindings: 0 uniform Params, 1 out (rw), 2 x (r), 3 w (r)
// dispatch: one 64-thread workgroup per row t, split 2D past 65535 rows.
// Each thread sums a strided slice; after one barrier every thread adds the 64 partial
// sums itself (a broadcast read instead of a log2 tree of barriers).
struct Params {
  T: u32,
  D: u32,
  eps: f32,
}

const WG = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= p.T) { return; } // workgroup-uniform
  let base = t * p.D;
  var ss = 0.0;
  for (var i = lid; i < p.D; i += WG) {
    let v = x[base + i];
    ss += v * v;
  }
  partial[lid] = ss;
  workgroupBarrier();
  var total = 0.0;
  for (var j = 0u; j < WG; j++) { total += partial[j]; }
  let scale = inverseSqrt(total / f32(p.D) + p.eps);
  for (var i = lid; i < p.D; i += WG) {
    out[base + i] = x[base + i] * scale * w[i];
  }
}
