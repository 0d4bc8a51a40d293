/**
 * Rotary embedding frequencies, shared by every backend: the inverse frequency of each
 * rotated pair i < hd/2, theta^(-2i/hd), then rescaled as the model's rope_scaling says.
 * Every scaling type is host math on this table; the kernels only ever see the table.
 *
 *   default  theta^(-2i/hd)
 *   linear   theta^(-2i/hd) / factor               (the same as dividing positions by factor)
 *   llama3   per frequency, by its wavelength 2 pi / f against the original context C:
 *              wavelength < C / high_freq_factor     kept
 *              wavelength > C / low_freq_factor      divided by factor
 *              in between                            (1 - s) f / factor + s f,
 *                                                    s = (C / wavelength - low) / (high - low)
 *
 * Computed and kept in f64, once per (hd, theta, scaling): in f32 the angle pos * invFreq is
 * off by ~1e-4 rad at position 5000, and the GPU's own f32 sin/cos drift too, so backends take
 * cos/sin of these f64 angles on the host.
 */
export type RopeScaling =
  | { rope_type: 'linear'; factor: number }
  | {
      rope_type: 'llama3';
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    };

const cache = new Map<string, Float64Array>();

/** The (hd/2) inverse frequencies of a head of size headDim; the same array for the same arguments. */
export function ropeInvFreq(headDim: number, theta: number, scaling?: RopeScaling | null): Float64Array {
  const key = `${headDim}:${theta}:${scaling ? JSON.stringify(scaling) : ''}`;
  let f = cache.get(key);
  if (!f) {
    f = new Float64Array(headDim >> 1);
    for (let i = 0; i < f.length; i++) f[i] = Math.pow(theta, (-2 * i) / headDim);
    if (scaling?.rope_type === 'linear') for (let i = 0; i < f.length; i++) f[i]! /= scaling.factor;
    else if (scaling?.rope_type === 'llama3') llama3Rescale(f, scaling);
    cache.set(key, f);
  }
  return f;
}

function llama3Rescale(f: Float64Array, s: Extract<RopeScaling, { rope_type: 'llama3' }>): void {
  const context = s.original_max_position_embeddings;
  const longest = context / s.low_freq_factor; // wavelengths above this are slowed by factor
  const shortest = context / s.high_freq_factor; // wavelengths below this are kept
  for (let i = 0; i < f.length; i++) {
    const wavelength = (2 * Math.PI) / f[i]!;
    if (wavelength > longest) {
      f[i]! /= s.factor;
    } else if (wavelength >= shortest) {
      const smooth = (context / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f[i] = ((1 - smooth) * f[i]!) / s.factor + smooth * f[i]!;
    }
  }
}
