import { FlatIndex } from '../ann/flat.ts';
import { NO_ID } from '../ann/types.ts';
import { meanAveragePrecisionAtK, precisionAtK } from './metrics.ts';

export interface RetrievalScores {
  precisionAt1: number | null;
  precisionAt5: number | null;
  map10: number | null;
}

/**
 * Leave-one-out same-label retrieval over `vectors` (exact L2 search, so unit-length vectors rank by
 * cosine): every labelled vector queries all the others. P@1, P@5 and mAP@10 (see metrics.ts).
 */
export function leaveOneOut(vectors: Float32Array, d: number, labels: Int32Array): RetrievalScores {
  const n = labels.length;
  const k = 10;
  const index = new FlatIndex({ dimension: d });
  index.add(vectors);
  const wanted = Math.min(k + 1, n);
  const result = index.searchBatch(vectors, wanted).ids;
  const found = new Uint32Array(n * k).fill(NO_ID);
  for (let i = 0; i < n; i++) {
    let at = 0;
    for (let j = 0; j < wanted && at < k; j++) {
      const id = result[i * wanted + j]!;
      if (id !== i && id !== NO_ID) found[i * k + at++] = id; // the query itself is not a result
    }
  }
  const counts = new Map<number, number>();
  for (const l of labels) if (l >= 0) counts.set(l, (counts.get(l) ?? 0) + 1);
  return {
    precisionAt1: precisionAtK(found, k, 1, labels, labels),
    precisionAt5: precisionAtK(found, k, 5, labels, labels),
    map10: meanAveragePrecisionAtK(found, k, k, labels, labels, (i) => (counts.get(labels[i]!) ?? 1) - 1),
  };
}
