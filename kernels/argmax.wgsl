// argmax: out[r] = index of the largest x[r, :], the first one on ties, stored as f32
// (exact for indices < 2^24). NaN never wins; an all -Infinity/NaN row gives 0, as in the
// CPU reference.   x: (rows, cols), out: (rows)
//
// struct Params { rows: u32, cols: u32 }
// bindings: 0 uniform Params, 1 out (rw), 2 x (r)
// dispatch: one 64-thread workgroup per row, split 2D past 65535 rows.
// Each thread keeps the first maximum of its strided slice; thread 0 then merges the 64
// candidates by (value desc, index asc).
struct Params {
  rows: u32,
  cols: u32,
}

const WG = 64u;
const NONE = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

var<workgroup> bestV: array<f32, WG>;
var<workgroup> bestI: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; } // workgroup-uniform
  let base = r * p.cols;
  var bi = NONE;
  var bv = 0.0;
  for (var i = lid; i < p.cols; i += WG) {
    let v = x[base + i];
    // -Infinity is below every candidate, so it never becomes one (as in the CPU loop);
    // `v > bv` is false for NaN
    if (bitcast<u32>(v) != 0xff800000u && (bi == NONE || v > bv)) {
      if (v == v) { bi = i; bv = v; }
    }
  }
  bestV[lid] = bv;
  bestI[lid] = bi;
  workgroupBarrier();
  if (lid == 0u) {
    var i0 = NONE;
    var v0 = 0.0;
    for (var j = 0u; j < WG; j++) {
      let ij = bestI[j];
      if (ij == NONE) { continue; }
      let vj = bestV[j];
      if (i0 == NONE || vj > v0 || (vj == v0 && ij < i0)) { i0 = ij; v0 = vj; }
    }
    out[r] = f32(select(i0, 0u, i0 == NONE));
  }
}
