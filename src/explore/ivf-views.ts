import { COARSE_ITERATIONS } from '../ann/coarse.ts';
import { IvfFlatIndex } from '../ann/ivf-flat.ts';
import { kernels, type ResidentMatrix } from '../ann/kernels/index.ts';
import { type Assigner, type LloydStep, lloydStep, rowNorms } from '../ann/kmeans.ts';
import type { DistanceType } from '../ann/metric.ts';
import { DEFAULT_NPROBES } from '../ann/vector-index.ts';
import type { ImageCollection } from '../collection/store.ts';
import { coarseLayout, defaultProbesOf, EXPLORE_SEED, type IvfIndex, isIvfIndex } from './ivf.ts';
import { generationOf, type VectorSnapshots } from './snapshots.ts';
import type { IvfStatus } from './types.ts';

/** Collections from this size on get no IVF-Flat built for the view (as for the HNSW view). */
export const IVF_VIEW_MAX_IMAGES = 50_000;

/**
 * Partitions of the IVF-Flat built for the view: the reference notebook's `IVF100,Flat` (its Feder
 * figures drew those 100 cells). k-means wants some 39 training points per centroid (faiss warns below
 * that), so a collection under 100 × 39 images gets about √n partitions instead.
 */
export const IVF_VIEW_PARTITIONS = 100;
export const IVF_VIEW_MIN_POINTS_PER_PARTITION = 39;

/** The partitions the view's IVF-Flat of `n` images has: 100, or about √n for fewer than 3,900 images. */
export function ivfViewPartitions(n: number): number {
  if (n <= 0) return 0;
  if (n >= IVF_VIEW_PARTITIONS * IVF_VIEW_MIN_POINTS_PER_PARTITION) return IVF_VIEW_PARTITIONS;
  return Math.max(1, Math.min(IVF_VIEW_PARTITIONS, Math.round(Math.sqrt(n))));
}

/**
 * Work of one slice of the build (rows × partitions × dimension multiply-adds) between two pauses:
 * about 5 ms on one core (512 rows of Caltech101's 1,280-d vectors against 100 centroids), so a request
 * that comes in while the view is built waits no longer than that.
 */
const SLICE_WORK = 512 * 100 * 1280;

/** Rows of `d` wide vectors per slice of work against `partitions` centroids. */
export function sliceRows(partitions: number, d: number): number {
  return Math.max(16, Math.min(4096, Math.floor(SLICE_WORK / Math.max(1, partitions * d))));
}

/** The partitions a collection's IVF views draw. */
export interface IvfView {
  /** 'collection': the collection's own IVF index; 'explore': an IVF-Flat built for the view. */
  source: 'collection' | 'explore';
  index: IvfIndex;
  /** Model vector → the index's query (the collection's projection, if any). */
  query: (vector: Float32Array) => Float32Array;
}

type Entry =
  | {
      generation: string;
      state: 'building';
      percent: number;
      images: number;
      partitions: number;
      done: Promise<void>;
    }
  | { generation: string; state: 'ready'; view: IvfView }
  | { generation: string; state: 'failed'; reason: string };

export interface IvfViewsOptions {
  snapshots: VectorSnapshots;
  maxImages?: number;
  /** Rows per slice of the build (k-means' Lloyd steps, then the adds); default from SLICE_WORK. */
  sliceRows?: number;
  /**
   * Runs k-means' Lloyd steps. Default: in this thread, in slices of `sliceRows` rows with a pause after
   * each (so the server answers meanwhile). A parallel assigner (src/node) trains faster on many cores
   * but keeps one share of every step in this thread, unsliced.
   */
  assigner?: Assigner;
  /** Lets others run between two slices; default setImmediate. */
  pause?: () => Promise<void>;
  log?: (line: string) => void;
}

/** How long a build waits before its first step; see makeView. */
const START_AFTER_MS = 50;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Thrown into k-means when the collection changed under a build: that build stops, a newer one goes on. */
class Superseded extends Error {}

/**
 * Runs each Lloyd step of k-means in slices of `rows` rows in this thread, awaiting `pause` after each
 * slice and telling `onSlice` how far the step is (0 to 1; it may throw to stop the run). The sums and
 * counts are the whole step's, as the local assigner's (up to the order of the additions).
 */
