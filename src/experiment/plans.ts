import { defaultNumSubVectors, divisors } from '../ann/pq.ts';
import { DEFAULT_NPROBES } from '../ann/vector-index.ts';
import { type BuildSpec, collectionSubVectors, defaultPartitions, type SearchSpec } from './indexes.ts';

/** The reference notebook's settings: nlist 100, m 8 (8 bits), nprobe 1, and PCA to 128 dimensions. */
export const NOTEBOOK = { numPartitions: 100, numSubVectors: 8, nprobes: 1, pca: 128 } as const;

/**
 * The seed preset: the notebook's table (Flat, IVF-Flat, IVF-PQ, OPQ + IVF-PQ, PQ alone at its
 * parameters), then the same index types with ris's defaults (√n partitions, dimension / 16 sub-vectors,
 * nprobes 16) and as a collection builds them (dimension / 32 sub-vectors, float16 copy, refine ×8,
 * nprobes 16); all of it in the original space and after PCA to 128 dimensions.
 */
export function seedPlan(n: number, dimension: number, pca: number = NOTEBOOK.pca): BuildSpec[] {
  const plans: BuildSpec[] = [];
  const L = defaultPartitions(n);
  for (const p of pca < dimension ? [undefined, pca] : [undefined]) {
    const d = p ?? dimension;
    const ref = { numPartitions: NOTEBOOK.numPartitions, numSubVectors: NOTEBOOK.numSubVectors, pca: p };
    const nb = [{ nprobes: NOTEBOOK.nprobes }];
    plans.push(
      { group: 'reference', index: 'Flat', pca: p, searches: [{}] },
      { group: 'reference', index: 'IVF-Flat', pca: p, numPartitions: ref.numPartitions, searches: nb },
      { group: 'reference', index: 'IVF-PQ', ...ref, searches: nb },
      { group: 'reference', index: 'OPQ+IVF-PQ', ...ref, searches: nb },
    );
    plans.push({ group: 'reference', index: 'PQ', pca: p, numSubVectors: ref.numSubVectors, searches: [{}] });
    plans.push(
      {
        group: 'defaults',
        index: 'IVF-Flat',
        pca: p,
        numPartitions: L,
        searches: [{ nprobes: Math.min(L, DEFAULT_NPROBES) }],
        note: 'ris defaults',
      },
      {
        group: 'defaults',
        index: 'IVF-PQ',
        pca: p,
        numPartitions: L,
        numSubVectors: defaultNumSubVectors(d),
        searches: [{ nprobes: Math.min(L, DEFAULT_NPROBES) }],
        note: 'ris defaults',
      },
      {
        group: 'defaults',
        index: 'IVF-PQ',
        pca: p,
        numPartitions: L,
        numSubVectors: collectionSubVectors(d),
        refineStorage: 'float16',
        searches: [{ nprobes: Math.min(L, DEFAULT_NPROBES), refineFactor: 8 }],
        note: 'as a collection builds it',
      },
    );
  }
  return plans;
}

const NPROBES = [1, 2, 4, 8, 16, 32, 64];

/**
 * The sweep preset: enough points to draw each trade-off curve. nprobes 1 … 64 for IVF-Flat and IVF-PQ;
 * numPartitions 25 … 400 and multiples of √n; numSubVectors 2 … dimension / 4; refineFactor 0, 4, 16;
 * PCA to 32 … 512 dimensions (below the input's). Partitions stay at 8 or more vectors each.
 */
