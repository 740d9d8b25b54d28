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
