import type { ModelConfig } from './config.ts';

/**
 * Turns the output tensor of a batch (dims [N, …]) into N vectors: pools a spatial map [N, C, H, W]
 * (or [N, H, W, C]) over H × W, or flattens with 'none'; then optionally scales each to unit length.
 */
export function poolOutput(
  data: Float32Array,
  dims: readonly number[],
  output: ModelConfig['output'],
): { vectors: Float32Array; dimension: number } {
  const n = dims[0]!;
  const perItem = data.length / n;
  if (output.pooling === 'none' || dims.length < 4) {
    const vectors = Float32Array.from(data);
    if (output.normalize) normalizeRows(vectors, perItem);
    return { vectors, dimension: perItem };
  }
  const nchw = output.layout === 'nchw';
  const channels = nchw ? dims[1]! : dims[3]!;
  const spatial = perItem / channels;
  const vectors = new Float32Array(n * channels);
  const p = output.gemP;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      let acc = output.pooling === 'max' ? Number.NEGATIVE_INFINITY : 0;
      for (let s = 0; s < spatial; s++) {
        const v = data[i * perItem + (nchw ? c * spatial + s : s * channels + c)]!;
        if (output.pooling === 'max') acc = Math.max(acc, v);
        else if (output.pooling === 'avg') acc += v;
        else acc += Math.max(v, 1e-6) ** p; // GeM: generalised mean of the clamped activations
      }
      vectors[i * channels + c] =
        output.pooling === 'max'
          ? acc
          : output.pooling === 'avg'
            ? acc / spatial
            : (acc / spatial) ** (1 / p);
    }
  }
  if (output.normalize) normalizeRows(vectors, channels);
  return { vectors, dimension: channels };
}

/** Scales each row of `d` values to unit length (a zero row stays zero). */
export function normalizeRows(vectors: Float32Array, d: number): void {
  for (let i = 0; i < vectors.length; i += d) {
    let s = 0;
    for (let j = i; j < i + d; j++) s += vectors[j]! * vectors[j]!;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = i; j < i + d; j++) vectors[j] = vectors[j]! * inv;
  }
}
