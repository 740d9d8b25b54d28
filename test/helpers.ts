import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Random } from '../src/ann/random.ts';
import { type BatchSearchResult, type DistanceType, FlatIndex } from '../src/index.ts';

/** n points around `clusters` gaussian centres in d dimensions (the structure real embeddings have). */
export function clustered(n: number, d: number, clusters: number, seed = 7, spread = 0.35): Float32Array {
  const random = new Random(seed);
  const centres = new Float32Array(clusters * d).map(() => random.gaussian());
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = random.int(clusters);
    for (let j = 0; j < d; j++) out[i * d + j] = centres[c * d + j]! + spread * random.gaussian();
  }
  return out;
}

/** Fraction of the true k nearest found among the returned k (k-recall@k), averaged over queries. */
export function recallAtK(found: BatchSearchResult, truth: BatchSearchResult, nq: number, k: number): number {
  let hits = 0;
  for (let i = 0; i < nq; i++) {
    const expected = new Set(truth.ids.subarray(i * k, i * k + k));
    for (const id of found.ids.subarray(i * k, i * k + k)) if (expected.has(id)) hits++;
  }
  return hits / (nq * k);
}

export const sharedData = join(import.meta.dirname, '..', '..', 'shared', 'data');
export const hasSharedData = existsSync(join(sharedData, 'vectors', 'caltech101-mobilenetv2.fvecs'));
export const noSharedData = hasSharedData
  ? false
  : 'needs ../shared/data (present in the development checkout only)';

/** The true k nearest neighbours of each query, by exact search. */
export function exactNeighbours(
  base: Float32Array,
  queries: Float32Array,
  dimension: number,
  distanceType: DistanceType = 'l2',
  k = 10,
): BatchSearchResult {
  const exact = new FlatIndex({ dimension, distanceType });
  exact.add(base);
  return exact.searchBatch(queries, k);
}

/** Trains the index on `data` and adds all of it. */
export async function trainedWith<
  T extends { train(v: Float32Array): Promise<void>; add(v: Float32Array): unknown },
>(index: T, data: Float32Array): Promise<T> {
  await index.train(data);
  index.add(data);
  return index;
}

/** Starts a test's HTTP server on a free loopback port; resolves with its base URL. */
export async function listenOnLoopback(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
