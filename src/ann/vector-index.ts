import { ArgumentError, describe, StateError } from '../errors.ts';
import type { IndexKind } from './format.ts';
import type { DistanceType } from './metric.ts';
import type { BatchSearchResult, SearchResult } from './types.ts';
import { checkInteger } from './validate.ts';

export type { IndexKind } from './format.ts';

/**
 * Partitions an IVF search visits unless told otherwise (capped at numPartitions): 16. On bench (a) —
 * Caltech101 MobileNetV2, IVF100,PQ32 — 16 probes with a float16 refine (refineFactor 16) reach
 * 10-recall@10 0.95, and collections have always searched with 16 (the index alone used to say 20).
 * More probes find more true neighbours at a cost in time proportional to the probes; fewer are faster.
 */
export const DEFAULT_NPROBES = 16;

/**
 * Options of `search` and `searchBatch`, the same for every kind: an index checks each option given and
 * ignores those it has no use for, so one call works whatever the index.
 */
export interface SearchOptions {
  /**
   * IVF kinds: partitions to visit, 1 to numPartitions. More finds more true neighbours and costs time
   * in proportion. Default: min(numPartitions, DEFAULT_NPROBES).
   */
  nprobes?: number;
  /**
   * PQ kinds: re-rank the best k × refineFactor candidates by their exact distance (needs
   * `refineStorage`). 0 (the default) returns the product-quantized distances; 2 to 10 recovers most of
   * the recall PQ loses. Exact kinds ignore it.
   */
  refineFactor?: number;
  /**
   * HNSW: the beam width of the search, at least k (a smaller value is raised to k). Wider finds more
   * true neighbours and costs time roughly in proportion. Default DEFAULT_EF_SEARCH. Other kinds ignore it.
   */
  efSearch?: number;
}

/** The largest efSearch a search accepts. */
export const MAX_EF_SEARCH = 100_000;

/** What an index is: plain data (JSON as it is), for `ris index-info`, logs and the server. */
export interface IndexDescription {
  kind: IndexKind;
  dimension: number;
  distanceType: DistanceType;
  /** False until `train` (kinds that need no training are always trained). */
  trained: boolean;
  /** Vectors in the index. */
  size: number;
  /** The kind's own parameters as built or learned (numPartitions, numSubVectors, refineStorage, …). */
  parameters: Record<string, number | string>;
  /** `memoryUsage().total`. */
  memoryBytes: number;
}

/** Bytes an index holds, by part (`total` is their sum). */
export interface MemoryUsage {
  total: number;
  [part: string]: number;
}

/**
 * What every kind of index does (FlatIndex, IvfFlatIndex, IvfPqIndex, PqIndex, HnswIndex): code written against it
 * holds any kind, and `openIndex` / `loadIndex` open any kind's file.
 */
export interface VectorIndex {
  readonly kind: IndexKind;
  /** Length of every vector. */
  readonly dimension: number;
  readonly distanceType: DistanceType;
  /** Number of vectors in the index. */
  readonly size: number;
  readonly trained: boolean;
  /** Learns the index's quantizers from n × dimension vectors (a no-op for exact kinds). Does not add them. */
  train(vectors: Float32Array): Promise<void>;
  /**
   * Adds n vectors (n × dimension, row-major) with the given ids, or with the next free ids (one more
   * than the largest so far). Ids must not be in the index already. Returns the ids.
   */
  add(vectors: Float32Array, ids?: Uint32Array): Uint32Array;
  /** Removes the vectors with these ids (ids not in the index are ignored); returns how many were removed. */
  remove(ids: Uint32Array | readonly number[]): number;
  /** The k nearest vectors to `query`, nearest first; fewer than k when the index (or the probed part) holds fewer. */
  search(query: Float32Array, k: number, options?: SearchOptions): SearchResult;
  /**
   * Searches nq queries at once (nq × dimension, row-major): row i of the result is
   * ids[i·k … i·k + k), padded with NO_ID and Infinity where fewer than k were found.
   */
  searchBatch(queries: Float32Array, k: number, options?: SearchOptions): BatchSearchResult;
  /** Every id in the index. */
  ids(): Uint32Array;
  memoryUsage(): MemoryUsage;
  describe(): IndexDescription;
  /** The index as the bytes of its file (see src/ann/format.ts); `openIndex` reads them back. */
  toBytes(): Uint8Array;
  /** Writes the index to `path` through the file store (atomically: temp file, fsync, rename). */
  save(path: string): Promise<void>;
}

/** Checks search options whatever the kind; returns refineFactor (0 when not given). */
export function checkSearchOptions(options: unknown): {
  nprobes: number | undefined;
  refineFactor: number;
  efSearch: number | undefined;
} {
  if (typeof options !== 'object' || options === null) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected search options to be an object such as { nprobes: 16 } but received ${describe(options)}`,
    );
  }
  const { nprobes, refineFactor, efSearch } = options as SearchOptions;
  if (nprobes !== undefined) checkInteger(nprobes, 'nprobes', 1, 1 << 20);
  if (efSearch !== undefined) checkInteger(efSearch, 'efSearch', 1, MAX_EF_SEARCH);
  return { nprobes, refineFactor: checkInteger(refineFactor ?? 0, 'refineFactor', 0, 1000), efSearch };
}

/** The largest k a search accepts. */
export const MAX_K = 100_000;

/** The trained part of an index, or NOT_TRAINED saying what to do. */
export function checkTrained<T>(part: T | undefined, action: string): T {
  if (part === undefined) {
    throw new StateError(
      'NOT_TRAINED',
      `Cannot ${action} an untrained index; call await index.train(vectors) first`,
    );
  }
  return part;
}

/**
 * Training again would replace the quantizers the stored codes were made with, so it would have to drop
 * them: an index that holds vectors refuses (an empty one may be retrained).
 */
export function refuseRetrain(index: { size: number; trained: boolean }): void {
  if (index.trained && index.size > 0) {
    throw new StateError(
      'ALREADY_TRAINED',
      `This index is trained and holds ${index.size} vectors; training again would drop them. ` +
        'Create a new index and train that one (then add the vectors to it), or remove every vector first',
    );
  }
}

/** `describe()` of any kind: the common fields, and the kind's own parameters. */
export function describeIndex(
  index: VectorIndex,
  parameters: Record<string, number | string | undefined>,
): IndexDescription {
  const defined = Object.fromEntries(Object.entries(parameters).filter(([, v]) => v !== undefined)) as Record<
    string,
    number | string
  >;
  return {
    kind: index.kind,
    dimension: index.dimension,
    distanceType: index.distanceType,
    trained: index.trained,
    size: index.size,
    parameters: defined,
    memoryBytes: index.memoryUsage().total,
  };
}
