// The 1,000,000-vector row of bench:duplicates: the index stage of grouping at scale (synthetic vectors
// have no pixels, so the second look is left out; its cost is per candidate pair, see the Caltech row).

import { HnswIndex } from '../src/ann/hnsw.ts';
import type { HnswBuilder } from '../src/ann/hnsw-parallel.ts';
import { normalizeRows } from '../src/ann/metric.ts';
import { Random } from '../src/ann/random.ts';
import { neighbourPairs, type SearchRows } from '../src/duplicates/candidates.ts';
import { UnionFind } from '../src/duplicates/groups.ts';

const DIMENSION = 64;
/** One vector in 20 is a copy of another: its original plus noise, at cosine ≈ 0.95 to it. */
const COPY_SHARE = 0.05;
const NOISE = 0.33 / Math.sqrt(DIMENSION);

/**
 * `n` random unit vectors, a share of them near copies of others, indexed as a collection of that size
 * would be searched (HNSW, m 16, efConstruction 100, int8 storage, the builder's threads), then grouped as
 * findDuplicates groups them: 8 neighbours per vector, pairs at cosine ≥ 0.9, union-find. Prints the times
 * apart, the planted pairs found, and the process's peak memory.
 */
export async function millionRow(builder: HnswBuilder, n = 1_000_000): Promise<void> {
  const random = new Random(23);
  const d = DIMENSION;
  const vectors = new Float32Array(n * d);
  const copies = Math.floor(n * COPY_SHARE);
  const originals = n - copies;
  for (let i = 0; i < originals * d; i++) vectors[i] = random.gaussian() / Math.sqrt(d);
  for (let c = 0; c < copies; c++) {
    const from = c * d;
    const to = (originals + c) * d;
    for (let j = 0; j < d; j++) vectors[to + j] = vectors[from + j]! + NOISE * random.gaussian();
  }
  const unit = normalizeRows(vectors, d);
  const ids = Uint32Array.from({ length: n }, (_, i) => i);

  let started = performance.now();
  const index = new HnswIndex({
    dimension: d,
    distanceType: 'cosine',
    m: 16,
    efConstruction: 100,
    storage: 'int8',
    builder,
  });
  index.add(vectors, ids);
  const built = (performance.now() - started) / 1000;

  started = performance.now();
  const search: SearchRows = async (rows, k) => {
    const queries = new Float32Array(rows.length * d);
    for (const [i, row] of rows.entries()) queries.set(row, i * d);
    return index.searchBatch(queries, k).ids;
  };
  const pairs = await neighbourPairs(search, ids, vectors, unit, { neighbours: 8, threshold: 0.9 });
  const sets = new UnionFind(n);
  for (let i = 0; i < pairs.a.length; i++) sets.union(pairs.a[i]!, pairs.b[i]!);
  const grouped = (performance.now() - started) / 1000;
  let planted = 0;
  for (let i = 0; i < pairs.a.length; i++) if (pairs.b[i]! - pairs.a[i]! === originals) planted++;
  const peak = process.resourceUsage().maxRSS / 1024;
  console.log(
    `\n${n.toLocaleString('en')} synthetic vectors (dimension ${d}, ${copies.toLocaleString('en')} near copies at ` +
      `cosine ≈ 0.95): HNSW built in ${built.toFixed(1)} s (${builder.threads} threads); candidates and ` +
      `union-find in ${grouped.toFixed(1)} s (8 neighbours, cosine ≥ 0.9; no second look: no pixels); ` +
      `${planted.toLocaleString('en')} of ${copies.toLocaleString('en')} planted pairs among ` +
      `${pairs.a.length.toLocaleString('en')} candidates; peak RSS of the bench process ${peak.toFixed(0)} MiB`,
  );
}
