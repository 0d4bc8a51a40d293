// rope: rotary embedding in place, Hugging Face "rotate half" layout   x: (T, nHeads, hd)
// For token t, head h and i < hd/2 the pair (x1, x2) = (x[t,h,i], x[t,h,i + hd/2]) becomes
//   x1' = x1 cos - x2 sin,  x2' = x2 cos + x1 sin,  angle = pos[t] * theta^(-2i/hd).
// The host writes the (cos, sin) table (T, hd/2, 2) into the aux arena: it computes the
// angles in f64 exactly as the CPU reference does (pos up to thousands of radians is
// beyond what f32 sin/cos on a GPU reproduce), and the table is only T * hd floats.
//
// struct Params { T: u32, nHeads: u32, half: u32, tab_off: u32 }
// bindings: 0 uniform Params, 1 x (rw), 2 aux (r, f32 cos/sin table at tab_off)
// dispatch: ceil(T * nHeads * half / 128) workgroups, split 2D past 65535
struct Params {
  T: u32,
  nHeads: u32,
  half: u32,
  tab_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> aux: array<f32>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let g = (wid.x + wid.y * nwg.x) * 128u + lid; // pair index (t, h, i)
  if (g >= p.T * p.nHeads * p.half) { return; }
  let i = g % p.half;
  let th = g / p.half; // t * nHeads + h
  let t = th / p.nHeads;
  let c = aux[p.tab_off + (t * p.half + i) * 2u];
  let s = aux[p.tab_off + (t * p.half + i) * 2u + 1u];
  let j = th * 2u * p.half + i;
  let x1 = x[j];
  let x2 = x[j + p.half];
  x[j] = x1 * c - x2 * s;
  x[j + p.half] = x2 * c + x1 * s;
}
