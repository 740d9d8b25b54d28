import { NO_ID } from '../ann/types.ts';

/**
 * The ids of the k nearest neighbours of each of some model vectors, row after row (k per row, NO_ID where
 * fewer were found): a search of the collection's own index.
 */
export type SearchRows = (rows: Float32Array[], k: number) => Promise<Uint32Array>;

/** Pairs of rows of the stored vectors, most similar first: rows a < b and their cosine similarity. */
export interface CandidatePairs {
  a: Uint32Array;
  b: Uint32Array;
  similarity: Float32Array;
}

export interface NeighbourOptions {
  /** Neighbours asked of the index per image. */
  neighbours: number;
  /** Cosine similarity (of the model's vectors) from which a neighbour becomes a candidate. */
  threshold: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** Rows searched at once: one batch's results stay small, and progress and cancellation come often. */
const BATCH = 512;

/**
 * The candidate pairs of a collection: each image's nearest neighbours in the collection's own index whose
 * exact cosine similarity (recomputed from the stored vectors, so an approximate index changes which
 * pairs are looked at, never their similarity) reaches the threshold. Never all pairs: n × neighbours
 * searches, each as costly as one query.
 *
 * `vectors` are the stored model vectors (n × d, row-major) and `unit` the same at unit length, `ids`
 * their ids.
 */
export async function neighbourPairs(
  search: SearchRows,
  ids: Uint32Array,
  vectors: Float32Array,
  unit: Float32Array,
  options: NeighbourOptions,
): Promise<CandidatePairs> {
  const n = ids.length;
  const d = n === 0 ? 0 : vectors.length / n;
  const rowOf = new Map<number, number>();
  for (let row = 0; row < n; row++) rowOf.set(ids[row]!, row);
  // The image itself comes back first.
  const k = Math.min(options.neighbours + 1, n);
  // Pairs as one number each (a · n + b with a < b), so both ends' finds of one pair collapse by sorting.
  let keys = new Float64Array(1024);
  let found = 0;
  for (let start = 0; start < n; start += BATCH) {
    options.signal?.throwIfAborted();
    const end = Math.min(n, start + BATCH);
    const rows: Float32Array[] = [];
    for (let row = start; row < end; row++) rows.push(vectors.subarray(row * d, (row + 1) * d));
    const neighbourIds = await search(rows, k);
    for (let row = start; row < end; row++) {
      for (let j = 0; j < k; j++) {
        const id = neighbourIds[(row - start) * k + j]!;
        if (id === NO_ID) break;
        const other = rowOf.get(id);
        if (other === undefined || other === row) continue;
        if (dot(unit, row, other, d) < options.threshold) continue;
        if (found === keys.length) {
          const grown = new Float64Array(keys.length * 2);
          grown.set(keys);
          keys = grown;
        }
        keys[found++] = row < other ? row * n + other : other * n + row;
      }
    }
    options.onProgress?.(end, n);
    // Let the event loop breathe between batches (a server answers other requests meanwhile).
    await new Promise((resolve) => setImmediate(resolve));
  }
  const sorted = keys.subarray(0, found).sort();
  let unique = 0;
  for (let i = 0; i < found; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[unique++] = sorted[i]!;
  const a = new Uint32Array(unique);
  const b = new Uint32Array(unique);
  const similarity = new Float32Array(unique);
  const order = new Uint32Array(unique);
  for (let i = 0; i < unique; i++) {
    const key = sorted[i]!;
    a[i] = Math.floor(key / n);
    b[i] = key - a[i]! * n;
    similarity[i] = dot(unit, a[i]!, b[i]!, d);
    order[i] = i;
  }
  order.sort((p, q) => similarity[q]! - similarity[p]! || p - q);
  return {
    a: order.map((i) => a[i]!),
    b: order.map((i) => b[i]!),
    similarity: similarity.map((_, i) => similarity[order[i]!]!),
  };
}

export function dot(unit: Float32Array, a: number, b: number, d: number): number {
  let sum = 0;
  const oa = a * d;
  const ob = b * d;
  for (let i = 0; i < d; i++) sum += unit[oa + i]! * unit[ob + i]!;
  return sum;
}
