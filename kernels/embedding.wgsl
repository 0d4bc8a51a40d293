// embedding: out[t, :] = table[ids[t], :]        out: (T, D), table: (V, D)
//
// struct Params { T: u32, D: u32, ids_off: u32 }   ids live in the aux buffer at ids_off (i32)
// bindings: 0 uniform Params, 1 out (rw), 2 table (r), 3 aux (r, the backend's host-data arena)
// dispatch: ceil(T*D / 128) workgroups, split 2D past 65535 (linear id = x + y * nx)
struct Params {
  T: u32,
  D: u32,
  ids_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<i32>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 128u + lid;
  if (i >= p.T * p.D) { return; }
  let t = i / p.D;
  let d = i - t * p.D;
  let id = u32(aux[p.ids_off + t]); // range-checked on the host
  out[i] = table[id * p.D + d];
}