export function sweepPlan(n: number, dimension: number): BuildSpec[] {
  const plans: BuildSpec[] = [];
  const L0 = Math.max(1, Math.min(NOTEBOOK.numPartitions, Math.floor(n / 8)));
  const m0 =
    dimension % NOTEBOOK.numSubVectors === 0 ? NOTEBOOK.numSubVectors : defaultNumSubVectors(dimension);
  const probes = (L: number, list = NPROBES): SearchSpec[] =>
    list.filter((p) => p <= L).map((nprobes) => ({ nprobes }));
  plans.push(
    { group: 'nprobes', index: 'IVF-Flat', numPartitions: L0, searches: probes(L0) },
    { group: 'nprobes', index: 'IVF-PQ', numPartitions: L0, numSubVectors: m0, searches: probes(L0) },
  );
  const mDefault = defaultNumSubVectors(dimension);
  if (mDefault !== m0)
    plans.push({
      group: 'nprobes',
      index: 'IVF-PQ',
      numPartitions: L0,
      numSubVectors: mDefault,
      searches: probes(L0),
    });

  const root = Math.sqrt(n);
  const partitions = [...new Set([25, 50, 100, 200, 400, ...[0.5, 1, 2, 4].map((k) => Math.round(root * k))])]
    .filter((L) => L >= 2 && L <= n / 8)
    .sort((a, b) => a - b);
  for (const L of partitions)
    plans.push({
      group: 'numPartitions',
      index: 'IVF-PQ',
      numPartitions: L,
      numSubVectors: m0,
      searches: probes(L, [1, 8]),
    });

  const subVectors = divisors(dimension).filter(
    (m) =>
      m >= 2 &&
      m <= dimension / 4 &&
      ((m & (m - 1)) === 0 || m === mDefault || m === collectionSubVectors(dimension)),
  );
  for (const m of subVectors)
    plans.push({
      group: 'numSubVectors',
      index: 'IVF-PQ',
      numPartitions: L0,
      numSubVectors: m,
      searches: probes(L0, [1, 8]),
    });

  for (const m of [...new Set([m0, collectionSubVectors(dimension)])])
    plans.push({
      group: 'refineFactor',
      index: 'IVF-PQ',
      numPartitions: L0,
      numSubVectors: m,
      refineStorage: 'float16',
      searches: probes(L0, [1, 4, 16]).flatMap((s) =>
        [0, 4, 16].map((refineFactor) => ({ ...s, refineFactor })),
      ),
    });

  for (const p of [32, 64, 128, 256, 512].filter((p) => p < dimension)) {
    plans.push({ group: 'pcaDimension', index: 'Flat', pca: p, searches: [{}] });
    plans.push({
      group: 'pcaDimension',
      index: 'IVF-PQ',
      pca: p,
      numPartitions: L0,
      numSubVectors: p % m0 === 0 ? m0 : defaultNumSubVectors(p),
      searches: probes(L0, [1, 8]),
    });
  }
  return plans;
}

/**
 * Database sizes for the runtime preset: doubling from 1,000 to n (n itself last), or quarters of a
 * smaller n. Each size is a prefix of one seeded order, so every larger database holds the smaller ones.
 */
export function runtimeSizes(n: number): number[] {
  if (n < 2000) return [...new Set([Math.floor(n / 4), Math.floor(n / 2), n])].filter((s) => s >= 2);
  const sizes: number[] = [];
  for (let s = 1000; s < n; s *= 2) sizes.push(s);
  if (sizes.at(-1)! * 1.25 > n) sizes.pop(); // no near-duplicate of n
  sizes.push(n);
  return sizes;
}

/** The runtime preset at one size: exact search against IVF-PQ as a collection builds it. */
export function runtimePlan(n: number, dimension: number): BuildSpec[] {
  const L = defaultPartitions(n);
  return [
    { group: 'runtime', index: 'Flat', searches: [{}] },
    {
      group: 'runtime',
      index: 'IVF-PQ',
      numPartitions: L,
      numSubVectors: collectionSubVectors(dimension),
      refineStorage: 'float16',
      searches: [{ nprobes: Math.min(L, DEFAULT_NPROBES), refineFactor: 8 }],
      note: 'as a collection builds it',
    },
  ];
}

export function rowsOf(plans: BuildSpec[]): number {
  return plans.reduce((sum, p) => sum + p.searches.length, 0);
}
