import { FlatIndex } from '../ann/flat.ts';
import type { IndexKind } from '../ann/format.ts';
import { HnswIndex } from '../ann/hnsw.ts';
import type { HnswBuilder } from '../ann/hnsw-parallel.ts';
import { IvfPqIndex } from '../ann/ivf-pq.ts';
import type { Assigner } from '../ann/kmeans.ts';
import type { SearchOptions as IndexSearchOptions, VectorIndex } from '../ann/vector-index.ts';
import { DEFAULT_NPROBES } from '../ann/vector-index.ts';
import { EXACT_SEARCH_BELOW, HNSW_UP_TO, type IndexSettings } from './manifest.ts';

/** The index kinds a collection builds. */
export type CollectionIndexKind = 'flat' | 'hnsw' | 'ivf-pq';

/** IVF-PQ candidates re-ranked exactly per result, from the float16 copy: most of the recall PQ loses. */
const REFINE_FACTOR = 8;

/** What an index is built with, besides its settings. */
export interface IndexBuildContext {
  /** The dimension of what the index holds (a projection's output, or the model's vectors). */
  dimension: number;
  /** Spreads IVF training over threads. */
  assigner?: Assigner;
  /** Spreads HNSW builds over threads. */
  hnswBuilder?: HnswBuilder;
}

/**
 * The index kind a collection of `size` images gets. 'auto': exact search below EXACT_SEARCH_BELOW
 * images, HNSW up to HNSW_UP_TO, IVF-PQ past it; an approximate index goes back to exact search only
 * below half the threshold, so images added and removed around it do not rebuild the index each time.
 */
export function indexKindFor(
  settings: IndexSettings,
  size: number,
  built: 'none' | IndexKind,
): CollectionIndexKind {
  const { kind } = settings;
  if (kind === 'flat' || kind === 'hnsw') return kind;
  if (kind === 'ivf-pq') return size >= 256 ? 'ivf-pq' : 'flat';
  if (size > HNSW_UP_TO) return 'ivf-pq';
  if (size >= EXACT_SEARCH_BELOW) return built === 'ivf-pq' && size > HNSW_UP_TO / 2 ? 'ivf-pq' : 'hnsw';
  return (built === 'hnsw' || built === 'ivf-pq') && size >= EXACT_SEARCH_BELOW / 2 ? built : 'flat';
}

/** An empty index of the kind the settings give an empty collection. */
export function emptyIndex(settings: IndexSettings, context: IndexBuildContext): VectorIndex {
  return settings.kind === 'hnsw'
    ? newHnsw(settings, context)
    : new FlatIndex({ dimension: context.dimension, distanceType: 'cosine' });
}

/** An index of `kind` holding `vectors` (n × dimension, already in the index's space) under `ids`. */
export async function buildIndex(
  kind: CollectionIndexKind,
  settings: IndexSettings,
  context: IndexBuildContext,
  ids: Uint32Array,
  vectors: Float32Array,
): Promise<VectorIndex> {
  const d = context.dimension;
  if (kind === 'flat') {
    const index = new FlatIndex({ dimension: d, distanceType: 'cosine' });
    index.add(vectors, ids);
    return index;
  }
  if (kind === 'hnsw') {
    const index = newHnsw(settings, context);
    index.add(vectors, ids);
    return index;
  }
  const index = new IvfPqIndex({
    dimension: d,
    distanceType: 'cosine',
    numPartitions:
      settings.numPartitions === 'auto' ? undefined : Math.min(settings.numPartitions, ids.length),
    numSubVectors: settings.numSubVectors === 'auto' ? collectionSubVectors(d) : settings.numSubVectors,
    refineStorage: settings.refineStorage,
    assigner: context.assigner,
  });
  await index.train(vectors);
  index.add(vectors, ids);
  return index;
}

/**
 * The index's search options for a collection search: options a kind has no use for are ignored by it
 * (exact search ignores nprobes and efSearch); more probes than partitions probe them all.
 */
export function indexSearchOptions(
  index: VectorIndex,
  options: { nprobes?: number; efSearch?: number },
): IndexSearchOptions {
  const partitions = (index as { numPartitions?: number }).numPartitions;
  return {
    nprobes: partitions ? Math.min(partitions, options.nprobes ?? DEFAULT_NPROBES) : undefined,
    refineFactor: REFINE_FACTOR,
    efSearch: options.efSearch,
  };
}

function newHnsw(settings: IndexSettings, context: IndexBuildContext): HnswIndex {
  const { m, efConstruction, hnswStorage } = settings;
  return new HnswIndex({
    dimension: context.dimension,
    distanceType: 'cosine',
    m,
    efConstruction,
    storage: hnswStorage,
    builder: context.hnswBuilder,
  });
}

/** PQ sub-vectors for a collection: about dimension / 32, a divisor of the dimension. */
function collectionSubVectors(d: number): number {
  for (let m = Math.max(1, Math.floor(d / 32)); m > 1; m--) if (d % m === 0) return m;
  return 1;
}