export function slicedAssigner(options: {
  rows: number;
  pause: () => Promise<void>;
  onSlice?: (fraction: number) => void;
}): Assigner {
  return {
    async begin(points, n, d) {
      const K = kernels();
      const slices: {
        resident: ResidentMatrix;
        norms: Float32Array;
        count: number;
        labels: Int32Array;
        distances: Float32Array;
      }[] = [];
      for (let start = 0; start < n; start += options.rows) {
        const count = Math.min(options.rows, n - start);
        const part = points.subarray(start * d, (start + count) * d);
        slices.push({
          resident: K.resident(part),
          norms: rowNorms(part, count, d),
          count,
          labels: new Int32Array(count),
          distances: new Float32Array(count),
        });
        await options.pause();
      }
      return {
        async step(centroids, k): Promise<LloydStep> {
          const sums = new Float64Array(k * d);
          const counts = new Uint32Array(k);
          let objective = 0;
          for (let s = 0; s < slices.length; s++) {
            const { resident, norms, count, labels, distances } = slices[s]!;
            const part = lloydStep(resident, norms, count, d, centroids, k, labels, distances);
            for (let i = 0; i < sums.length; i++) sums[i] = sums[i]! + part.sums[i]!;
            for (let c = 0; c < k; c++) counts[c] = counts[c]! + part.counts[c]!;
            objective += part.objective;
            options.onSlice?.((s + 1) / slices.length);
            await options.pause();
          }
          return { sums, counts, objective };
        },
        end() {
          for (const slice of slices) slice.resident.dispose();
        },
      };
    },
  };
}

/** `assigner` telling `onStep` after each whole Lloyd step (which may throw to stop the run). */
function countingSteps(assigner: Assigner, onStep: () => void): Assigner {
  return {
    async begin(points, n, d) {
      const run = await assigner.begin(points, n, d);
      return {
        async step(centroids, k) {
          const step = await run.step(centroids, k);
          onStep();
          return step;
        },
        end: () => run.end(),
      };
    },
  };
}

/** Progress of a build: reading 0–5 %, k-means 5–80 %, adding 80–95 %, the partition map 95–99 %. */
const PHASES = { read: 5, train: 80, add: 95, layout: 99 } as const;

/**
 * The partitions each collection's IVF views (coarse map, fine distance, fine projection) draw: the
 * collection's own index when it is an IVF index (IVF-PQ, IVF-Flat), else an IVF-Flat of
 * IVF_VIEW_PARTITIONS partitions built here in the background from the stored vectors (under `maxImages`
 * images; k-means in slices with pauses), cached, and built again once the collection changed. Asked
 * while building, it says how far it is.
 */
export class IvfViews {
  private readonly entries = new WeakMap<ImageCollection, Entry>();
  /** Every build of a collection not yet over, the overtaken ones (winding down) included. */
  private readonly running = new WeakMap<ImageCollection, Set<Promise<void>>>();
  private readonly maxImages: number;
  private readonly pause: () => Promise<void>;

  constructor(private readonly options: IvfViewsOptions) {
    this.maxImages = options.maxImages ?? IVF_VIEW_MAX_IMAGES;
    this.pause = options.pause ?? nextTurn;
  }

  /**
   * Where the IVF views of `col` stand; with `start`, a build begins when the collection has no IVF
   * index of its own and there is no IVF-Flat of the collection as it is now. The view comes along
   * when ready.
   */
  async status(col: ImageCollection, start: boolean): Promise<{ status: IvfStatus; view?: IvfView }> {
    const images = await col.count();
    if (images === 0)
      return {
        status: {
          state: 'unavailable',
          reason: `${col.name} has no images yet, hence no partitions to show; add some with ris add ${col.name} <folder>`,
        },
      };
    const own = col.searchIndex();
    if (own && isIvfIndex(own.index) && own.index.trained) {
      const index = own.index;
      return {
        status: ready('collection', index),
        view: { source: 'collection', index, query: (v) => own.query(v) },
      };
    }
    if (images >= this.maxImages) {
      const kind = own?.index.kind ?? (await col.status()).kind;
      return {
        status: { state: 'unavailable', reason: overCapReason(col.name, kind, images, this.maxImages) },
      };
    }
    const generation = await generationOf(col);
    let entry = this.entries.get(col);
    if (entry?.generation !== generation) {
      const partitions = ivfViewPartitions(images);
      if (!start)
        return {
          status: {
            state: 'idle',
            numPartitions: partitions,
            defaultNprobes: Math.min(partitions, DEFAULT_NPROBES),
          },
        };
      entry = this.build(col, generation, images, partitions);
    }
    switch (entry.state) {
      case 'building':
        return {
          status: {
            state: 'building',
            percent: entry.percent,
            images: entry.images,
            numPartitions: entry.partitions,
            defaultNprobes: Math.min(entry.partitions, DEFAULT_NPROBES),
          },
        };
      case 'failed':
        return { status: { state: 'failed', reason: entry.reason } };
      case 'ready':
        return { status: ready('explore', entry.view.index), view: entry.view };
    }
  }

  /** Waits until no build of `col` runs, an overtaken one included (tests, and a server closing). */
  async settled(col: ImageCollection): Promise<void> {
    for (let builds = this.running.get(col); builds && builds.size > 0; builds = this.running.get(col))
      await Promise.all(builds);
  }

