import { HnswIndex } from '../ann/hnsw.ts';
import type { DistanceType } from '../ann/metric.ts';
import type { ImageCollection } from '../collection/store.ts';
import { hnswGraphView } from './hnsw.ts';
import { type Plane, planeLayout } from './layout.ts';
import { generationOf, type VectorSnapshots } from './snapshots.ts';
import type { HnswLevelView, HnswStatus } from './types.ts';

/** Collections from this size on get no HNSW graph built for the view (a few seconds per 10,000 images). */
export const HNSW_VIEW_MAX_IMAGES = 50_000;

/**
 * The graph built for the view: links per node and beam width while building as the reference notebook's
 * hnswlib index (M 8, ef_construction 100): 5 levels over Caltech101's 9,144 images, like its figure,
 * built in about 3 s on one core.
 */
export const HNSW_VIEW_OPTIONS = { m: 8, efConstruction: 100, seed: 1 } as const;

/** A collection's HNSW graph ready to draw. */
export interface HnswView {
  source: 'collection' | 'explore';
  generation: string;
  index: HnswIndex;
  /** Model vector → the index's query (the collection's projection, if any). */
  query: (vector: Float32Array) => Float32Array;
  /** Every node's place on the planes, and where a query goes. */
  plane: Plane;
  rowOf: Map<number, number>;
  labels: string[][];
  /** The graph as drawn (made on first use). */
  graph(): HnswLevelView[];
}

type Entry =
  | { generation: string; state: 'building'; percent: number; images: number; done: Promise<void> }
  | { generation: string; state: 'ready'; view: HnswView }
  | { generation: string; state: 'failed'; reason: string };

export interface HnswViewsOptions {
  snapshots: VectorSnapshots;
  maxImages?: number;
  /** Nodes inserted between two pauses of the build (each pause lets the server answer others). */
  batchSize?: number;
  log?: (line: string) => void;
}

const pause = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The HNSW graph each collection's Explore view draws: the collection's own index when it is an HNSW, else
 * one built here in the background from the stored vectors (under `maxImages` images), cached, and
 * built again once the collection changed. Asked while building, it says how far it is.
 */
export class HnswViews {
  private readonly entries = new WeakMap<ImageCollection, Entry>();
  private readonly maxImages: number;
  private readonly batchSize: number;

  constructor(private readonly options: HnswViewsOptions) {
    this.maxImages = options.maxImages ?? HNSW_VIEW_MAX_IMAGES;
    this.batchSize = options.batchSize ?? 64;
  }

  /**
   * Where the view of `col` stands; with `start`, a build begins when there is no graph of the
   * collection as it is now. The view comes along when ready.
   */
  async status(col: ImageCollection, start: boolean): Promise<{ status: HnswStatus; view?: HnswView }> {
    const own = col.searchIndex();
    const ownHnsw = own?.index instanceof HnswIndex ? own.index : undefined;
    const images = await col.count();
    if (!ownHnsw && images >= this.maxImages)
      return {
        status: {
          state: 'unavailable',
          reason:
            `${col.name} has ${images.toLocaleString('en')} images: the HNSW view builds a graph only for collections ` +
            `under ${this.maxImages.toLocaleString('en')}; a collection indexed with an HNSW index shows its own graph`,
        },
      };
    if (images === 0)
      return { status: { state: 'unavailable', reason: `${col.name} has no images yet; add some first` } };
    const generation = await generationOf(col);
    let entry = this.entries.get(col);
    if (entry?.generation !== generation) {
      if (!start) return { status: { state: 'idle' } };
      entry = this.build(col, generation, images);
    }
    switch (entry.state) {
      case 'building':
        return { status: { state: 'building', percent: entry.percent, images: entry.images } };
      case 'failed':
        return { status: { state: 'failed', reason: entry.reason } };
      case 'ready':
        return {
          status: { state: 'ready', source: entry.view.source, size: entry.view.index.size },
          view: entry.view,
        };
    }
  }

  /** Waits for the build of `col` under way, if any (tests, and a server closing). */
  async settled(col: ImageCollection): Promise<void> {
    const entry = this.entries.get(col);
    if (entry?.state === 'building') await entry.done;
  }

  private build(col: ImageCollection, generation: string, images: number): Entry {
    const entry: Entry & { state: 'building' } = {
      generation,
      state: 'building',
      percent: 0,
      images,
      done: Promise.resolve(),
    };
    this.entries.set(col, entry);
    const current = () => this.entries.get(col) === entry;
    entry.done = (async () => {
      try {
        const view = await this.makeView(col, generation, (percent) => {
          entry.percent = percent;
          return current();
        });
        if (view && current()) this.entries.set(col, { generation, state: 'ready', view });
      } catch (error) {
        const reason = `building the HNSW graph of ${col.name} failed: ${(error as Error).message}`;
        this.options.log?.(reason);
        if (current()) this.entries.set(col, { generation, state: 'failed', reason });
      }
    })();
    return entry;
  }

  /** The view of `col`; undefined when `progress` says to stop (the collection changed meanwhile). */
  private async makeView(
    col: ImageCollection,
    generation: string,
    progress: (percent: number) => boolean,
  ): Promise<HnswView | undefined> {
    await pause();
    const snapshot = await this.options.snapshots.get(col);
    const own = col.searchIndex();
    const query = own ? (vector: Float32Array) => own.query(vector) : (vector: Float32Array) => vector;
    const vectors = query(snapshot.vectors);
    const n = snapshot.ids.length;
    const dimension = n > 0 ? vectors.length / n : snapshot.dimension;
    let index: HnswIndex;
    let source: HnswView['source'];
    if (own?.index instanceof HnswIndex) {
      index = own.index;
      source = 'collection';
    } else {
      source = 'explore';
      const distanceType: DistanceType = own?.index.distanceType ?? 'cosine';
      index = new HnswIndex({ dimension, distanceType, ...HNSW_VIEW_OPTIONS });
      for (let at = 0; at < n; at += this.batchSize) {
        const end = Math.min(n, at + this.batchSize);
        index.add(vectors.subarray(at * dimension, end * dimension), snapshot.ids.subarray(at, end));
        if (!progress(Math.floor((90 * end) / n))) return undefined;
        await pause();
      }
    }
    const plane = planeLayout(vectors, n, dimension, HNSW_VIEW_OPTIONS.seed);
    if (!progress(99)) return undefined;
    let graph: HnswLevelView[] | undefined;
    return {
      source,
      generation,
      index,
      query,
      plane,
      rowOf: snapshot.rowOf,
      labels: snapshot.labels,
      graph: () => {
        graph ??= hnswGraphView(index.levels());
        return graph;
      },
    };
  }
}
