import { checkOneOf } from './validate.ts';

/**
 * How distances are measured.
 * - `l2`: squared Euclidean distance (what faiss reports).
 * - `cosine`: 1 − cos(q, x) in [0, 2]; vectors are normalised on the way in, so their length is ignored.
 * - `dot`: 1 − ⟨q, x⟩; for vectors whose length carries meaning (maximum inner product search).
 */
export type DistanceType = 'l2' | 'cosine' | 'dot';
export const DISTANCE_TYPES: readonly DistanceType[] = ['l2', 'cosine', 'dot'];

export function checkDistanceType(value: unknown): DistanceType {
  return checkOneOf(value ?? 'l2', 'distanceType', DISTANCE_TYPES);
}

/** Unit-length copies of the rows (zero rows stay zero). */
export function normalizeRows(data: Float32Array, d: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i += d) {
    let s = 0;
    for (let j = i; j < i + d; j++) s += data[j]! * data[j]!;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = i; j < i + d; j++) out[j] = data[j]! * inv;
  }
  return out;
}

/**
 * Internally cosine is L2 on unit vectors (‖q − x‖² = 2 − 2 cos) and dot is −⟨q, x⟩; this turns an
 * internal value into the distance callers see.
 */
export function publicDistance(type: DistanceType, internal: number): number {
  return type === 'l2' ? internal : type === 'cosine' ? internal / 2 : 1 + internal;
}

export const DISTANCE_CODES: Record<DistanceType, number> = { l2: 0, cosine: 1, dot: 2 };
