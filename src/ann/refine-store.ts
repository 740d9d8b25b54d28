import { float16Table, toFloat16Bits } from './float16.ts';
import type { DecodedIndexFile } from './format.ts';
import type { DistanceType } from './metric.ts';
import type { TopK } from './topk.ts';
import { checkOneOf } from './validate.ts';

/**
 * The full copy of each vector a PQ index may keep so `refineFactor` can re-rank its candidates exactly:
 * 'float32' (4 bytes per dimension), 'float16' (2 bytes, a tiny loss of precision) or 'none'.
 */
export type RefineStorage = 'none' | 'float32' | 'float16';
/** In file order: the header's refineStorage code is the position. */
export const REFINE_STORAGES: readonly RefineStorage[] = ['none', 'float32', 'float16'];

export type RefineVectors = Float32Array | Uint16Array;

export function checkRefineStorage(value: unknown): RefineStorage {
  return checkOneOf(value ?? 'none', 'refineStorage', REFINE_STORAGES);
}

/** The typed array that holds vectors kept as `storage`; undefined for 'none'. */
export function refineArrayType(
  storage: RefineStorage,
): Float32ArrayConstructor | Uint16ArrayConstructor | undefined {
  return storage === 'float32' ? Float32Array : storage === 'float16' ? Uint16Array : undefined;
}

/** n × d vectors as `storage` keeps them (a copy). */
export function encodeRefine(vectors: Float32Array, storage: RefineStorage): RefineVectors | undefined {
  if (storage === 'float32') return vectors.slice();
  if (storage !== 'float16') return undefined;
  const out = new Uint16Array(vectors.length);
  for (let i = 0; i < vectors.length; i++) out[i] = toFloat16Bits(vectors[i]!);
  return out;
}

/** The VECS section of a file that keeps `length` values as `storage` (a view); undefined for 'none'. */
export function refineSection(
  file: DecodedIndexFile,
  storage: RefineStorage,
  length: number,
): RefineVectors | undefined {
  if (storage === 'float32') return file.section('VECS', Float32Array, length);
  if (storage === 'float16') return file.section('VECS', Uint16Array, length);
  return undefined;
}

/** Internal distance (see metric.ts) between a query and kept vector `row`. */
export function refineDistance(
  q: Float32Array,
  vectors: RefineVectors,
  row: number,
  d: number,
  type: DistanceType,
): number {
  const o = row * d;
  let s = 0;
  if (vectors instanceof Float32Array) {
    if (type === 'dot') for (let j = 0; j < d; j++) s -= q[j]! * vectors[o + j]!;
    else
      for (let j = 0; j < d; j++) {
        const t = q[j]! - vectors[o + j]!;
        s += t * t;
      }
  } else {
    const f16 = float16Table;
    if (type === 'dot') for (let j = 0; j < d; j++) s -= q[j]! * f16[vectors[o + j]!]!;
    else
      for (let j = 0; j < d; j++) {
        const t = q[j]! - f16[vectors[o + j]!]!;
        s += t * t;
      }
  }
  return s;
}

/**
 * Re-ranks the first `found` (sorted) candidates of `candidates` by exact distance into `refined`;
 * `vectorsOf(a)` is where candidate (a, b) keeps its vector, at row b.
 */
export function rerank(
  candidates: TopK,
  found: number,
  refined: TopK,
  query: Float32Array,
  d: number,
  type: DistanceType,
  vectorsOf: (a: number) => RefineVectors,
): TopK {
  refined.reset();
  for (let c = 0; c < found; c++) {
    const a = candidates.a[c]!;
    const b = candidates.b[c]!;
    refined.push(refineDistance(query, vectorsOf(a), b, d, type), a, b);
  }
  refined.sort();
  return refined;
}
