// attention: masked, grouped-query, over a KV cache with `past` earlier slots
//   out[t, h, :] = softmax_s(q[t,h,:] . k[s,kvh,:] * scale + mask[t, s]) @ v[s, kvh, :]
//   for slots s < past + T, kvh = h / (H / KVH).   q, out: (T, H, hd); k, v: (slots, KVH, hd)
// One workgroup per (t, h) walks the visible slots 64 at a time with an online softmax:
// a running max m, running sum l and running output acc, rescaled by exp(m_old - m_new)
// whenever the max grows. A masked slot (mask entry -Infinity, tested on the bit pattern
// so no fast-math assumption can fold it) is left out, not added in: its key and value rows
// are never read (q . k + -Infinity and 0 * v would be NaN if they held Infinity or NaN),
// its score is the finite -3e38 by selection and its weight 0. The running max starts at
// -3e38 too, so no inf - inf is ever computed even when a whole chunk is masked.
// A null mask is causal: query t sees slots [0, past + t], later chunks are skipped.
//
// To stay within 4 storage buffers per stage (the compatibility-mode limit), q is copied
// by the launcher into the aux arena next to the mask.
// struct Params { T, H, KVH, hd, past, q_off, mask_off, has_mask: u32, scale: f32 }
//   q at aux[q_off ..] (T, H, hd); mask at aux[mask_off ..] (T, past + T), used when has_mask != 0
// bindings: 0 uniform Params, 1 out (rw), 2 aux (r), 3 k cache (r), 4 v cache (r)
// dispatch: T * H workgroups, split 2D past 65535; hd <= 256 (4 output dims per thread)
struct Params {
  T: u32,
  H: u32,
  KVH: u32,
  hd: u32,
  past: u32,
  q_off: u32,
  mask_off: u32,
  has_mask: u32,
  scale: f32,
}

const WG = 64u;
const MAXD = 4u; // output dims per thread: hd <= WG * MAXD
const NEG_BIG = -3.0e38;
const NEG_INF_BITS = 0xff800000u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> aux: array<f32>;
@group(0) @binding(3) var<storage, read> kc: array<f32>;
@group(0) @binding(4) var<storage, read> vc: array<f32>;

var<workgroup> qs: array<f32, 256>; // WG * MAXD
var<workgroup> sc: array<f32, WG>; // this chunk's scores, then its weights
var<workgroup> seen: array<u32, WG>; // 1 where this chunk's slot is visible to the query, else 0

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * nwg.x; // t * H + h
  if (row >= p.T * p.H) { return; } // workgroup-uniform
  let t = row / p.H;
  let h = row % p.H;
  let kvh = h / (p.H / p.KVH);
  let slots = p.past + p.T;
  let kvStride = p.KVH * p.hd;
  for (var d = lid; d < p.hd; d += WG) { qs[d] = aux[p.q_off + row * p.hd + d]; }
  workgroupBarrier();

  var visible = p.past + t + 1u; // causal
  if (p.has_mask != 0u) { visible = slots; }
  var m = NEG_BIG; // running max
  var l = 0.0; // running sum of exp(score - m)
  var acc: array<f32, MAXD>;
  for (var c = 0u; c < visible; c += WG) {
    // 1. one score per thread
    let s = c + lid;
    var score = NEG_BIG;
    var keep = false;
    if (s < visible) {
      var mv = 0.0;
      if (p.has_mask != 0u) { mv = aux[p.mask_off + t * slots + s]; }
      if (bitcast<u32>(mv) != NEG_INF_BITS) {
        let kb = s * kvStride + kvh * p.hd;
        var dot = 0.0;
        for (var i = 0u; i < p.hd; i++) { dot += qs[i] * kc[kb + i]; }
        score = dot * p.scale + mv;
        keep = true;
      }
    }
    sc[lid] = score;
    seen[lid] = select(0u, 1u, keep);
    workgroupBarrier();
    // 2. the chunk max (every thread reads all WG scores: one barrier, not a log tree), and
    //    whether any of its n slots may be masked: a masked slot scores exactly NEG_BIG (a
    //    visible score of exactly -3e38 only sends the chunk down the slot-testing loop)
    let n = min(WG, visible - c);
    var cmax = NEG_BIG;
    var mayMask = false;
    for (var j = 0u; j < WG; j++) {
      let sj = sc[j];
      cmax = max(cmax, sj);
      mayMask = mayMask || (j < n && sj == NEG_BIG);
    }
    let mNew = max(m, cmax);
    let alpha = exp(m - mNew); // 1 while nothing is kept yet, 0 once a real score replaces NEG_BIG
    workgroupBarrier();
    sc[lid] = select(0.0, exp(score - mNew), keep);
    workgroupBarrier();
    // 3. rescale and accumulate weights @ v for this thread's output dims; a chunk that may
    //    hold masked slots tests each slot and skips the masked ones' value rows, the rest
    //    (every chunk of the causal case, the cache part of a tree) add every slot
    var psum = 0.0;
    for (var j = 0u; j < n; j++) { psum += sc[j]; }
    l = l * alpha + psum;
    for (var r = 0u; r < MAXD; r++) {
      let d = lid + r * WG;
      if (d < p.hd) {
        var a = acc[r] * alpha;
        let vb = c * kvStride + kvh * p.hd + d;
        if (mayMask) {
          for (var j = 0u; j < n; j++) {
            if (seen[j] != 0u) { a += sc[j] * vc[vb + j * kvStride]; }
          }
        } else {
          for (var j = 0u; j < n; j++) { a += sc[j] * vc[vb + j * kvStride]; }
        }
        acc[r] = a;
      }
    }
    m = mNew;
    workgroupBarrier();
  }
  let inv = 1.0 / l;
  for (var r = 0u; r < MAXD; r++) {
    let d = lid + r * WG;
    if (d < p.hd) { out[row * p.hd + d] = acc[r] * inv; }
  }
}
