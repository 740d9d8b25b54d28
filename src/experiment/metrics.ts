import { NO_ID } from '../ann/types.ts';

/**
 * k-recall@k: the fraction of the true k nearest found among the k returned, averaged over queries.
 * `found` and `truth` hold nq rows of `foundStride` and `truthStride` ids (at least k each).
 */
export function recallAtK(
  found: Uint32Array,
  foundStride: number,
  truth: Uint32Array,
  truthStride: number,
  nq: number,
  k: number,
): number {
  if (nq === 0) return 0;
  let hits = 0;
  const expected = new Set<number>();
  for (let i = 0; i < nq; i++) {
    expected.clear();
    for (let j = 0; j < k; j++) expected.add(truth[i * truthStride + j]!);
    for (let j = 0; j < k; j++) {
      const id = found[i * foundStride + j]!;
      if (id !== NO_ID && expected.has(id)) hits++;
    }
  }
  return hits / (nq * k);
}

/**
 * The reference notebook's "recall@5", kept exactly as it defined it so our table can sit beside its:
 * queries are database vectors; `exactNeighbour[i]` is the exact search's rank-2 id (its nearest
 * non-self neighbour, assuming rank 1 is the query itself), and a query counts when that id is among
 * the approximate ranks 2–6 (`approx` holds nq rows of `stride` ≥ 6 ids; rank 1 is skipped even when it
 * is not the query, which is the notebook's assumption, not ours).
 */
export function notebookRecallAt5(approx: Uint32Array, stride: number, exactNeighbour: Uint32Array): number {
  const nq = exactNeighbour.length;
  if (nq === 0) return 0;
  let hits = 0;
  for (let i = 0; i < nq; i++) {
    const want = exactNeighbour[i]!;
    for (let r = 1; r <= 5; r++) {
      if (approx[i * stride + r] === want) {
        hits++;
        break;
      }
    }
  }
  return hits / nq;
}

/**
 * Same-label precision of the first k results: the fraction of them whose label is the query's. A
 * missing result (NO_ID) counts as a miss. Queries without a label (−1) are left out.
 */
export function precisionAtK(
  found: Uint32Array,
  stride: number,
  k: number,
  queryLabels: Int32Array,
  baseLabels: Int32Array,
): number | null {
  let sum = 0;
  let counted = 0;
  for (let i = 0; i < queryLabels.length; i++) {
    const label = queryLabels[i]!;
    if (label < 0) continue;
    let same = 0;
    for (let j = 0; j < k; j++) {
      const id = found[i * stride + j]!;
      if (id !== NO_ID && baseLabels[id] === label) same++;
    }
    sum += same / k;
    counted++;
  }
  return counted === 0 ? null : sum / counted;
}

/**
 * Mean AP@k over labelled queries: AP@k = Σ_{r ≤ k} P@r · rel_r / min(k, R), where R is the number of
 * database items with the query's label (the query itself excluded by the caller). Queries with R = 0
 * are left out: nothing could be found for them.
 */
export function meanAveragePrecisionAtK(
  found: Uint32Array,
  stride: number,
  k: number,
  queryLabels: Int32Array,
  baseLabels: Int32Array,
  relevantCount: (query: number) => number,
): number | null {
  let sum = 0;
  let counted = 0;
  for (let i = 0; i < queryLabels.length; i++) {
    const label = queryLabels[i]!;
    if (label < 0) continue;
    const relevant = relevantCount(i);
    if (relevant === 0) continue;
    let hits = 0;
    let ap = 0;
    for (let r = 0; r < k; r++) {
      const id = found[i * stride + r]!;
      if (id !== NO_ID && baseLabels[id] === label) {
        hits++;
        ap += hits / (r + 1);
      }
    }
    sum += ap / Math.min(k, relevant);
    counted++;
  }
  return counted === 0 ? null : sum / counted;
}

/** The p-th percentile (0–100) of values, by the nearest-rank method. */
export function percentile(values: Float64Array, p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}