  private build(col: ImageCollection, generation: string, images: number, partitions: number): Entry {
    const entry: Entry & { state: 'building' } = {
      generation,
      state: 'building',
      percent: 0,
      images,
      partitions,
      done: Promise.resolve(),
    };
    this.entries.set(col, entry);
    const current = () => this.entries.get(col) === entry;
    entry.done = (async () => {
      try {
        const view = await this.makeView(col, (percent) => {
          if (!current()) throw new Superseded();
          entry.percent = Math.max(entry.percent, Math.min(99, Math.floor(percent)));
        });
        if (current()) this.entries.set(col, { generation, state: 'ready', view });
      } catch (error) {
        if (error instanceof Superseded) return;
        const reason = `building the IVF-Flat of ${col.name} for its IVF views failed: ${(error as Error).message}`;
        this.options.log?.(reason);
        if (current()) this.entries.set(col, { generation, state: 'failed', reason });
      }
    })();
    const builds = this.running.get(col) ?? new Set<Promise<void>>();
    this.running.set(col, builds);
    builds.add(entry.done);
    void entry.done.then(() => builds.delete(entry.done));
    return entry;
  }

  /** An IVF-Flat of the stored vectors of `col`; `progress` throws Superseded once the collection changed. */
  private async makeView(col: ImageCollection, progress: (percent: number) => void): Promise<IvfView> {
    // A timer, not setImmediate: the 202 of the request that started the build is written out first
    // (Caltech101: in some 30–90 ms, instead of 0.4–0.6 s behind the read of the vectors and the start
    // of k-means).
    await new Promise((resolve) => setTimeout(resolve, START_AFTER_MS));
    const snapshot = await this.options.snapshots.get(col);
    const own = col.searchIndex();
    const query = own ? (vector: Float32Array) => own.query(vector) : (vector: Float32Array) => vector;
    const n = snapshot.ids.length;
    if (n === 0) throw new Error(`${col.name} has no stored vectors`);
    const vectors = query(snapshot.vectors);
    const dimension = vectors.length / n;
    const numPartitions = ivfViewPartitions(n);
    const distanceType: DistanceType = own?.index.distanceType ?? 'cosine';
    const rows = this.options.sliceRows ?? sliceRows(numPartitions, dimension);
    progress(PHASES.read);
    // Reading the vectors blocked a while, and so will the start of training (src/ann's train checks and
    // normalizes every row, then seeds k-means++ in one piece): others get a turn in between.
    await this.pause();

    const span = PHASES.train - PHASES.read;
    let steps = 0;
    const stepDone = (fraction: number) =>
      progress(PHASES.read + (span * Math.min(COARSE_ITERATIONS, steps + fraction)) / COARSE_ITERATIONS);
    const assigner = this.options.assigner
      ? countingSteps(this.options.assigner, () => {
          steps++;
          stepDone(0);
        })
      : slicedAssigner({
          rows,
          pause: this.pause,
          onSlice: (fraction) => {
            stepDone(fraction);
            if (fraction === 1) steps++;
          },
        });
    const index = new IvfFlatIndex({ dimension, numPartitions, distanceType, seed: EXPLORE_SEED, assigner });
    await index.train(vectors);
    progress(PHASES.train);
    await this.pause();

    // Adding costs several times a Lloyd step's work per row (normalizing, assigning, appending).
    const addRows = Math.max(16, Math.floor(rows / 8));
    for (let at = 0; at < n; at += addRows) {
      const end = Math.min(n, at + addRows);
      index.add(vectors.subarray(at * dimension, end * dimension), snapshot.ids.subarray(at, end));
      progress(PHASES.train + ((PHASES.add - PHASES.train) * end) / n);
      await this.pause();
    }
    // The partition map (a UMAP of the centroids) is made now, so the first trace does not wait for it.
    await coarseLayout(index);
    progress(PHASES.layout);
    return { source: 'explore', index, query };
  }
}

function ready(source: 'collection' | 'explore', index: IvfIndex): IvfStatus {
  return {
    state: 'ready',
    source,
    kind: index.kind,
    size: index.size,
    numPartitions: index.numPartitions,
    defaultNprobes: defaultProbesOf(index),
  };
}

/** Why a collection past the cap has no IVF views, in words that say what there is instead. */
function overCapReason(name: string, kind: string, images: number, cap: number): string {
  const count = images.toLocaleString('en');
  const index =
    kind === 'flat'
      ? `${name} searches exactly (a Flat index over its ${count} images): it has no partitions`
      : kind === 'hnsw'
        ? `${name} has an HNSW index over its ${count} images, which has no partitions`
        : `${name} keeps its index outside this server (${kind}) and has ${count} images`;
  return (
    `${index}, and the IVF views build an IVF-Flat for this view only for collections under ` +
    `${cap.toLocaleString('en')} images, so there is no coarse or fine step to show. The Projection view ` +
    `shows a sample of the collection around the query${kind === 'hnsw' ? ', and the HNSW view its graph and the query’s path through it' : ''}; ` +
    'a collection indexed with --index ivf-pq shows its own partitions'
  );
}
