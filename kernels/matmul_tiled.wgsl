// matmul_tiled: out[t, n] = x[t, :] . w[n, :]   out: (T, N), x: (T, K), w: (N, K) (nn.Linear)
// The prefill / verify (T > 1) path: a workgroup computes a 32 (tokens) x 32 (rows of w)
// output tile. Both operands are staged through workgroup memory 32 columns of k at a time
// (as vec4s along k), so every weight element loaded from memory is reused by 32 tokens
// and every token element by 32 weight rows. Any T, K, N: tile edges are zero-padded.
//
// struct Params { T: u32, K: u32, N: u32 }
// bindings: 0 uniform Params, 1 out (rw), 2 x (r), 3 w (r)
// dispatch: (ceil(N / 32), ceil(T / 32)); 64 threads, each owns a 4 x 4 block of outputs
//   (tokens ty + 8i, rows tx + 8j), strided so neighbouring threads read neighbouring rows;
//   per vec4 of k a thread does 8 workgroup loads for 16 dot products.
struct Params {
  T: u32,
  K: u32,
  N: u32,
}

const B = 32u; // tokens and weight rows per tile
const BK4 = 8u; // vec4s of k per stage (32 floats)
const LD = 9u; // padded row stride of the tiles, in vec4s (spreads rows over memory banks)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;

var<workgroup> xs: array<vec4<f32>, 288>; // B * LD
var<workgroup> ws: array<vec4<f32>, 288>; // B * LD

/** m[row, k .. k+4] of a (rows, K) matrix, zero outside it */
fn load4(isX: bool, row: u32, rows: u32, k: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (row >= rows) { return v; }
  let base = row * p.K;
  for (var c = 0u; c < 4u; c++) {
    if (k + c < p.K) {
      if (isX) { v[c] = x[base + k + c]; } else { v[c] = w[base + k + c]; }
    }
  }
  return v;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n0 = wid.x * B;
  let t0 = wid.y * B;
  let tx = lid % 8u;
  let ty = lid / 8u;
  var acc: array<vec4<f32>, 4>; // acc[i][j] = out[t0 + ty + 8i, n0 + tx + 8j]
  for (var k0 = 0u; k0 < p.K; k0 += 4u * BK4) {
    // stage x[t0 .. +32, k0 .. +32] and w[n0 .. +32, k0 .. +32]: 4 vec4s of each per thread
    for (var e = lid; e < B * BK4; e += 64u) {
      let r = e / BK4;
      let c = e % BK4;
      xs[r * LD + c] = load4(true, t0 + r, p.T, k0 + 4u * c);
      ws[r * LD + c] = load4(false, n0 + r, p.N, k0 + 4u * c);
    }
    workgroupBarrier();
    for (var c = 0u; c < BK4; c++) {
      let b0 = ws[tx * LD + c];
      let b1 = ws[(tx + 8u) * LD + c];
      let b2 = ws[(tx + 16u) * LD + c];
      let b3 = ws[(tx + 24u) * LD + c];
      for (var i = 0u; i < 4u; i++) {
        let a = xs[(ty + 8u * i) * LD + c];
        acc[i] += vec4<f32>(dot(a, b0), dot(a, b1), dot(a, b2), dot(a, b3));
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let t = t0 + ty + 8u * i;
    if (t >= p.T) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx + 8u * j;
      if (n < p.N) { out[t * p.N + n] = acc[i][j]; }
    }
  }
}
