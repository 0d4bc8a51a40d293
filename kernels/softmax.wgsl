// softmax: out[r, :] = exp(x[r, :] - max) / sum(exp(x[r, :] - max))      x, out: (rows, cols)
// -Infinity entries (tested on the bit pattern) get exactly 0; an all -Infinity row gives
// zeros, as in the CPU reference.
//
// struct Params { rows: u32, cols: u32 }
// bindings: 0 uniform Params, 1 out (rw), 2 x (r)
// dispatch: one 64-thread workgroup per row, split 2D past 65535 rows
struct Params {
  rows: u32,
  cols: u32,
}

const WG = 64u;
const NEG_BIG = -3.0e38;
const NEG_INF_BITS = 0xff800000u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

var<workgroup> partial: array<f32, WG>;

fn isNegInf(v: f32) -> bool {
  return bitcast<u32>(v) == NEG_INF_BITS;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; } // workgroup-uniform
  let base = r * p.cols;
  var mx = NEG_BIG;
  for (var i = lid; i < p.cols; i += WG) {
    let v = x[base + i];
    if (!isNegInf(v)) { mx = max(mx, v); }
  }
  partial[lid] = mx;
  workgroupBarrier();
  for (var j = 0u; j < WG; j++) { mx = max(mx, partial[j]); }
  workgroupBarrier();
  var sum = 0.0;
  for (var i = lid; i < p.cols; i += WG) {
    let v = x[base + i];
    sum += select(exp(v - mx), 0.0, isNegInf(v));
  }
  partial[lid] = sum;
  workgroupBarrier();
  var total = 0.0;
  for (var j = 0u; j < WG; j++) { total += partial[j]; }
  let inv = select(0.0, 1.0 / total, total > 0.0);
  for (var i = lid; i < p.cols; i += WG) {
    let v = x[base + i];
    out[base + i] = select(exp(v - mx), 0.0, isNegInf(v)) * inv;
  }
}
