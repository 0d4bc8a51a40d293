// copy: dst[dst_off + i] = src[src_off + i], i < n (the regions do not overlap)
//
// struct Params { n: u32, dst_off: u32, src_off: u32 }
// entry main:      bindings 0 uniform Params, 1 dst (rw), 2 src (r)
// entry main_self: dst and src are one buffer: bindings 0 uniform Params, 1 dst (rw, also the source)
// dispatch: ceil(n / 128) workgroups, split 2D past 65535 (linear id = x + y * nx)
struct Params {
  n: u32,
  dst_off: u32,
  src_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 128u + lid;
  if (i < p.n) { dst[p.dst_off + i] = src[p.src_off + i]; }
}

@compute @workgroup_size(128)
fn main_self(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 128u + lid;
  if (i < p.n) { dst[p.dst_off + i] = dst[p.src_off + i]; }
}
