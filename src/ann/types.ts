/** Search results as struct-of-arrays, nearest first (as usearch returns them). */
export interface SearchResult {
  ids: Uint32Array;
  distances: Float32Array;
}

/** Results of nq queries: row i is ids[i·k … i·k + k), padded with NO_ID and Infinity. */
export interface BatchSearchResult {
  ids: Uint32Array;
  distances: Float32Array;
}

/** The id that marks "no result" in padded batch results (2³² − 1, never assigned to a vector). */
export const NO_ID = 0xffffffff;

/** The first row of a padded batch result, without its padding: what `search` returns for one query. */
export function firstRow(result: BatchSearchResult, k: number): SearchResult {
  let found = 0;
  while (found < k && result.ids[found] !== NO_ID) found++;
  return { ids: result.ids.subarray(0, found), distances: result.distances.subarray(0, found) };
}
