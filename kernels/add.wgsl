// add: out[i] = a[i] + b[i], i < n
//
// struct Params { n: u32, cols: u32 }
// entry main:      bindings 0 uniform Params, 1 out (rw), 2 a (r), 3 b (r)
// entry main_a:    out aliases a (in place): bindings 0 uniform Params, 1 out (rw, read as a), 3 b (r)
// entry main_bias: a bias on every row, in place: out[i] += b[i % cols] (out is (n / cols, cols))
// dispatch: ceil(n / 128) workgroups, split 2D past 65535 (linear id = x + y * nx)
struct Params {
  n: u32,
  cols: u32, // main_bias only
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

fn op(av: f32, bv: f32) -> f32 {
  return av + bv;
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 128u + lid;
  if (i < p.n) { out[i] = op(a[i], b[i]); }
}

@compute @workgroup_size(128)
fn main_a(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 128u + lid;
  if (i < p.n) { out[i] = op(out[i], b[i]); }
}

@compute @workgroup_size(128)
fn main_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 128u + lid;
  if (i < p.n) { out[i] = op(out[i], b[i % p.cols]); }
}
