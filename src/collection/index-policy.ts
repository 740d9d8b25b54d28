import { FlatIndex } from '../ann/flat.ts';
import type { IndexKind } from '../ann/format.ts';
import { HnswIndex } from '../ann/hnsw.ts';
import type { HnswBuilder } from '../ann/hnsw-parallel.ts';
import { IvfPqIndex } from '../ann/ivf-pq.ts';
import { IvfRabitqIndex } from '../ann/ivf-rabitq.ts';
import type { Assigner } from '../ann/kmeans.ts';
import type { SearchOptions as IndexSearchOptions, VectorIndex } from '../ann/vector-index.ts';
import { DEFAULT_NPROBES } from '../ann/vector-index.ts';
import { EXACT_SEARCH_BELOW, HNSW_UP_TO, type IndexSettings } from './manifest.ts';
import { type CollectionIndexKind, planIndex } from './memory-plan.ts';

export type { CollectionIndexKind } from './memory-plan.ts';

/** The fewest images an IVF kind is trained on (exact search until then): PQ's 256 codes, say. */
const IVF_FROM = 256;

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
 * The index kind a collection of `size` images (of `dimension` in the index) gets. 'auto': exact search
 * below EXACT_SEARCH_BELOW images, HNSW up to HNSW_UP_TO, IVF-RaBitQ past it (an IVF-PQ index built
 * there by an older ris is kept); with a memory budget, the plan of `planIndex`. An approximate index
 * goes back to exact search only below half the threshold, so images added and removed around it do not
 * rebuild the index each time.
 */
export function indexKindFor(
  settings: IndexSettings,
  size: number,
  built: 'none' | IndexKind,
  dimension: number,
): CollectionIndexKind {
  const { kind } = settings;
  if (kind === 'flat' || kind === 'hnsw') return kind;
  if (kind === 'ivf-pq' || kind === 'ivf-rabitq') return size >= IVF_FROM ? kind : 'flat';
  if (settings.memoryBudget !== null)
    return planIndex(settings, size, dimension, settings.memoryBudget, built).kind;
  const ivf = built === 'ivf-pq' || built === 'ivf-rabitq';
  if (size > HNSW_UP_TO) return built === 'ivf-pq' ? 'ivf-pq' : 'ivf-rabitq';
  if (size >= EXACT_SEARCH_BELOW) return ivf && size > HNSW_UP_TO / 2 ? built : 'hnsw';
  return (built === 'hnsw' || ivf) && size >= EXACT_SEARCH_BELOW / 2 ? built : 'flat';
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
  const numPartitions =
    settings.numPartitions === 'auto' ? undefined : Math.min(settings.numPartitions, ids.length);
  if (kind === 'ivf-rabitq') {
    const index = new IvfRabitqIndex({
      dimension: d,
      distanceType: 'cosine',
      numPartitions,
      rerankStorage: settings.refineStorage,
      assigner: context.assigner,
    });
    await index.train(vectors);
    index.add(vectors, ids);
    return index;
  }
  const index = new IvfPqIndex({
    dimension: d,
    distanceType: 'cosine',
    numPartitions,
    numSubVectors: settings.numSubVectors === 'auto' ? collectionSubVectors(d) : settings.numSubVectors,
    refineStorage: settings.refineStorage,
    assigner: context.assigner,
  });
  await index.train(vectors);
  index.add(vectors, ids);
  return index;
}

/**
 * The index's search options for a collection search, each kind with its own defaults: IVF-PQ probes
 * 16 partitions and re-ranks 8 candidates per result from its float16 copy; IVF-RaBitQ probes 16 and
 * re-ranks what its error bounds cannot settle (its own defaults); HNSW takes the beam width asked for
 * (its own default otherwise); exact search takes nothing. More probes than partitions probe them all.
 */
export function indexSearchOptions(
  index: VectorIndex,
  options: { nprobes?: number; efSearch?: number },
): IndexSearchOptions {
  const partitions = (index as { numPartitions?: number }).numPartitions ?? 0;
  const nprobes = (fallback?: number) => {
    const wanted = options.nprobes ?? fallback;
    return wanted === undefined ? undefined : Math.min(partitions, wanted);
  };
  switch (index.kind) {
    case 'ivf-pq':
      return { nprobes: nprobes(DEFAULT_NPROBES), refineFactor: REFINE_FACTOR };
    case 'ivf-rabitq':
      return { nprobes: nprobes() };
    case 'hnsw':
      return { efSearch: options.efSearch };
    default:
      return {};
  }
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
